"""Per-task losses and metrics of a multi-task model's outputs (padded rows masked out)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import optax

RowScore = Callable[[jax.Array, jax.Array], jax.Array]  # (task output, target) -> [N]


def _mean(values: jax.Array, valid: jax.Array | None) -> jax.Array:
    """The mean over the rows, or over the valid ones (a padded test split)."""
    if valid is None:
        return jnp.mean(values)
    return jnp.sum(jnp.where(valid, values, 0.0)) / jnp.maximum(jnp.sum(valid), 1)


def _per_task(regression_score: RowScore, class_score: RowScore, outputs: Sequence[jax.Array],
              y: jax.Array, regression: Sequence[bool], valid: jax.Array | None) -> jax.Array:
    """``[T]``: each task's mean row score, its column of ``y`` the target."""
    values = []
    for t, (out, is_regression) in enumerate(zip(outputs, regression, strict=True)):
        if is_regression:
            values.append(_mean(regression_score(out[:, 0], y[:, t]), valid))
        else:
            values.append(_mean(class_score(out, y[:, t].astype(jnp.int32)), valid))
    return jnp.stack(values)


def task_losses(
    outputs: Sequence[jax.Array], y: jax.Array, regression: Sequence[bool],
    valid: jax.Array | None = None,
) -> jax.Array:
    """Per-task losses ``[T]``: cross-entropy for classification tasks, MSE for regression."""
    return _per_task(lambda out, target: jnp.square(out - target),
                     optax.softmax_cross_entropy_with_integer_labels,
                     outputs, y, regression, valid)


def task_metrics(
    outputs: Sequence[jax.Array], y: jax.Array, regression: Sequence[bool],
    valid: jax.Array | None = None,
) -> jax.Array:
    """Per-task metrics ``[T]``: accuracy for classification, MAE for regression."""
    return _per_task(lambda out, target: jnp.abs(out - target),
                     lambda out, labels: jnp.argmax(out, -1) == labels,
                     outputs, y, regression, valid)
