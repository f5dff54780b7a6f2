"""The suite's continual methods run on the pretrained text encoder unchanged (eight are
trained here; generative replay's VAE needs inputs in [0, 1] and iCaRL a class-IL
stream, so neither runs on the domain stream).

The sentiment domain stream (``research/configs/sentiment_domains.py``, its
seconds-long local size: MiniLM cut to 2 layers, 16 tokens) through
``train.train_and_evaluate``, as ``scripts.run`` calls it: the methods' hooks
see packed token rows instead of pixels and nothing else changes.
"""

import json
import os

import jax
import jax.numpy as jnp
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


@pytest.mark.parametrize("algorithm, start_of", [
    ("si", lambda s: [s.anchor]),  # the first task's Delta runs from here
    ("clser", lambda s: [s.plastic, s.stable]),  # the mean models it distils from
])
def test_a_method_state_starts_from_the_pretrained_weights(algorithm, start_of):
    """The state a method builds on the parameters is built on the pretrained ones, not on
    the random init they replace: SI's importances were divided by the distance from
    that random init, and CLS-ER's mean models started from it."""
    config = sentiment_domains.get_config("runlocal")
    config.update(algorithm=algorithm, max_examples_per_domain=24)
    run = train.build_run(config)
    encoder = lambda p: jax.tree_util.tree_leaves(p["encoder"])
    for tree in start_of(run.state.alg_state):
        for got, want in zip(encoder(tree), encoder(run.state.params), strict=True):
            np.testing.assert_array_equal(got, want)
    # ... and those are not the random init (which the old code anchored to).
    sample_x = jax.tree_util.tree_map(lambda a: jnp.asarray(a[0, 0, :1]), run.data.train_x)
    random_init = run.eng.init_params(jnp.stack([jax.random.PRNGKey(config.seed)]), sample_x)
    assert not np.array_equal(encoder(random_init)[0], encoder(run.state.params)[0])
