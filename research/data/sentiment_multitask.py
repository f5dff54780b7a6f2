"""Sentiment polarity + intensity: two tasks on one human-rated sentence, MiniLM features.

Every sentence of the corpus in ``research/data/sentiment.py`` carries the
mean rating of 20+ raters on [-4, 4]. Two tasks read it:

* ``polarity``: negative / neutral / positive by ``config.thresholds``
  (3-way classification, accuracy, higher is better);
* ``intensity``: the mean rating itself (regression on the raw [-4, 4] scale,
  MSE loss, MAE metric, lower is better).

The shared trunk starts from the frozen pretrained encoder: each sentence is
encoded once (mean-pooled, unit-length MiniLM embedding, ``[384]``) and the
vectors are cached on disk, one file per domain, encoder, depth and length
(holding the sentences encoded so far), so every arch x weighting afterwards
trains on the vectors in seconds. Sentences
are encoded in length buckets (padded to a multiple of 16 tokens, not to
``max_length``), which is exact up to float rounding: padding is masked out.
"""

from __future__ import annotations

import hashlib
import io
import os
import pathlib

import ml_collections
import numpy as np

from research import report
from research.data import sentiment
from research.data.multi_digits import Split

TASK_NAMES = ("polarity", "intensity")
TASK_OUTPUTS = (3, 1)
REGRESSION = (False, True)
METRICS = ("accuracy", "mae")
LOWER_IS_BETTER = (False, True)

CHUNK = 128  # sentences per encoder call; the last chunk of a bucket is padded to it
BUCKET = 16  # each text's token length is rounded up to a multiple of this


def feature_dir(config: ml_collections.ConfigDict) -> pathlib.Path:
    """``config.feature_cache_dir``, or ``features/`` next to the cached corpus."""
    if config.get("feature_cache_dir"):
        return pathlib.Path(config.feature_cache_dir)
    return sentiment.default_cache_dir() / "features"


def _cache_path(config: ml_collections.ConfigDict, domain: str) -> pathlib.Path:
    # "bucketed": each row encoded at its own bucket's width (files without it mixed widths)
    name = (f"{config.encoder}-layers{int(config.encoder_layers)}-len{int(config.max_length)}"
            "-bucketed")
    return feature_dir(config) / f"{domain}-{name}.npz"


def _digest(texts: list[str]) -> str:
    return hashlib.sha256("\x00".join(texts).encode("utf-8")).hexdigest()


def encode_bucketed(config: ml_collections.ConfigDict, texts: list[str]) -> np.ndarray:
    """Frozen-encoder sentence embeddings ``[N, H]``, a few shapes: each text is padded to
    its own length's bucket, so its vector never depends on which texts were encoded
    with it (a chunk's longest text would otherwise set the width, and the float
    sums with it), and a cache filled by smaller runs holds the same vectors."""
    from research import finetune
    from research.data import text_stream

    packed = text_stream.tokenize(config, texts)  # [N, 3, max_length], right-padded
    lengths = packed[:, 1].sum(axis=1)
    widths = np.minimum(packed.shape[2], -(-lengths // BUCKET) * BUCKET)
    out = np.zeros((len(texts), 0), np.float32)
    for width in np.unique(widths):
        same = np.flatnonzero(widths == width)
        for start in range(0, len(same), CHUNK):
            rows = same[start:start + CHUNK]
            chunk = packed[rows, :, :width]
            pad = CHUNK - len(rows)  # repeat a real row so every call has the same shape
            chunk = np.concatenate([chunk, np.repeat(chunk[:1], pad, axis=0)]) if pad else chunk
            vectors = finetune.encode_features(config, chunk, chunk=CHUNK)[: len(rows)]
            if out.shape[1] == 0:
                out = np.zeros((len(texts), vectors.shape[1]), np.float32)
            out[rows] = vectors
    return out


def domain_features(config: ml_collections.ConfigDict, raw: sentiment.RawDomain,
                    cache: pathlib.Path, index: np.ndarray) -> np.ndarray:
    """Embeddings of ``raw.texts[index]``; rows not yet in ``cache`` are encoded and added.

    The cache holds the rows encoded so far (by position in the domain) and a
    digest of the domain's texts; a digest mismatch discards it.
    """
    digest = _digest(raw.texts)
    rows, vectors = np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
    if cache.exists():
        with np.load(cache, allow_pickle=False) as npz:
            if str(npz["digest"]) == digest:
                rows, vectors = npz["rows"], npz["features"]
    missing = np.setdiff1d(index, rows)
    if len(missing):
        new = encode_bucketed(config, [raw.texts[i] for i in missing])
        rows = np.concatenate([rows, missing])
        vectors = np.concatenate([vectors.reshape(-1, new.shape[1]), new])
        os.makedirs(cache.parent, exist_ok=True)
        buffer = io.BytesIO()
        np.savez(buffer, rows=rows, features=vectors, digest=np.asarray(digest))
        report.atomic_write(str(cache), buffer.getvalue())
    where = dict(zip(rows.tolist(), range(len(rows)), strict=True))
    return vectors[[where[i] for i in index.tolist()]]


def _split(config: ml_collections.ConfigDict, domain: str, raw: sentiment.RawDomain,
           labels: np.ndarray, index: np.ndarray) -> Split:
    x = domain_features(config, raw, _cache_path(config, domain), index)
    y = np.stack([labels[index], raw.ratings[index]], axis=1)
    return Split(x=x.astype(np.float32), y=y.astype(np.float32))


def load_splits(config: ml_collections.ConfigDict) -> tuple[Split, Split]:
    """(train, test) over ``config.domains``: features ``[N, H]``, targets ``[N, 2]``.

    Each domain is cut train/val/test stratified by polarity exactly as the
    continual text stream cuts it (``sentiment.stratified_split``, seeded, without the
    test sentences the training part repeats); the validation part is left unused.
    """
    from research.data import text_stream

    thresholds = tuple(float(t) for t in config.thresholds)
    limit = int(config.max_examples_per_domain) or None
    parts: list[tuple[Split, Split]] = []
    for domain in text_stream.parse_list(config.domains, "domains"):
        if domain not in sentiment.DOMAINS:
            raise ValueError(f"unknown config.domains entry {domain!r}; "
                             f"choices: {', '.join(sentiment.DOMAINS)}")
        raw = sentiment.read_domain(domain)
        labels = sentiment.ratings_to_labels(raw.ratings, thresholds)
        train, _, test = sentiment.unseen_in_training(
            raw.texts, sentiment.stratified_split(labels, config.seed, max_examples=limit))
        parts.append((_split(config, domain, raw, labels, train),
                      _split(config, domain, raw, labels, test)))
    cat = lambda splits: Split(np.concatenate([s.x for s in splits]),
                               np.concatenate([s.y for s in splits]))
    return cat([p[0] for p in parts]), cat([p[1] for p in parts])
