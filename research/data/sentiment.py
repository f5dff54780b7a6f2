"""Human-rated sentiment in four domains (Hutto & Gilbert, ICWSM 2014).

The corpus behind the VADER paper: sentences from tweets, movie reviews,
Amazon reviews and NYT editorials, each with the mean rating of 20+ human
raters on [-4, 4]. It ships inside the ``vaderSentiment`` *source*
distribution on PyPI (``additional_resources/hutto_ICWSM_2014.tar.gz``), so
``fetch`` gets it with pip at set-up time, verifies its SHA-256 and caches one
``.npz`` per domain; ``load_domains`` only reads that cache (nothing is
downloaded at run time) and returns seeded, label-stratified splits.

Set up once with ``python -m scripts.fetch_data``.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import pathlib
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np

from research import report

SDIST_VERSION = "3.3.2"
CORPUS_MEMBER = "additional_resources/hutto_ICWSM_2014.tar.gz"
# SHA-256 of hutto_ICWSM_2014.tar.gz inside vaderSentiment-3.3.2.tar.gz.
CORPUS_SHA256 = "d5bb07d87474b3eb8d30b4deccbc23f19d742a6c5718fbacc65485b70b95c5fa"

# Domain name -> ground-truth file inside the corpus tarball.
DOMAIN_FILES: dict[str, str] = {
    "tweets": "tweets_GroundTruth.txt",
    "movies": "movieReviewSnippets_GroundTruth.txt",
    "amazon": "amazonReviewSnippets_GroundTruth.txt",
    "nyt": "nytEditorialSnippets_GroundTruth.txt",
}
DOMAINS: tuple[str, ...] = tuple(DOMAIN_FILES)
# Sentences per domain in the shipped files (the corpus README agrees).
EXPECTED_COUNTS: dict[str, int] = {"tweets": 4200, "movies": 10605, "amazon": 3708, "nyt": 5190}

LABEL_NAMES: tuple[str, ...] = ("negative", "neutral", "positive")
DEFAULT_THRESHOLDS: tuple[float, float] = (-0.5, 0.5)
DEFAULT_FRACTIONS: tuple[float, float, float] = (0.7, 0.1, 0.2)
RATING_RANGE: tuple[float, float] = (-4.0, 4.0)

CACHE_ENV_VAR = "CONTINUAL_JAX_DATA"
MANIFEST = "MANIFEST.json"
SETUP_COMMAND = "python -m scripts.fetch_data"


class RawDomain(NamedTuple):
    """One domain as shipped: sentence ids, mean human ratings, texts."""

    ids: list[str]
    ratings: np.ndarray  # float64 [N], in [-4, 4]
    texts: list[str]


class TextSplit(NamedTuple):
    """One split of one domain; ``labels`` index ``LABEL_NAMES``."""

    texts: list[str]
    labels: np.ndarray  # int32 [N]
    ratings: np.ndarray  # float32 [N]
    ids: list[str]


class DomainSplits(NamedTuple):
    train: TextSplit
    val: TextSplit
    test: TextSplit


# ----------------------------------------------------------------------------
# Cache location.


def default_cache_dir() -> pathlib.Path:
    """``$CONTINUAL_JAX_DATA/sentiment``, else ``~/.cache/continual_jax/sentiment``."""
    root = os.environ.get(CACHE_ENV_VAR)
    base = pathlib.Path(root) if root else pathlib.Path.home() / ".cache" / "continual_jax"
    return base.expanduser() / "sentiment"


def _cache_dir(cache_dir: str | os.PathLike[str] | None) -> pathlib.Path:
    return pathlib.Path(cache_dir).expanduser() if cache_dir else default_cache_dir()


# ----------------------------------------------------------------------------
# Parsing the shipped files.


def parse_ground_truth(data: bytes, name: str) -> RawDomain:
    """Parses a tab-separated ``ID<TAB>MEAN-RATING<TAB>TEXT`` file (CRLF lines).

    Every bad line is reported at once, with its number, in a ``ValueError``.
    """
    ids: list[str] = []
    ratings: list[float] = []
    texts: list[str] = []
    problems: list[str] = []
    seen: set[str] = set()
    for number, raw in enumerate(data.split(b"\n"), start=1):
        line = raw.rstrip(b"\r")
        if not line.strip():
            continue
        try:
            decoded = line.decode("utf-8")
        except UnicodeDecodeError as err:
            problems.append(f"line {number}: not UTF-8 ({err.reason} at byte {err.start})")
            continue
        fields = decoded.split("\t", 2)
        if len(fields) != 3:
            problems.append(f"line {number}: expected ID<TAB>RATING<TAB>TEXT, got {decoded[:60]!r}")
            continue
        sid, rating_str, text = fields[0].strip(), fields[1].strip(), fields[2].strip()
        try:
            rating = float(rating_str)
        except ValueError:
            problems.append(f"line {number}: rating {rating_str!r} is not a number")
            continue
        if not (math.isfinite(rating) and RATING_RANGE[0] <= rating <= RATING_RANGE[1]):
            problems.append(f"line {number}: rating {rating} outside {list(RATING_RANGE)}")
            continue
        if not sid or sid in seen:
            problems.append(f"line {number}: empty or repeated id {sid!r}")
            continue
        if not text:
            problems.append(f"line {number}: empty text")
            continue
        seen.add(sid)
        ids.append(sid)
        ratings.append(rating)
        texts.append(text)
    if problems:
        shown = "; ".join(problems[:10])
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        raise ValueError(f"{name}: {len(problems)} bad lines: {shown}{more}")
    if not ids:
        raise ValueError(f"{name}: no sentences found")
    return RawDomain(ids=ids, ratings=np.asarray(ratings, np.float64), texts=texts)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def parse_corpus_tarball(data: bytes, expected_sha256: str = CORPUS_SHA256) -> dict[str, RawDomain]:
    """Verifies the corpus tarball's SHA-256, then parses its four domains."""
    measured = sha256_hex(data)
    if measured != expected_sha256:
        raise ValueError(
            f"hutto_ICWSM_2014.tar.gz: SHA-256 mismatch: expected {expected_sha256}, "
            f"got {measured}; the vaderSentiment {SDIST_VERSION} sdist is not the one "
            "this loader was checked against"
        )
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        by_name = {pathlib.PurePosixPath(m.name).name: m for m in tar.getmembers() if m.isfile()}
        domains = {}
        for domain, filename in DOMAIN_FILES.items():
            if filename not in by_name:
                raise ValueError(
                    f"hutto_ICWSM_2014.tar.gz: missing {filename}; has {sorted(by_name)}"
                )
            handle = tar.extractfile(by_name[filename])
            assert handle is not None  # a regular file always has a handle
            domains[domain] = parse_ground_truth(handle.read(), filename)
    return domains


def corpus_from_sdist(sdist_path: str | os.PathLike[str]) -> bytes:
    """The bytes of the corpus tarball inside a ``vaderSentiment`` sdist."""
    with tarfile.open(sdist_path, mode="r:gz") as tar:
        for member in tar.getmembers():
            if member.isfile() and member.name.endswith(CORPUS_MEMBER):
                handle = tar.extractfile(member)
                assert handle is not None
                return handle.read()
    raise ValueError(f"{os.fspath(sdist_path)}: no {CORPUS_MEMBER} inside")


def download_sdist(dest: str | os.PathLike[str], version: str = SDIST_VERSION) -> pathlib.Path:
    """Downloads the ``vaderSentiment`` source distribution with pip into ``dest``."""
    package = f"vaderSentiment=={version}"
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", package]
    cmd += ["-d", os.fspath(dest)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(
            f"pip could not download the vaderSentiment=={version} sdist "
            f"(exit {proc.returncode}): {proc.stderr.strip()[-800:]}"
        )
    found = sorted(pathlib.Path(dest).glob("vaderSentiment-*.tar.gz"))
    if not found:
        raise RuntimeError(f"pip ran but left no vaderSentiment-*.tar.gz in {dest}")
    return found[0]


# ----------------------------------------------------------------------------
# The cache.


def write_cache(domains: Mapping[str, RawDomain], cache_dir: pathlib.Path, sha256: str) -> None:
    """Writes one ``<domain>.npz`` per domain, then the manifest (written last)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    for domain, raw in domains.items():
        buffer = io.BytesIO()
        np.savez_compressed(
            buffer,
            ids=np.asarray(raw.ids, dtype=np.str_),
            ratings=raw.ratings.astype(np.float64),
            texts=np.asarray(raw.texts, dtype=np.str_),
        )
        report.atomic_write(str(cache_dir / f"{domain}.npz"), buffer.getvalue())
    manifest = {
        "source": f"vaderSentiment=={SDIST_VERSION} sdist, {CORPUS_MEMBER}",
        "sha256": sha256,
        "counts": {domain: len(raw.ids) for domain, raw in domains.items()},
    }
    report.write_json(str(cache_dir / MANIFEST), manifest)  # no half manifest after a crash


def _cached_sha256(target: pathlib.Path) -> str | None:
    """The checksum the cache's manifest records; None where there is no readable one
    (a manifest cut short by an older, non-atomic write is fetched again)."""
    try:
        return json.loads((target / MANIFEST).read_text()).get("sha256")
    except (OSError, ValueError):
        return None


def fetch(
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    sdist_path: str | os.PathLike[str] | None = None,
    expected_sha256: str = CORPUS_SHA256,
    force: bool = False,
) -> pathlib.Path:
    """Set-up step: gets the sdist with pip (or uses ``sdist_path``), verifies, caches.

    Returns the cache directory. Does nothing if a cache with the same
    checksum is already there, unless ``force``.
    """
    target = _cache_dir(cache_dir)
    if not force and _cached_sha256(target) == expected_sha256:
        return target
    if sdist_path is not None:
        data = corpus_from_sdist(sdist_path)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            data = corpus_from_sdist(download_sdist(tmp))
    domains = parse_corpus_tarball(data, expected_sha256)
    write_cache(domains, target, sha256_hex(data))
    return target


def read_domain(domain: str, cache_dir: str | os.PathLike[str] | None = None) -> RawDomain:
    """Reads one cached domain; says which set-up command to run if it is missing."""
    if domain not in DOMAIN_FILES:
        raise ValueError(f"unknown sentiment domain {domain!r}; choose from {list(DOMAINS)}")
    target = _cache_dir(cache_dir)
    path = target / f"{domain}.npz"
    if not (target / MANIFEST).exists() or not path.exists():
        raise FileNotFoundError(
            f"sentiment corpus not cached in {target}; run `{SETUP_COMMAND}` "
            f"(or set {CACHE_ENV_VAR} to where it was fetched)"
        )
    with np.load(path, allow_pickle=False) as npz:
        return RawDomain(
            ids=npz["ids"].tolist(), ratings=npz["ratings"], texts=npz["texts"].tolist()
        )


def is_cached(cache_dir: str | os.PathLike[str] | None = None) -> bool:
    target = _cache_dir(cache_dir)
    return (target / MANIFEST).exists() and all((target / f"{d}.npz").exists() for d in DOMAINS)


# ----------------------------------------------------------------------------
# Labels and splits.


def ratings_to_labels(
    ratings: np.ndarray, thresholds: tuple[float, float] = DEFAULT_THRESHOLDS
) -> np.ndarray:
    """0 negative (rating < low), 2 positive (rating > high), else 1 neutral."""
    low, high = thresholds
    if not low <= high:
        raise ValueError(f"thresholds must be (low, high) with low <= high, got {thresholds}")
    ratings = np.asarray(ratings)
    labels = np.ones(ratings.shape, np.int32)
    labels[ratings < low] = 0
    labels[ratings > high] = 2
    return labels


def stratified_split(
    labels: np.ndarray,
    seed: int,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    max_examples: int | None = None,
) -> tuple[np.ndarray, ...]:
    """Seeded index arrays, one per fraction, each with the classes in proportion.

    Each class is shuffled once and cut by the fractions. ``max_examples``
    keeps a proportional prefix of every (class, split) cell (sizes by
    largest remainder, so they sum to exactly ``max_examples``): a shrunken
    test set is a subset of the full one, and no example moves from test to
    train when you shrink the data.
    """
    if len(fractions) < 1 or min(fractions) < 0 or not math.isclose(sum(fractions), 1.0):
        raise ValueError(f"fractions must be non-negative and sum to 1, got {list(fractions)}")
    labels = np.asarray(labels)
    n = labels.shape[0]
    if max_examples is not None and max_examples < 1:
        raise ValueError(f"max_examples must be >= 1 or None, got {max_examples}")
    cuts = np.cumsum(fractions)[:-1]
    rng = np.random.default_rng(seed)
    cells: list[tuple[int, np.ndarray]] = []  # (split index, shuffled members of a class)
    for cls in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cls))
        bounds = [0, *np.round(cuts * len(members)).astype(int).tolist(), len(members)]
        cells += [(i, members[bounds[i] : bounds[i + 1]]) for i in range(len(fractions))]
    sizes = np.array([len(cell) for _, cell in cells])
    if max_examples is not None and max_examples < n:
        sizes = _largest_remainder(sizes * (max_examples / n), max_examples)
    parts: list[list[np.ndarray]] = [[np.zeros(0, np.int64)] for _ in fractions]
    for (i, cell), size in zip(cells, sizes, strict=True):
        parts[i].append(cell[:size])
    return tuple(np.sort(np.concatenate(p)).astype(np.int64) for p in parts)


def text_key(text: str) -> str:
    """A text as a repeat is recognised: case and runs of whitespace left out. The tweets
    repeat sentences with only the capitals changed ('Anger is ugly.' and 'Anger is
    UGLY.'), which an uncased encoder reads as the same tokens."""
    return " ".join(text.casefold().split())


def unseen_in_training(texts: Sequence[str],
                       parts: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    """``parts`` (index arrays, train first) with every held-out row whose text is also a
    training row's (by ``text_key``) dropped: the corpus repeats sentences under other ids
    (71 in NYT, 10 in Amazon, case variants in tweets), and a test sentence trained on
    measures memory, not generalisation."""
    train, *held_out = parts
    seen = {text_key(texts[i]) for i in train}
    return (train, *(idx[np.array([text_key(texts[i]) not in seen for i in idx], bool)]
                     for idx in held_out))


def _largest_remainder(quotas: np.ndarray, total: int) -> np.ndarray:
    """Integers that sum to ``total``, each within one of its quota (Hamilton's method)."""
    sizes = np.floor(quotas).astype(int)
    short = total - int(sizes.sum())
    sizes[np.argsort(-(quotas - sizes), kind="stable")[:short]] += 1
    return sizes


def _take(raw: RawDomain, labels: np.ndarray, index: np.ndarray) -> TextSplit:
    return TextSplit(
        texts=[raw.texts[i] for i in index],
        labels=labels[index].astype(np.int32),
        ratings=raw.ratings[index].astype(np.float32),
        ids=[raw.ids[i] for i in index],
    )


def split_domain(
    raw: RawDomain,
    seed: int = 0,
    thresholds: tuple[float, float] = DEFAULT_THRESHOLDS,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    max_examples: int | None = None,
) -> DomainSplits:
    """Labels a domain by ``thresholds`` and cuts train/val/test stratified by label;
    val and test keep no sentence the training split holds."""
    if len(fractions) != 3:
        raise ValueError(f"fractions must be (train, val, test), got {list(fractions)}")
    labels = ratings_to_labels(raw.ratings, thresholds)
    train, val, test = unseen_in_training(
        raw.texts, stratified_split(labels, seed, fractions, max_examples))
    return DomainSplits(
        _take(raw, labels, train), _take(raw, labels, val), _take(raw, labels, test)
    )


def load_domains(
    domains: Sequence[str] = DOMAINS,
    seed: int = 0,
    thresholds: tuple[float, float] = DEFAULT_THRESHOLDS,
    max_examples_per_domain: int | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
) -> dict[str, DomainSplits]:
    """The cached corpus as ``{domain: DomainSplits}``, in the order given.

    Reads only the cache written by ``fetch``; raises ``FileNotFoundError``
    naming the set-up command when it is missing.
    """
    if isinstance(domains, str):
        domains = (domains,)
    unknown = [d for d in domains if d not in DOMAIN_FILES]
    if unknown:
        raise ValueError(f"unknown sentiment domains {unknown}; choose from {list(DOMAINS)}")
    return {
        d: split_domain(
            read_domain(d, cache_dir), seed, thresholds, fractions, max_examples_per_domain
        )
        for d in domains
    }
