"""The per-example diagonal Fisher against the analytic Fisher of softmax regression."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from algorithms import fisher


def _apply(params, x):
    return x.reshape((x.shape[0], -1)) @ params["w"] + params["b"]


def _problem(rows=45, dim=3, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    params = {"w": jnp.asarray(rng.normal(size=(dim, classes)), jnp.float32),
              "b": jnp.asarray(rng.normal(size=classes), jnp.float32)}
    mask = rng.random((rows, classes)) < 0.7
    y = np.array([rng.choice(np.flatnonzero(m)) if m.any() else 0 for m in mask])
    mask[np.arange(rows), y] = True
    weight = np.ones(rows, np.float32)
    weight[-5:] = 0.0  # padding rows: must not count
    data = {"x": jnp.asarray(rng.normal(size=(rows, dim)), jnp.float32), "y": jnp.asarray(y),
            "logit_mask": jnp.asarray(mask), "weight": jnp.asarray(weight)}
    return params, data


def _probs(params, data):
    logits = np.where(data["logit_mask"], np.asarray(_apply(params, data["x"])), -np.inf)
    p = np.exp(logits - logits.max(1, keepdims=True))
    return p / p.sum(1, keepdims=True)


def test_empirical_fisher_matches_analytic():
    params, data = _problem()
    real = np.asarray(data["weight"]) > 0
    x, p = np.asarray(data["x"])[real], _probs(params, data)[real]
    residual = p - np.eye(p.shape[1])[np.asarray(data["y"])[real]]
    expected = {"w": np.mean(x[:, :, None] ** 2 * residual[:, None, :] ** 2, 0),
                "b": np.mean(residual**2, 0)}
    got = fisher.diagonal_fisher(params, data, _apply, jax.random.PRNGKey(0), "empirical")
    chex.assert_trees_all_close(got, expected, rtol=1e-5, atol=1e-6)


def test_true_fisher_matches_expectation_over_model_labels():
    params, small = _problem(rows=8)
    params = jax.tree_util.tree_map(lambda a: 0.3 * a, params)  # no near-certain classes
    copies = 1500  # one sampled label per row: average many copies of each row
    data = jax.tree_util.tree_map(lambda a: jnp.concatenate([a] * copies), small)
    real = np.asarray(small["weight"]) > 0
    x, p = np.asarray(small["x"])[real], _probs(params, small)[real]
    # E_y~p (p_c - [y = c])^2 = p_c (1 - p_c)
    expected = {"w": np.mean(x[:, :, None] ** 2 * (p * (1 - p))[:, None, :], 0),
                "b": np.mean(p * (1 - p), 0)}
    got = fisher.diagonal_fisher(params, data, _apply, jax.random.PRNGKey(1), "true")
    chex.assert_trees_all_close(got, expected, rtol=0.1, atol=3e-3)
    empirical = fisher.diagonal_fisher(params, data, _apply, jax.random.PRNGKey(1), "empirical")
    assert not np.allclose(empirical["b"], got["b"], rtol=0.05)


def test_sampled_rows_are_real_and_bounded():
    weight = jnp.asarray([1.0, 0.0, 1.0, 1.0, 0.0, 1.0])
    rows, picked = fisher.pick_rows(weight, jax.random.PRNGKey(0), 3)
    assert rows.shape[0] % fisher.CHUNK == 0 and float(jnp.sum(picked)) == 3.0
    assert set(np.asarray(rows)[np.asarray(picked) > 0]) <= {0, 2, 3, 5}


def test_mas_importance_is_mean_abs_output_gradient():
    params, data = _problem()
    real = np.asarray(data["weight"]) > 0
    x = np.asarray(data["x"])[real]
    out = np.where(data["logit_mask"], np.asarray(_apply(params, data["x"])), 0.0)[real]
    # d ||o||^2 / d w_ic = 2 o_c x_i on the row's own classes
    expected = {"w": np.mean(np.abs(2 * x[:, :, None] * out[:, None, :]), 0),
                "b": np.mean(np.abs(2 * out), 0)}
    got = fisher.output_sensitivity(params, data, _apply, jax.random.PRNGKey(0))
    chex.assert_trees_all_close(got, expected, rtol=1e-5, atol=1e-6)


def test_unknown_fisher_type_names_choices():
    params, data = _problem()
    with pytest.raises(ValueError, match="empirical, true"):
        fisher.diagonal_fisher(params, data, _apply, jax.random.PRNGKey(0), "exact")
