"""Per-task losses and metrics of a multi-task model's outputs (padded rows masked out)."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import optax


def _mean(values: jax.Array, valid: jax.Array | None) -> jax.Array:
    """The mean over the rows, or over the valid ones (a padded test split)."""
    if valid is None:
        return jnp.mean(values)
    return jnp.sum(jnp.where(valid, values, 0.0)) / jnp.maximum(jnp.sum(valid), 1)


def task_losses(
    outputs: Sequence[jax.Array], y: jax.Array, regression: Sequence[bool],
    valid: jax.Array | None = None,
) -> jax.Array:
    """Per-task losses ``[T]``: cross-entropy for classification tasks, MSE for regression."""
    losses = []
    for t, (out, is_regression) in enumerate(zip(outputs, regression, strict=True)):
        if is_regression:
            losses.append(_mean(jnp.square(out[:, 0] - y[:, t]), valid))
        else:
            labels = y[:, t].astype(jnp.int32)
            losses.append(_mean(optax.softmax_cross_entropy_with_integer_labels(out, labels),
                                valid))
    return jnp.stack(losses)


def task_metrics(
    outputs: Sequence[jax.Array], y: jax.Array, regression: Sequence[bool],
    valid: jax.Array | None = None,
) -> jax.Array:
    """Per-task metrics ``[T]``: accuracy for classification, MAE for regression."""
    values = []
    for t, (out, is_regression) in enumerate(zip(outputs, regression, strict=True)):
        if is_regression:
            values.append(_mean(jnp.abs(out[:, 0] - y[:, t]), valid))
        else:
            values.append(_mean(jnp.argmax(out, -1) == y[:, t].astype(jnp.int32), valid))
    return jnp.stack(values)
