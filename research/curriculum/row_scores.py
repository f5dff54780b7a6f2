"""Per-row scores of one run's model over a training pool, a chunk of rows at a time."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp


def _per_row(score: Callable, apply_fn: Callable, params, x, y: jax.Array,
             logit_mask: jax.Array, chunk: int) -> jax.Array:
    """``score(masked_logits, y)`` of every row, ``chunk`` rows at a time (BERT pools fit)."""
    rows = y.shape[0]
    pad = -rows % chunk
    padded = lambda a: jnp.pad(a, [(0, pad)] + [(0, 0)] * (a.ndim - 1))
    x, y, logit_mask = jax.tree_util.tree_map(padded, (x, y, logit_mask))

    def one(args):
        xc, yc, mc = args
        return score(jnp.where(mc, apply_fn(params, xc), -1e9), yc)

    split = lambda a: a.reshape((-1, chunk) + a.shape[1:])
    scores = jax.lax.map(one, jax.tree_util.tree_map(split, (x, y, logit_mask)))
    return scores.reshape(-1)[:rows]


def _cross_entropy(logits: jax.Array, y: jax.Array) -> jax.Array:
    return -jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=-1)[:, 0]


def _correct(logits: jax.Array, y: jax.Array) -> jax.Array:
    return (jnp.argmax(logits, -1) == y).astype(jnp.float32)


def example_losses(apply_fn: Callable, params, x, y: jax.Array, logit_mask: jax.Array,
                   chunk: int = 256) -> jax.Array:
    """Per-row cross-entropy of one run's model on a pool (the self-paced score)."""
    return _per_row(_cross_entropy, apply_fn, params, x, y, logit_mask, chunk)


def weighted_accuracy(apply_fn: Callable, params, x, y: jax.Array, logit_mask: jax.Array,
                      weight: jax.Array, chunk: int = 256) -> jax.Array:
    """Accuracy of one run's model over the rows of weight 1 (0 when there are none)."""
    correct = _per_row(_correct, apply_fn, params, x, y, logit_mask, chunk)
    return jnp.sum(correct * weight) / jnp.maximum(jnp.sum(weight), 1.0)
