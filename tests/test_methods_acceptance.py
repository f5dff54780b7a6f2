"""Acceptance of the method suite on the shipped defaults: full streams, 5 vmapped seeds (slow).

  pytest -m slow tests/test_methods_acceptance.py

Thresholds are those of the issue; the same checks, with the measured
figures, are in docs/results_continual.md (python -m scripts.suite).
"""

import pytest

from research import suite, train
from research.configs import permuted_digits, split_digits

pytestmark = pytest.mark.slow


def _acc(module, scenario: str, methods, tmp_path) -> dict[str, float]:
    key = {"class": "class_il", "task": "task_il", "domain": "domain_il"}[scenario]
    out = {}
    for method in methods:
        config = module.get_config()
        config.scenario, config.algorithm = scenario, method
        config.num_seeds, config.progress = 5, False
        out[method] = train.train_and_evaluate(config, str(tmp_path / method))[key]["ACC"]
    return out


def _assert_all(checks):
    failed = [text for text, ok in checks if not ok]
    assert checks and not failed, failed


def test_class_il_split_digits(tmp_path):
    acc = _acc(split_digits, "class",
               ("naive", "joint", "ewc", "online_ewc", "si", "mas", "er", "derpp", "agem"),
               tmp_path)
    _assert_all(suite.acceptance({"class-IL Split-Digits": acc}))


def test_domain_il_permuted_digits(tmp_path):
    acc = _acc(permuted_digits, "domain", ("naive", "ewc", "online_ewc", "si", "mas", "er"),
               tmp_path)
    _assert_all(suite.acceptance({"domain-IL Permuted-Digits (10 tasks)": acc}))


def test_task_il_split_digits(tmp_path):
    acc = _acc(split_digits, "task", suite.METHODS, tmp_path)
    _assert_all(suite.acceptance({"task-IL Split-Digits": acc}))


def test_ewc_lambda_sweep_runs_vmapped(tmp_path):
    config = split_digits.get_config()
    config.algorithm, config.progress, config.num_epochs = "ewc", False, 2
    config.sweep.ewc_lambda = "1,10,100,1000"
    results = train.train_and_evaluate(config, str(tmp_path))
    runs = results["class_il"]["runs"]
    assert [r["hp"]["ewc_lambda"] for r in runs] == [1.0, 10.0, 100.0, 1000.0]
    assert results["num_compiles"] == 6  # one program for the whole sweep
    task = [r["ACC"] for r in results["task_il"]["runs"]]
    assert len(set(task)) > 1  # lambda does reach the loss
