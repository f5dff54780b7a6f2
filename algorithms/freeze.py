"""Layer freezing: after the first task(s), only the named top-level modules keep training.

The optimizer is an ``optax.multi_transform`` over two labels: ``trainable``
(the modules in ``freeze_trainable``, by default the head) and ``frozen`` (the
rest). Whether ``frozen`` is frozen yet depends on the task count in the
state, which the optimizer cannot see, so the ``grads`` hook zeroes those
gradients once ``freeze_after_tasks`` tasks are done and the ``frozen``
branch then applies no update and keeps its state (no momentum, no weight
decay leaks through).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from algorithms.base import Algorithm

NAME = "freeze"
COMPATIBILITY = ("class", "task", "domain")
HPARAMS = {"freeze_trainable": "Dense_1,head", "freeze_after_tasks": 1}


def skip_when_zero(inner: optax.GradientTransformation) -> optax.GradientTransformation:
    """``inner``, except that an all-zero gradient gives a zero update and an unchanged state."""

    def update(grads, state, params=None):
        updates, new_state = inner.update(grads, state, params)
        leaves = jax.tree_util.tree_leaves(grads)
        idle = jnp.all(jnp.stack([jnp.all(g == 0) for g in leaves])) if leaves else True
        keep = lambda new, old: jnp.where(idle, old, new)
        updates = jax.tree_util.tree_map(lambda u: jnp.where(idle, jnp.zeros_like(u), u), updates)
        return updates, jax.tree_util.tree_map(keep, new_state, state)

    return optax.GradientTransformation(inner.init, update)


def trainable_names(hp: dict) -> tuple[str, ...]:
    return tuple(n.strip() for n in str(hp["freeze_trainable"]).split(",") if n.strip())


def make(hp: dict) -> Algorithm:
    keep = trainable_names(hp)
    after = int(hp["freeze_after_tasks"])

    def labels(params):
        missing = [n for n in keep if n not in params]
        if missing:
            raise ValueError(f"config.hp.freeze_trainable names {missing}, not top-level modules "
                             f"of the model; choices: {', '.join(params)}")
        return {name: jax.tree_util.tree_map(
            lambda _, n=name: "trainable" if n in keep else "frozen", sub)
            for name, sub in params.items()}

    def optimizer(base):
        return optax.multi_transform({"trainable": base, "frozen": skip_when_zero(base)}, labels)

    def grads(grads, params, tasks_done, batch, apply_fn, rng):
        del params, batch, apply_fn, rng
        frozen = tasks_done >= after
        return {name: sub if name in keep else jax.tree_util.tree_map(
            lambda g: jnp.where(frozen, jnp.zeros_like(g), g), sub)
            for name, sub in grads.items()}

    def end_task(params, tasks_done, task_data, apply_fn, rng):
        del params, task_data, apply_fn, rng
        return tasks_done + 1

    return Algorithm(init=lambda params, rng: jnp.zeros((), jnp.int32), grads=grads,
                     end_task=end_task, optimizer=optimizer)
