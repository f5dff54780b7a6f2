"""What the engine promises hooks: after_step gets the data gradient; DER logits at insertion."""

import types

import jax
import jax.numpy as jnp
import numpy as np
import optax

from algorithms import base, der
from models import mlp
from research import engine as engine_lib

BATCH, FEATURES, CLASSES = 8, 5, 3


def _pool(rng):
    x = jax.random.normal(rng, (BATCH, FEATURES))
    return {"x": x, "y": jnp.arange(BATCH) % CLASSES,
            "logit_mask": jnp.ones((BATCH, CLASSES), bool),
            "task": jnp.zeros((BATCH,), jnp.int32), "valid": jnp.ones((BATCH,), bool)}


def _engine(algorithm: base.Algorithm) -> engine_lib.Engine:
    method = types.SimpleNamespace(make=lambda hp: algorithm)
    model = mlp.MLP(hidden=(7,), num_classes=CLASSES)
    return engine_lib.Engine(model, method, {}, optax.sgd(0.1), BATCH, 1)


def _one_step(algorithm: base.Algorithm, pool: dict):
    eng = _engine(algorithm)
    state = eng.init(jax.random.PRNGKey(0)[None], {}, pool["x"][:1])
    start = jax.tree_util.tree_map(lambda a: a[0], state)
    state, _ = eng.epochs(state, jax.tree_util.tree_map(lambda a: a[None], pool), {})
    return eng, start, jax.tree_util.tree_map(lambda a: a[0], state)


def test_after_step_gets_the_loss_gradient_without_the_penalty():
    pool = _pool(jax.random.PRNGKey(1))

    def penalty(params, state):  # large, so its gradient would dominate if mixed in
        return 1e3 * base.tree_sum(jax.tree_util.tree_map(jnp.square, params)), {}

    def after_step(state, old, new, grads, batch, apply_fn, rng):
        del state, new, batch, apply_fn, rng
        return {"grads": grads, "old": old}

    algorithm = base.Algorithm(init=lambda params, rng: {"grads": params, "old": params},
                               penalty=penalty, after_step=after_step)
    eng, start, end = _one_step(algorithm, pool)
    batch = {**pool, "weight": jnp.ones((BATCH,))}
    expected = jax.grad(base.task_loss)(start.params, batch, eng.apply_fn)
    got = end.alg_state["grads"]
    for g, e in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(expected),
                    strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)
    # the update itself did include the penalty: SGD moved by 0.1 * (task + penalty grads)
    moved = jax.tree_util.tree_map(lambda a, b: a - b, start.params, end.params)
    step_total = jax.tree_util.tree_map(lambda t, p: 0.1 * (t + 2e3 * p), expected, start.params)
    for m, s in zip(jax.tree_util.tree_leaves(moved), jax.tree_util.tree_leaves(step_total),
                    strict=True):
        np.testing.assert_allclose(m, s, rtol=1e-4, atol=1e-6)


def test_der_stores_the_logits_of_the_step_it_trained_on():
    pool = _pool(jax.random.PRNGKey(2))
    algorithm = der.make({"buffer_size": 16, "replay_batch_size": 4, "buffer_input_size": 0,
                          "der_alpha": 0.3})
    eng, start, end = _one_step(algorithm, pool)
    buf = end.alg_state
    assert int(jnp.sum(buf.valid)) == BATCH
    stored = {int(i): np.asarray(buf.logits[j]) for j, i in enumerate(
        np.asarray(jnp.argmax(jnp.all(buf.x[:, None] == pool["x"][None], -1), 1))) if buf.valid[j]}
    before = np.asarray(eng.apply_fn(start.params, pool["x"]))
    after = np.asarray(eng.apply_fn(end.params, pool["x"]))
    for row, logits in stored.items():
        np.testing.assert_allclose(logits, before[row], rtol=1e-5, atol=1e-6)
    assert not np.allclose(before, after)  # the check tells the two apart
