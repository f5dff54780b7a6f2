"""Every continual method of the suite runs on the pretrained text encoder unchanged.

The sentiment domain stream (``research/configs/sentiment_domains.py``, its
seconds-long local size: MiniLM cut to 2 layers, 16 tokens) through
``train.train_and_evaluate``, as ``scripts.run`` calls it: the methods' hooks
see packed token rows instead of pixels and nothing else changes.
"""

import json
import os

import numpy as np
import pytest

from research import train
from research.configs import sentiment_domains

FAST = ["naive", "si"]
SLOW = ["ewc", "online_ewc", "lwf", "er", "agem", "derpp"]


def _run(algorithm: str, workdir: str) -> dict:
    config = sentiment_domains.get_config("runlocal")
    config.update(algorithm=algorithm, max_examples_per_domain=24)
    config.hp.fisher_samples = 8
    train.train_and_evaluate(config, workdir)
    with open(os.path.join(workdir, "results.json")) as f:
        return json.load(f)


def _check(results: dict) -> None:
    matrix = np.asarray(results["domain_il"]["accuracy_matrix"])
    assert matrix.shape[-2:] == (4, 4)
    assert np.all((matrix >= 0) & (matrix <= 1))
    assert np.isfinite(results["domain_il"]["BWT"])


@pytest.mark.parametrize("algorithm", FAST)
def test_method_runs_on_the_encoder(algorithm, tmp_path):
    _check(_run(algorithm, str(tmp_path)))


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", SLOW)
def test_method_runs_on_the_encoder_slow(algorithm, tmp_path):
    _check(_run(algorithm, str(tmp_path)))
