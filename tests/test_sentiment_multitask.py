"""Sentiment polarity + intensity: cached frozen-encoder features and a tiny end-to-end run."""

import json

import numpy as np
import pytest

from research import multitask
from research.configs import sentiment_multitask as config_lib
from research.data import sentiment
from research.data import sentiment_multitask as smt

needs_corpus = pytest.mark.skipif(not sentiment.is_cached(),
                                  reason="needs the corpus: python -m scripts.fetch_data")


def _tiny(tmp_path):
    config = config_lib.get_config("runlocal")
    config.feature_cache_dir = str(tmp_path / "features")
    config.domains = "tweets,nyt"
    config.progress = False
    return config


def test_config_rejects_unknown_argument():
    with pytest.raises(ValueError, match="'big'.*runlocal"):
        config_lib.get_config("big")


@needs_corpus
def test_bucketed_encoding_matches_full_length_encoding(tmp_path):
    from research import finetune
    from research.data import text_stream

    config = _tiny(tmp_path)
    texts = sentiment.read_domain("tweets").texts[:6] + ["ok", "a b c d e f g h i j k l m n"]
    full = finetune.encode_features(config, text_stream.tokenize(config, texts))
    np.testing.assert_allclose(smt.encode_bucketed(config, texts), full, atol=1e-5)


@needs_corpus
def test_a_text_is_encoded_the_same_whatever_it_is_encoded_with(tmp_path):
    """A cache filled by a smaller run holds the vectors a larger one computes: a text's
    padded width is its own length's, not the longest text's beside it."""
    config = _tiny(tmp_path)
    texts = sentiment.read_domain("tweets").texts[:40]
    longer = ["a b c d e f g h i j k l m n o p q r s t u v w x y z " * 2] + texts
    np.testing.assert_array_equal(smt.encode_bucketed(config, longer)[1:],
                                  smt.encode_bucketed(config, texts))


@needs_corpus
def test_features_are_encoded_once_then_read_from_the_cache(tmp_path, monkeypatch):
    config = _tiny(tmp_path)
    train, test = smt.load_splits(config)
    assert train.x.shape == (56, 384) and test.x.shape == (16, 384)
    np.testing.assert_allclose(np.linalg.norm(train.x, axis=1), 1.0, atol=1e-5)
    labels = sentiment.ratings_to_labels(train.y[:, 1], tuple(config.thresholds))
    np.testing.assert_array_equal(train.y[:, 0], labels)  # polarity comes from the rating
    monkeypatch.setattr(smt, "encode_bucketed", lambda *a: pytest.fail("re-encoded"))
    again, _ = smt.load_splits(config)
    np.testing.assert_array_equal(again.x, train.x)


@needs_corpus
def test_tiny_sentiment_run_writes_the_keys_with_intensity_lower_is_better(tmp_path):
    config = _tiny(tmp_path)
    config.weighting = "uw"
    summary = multitask.train_and_evaluate(config, str(tmp_path / "run"), progress=False)
    with open(tmp_path / "run" / "results.json") as f:
        saved = json.load(f)
    assert set(saved["per_task"]) == set(saved["single_task"]) == {"polarity", "intensity"}
    assert saved["metric_names"] == {"polarity": "accuracy", "intensity": "mae"}
    assert saved["lower_is_better"] == {"polarity": False, "intensity": True}
    m, s = saved["per_task"], saved["single_task"]
    expected = 50 * ((m["polarity"] - s["polarity"]) / s["polarity"]
                     - (m["intensity"] - s["intensity"]) / s["intensity"])
    assert saved["delta_m"] == pytest.approx(expected) and summary["delta_m"] == saved["delta_m"]
    assert len(saved["history"]["train_loss"]) == config.epochs
    assert 0.0 <= m["polarity"] <= 1.0 and 0.0 < m["intensity"] < 8.0
