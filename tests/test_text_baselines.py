"""Tests for the sentiment baselines and the script that tables them."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from research import baselines
from research.data import sentiment


def _split(texts, labels):
    labels = np.asarray(labels, np.int32)
    return sentiment.TextSplit(
        texts=list(texts),
        labels=labels,
        ratings=(labels - 1).astype(np.float32),
        ids=[str(i) for i in range(len(texts))],
    )


def _toy_domain(n=60, seed=0):
    """Word 'good' means positive, 'bad' negative, 'table' neutral; filler is noise."""
    rng = np.random.default_rng(seed)
    words = {0: "bad", 1: "table", 2: "good"}
    fillers = ["the", "a", "it", "was", "this", "one"]

    def make(k):
        labels = rng.integers(0, 3, k)
        texts = [" ".join([*rng.choice(fillers, 3), words[int(y)]]) for y in labels]
        return _split(texts, labels)

    return sentiment.DomainSplits(make(n), make(n // 3), make(n))


def test_scores_accuracy_and_macro_f1():
    result = baselines.scores(np.array([0, 1, 2, 2]), np.array([0, 1, 2, 1]))
    assert result["accuracy"] == pytest.approx(0.75)
    assert result["macro_f1"] == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)
    # a class never predicted nor present still counts as F1 0 in the macro mean
    assert baselines.scores(np.zeros(4), np.zeros(4))["macro_f1"] == pytest.approx(1 / 3)


def test_majority_predicts_the_train_mode():
    splits = sentiment.DomainSplits(
        _split(["a", "b", "c"], [2, 2, 0]), _split(["d"], [0]), _split(["e", "f"], [0, 1])
    )
    np.testing.assert_array_equal(baselines.majority(splits), [2, 2])


def test_tfidf_logreg_learns_a_separable_toy_task():
    splits = _toy_domain()
    predictions = baselines.tfidf_logreg(splits, seed=0)
    assert predictions.dtype == np.int32
    assert np.mean(predictions == splits.test.labels) == 1.0


def test_vader_label_thresholds():
    compound = np.array([-0.9, -0.05, -0.049, 0.0, 0.049, 0.05, 0.9])
    np.testing.assert_array_equal(baselines.vader_labels(compound), [0, 0, 1, 1, 1, 2, 2])


def test_vader_on_obvious_sentences():
    pytest.importorskip("vaderSentiment", reason="vaderSentiment (extra 'text') not installed")
    test = _split(
        ["I love this, it is wonderful!", "The box is on the table.", "Awful."], [2, 1, 0]
    )
    splits = sentiment.DomainSplits(test, test, test)
    np.testing.assert_array_equal(baselines.vader(splits), [2, 1, 0])


def test_run_baselines_and_table():
    domains = {"toy": _toy_domain(), "toy2": _toy_domain(seed=1)}
    results = baselines.run_baselines(domains, ["majority", "tfidf_logreg"])
    assert set(results) == {"toy", "toy2"}
    for domain in results.values():
        assert domain["tfidf_logreg"]["accuracy"] > domain["majority"]["accuracy"] + 0.4
    with pytest.raises(ValueError, match=r"unknown baselines \['bert'\]"):
        baselines.run_baselines(domains, ["bert"])


def test_markdown_table_layout_and_mean():
    results = {
        "a": {"m": {"accuracy": 0.5, "macro_f1": 0.25}},
        "b": {"m": {"accuracy": 1.0, "macro_f1": 0.75}},
    }
    assert baselines.markdown_table(results).splitlines() == [
        "| baseline | a | b | mean |",
        "|---|---|---|---|",
        "| m | 0.500 / 0.250 | 1.000 / 0.750 | 0.750 / 0.500 |",
    ]


@pytest.mark.skipif(
    not sentiment.is_cached(),
    reason="sentiment corpus not cached; run `python -m scripts.fetch_data` first",
)
def test_script_writes_table_and_json(tmp_path):
    pytest.importorskip("vaderSentiment", reason="vaderSentiment (extra 'text') not installed")
    cmd = [sys.executable, "-m", "scripts.text_baselines", f"--output={tmp_path}",
           "--domain=tweets", "--domain=nyt", "--max_examples_per_domain=300"]  # fmt: skip
    # Reports are replaced by a rename, never rewritten in place: a link to another file
    # (standing in for a half-written report) is replaced, its target untouched.
    elsewhere = tmp_path.parent / f"{tmp_path.name}_elsewhere.md"
    elsewhere.write_text("not the table")
    (tmp_path / "baselines.md").symlink_to(elsewhere)
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    assert elsewhere.read_text() == "not the table"
    assert not (tmp_path / "baselines.md").is_symlink()
    record = json.loads((tmp_path / "baselines.json").read_text())
    assert set(record["results"]) == {"tweets", "nyt"}
    # 30 validation rows less one that repeats a training row but for its capitals
    assert record["sizes"]["tweets"] == {"train": 210, "val": 29, "test": 60}
    for per_domain in record["results"].values():
        assert set(per_domain) == {"majority", "tfidf_logreg", "vader"}
        for result in per_domain.values():
            assert 0.0 <= result["macro_f1"] <= result["accuracy"] + 1.0
    assert "| vader |" in (tmp_path / "baselines.md").read_text()
