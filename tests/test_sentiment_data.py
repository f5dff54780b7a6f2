"""Tests for the human-rated sentiment corpus: parser, checksum, cache, splits."""

from __future__ import annotations

import io
import tarfile

import numpy as np
import pytest

from research.data import sentiment

# ----------------------------------------------------------------------------
# A tiny fake corpus and sdist, so the parser and checksum logic run offline.

FAKE_FILES = {
    "tweets_GroundTruth.txt": b"1\t2.5\tI love this :)\r\n2\t-3.1\tawful day\r\n3\t0.1\tmeh\r\n",
    "movieReviewSnippets_GroundTruth.txt": "1\t1.0\tClich\u00e9s aside, fine\r\n".encode(),
    "amazonReviewSnippets_GroundTruth.txt": b"1_1\t-0.9\tbroke fast\r\n1_2\t0.6\tworks\r\n",
    "nytEditorialSnippets_GroundTruth.txt": b"1_1\t0.0\tThe council met.",  # no final newline
}


def _tar_gz(files: dict[str, bytes], prefix: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"{prefix}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture
def fake_sdist(tmp_path):
    corpus = _tar_gz(FAKE_FILES, "hutto_ICWSM_2014")
    sdist = tmp_path / "vaderSentiment-3.3.2.tar.gz"
    sdist.write_bytes(
        _tar_gz(
            {sentiment.CORPUS_MEMBER: corpus, "setup.py": b"# not used\n"}, "vaderSentiment-3.3.2"
        )
    )
    return sdist, sentiment.sha256_hex(corpus)


def test_fetch_from_fake_sdist_parses_and_caches(fake_sdist, tmp_path):
    sdist, sha = fake_sdist
    cache = sentiment.fetch(tmp_path / "cache", sdist_path=sdist, expected_sha256=sha)
    assert sentiment.is_cached(cache)
    tweets = sentiment.read_domain("tweets", cache)
    assert tweets.ids == ["1", "2", "3"]
    assert tweets.texts == ["I love this :)", "awful day", "meh"]  # CR stripped
    np.testing.assert_allclose(tweets.ratings, [2.5, -3.1, 0.1])
    assert sentiment.read_domain("movies", cache).texts == ["Clich\u00e9s aside, fine"]
    assert sentiment.read_domain("nyt", cache).texts == ["The council met."]


def test_fetch_rejects_checksum_mismatch(fake_sdist, tmp_path):
    sdist, _ = fake_sdist
    with pytest.raises(ValueError, match="SHA-256 mismatch"):
        sentiment.fetch(tmp_path / "cache", sdist_path=sdist)  # the real checksum
    assert not sentiment.is_cached(tmp_path / "cache")


def test_fetch_is_a_no_op_when_cached(fake_sdist, tmp_path):
    sdist, sha = fake_sdist
    cache = sentiment.fetch(tmp_path / "cache", sdist_path=sdist, expected_sha256=sha)
    sdist.unlink()  # a second fetch must not need the source again
    assert sentiment.fetch(cache, sdist_path=sdist, expected_sha256=sha) == cache


def test_fetch_replaces_a_manifest_cut_short(fake_sdist, tmp_path):
    """A crash mid-write used to leave half a manifest that every later fetch failed to
    parse; the manifest is now renamed into place, and a cut one is fetched again."""
    sdist, sha = fake_sdist
    cache = sentiment.fetch(tmp_path / "cache", sdist_path=sdist, expected_sha256=sha)
    assert sorted(p.name for p in cache.iterdir() if "tmp" in p.name) == []
    (cache / sentiment.MANIFEST).write_text('{"source": "vaderSent')
    assert sentiment.fetch(cache, sdist_path=sdist, expected_sha256=sha) == cache
    assert sentiment.read_domain("tweets", cache).ids == ["1", "2", "3"]


def test_sdist_without_corpus_is_reported(tmp_path):
    sdist = tmp_path / "other.tar.gz"
    sdist.write_bytes(_tar_gz({"setup.py": b""}, "pkg"))
    with pytest.raises(ValueError, match="no additional_resources/hutto_ICWSM_2014.tar.gz"):
        sentiment.fetch(tmp_path / "cache", sdist_path=sdist)


def test_missing_domain_file_is_reported():
    files = dict(FAKE_FILES)
    del files["nytEditorialSnippets_GroundTruth.txt"]
    corpus = _tar_gz(files, "hutto_ICWSM_2014")
    with pytest.raises(ValueError, match="missing nytEditorialSnippets_GroundTruth.txt"):
        sentiment.parse_corpus_tarball(corpus, sentiment.sha256_hex(corpus))


def test_parser_reports_every_bad_line_with_its_number():
    data = b"1\t0.5\tfine\r\n2\tabc\ttext\r\n3\t9.0\ttoo high\r\nno tabs here\r\n1\t0.0\tdup\r\n"
    data += b"6\t0.2\t   \r\n7\t0.3\t\xff\xfe\r\n"
    with pytest.raises(ValueError) as err:
        sentiment.parse_ground_truth(data, "x.txt")
    message = str(err.value)
    assert message.startswith("x.txt: 6 bad lines")
    needles = [
        "line 2: rating 'abc'",
        "line 3: rating 9.0 outside",
        "line 4: expected",
        "line 5: empty or repeated id '1'",
        "line 6: empty text",
        "line 7: not UTF-8",
    ]
    for needle in needles:
        assert needle in message


def test_load_without_cache_names_the_setup_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m scripts.fetch_data"):
        sentiment.load_domains(cache_dir=tmp_path / "empty")


def test_cache_dir_follows_env_var(monkeypatch, tmp_path):
    monkeypatch.setenv(sentiment.CACHE_ENV_VAR, str(tmp_path))
    assert sentiment.default_cache_dir() == tmp_path / "sentiment"


def test_unknown_domain_lists_choices():
    with pytest.raises(ValueError, match=r"unknown sentiment domains \['imdb'\].*tweets"):
        sentiment.load_domains(("tweets", "imdb"))


# ----------------------------------------------------------------------------
# Labels and splits (no corpus needed).


def test_ratings_to_labels_thresholds_are_strict():
    ratings = np.array([-4.0, -0.51, -0.5, 0.0, 0.5, 0.51, 4.0])
    np.testing.assert_array_equal(sentiment.ratings_to_labels(ratings), [0, 0, 1, 1, 1, 2, 2])
    zero = sentiment.ratings_to_labels(ratings, (0.0, 0.0))
    np.testing.assert_array_equal(zero, [0, 0, 0, 1, 2, 2, 2])
    with pytest.raises(ValueError, match="low <= high"):
        sentiment.ratings_to_labels(ratings, (1.0, -1.0))


def test_stratified_split_partitions_and_keeps_class_proportions():
    labels = np.repeat([0, 1, 2], [500, 200, 300])
    train, val, test = sentiment.stratified_split(labels, seed=3)
    together = np.concatenate([train, val, test])
    assert len(together) == 1000 and len(np.unique(together)) == 1000
    assert (len(train), len(val), len(test)) == (700, 100, 200)
    for part, size in [(train, 700), (val, 100), (test, 200)]:
        np.testing.assert_array_equal(np.bincount(labels[part]), np.array([5, 2, 3]) * size // 10)


def test_stratified_split_is_seeded():
    labels = np.arange(300) % 3
    a = sentiment.stratified_split(labels, seed=0)
    b = sentiment.stratified_split(labels, seed=0)
    c = sentiment.stratified_split(labels, seed=1)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[2], c[2])


@pytest.mark.parametrize("cap", [1, 7, 100, 999])
def test_max_examples_caps_exactly_and_keeps_test_inside_full_test(cap):
    labels = np.repeat([0, 1, 2], [517, 211, 272])
    full_test = set(sentiment.stratified_split(labels, seed=0)[2].tolist())
    parts = sentiment.stratified_split(labels, seed=0, max_examples=cap)
    assert sum(len(p) for p in parts) == cap
    assert set(parts[2].tolist()) <= full_test


def test_held_out_rows_the_training_split_repeats_are_dropped():
    texts = ["good", "bad", "good", "fine", "bad"]
    train, val, test = sentiment.unseen_in_training(
        texts, (np.array([0]), np.array([2, 3]), np.array([1, 4])))
    assert train.tolist() == [0] and val.tolist() == [3] and test.tolist() == [1, 4]


def test_held_out_case_variants_of_training_rows_are_dropped():
    """An uncased encoder reads 'Anger is UGLY.' as 'Anger is ugly.': the tweets hold such
    pairs, and a test row that repeats a training row but for its capitals is a repeat."""
    texts = ["Anger is ugly.", "Anger is  UGLY.", "anger is ugly!", "Calm."]
    train, test = sentiment.unseen_in_training(texts, (np.array([0]), np.array([1, 2, 3])))
    assert test.tolist() == [2, 3]


def test_bad_fractions_are_rejected():
    with pytest.raises(ValueError, match="sum to 1"):
        sentiment.stratified_split(np.zeros(10), seed=0, fractions=(0.5, 0.1, 0.1))


# ----------------------------------------------------------------------------
# The real corpus (fetched at set-up time).

needs_corpus = pytest.mark.skipif(
    not sentiment.is_cached(),
    reason="sentiment corpus not cached; run `python -m scripts.fetch_data` first",
)


@needs_corpus
def test_real_corpus_counts_and_ranges():
    for domain, count in sentiment.EXPECTED_COUNTS.items():
        raw = sentiment.read_domain(domain)
        assert len(raw.ids) == len(raw.texts) == raw.ratings.shape[0] == count
        assert raw.ratings.min() >= -4 and raw.ratings.max() <= 4
        assert all(text.strip() for text in raw.texts)


@needs_corpus
def test_real_splits_are_disjoint_stratified_and_typed():
    splits = sentiment.load_domains(seed=0)
    assert list(splits) == list(sentiment.DOMAINS)
    for domain, s in splits.items():
        ids = [set(part.ids) for part in s]
        assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
        keys = lambda part: {sentiment.text_key(t) for t in part.texts}
        assert not keys(s.train) & (keys(s.val) | keys(s.test))
        texts = sentiment.read_domain(domain).texts
        dropped = sentiment.EXPECTED_COUNTS[domain] - sum(map(len, ids))
        repeats = len(texts) - len(set(map(sentiment.text_key, texts)))
        assert 0 <= dropped <= repeats  # only repeated sentences go
        assert s.train.labels.dtype == np.int32 and s.test.ratings.dtype == np.float32
        train_p = np.bincount(s.train.labels, minlength=3) / len(s.train.labels)
        test_p = np.bincount(s.test.labels, minlength=3) / len(s.test.labels)
        np.testing.assert_allclose(train_p, test_p, atol=0.01)
        np.testing.assert_array_equal(
            s.test.labels, sentiment.ratings_to_labels(s.test.ratings.astype(np.float64))
        )


@needs_corpus
def test_real_subset_has_requested_size():
    splits = sentiment.load_domains(("nyt",), seed=1, max_examples_per_domain=200)
    sizes = np.array([len(p.texts) for p in splits["nyt"]])
    assert sizes.sum() == 200 - 1  # at seed 1 one held-out sentence repeats a training one
    np.testing.assert_allclose(sizes, [140, 20, 40], atol=2)
