"""Every continual method runs end to end through train_and_evaluate in each scenario it supports.

One epoch on two tasks of a tiny model: these check wiring (hooks, shapes,
task-IL masks, reports), not accuracy; tests/test_methods_acceptance.py does that.
Each run compiles its own program (~5 s), so the full matrix is marked slow and
the default run keeps two representatives (buffer + logits in task-IL, Fisher
in domain-IL).
"""

import json

import pytest

import algorithms
from research import train

METHODS = ("ewc", "online_ewc", "si", "mas", "lwf", "er", "er_balanced", "agem", "der", "derpp",
           "icarl", "l2", "freeze", "clser", "generative_replay")


def _config(scenario: str, algorithm: str):
    if scenario == "domain":
        from research.configs import permuted_digits as stream
    else:
        from research.configs import split_digits as stream
    config = stream.get_config()
    config.scenario = scenario
    config.algorithm = algorithm
    config.num_tasks = 2
    config.num_epochs = 1
    config.hidden = (32,)
    config.batch_size = 64
    config.checkpoint_every_epochs = 1
    config.progress = False
    config.hp.buffer_size = 24
    config.hp.replay_batch_size = 8
    config.hp.agem_ref_size = 16
    config.hp.fisher_samples = 40
    config.hp.freeze_trainable = "head"  # the one hidden layer is Dense_0
    return config


def test_every_method_is_listed():
    assert set(METHODS) <= set(algorithms.available())


def _check_run(algorithm: str, scenario: str, workdir) -> None:
    results = train.train_and_evaluate(_config(scenario, algorithm), str(workdir))
    on_disk = json.loads((workdir / "results.json").read_text())
    key = {"class": "class_il", "task": "task_il", "domain": "domain_il"}[scenario]
    assert 0.0 <= on_disk[key]["ACC"] <= 1.0
    assert results["num_compiles"] == 6  # nothing recompiles at the second task
    loss = results["final_loss"]["loss"]
    assert loss == loss, f"{algorithm}/{scenario}: NaN loss"


@pytest.mark.parametrize("algorithm,scenario", [("derpp", "task"), ("ewc", "domain")])
def test_representative_methods_run(algorithm, scenario, tmp_path):
    _check_run(algorithm, scenario, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", METHODS)
def test_method_runs_in_every_scenario(algorithm, tmp_path):
    for scenario in ("class", "task", "domain"):
        if scenario in algorithms.load(algorithm).COMPATIBILITY:
            _check_run(algorithm, scenario, tmp_path / scenario)
