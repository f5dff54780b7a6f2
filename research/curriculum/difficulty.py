"""Difficulty scores of training texts (host side, numpy): higher is harder.

Token length and word rarity (Platanios et al., NAACL 2019), the rare-word
rate, and a teacher's out-of-fold loss (Hacohen & Weinshall 2019).
"""

from __future__ import annotations

import collections
import functools
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
from jax.typing import ArrayLike

Tokenizer = Callable[[str], list[str]]

TEXT_SCORES = ("length", "rare_words", "teacher_loss")  # config.curriculum's static scores

_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def simple_tokenize(text: str) -> list[str]:
    """Lower-cased words and single punctuation marks: enough to measure difficulty."""
    return _TOKEN.findall(text.lower())


def token_lengths(texts: Sequence[str], tokenize: Tokenizer = simple_tokenize) -> np.ndarray:
    """Sentence length in tokens (Platanios et al.: longer is harder)."""
    return np.array([len(tokenize(t)) for t in texts], np.float32)


def word_counts(
    texts: Iterable[str], tokenize: Tokenizer = simple_tokenize
) -> collections.Counter[str]:
    """Corpus word counts, the reference for the rarity scores (fit on train only)."""
    counts: collections.Counter[str] = collections.Counter()
    for text in texts:
        counts.update(tokenize(text))
    return counts


def rare_word_rate(
    texts: Sequence[str],
    counts: Mapping[str, int],
    min_count: int = 5,
    tokenize: Tokenizer = simple_tokenize,
) -> np.ndarray:
    """Fraction of a sentence's tokens seen fewer than ``min_count`` times (0 if empty)."""
    rates = []
    for text in texts:
        tokens = tokenize(text)
        rare = sum(counts.get(tok, 0) < min_count for tok in tokens)
        rates.append(rare / len(tokens) if tokens else 0.0)
    return np.array(rates, np.float32)


def word_rarity(
    texts: Sequence[str], counts: Mapping[str, int], tokenize: Tokenizer = simple_tokenize
) -> np.ndarray:
    """Platanios et al.'s rarity: ``-sum_k log p(w_k)``, add-one smoothed unigram p."""
    total = sum(counts.values()) + len(counts) + 1
    scores = [
        -sum(math.log((counts.get(tok, 0) + 1) / total) for tok in tokenize(text)) for text in texts
    ]
    return np.array(scores, np.float32)


def teacher_loss_score(losses: ArrayLike) -> np.ndarray:
    """Per-example loss of a trained teacher as difficulty (Hacohen & Weinshall 2019)."""
    losses = np.asarray(losses, np.float32)
    if losses.ndim != 1 or not np.all(np.isfinite(losses)):
        raise ValueError(f"teacher losses must be a finite 1-D array, got shape {losses.shape}")
    return losses


def difficulty_order(scores: ArrayLike) -> np.ndarray:
    """Example indices from easiest to hardest (stable: ties keep data order)."""
    scores = np.asarray(scores)
    if scores.ndim != 1:
        raise ValueError(f"difficulty scores must be 1-D, got shape {scores.shape}")
    return np.argsort(scores, kind="stable")


def difficulty_cdf(scores: ArrayLike) -> np.ndarray:
    """Empirical CDF of the scores, in (0, 1]: Platanios et al.'s normalised difficulty."""
    scores = np.asarray(scores)
    sorted_scores = np.sort(scores)
    return (np.searchsorted(sorted_scores, scores, side="right") / scores.shape[0]).astype(
        np.float32
    )


def out_of_fold_teacher_losses(
    texts: Sequence[str], labels: ArrayLike, folds: int = 5, seed: int = 0
) -> np.ndarray:
    """Cross-entropy of each label under a TF-IDF + logistic-regression teacher that never saw it.

    Out-of-fold, so the score measures how hard an example is to generalise to,
    not how well a teacher memorised it (Hacohen & Weinshall 2019 score with a
    separately trained network; this is the cheapest such teacher).
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline

    labels = np.asarray(labels)
    if len(texts) != len(labels) or len(texts) < 2:
        raise ValueError(f"need as many labels as texts (at least 2), got {len(texts)} texts "
                         f"and {len(labels)} labels")
    teacher = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True),
                            LogisticRegression(max_iter=1000))
    folds = min(folds, len(texts))
    stratify = np.unique(labels, return_counts=True)[1].min() >= folds
    split = (StratifiedKFold if stratify else KFold)(folds, shuffle=True, random_state=seed)
    proba = cross_val_predict(teacher, list(texts), labels, cv=split, method="predict_proba")
    classes = np.unique(labels)  # cross_val_predict's column order
    column = np.searchsorted(classes, labels)
    return -np.log(np.maximum(proba[np.arange(len(labels)), column], 1e-7)).astype(np.float32)


def text_difficulty(
    name: str, texts: Sequence[str], labels: ArrayLike, seed: int = 0
) -> np.ndarray:
    """One static difficulty score per training text (higher is harder)."""
    if name == "length":
        return token_lengths(texts)
    if name == "rare_words":
        return rare_word_rate(texts, word_counts(texts))
    if name == "teacher_loss":
        return teacher_loss_score(out_of_fold_teacher_losses(texts, labels, seed=seed))
    raise ValueError(f"unknown text difficulty {name!r}; choose from {list(TEXT_SCORES)}")


def stream_difficulty(config, seed: int, size: int) -> np.ndarray:
    """``[T, size]`` scores of a text stream's training rows, in the stream's row order."""
    fields = {k: config.get(k) for k in _TEXT_FIELDS}
    return _stream_difficulty(json.dumps(fields, sort_keys=True), seed, size).copy()


# The config fields a text stream's training texts depend on (the difficulty cache key).
_TEXT_FIELDS = ("curriculum", "dataset", "domains", "max_examples_per_domain", "text_files",
                "text_column", "label_column", "label_set", "update_from")


@functools.lru_cache(maxsize=8)
def _stream_difficulty(config_json: str, seed: int, size: int) -> np.ndarray:
    """Memoised on the config: a comparison's runs share their splits' scores."""
    import ml_collections

    from research.data import text_stream

    config = ml_collections.ConfigDict(json.loads(config_json))
    if config.dataset not in ("sentiment", "text_file"):
        raise ValueError(f"config.curriculum={config.curriculum!r} scores texts; dataset "
                         f"{config.dataset!r} has none (use curriculum='self_paced')")
    tasks = text_stream.text_tasks(config, seed)
    out = np.zeros((len(tasks), size), np.float32)
    for t, task in enumerate(tasks):
        out[t, : len(task.train_texts)] = text_difficulty(
            config.curriculum, task.train_texts, task.train_labels, seed)
    return out
