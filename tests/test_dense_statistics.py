"""The dense-layer identity for per-example statistics against per-example gradients."""

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from algorithms import dense_statistics, fisher
from models.mlp import MLP


class _SharedDense(nn.Module):
    """One dense layer applied twice: its per-example gradient is a sum of two outer
    products, so the identity does not hold."""

    @nn.compact
    def __call__(self, x):
        layer = nn.Dense(4)
        return layer(nn.relu(layer(x.reshape((x.shape[0], -1))[:, :4])))


class _TokenDense(nn.Module):
    """A dense layer over each of a row's positions (weights shared across positions)."""

    @nn.compact
    def __call__(self, x):
        return nn.Dense(4)(x).sum(1)


class _NormedMLP(nn.Module):
    """A parameter outside any dense layer (the norm's scale and bias)."""

    @nn.compact
    def __call__(self, x):
        return nn.Dense(4)(nn.LayerNorm()(x.reshape((x.shape[0], -1))))


def _setup(model, rows=40, seed=0):
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.normal(size=(rows, 4, 4)), jnp.float32)
    params = model.init(jax.random.PRNGKey(seed), x[:1])["params"]
    mask = rng.random((rows, 4)) < 0.7
    mask[:, 0] = True
    y = np.where(mask[np.arange(rows), rng.integers(0, 4, rows)], rng.integers(0, 4, rows), 0)
    mask[np.arange(rows), y] = True
    weight = np.ones(rows, np.float32)
    weight[-3:] = 0.0  # padding rows: must not count
    data = {"x": x, "y": jnp.asarray(y), "logit_mask": jnp.asarray(mask),
            "weight": jnp.asarray(weight)}
    return params, data, lambda p, v: model.apply({"params": p}, v)


def _log_likelihood(apply_fn):
    def scalar(p, example, key):
        del key
        logits = jnp.where(example["logit_mask"], apply_fn(p, example["x"][None])[0], -jnp.inf)
        return jax.nn.log_softmax(logits)[example["y"]]
    return scalar


def _per_example_mean(scalar, params, data, transform):
    """The definition: the weighted mean of transform(per-example gradient of scalar)."""
    fields = {k: data[k] for k in ("x", "y", "logit_mask")}
    grads = jax.vmap(jax.grad(scalar), in_axes=(None, 0, None))(params, fields, None)
    w = data["weight"]
    return jax.tree_util.tree_map(lambda g: jnp.tensordot(w, transform(g), 1) / w.sum(), grads)


def test_plan_finds_every_layer_of_an_mlp_in_call_order():
    params, data, apply_fn = _setup(MLP(num_classes=4, hidden=(6, 5)))
    example = jax.tree_util.tree_map(lambda a: a[0], data)
    layers = dense_statistics.plan(_log_likelihood(apply_fn), params, example,
                                   jax.random.PRNGKey(0))
    assert layers == (dense_statistics.DenseCall(("Dense_0",), 6, True),
                      dense_statistics.DenseCall(("Dense_1",), 5, True),
                      dense_statistics.DenseCall(("head",), 4, True))


@pytest.mark.parametrize("model", [_SharedDense(), _TokenDense(), _NormedMLP()],
                         ids=["shared", "tokens", "norm"])
def test_plan_declines_models_the_identity_does_not_cover(model):
    params, data, apply_fn = _setup(model)
    example = jax.tree_util.tree_map(lambda a: a[0], data)
    assert dense_statistics.plan(_log_likelihood(apply_fn), params, example,
                                 jax.random.PRNGKey(0)) is None


@pytest.mark.parametrize("model", [MLP(num_classes=4, hidden=(6, 5)), _SharedDense(),
                                   _TokenDense(), _NormedMLP()],
                         ids=["mlp", "shared", "tokens", "norm"])
def test_empirical_fisher_is_the_mean_squared_per_example_gradient(model):
    params, data, apply_fn = _setup(model)
    got = fisher.diagonal_fisher(params, data, apply_fn, jax.random.PRNGKey(0), "empirical")
    expected = _per_example_mean(_log_likelihood(apply_fn), params, data, jnp.square)
    chex.assert_trees_all_close(got, expected, rtol=1e-5, atol=1e-7)


def test_mas_through_the_identity_is_the_mean_abs_per_example_gradient():
    params, data, apply_fn = _setup(MLP(num_classes=4, hidden=(6, 5)))

    def sq_norm(p, example, key):
        del key
        return jnp.sum(jnp.where(example["logit_mask"], apply_fn(p, example["x"][None])[0],
                                 0.0) ** 2)

    expected = _per_example_mean(sq_norm, params, data, jnp.abs)
    got = fisher.output_sensitivity(params, data, apply_fn, jax.random.PRNGKey(0))
    chex.assert_trees_all_close(got, expected, rtol=1e-5, atol=1e-7)


def test_true_fisher_samples_the_same_labels_on_either_path(monkeypatch):
    params, data, apply_fn = _setup(MLP(num_classes=4, hidden=(6, 5)), rows=300)
    got = fisher.diagonal_fisher(params, data, apply_fn, jax.random.PRNGKey(2), "true")
    monkeypatch.setattr(dense_statistics, "plan", lambda *args: None)
    per_example = fisher.diagonal_fisher(params, data, apply_fn, jax.random.PRNGKey(2), "true")
    chex.assert_trees_all_close(got, per_example, rtol=1e-5, atol=1e-7)
