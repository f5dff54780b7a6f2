"""Per-example importance statistics: the diagonal Fisher (EWC) and MAS's output sensitivity.

Both are averages over examples of a function (square, absolute value) of each
example's own gradient, never of a mini-batch gradient, which would underestimate
the Fisher by the batch size. A model made of dense layers alone gets them from
one pass per chunk of rows (algorithms/dense_statistics.py); any other takes the
per-example gradients (``jax.vmap`` of ``jax.grad``) in chunks of ``CHUNK`` rows.
Chunks run under ``lax.scan``, so memory stays bounded on any task size, and
padding rows (weight 0) never count.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from algorithms import dense_statistics
from algorithms.base import ApplyFn, Batch, Params, masked_logits, pad_rows, random_rows

FISHER_TYPES = ("empirical", "true")
# Examples per chunk of per-example gradients: each chunk holds one gradient per
# example, so memory is CHUNK times the parameters'. 8 was the fastest and lightest
# of 4-32 measured on the MiniLM encoder (11.2 s and 5.4 GB peak for 256 examples,
# against 13.9 s and 7.6 GB at 32) and on the Split-Digits MLP.
CHUNK = 8
# Examples per chunk of a dense model's pass, which holds only their activations.
DENSE_CHUNK = 256

# scalar(params, example, key) -> one example's scalar, whose gradient is the statistic's.
ScalarFn = dense_statistics.ScalarFn
# prepare(params, example, key) -> the example as the scalar takes it (a sampled label).
PrepareFn = Callable[[Params, dict, jax.Array], dict]


def pick_rows(weight: jax.Array, rng: jax.Array, num_samples: int) -> tuple[jax.Array, jax.Array]:
    """(rows, weights): up to ``num_samples`` real rows drawn without replacement (0 = all).

    The count is static, so the result is padded to a multiple of ``CHUNK``
    with weight-0 rows.
    """
    size = weight.shape[0]
    count = size if num_samples <= 0 else min(num_samples, size)
    rows = random_rows(weight > 0, rng, count)
    return pad_rows(rows, CHUNK), pad_rows(weight[rows], CHUNK)


def per_example_mean(scalar: ScalarFn, transform: Callable[[jax.Array], jax.Array],
                     params: Params, data: Batch, rng: jax.Array, num_samples: int = 0,
                     prepare: PrepareFn | None = None) -> Params:
    """Weighted mean over (sampled) examples of ``transform`` of each single example's
    gradient of ``scalar``; ``prepare`` first (outside the gradient) when given."""
    pick_rng, stat_rng = jax.random.split(rng)
    rows, weight = pick_rows(data["weight"], pick_rng, num_samples)
    keys = jax.random.split(stat_rng, rows.shape[0])
    fields = {k: data[k] for k in ("x", "y", "logit_mask")}
    first = jax.tree_util.tree_map(lambda a: a[0], fields)
    layers = dense_statistics.plan(scalar, params, first, keys[0])
    chunk = CHUNK if layers is None else DENSE_CHUNK
    rows, weight, keys = (pad_rows(a, chunk) for a in (rows, weight, keys))

    def chunk_sums(ids, w, k):
        examples = jax.tree_util.tree_map(lambda a: a[ids], fields)
        if prepare is not None:
            examples = jax.vmap(prepare, in_axes=(None, 0, 0))(params, examples, k)
        if layers is not None:
            return dense_statistics.weighted_sums(scalar, transform, layers, params,
                                                  examples, k, w)
        grads = jax.vmap(jax.grad(scalar), in_axes=(None, 0, 0))(params, examples, k)
        return jax.tree_util.tree_map(lambda g: jnp.tensordot(w, transform(g), axes=1), grads)

    def body(total, inputs):
        return jax.tree_util.tree_map(jnp.add, total, chunk_sums(*inputs)), None

    zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
    chunked = lambda a: a.reshape((-1, chunk) + a.shape[1:])
    total, _ = jax.lax.scan(body, zeros, (chunked(rows), chunked(weight), chunked(keys)))
    norm = jnp.maximum(jnp.sum(weight), 1e-12)
    return jax.tree_util.tree_map(lambda t: t / norm, total)


def _logits(params: Params, example: dict, apply_fn: ApplyFn) -> jax.Array:
    return masked_logits(apply_fn(params, example["x"][None])[0], example["logit_mask"])


def diagonal_fisher(params: Params, data: Batch, apply_fn: ApplyFn, rng: jax.Array,
                    fisher_type: str = "empirical", num_samples: int = 0) -> Params:
    """Diagonal Fisher E_x E_y[(d log p(y|x) / d theta)^2] over ``data``'s real rows.

    ``empirical`` takes y from the data; ``true`` samples y from the model's own
    (task-masked) predictive distribution, one draw per example.
    """
    if fisher_type not in FISHER_TYPES:
        raise ValueError(f"unknown fisher_type {fisher_type!r}; choices: "
                         f"{', '.join(FISHER_TYPES)}")

    def log_likelihood(p: Params, example: dict, key: jax.Array) -> jax.Array:
        del key
        return jax.nn.log_softmax(_logits(p, example, apply_fn))[example["y"]]

    def model_label(p: Params, example: dict, key: jax.Array) -> dict:
        return {**example, "y": jax.random.categorical(key, _logits(p, example, apply_fn))}

    return per_example_mean(log_likelihood, jnp.square, params, data, rng, num_samples,
                            prepare=model_label if fisher_type == "true" else None)


def output_sensitivity(params: Params, data: Batch, apply_fn: ApplyFn, rng: jax.Array,
                       num_samples: int = 0) -> Params:
    """MAS importance: mean over examples of |d ||f(x)||^2 / d theta|, task-masked outputs."""

    def sq_norm(p: Params, example: dict, key: jax.Array) -> jax.Array:
        del key
        out = apply_fn(p, example["x"][None])[0]
        return jnp.sum(jnp.where(example["logit_mask"], out, 0.0) ** 2)

    return per_example_mean(sq_norm, jnp.abs, params, data, rng, num_samples)
