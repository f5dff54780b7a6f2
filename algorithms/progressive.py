"""Progressive networks: train task t's column only; earlier columns stay bit-identical.

Pairs with ``config.model = 'progressive'`` (``models/progressive.py``); the
config ``research/configs/progressive_split_digits.py`` sets both. Task-IL
only: column k's head scores task k's classes alone, so class-IL would compare
heads that never saw each other's classes.

Freezing is exact, not approximate. The state counts finished tasks; the
``grads`` hook zeroes the gradient of every column but the current one, and
the optimizer is an ``optax.multi_transform`` with one label per column, each
wrapped so that an all-zero gradient gives a zero update and keeps that
column's optimizer state. So no Adam moment, weight decay or momentum can move
a frozen column, with or without ``config.reset_optimizer``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from algorithms.base import Algorithm
from algorithms.freeze import skip_when_zero

NAME = "progressive"
COMPATIBILITY = ("task",)
HPARAMS: dict = {}

COLUMN = "column_"


def subtree_names(params, prefix: str, model: str) -> list[str]:
    """``prefix0..prefix{T-1}``, checked: every top-level subtree must be one of them."""
    names = list(params) if isinstance(params, dict) else []
    indexed = [n for n in names if n.startswith(prefix) and n[len(prefix):].isdigit()]
    if not indexed or len(indexed) != len(names):
        raise ValueError(f"this method needs config.model={model!r} (top-level parameter "
                         f"subtrees {prefix}0, {prefix}1, ...); the model has {names[:6]}")
    ordered = sorted(indexed, key=lambda n: int(n[len(prefix):]))
    if [int(n[len(prefix):]) for n in ordered] != list(range(len(ordered))):
        raise ValueError(f"parameter subtrees {ordered} are not numbered 0..{len(ordered) - 1}")
    return ordered


def train_one_subtree_per_task(prefix: str, model: str) -> Algorithm:
    """Hooks that train only subtree ``prefix<t>`` during task t and freeze all others exactly."""

    def init(params, rng):
        del rng
        subtree_names(params, prefix, model)  # fail early, before the first step
        return jnp.zeros((), jnp.int32)

    def grads(grads, params, tasks_done, batch, apply_fn, rng):
        del params, batch, apply_fn, rng
        names = subtree_names(grads, prefix, model)
        current = jnp.minimum(tasks_done, len(names) - 1)
        return {n: jax.tree_util.tree_map(
            lambda g, k=k: jnp.where(current == k, g, jnp.zeros_like(g)), grads[n])
            for k, n in enumerate(names)}

    def optimizer(base):
        def labels(params):
            names = subtree_names(params, prefix, model)
            return {n: jax.tree_util.tree_map(lambda _, n=n: n, params[n]) for n in names}

        def transforms_for(params):
            return {n: skip_when_zero(base) for n in subtree_names(params, prefix, model)}

        return _per_subtree(transforms_for, labels)

    def end_task(params, tasks_done, task_data, apply_fn, rng):
        del params, task_data, apply_fn, rng
        return tasks_done + 1

    return Algorithm(init=init, grads=grads, optimizer=optimizer, end_task=end_task)


def _per_subtree(transforms_for, labels) -> optax.GradientTransformation:
    """``optax.multi_transform`` whose label set is read from the parameters at init."""

    def init(params):
        return optax.multi_transform(transforms_for(params), labels).init(params)

    def update(updates, state, params=None):
        return optax.multi_transform(transforms_for(updates), labels).update(
            updates, state, params)

    return optax.GradientTransformation(init, update)


def make(hp: dict) -> Algorithm:
    del hp
    return train_one_subtree_per_task(COLUMN, "progressive")
