"""NaN/inf losses are caught at epoch granularity, named, and never checkpointed."""

import math

import pytest

from research import train


def test_blow_up_is_reported_with_task_epoch_and_term(digits_config, tmp_path):
    digits_config.update(optimizer="sgd", learning_rate=1e30)
    with pytest.raises(train.NonFiniteError, match=r"non-finite .*task 0, epoch 0"):
        train.train_and_evaluate(digits_config, str(tmp_path))
    assert not any(p.name.isdigit() for p in (tmp_path / "checkpoints").iterdir())


def test_skip_nonfinite_keeps_the_run_finite(digits_config, tmp_path):
    digits_config.update(optimizer="sgd", learning_rate=1e30, skip_nonfinite=True)
    results = train.train_and_evaluate(digits_config, str(tmp_path))
    assert results["final_loss"]["skipped_steps"] > 0
    assert all(math.isfinite(v) for row in results["class_il"]["accuracy_matrix"] for v in row)


def test_an_epoch_with_every_step_skipped_has_no_loss_and_says_so(digits_config, tmp_path,
                                                                   caplog):
    """Its loss was the mean of no steps, written as 0.0: a perfect loss for a run that did
    not train."""
    import json

    digits_config.update(optimizer="sgd", learning_rate=1e30, skip_nonfinite=True)
    with caplog.at_level("WARNING"):
        train.train_and_evaluate(digits_config, str(tmp_path))
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    empty = [row for row in rows if row["loss"] is None]
    assert empty and all(row["skipped_steps"] > 0 for row in empty)
    assert all(row["loss"] > 0 for row in rows if row["loss"] is not None)
    assert "had every step non-finite and skipped" in caplog.text
