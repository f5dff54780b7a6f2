"""research/adam.py: optax's Adam and AdamW, reassociated, so the same numbers and state."""

import chex
import jax
import jax.numpy as jnp
import optax
import pytest

from research import adam, optim


def _params():
    k1, k2 = jax.random.split(jax.random.PRNGKey(0))
    return {"w": jax.random.normal(k1, (30, 20)), "b": jax.random.normal(k2, (20,))}


def _train(opt: optax.GradientTransformation, steps: int = 200):
    params, state = _params(), opt.init(_params())
    for i in range(steps):
        # gradients spanning 1e-4..10, so nu and the bias corrections matter
        scale = 10.0 if i % 3 == 0 else 1e-4
        grads = jax.tree.map(
            lambda p, i=i, scale=scale: scale * jax.random.normal(jax.random.PRNGKey(i), p.shape),
            params)
        updates, state = opt.update(grads, state, params)
        params = optax.apply_updates(params, updates)
    return params, state


@pytest.mark.parametrize("ours,theirs", [
    (adam.adam(1e-2), optax.adam(1e-2)),
    (adam.adamw(1e-2, 0.1), optax.adamw(1e-2, weight_decay=0.1, mask=adam.matrices)),
    (adam.adamw(1e-2, 0.1, decay_vectors=True), optax.adamw(1e-2, weight_decay=0.1)),
])
def test_matches_optax(ours, theirs):
    (p1, s1), (p2, s2) = _train(ours), _train(theirs)
    chex.assert_trees_all_equal_structs(s1, s2)
    # float32 rounding differs per step (about 1e-7 of a 1e-2 step), 200 steps of it
    chex.assert_trees_all_close(p1, p2, rtol=1e-5, atol=1e-5)
    chex.assert_trees_all_close(s1, s2, rtol=1e-4, atol=1e-12)


def test_first_step_is_sign_times_rate():
    """After one step Adam's update is -lr * g / (|g| + eps): the corrections exactly undone."""
    opt = optim.make("adam", 0.5)
    params = {"w": jnp.zeros(4)}
    grads = {"w": jnp.array([3.0, -2.0, 1e-3, -1e-3])}
    updates, _ = opt.update(grads, opt.init(params), params)
    chex.assert_trees_all_close(updates["w"], -0.5 * jnp.sign(grads["w"]), rtol=1e-4)


def test_adamw_decays_matrices_only():
    """With a zero gradient the update is the decay alone: w shrinks, the bias does not."""
    opt = optim.make("adamw", 0.1, weight_decay=0.5)
    params = _params()
    zeros = jax.tree.map(jnp.zeros_like, params)
    updates, _ = opt.update(zeros, opt.init(params), params)
    chex.assert_trees_all_close(updates["w"], -0.05 * params["w"], rtol=1e-6)
    chex.assert_trees_all_equal(updates["b"], jnp.zeros_like(params["b"]))
    every, _ = optim.make("adamw", 0.1, 0.5, decay_vectors=True).update(
        zeros, opt.init(params), params)
    chex.assert_trees_all_close(every["b"], -0.05 * params["b"], rtol=1e-6)
