"""Progressive networks: train task t's column only; earlier columns stay bit-identical.

Pairs with ``config.model = 'progressive'`` (``models/progressive.py``); the
config ``research/configs/progressive_split_digits.py`` sets both. Task-IL
only: column k's head scores task k's classes alone, so class-IL would compare
heads that never saw each other's classes.

Freezing is exact, not approximate. The state counts finished tasks; the
``grads`` hook zeroes the gradient of every column but the current one, and
the optimizer runs the base optimizer on each column separately, giving a
frozen column a zero update and keeping its optimizer state. So no Adam
moment, weight decay or momentum can move a frozen column, with or without
``config.reset_optimizer``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from algorithms.base import Algorithm

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
        return per_subtree(base, lambda params: subtree_names(params, prefix, model))

    def end_task(params, tasks_done, task_data, apply_fn, rng):
        del params, task_data, apply_fn, rng
        return tasks_done + 1

    return Algorithm(init=init, grads=grads, optimizer=optimizer, end_task=end_task)


def _probe(subtree, name: str) -> jax.Array:
    """The gradient leaf that tells whether a subtree is training: its head's bias."""
    try:
        return subtree["head"]["bias"]
    except (KeyError, TypeError):
        raise ValueError(f"parameter subtree {name!r} needs an output layer 'head' with a "
                         "bias (each column or block scores its task's classes)") from None


def per_subtree(base: optax.GradientTransformation, names_of) -> optax.GradientTransformation:
    """``base`` run separately on each top-level subtree; a frozen subtree is left idle.

    A subtree is idle when the gradient of its head's bias is exactly zero, as
    it is for every column the ``grads`` hook froze (the training column's
    bias gradient is the batch's mean ``softmax - onehot``, never all zero in
    practice; if it were, that column would merely skip one step). An idle
    subtree gets a zero update and keeps its optimizer state, so neither Adam's
    moments nor weight decay can move it. Only one subtree is ever active, so a
    global-norm clip inside ``base`` sees the same norm as on the whole tree.
    Probing one leaf instead of testing every leaf for zero keeps the compiled
    step small (a reduction over all gradients made compiling ~4x slower).
    """

    def init(params):
        return {n: base.init(params[n]) for n in names_of(params)}

    def update(grads, state, params=None):
        updates, new_state = {}, {}
        for n in names_of(grads):
            idle = jnp.all(_probe(grads[n], n) == 0)
            sub_params = None if params is None else params[n]
            u, s = base.update(grads[n], state[n], sub_params)
            updates[n] = jax.tree_util.tree_map(lambda a, idle=idle: jnp.where(idle, 0, a), u)
            new_state[n] = jax.tree_util.tree_map(
                lambda new, old, idle=idle: jnp.where(idle, old, new), s, state[n])
        return updates, new_state

    return optax.GradientTransformation(init, update)


def make(hp: dict) -> Algorithm:
    del hp
    return train_one_subtree_per_task(COLUMN, "progressive")
