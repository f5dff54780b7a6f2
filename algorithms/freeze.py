"""Layer freezing: after the first task(s), only the named top-level modules keep training.

The modules in ``freeze_trainable`` (by default the last hidden layer ``Dense_1``
and the head) keep training; the rest are frozen once ``freeze_after_tasks``
tasks are done. That depends on the task count in the state, which the
optimizer cannot see, so the ``grads`` hook zeroes the frozen gradients, and
the optimizer zeroes the frozen modules' updates whenever their gradient is
all zero, so no momentum or weight decay moves them. One optimizer runs over
every parameter, so a global-norm clip (``config.clip_norm``) sees the whole
gradient, as it would without the method.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from algorithms.base import Algorithm

NAME = "freeze"
COMPATIBILITY = ("class", "task", "domain")
HPARAMS = {"freeze_trainable": "Dense_1,head", "freeze_after_tasks": 1}


def idle_frozen(base: optax.GradientTransformation,
                trainable: tuple[str, ...]) -> optax.GradientTransformation:
    """``base`` over every parameter, except that the top-level modules outside
    ``trainable`` get a zero update while their gradient is all zero."""

    def update(grads, state, params=None):
        updates, state = base.update(grads, state, params)
        frozen = [g for name, sub in grads.items() if name not in trainable
                  for g in jax.tree_util.tree_leaves(sub)]
        idle = jnp.all(jnp.stack([jnp.all(g == 0) for g in frozen])) if frozen else True
        updates = {name: sub if name in trainable else jax.tree_util.tree_map(
            lambda u: jnp.where(idle, jnp.zeros_like(u), u), sub)
            for name, sub in updates.items()}
        return updates, state

    return optax.GradientTransformation(base.init, update)


def trainable_names(hp: dict) -> tuple[str, ...]:
    return tuple(n.strip() for n in str(hp["freeze_trainable"]).split(",") if n.strip())


def make(hp: dict) -> Algorithm:
    keep = trainable_names(hp)
    after = int(hp["freeze_after_tasks"])

    def optimizer(base):
        inner = idle_frozen(base, keep)

        def init(params):
            missing = [n for n in keep if n not in params]
            if missing:
                raise ValueError(f"config.hp.freeze_trainable names {missing}, not top-level "
                                 f"modules of the model; choices: {', '.join(params)}")
            return inner.init(params)

        return optax.GradientTransformation(init, inner.update)

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
