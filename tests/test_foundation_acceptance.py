"""Issue-level figures of the default Split-Digits config (slow: full default runs)."""

import numpy as np
import pytest

from research import train
from research.configs import split_digits


def _run(tmp_path, **overrides):
    config = split_digits.get_config()
    config.update(progress=False, plots=False, **overrides)
    return train.train_and_evaluate(config, str(tmp_path / config.algorithm))


@pytest.mark.slow
def test_naive_forgets_and_joint_is_upper_bound(tmp_path):
    naive = _run(tmp_path, algorithm="naive")
    diag = np.diag(naive["class_il"]["accuracy_matrix"])
    assert naive["class_il"]["ACC"] <= 0.35 and diag.min() > 0.9
    assert naive["task_il"]["ACC"] > naive["class_il"]["ACC"]
    joint = _run(tmp_path, algorithm="joint")
    assert joint["class_il"]["ACC"] >= 0.93
    assert naive["num_compiles"] == joint["num_compiles"] == 6


@pytest.mark.slow
@pytest.mark.parametrize("order", ["9,8,7,6,5,4,3,2,1,0", "3,7,1,9,0,2,8,4,6,5"])
def test_forgetting_holds_for_any_class_order(tmp_path, order):
    naive = _run(tmp_path, algorithm="naive", class_order=order, seed=4)
    assert naive["class_il"]["ACC"] <= 0.35
