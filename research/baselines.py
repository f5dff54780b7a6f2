"""Reference baselines for the sentiment domains, scored on each domain's test split.

Three floors any learned model must clear: the majority class of the train
split, TF-IDF + logistic regression fit on the train split (its inverse
regularisation C picked on the validation split), and the VADER
lexicon (no training; its compound score mapped to negative/neutral/positive
with the standard +-0.05 thresholds). Labels index ``LABEL_NAMES`` order
(0 negative, 1 neutral, 2 positive).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from tqdm import tqdm

from research.data.sentiment import DomainSplits

NUM_CLASSES = 3
VADER_THRESHOLD = 0.05

# A baseline predicts test labels from a domain's splits and a seed.
Baseline = Callable[[DomainSplits, int], np.ndarray]
C_GRID = (0.3, 1.0, 3.0, 10.0, 30.0)


def scores(predictions: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Accuracy and macro-F1 over all three classes (an absent class scores F1 0)."""
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    return {
        "accuracy": float(np.mean(predictions == labels)),
        "macro_f1": float(
            f1_score(
                labels, predictions, labels=range(NUM_CLASSES), average="macro", zero_division=0
            )
        ),
    }


def majority(splits: DomainSplits, seed: int = 0) -> np.ndarray:
    """The most frequent train label, for every test example."""
    del seed
    top = int(np.bincount(splits.train.labels, minlength=NUM_CLASSES).argmax())
    return np.full(len(splits.test.texts), top, np.int32)


def tfidf_logreg(splits: DomainSplits, seed: int = 0) -> np.ndarray:
    """Word uni+bigram TF-IDF and L2 logistic regression, fit on train only.

    C comes from ``C_GRID`` by validation accuracy; the test split is seen once.
    """
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    x_train = vectorizer.fit_transform(splits.train.texts)
    x_val = vectorizer.transform(splits.val.texts)
    best, best_acc = None, -1.0
    for c in C_GRID:
        model = LogisticRegression(C=c, max_iter=2000, random_state=seed)
        model.fit(x_train, splits.train.labels)
        acc = float(np.mean(model.predict(x_val) == splits.val.labels)) if x_val.shape[0] else 0.0
        if acc > best_acc:
            best, best_acc = model, acc
    assert best is not None
    return best.predict(vectorizer.transform(splits.test.texts)).astype(np.int32)


def vader_labels(compound: np.ndarray, threshold: float = VADER_THRESHOLD) -> np.ndarray:
    """VADER's convention: compound >= t positive, <= -t negative, else neutral."""
    compound = np.asarray(compound)
    labels = np.ones(compound.shape, np.int32)
    labels[compound >= threshold] = 2
    labels[compound <= -threshold] = 0
    return labels


def vader(splits: DomainSplits, seed: int = 0) -> np.ndarray:
    """The VADER lexicon and rules (``vaderSentiment``, extra ``text``); no training."""
    del seed
    try:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
    except ImportError as err:
        raise ImportError(
            "the VADER baseline needs vaderSentiment: pip install 'continual-jax[text]'"
        ) from err
    analyzer = SentimentIntensityAnalyzer()
    compound = np.array([analyzer.polarity_scores(t)["compound"] for t in splits.test.texts])
    return vader_labels(compound)


BASELINES: dict[str, Baseline] = {
    "majority": majority,
    "tfidf_logreg": tfidf_logreg,
    "vader": vader,
}


def run_baselines(
    domains: Mapping[str, DomainSplits],
    names: Sequence[str] = tuple(BASELINES),
    seed: int = 0,
    progress: bool = False,
) -> dict[str, dict[str, dict[str, float]]]:
    """``{domain: {baseline: {'accuracy', 'macro_f1'}}}`` on each domain's test split;
    ``progress`` shows a bar over the (domain, baseline) fits."""
    unknown = [n for n in names if n not in BASELINES]
    if unknown:
        raise ValueError(f"unknown baselines {unknown}; choose from {sorted(BASELINES)}")
    results: dict[str, dict[str, dict[str, float]]] = {d: {} for d in domains}
    pairs = [(d, n) for d in domains for n in names]
    for domain, name in tqdm(pairs, desc="baselines", unit="fit", disable=not progress):
        split = domains[domain]
        results[domain][name] = scores(BASELINES[name](split, seed), split.test.labels)
    return results


def markdown_table(results: Mapping[str, Mapping[str, Mapping[str, float]]]) -> str:
    """One row per baseline, one ``acc / macro-F1`` column per domain, plus the mean."""
    domains = list(results)
    names = list(next(iter(results.values()))) if results else []
    header = "| baseline | " + " | ".join(domains) + " | mean |"
    lines = [header, "|" + "---|" * (len(domains) + 2)]
    for name in names:
        cells = [results[d][name] for d in domains]
        mean_acc = np.mean([c["accuracy"] for c in cells])
        mean_f1 = np.mean([c["macro_f1"] for c in cells])
        row = [f"{c['accuracy']:.3f} / {c['macro_f1']:.3f}" for c in cells]
        lines.append(f"| {name} | " + " | ".join(row) + f" | {mean_acc:.3f} / {mean_f1:.3f} |")
    return "\n".join(lines) + "\n"
