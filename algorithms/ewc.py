"""Elastic weight consolidation, offline (Kirkpatrick et al. 2017): one penalty per past task.

    L = L_task + lambda/2 * sum_k sum_i F_k,i (theta_i - theta*_k,i)^2

The Fisher F_k (per-example, see algorithms/fisher.py) and anchor theta*_k
of every finished task sit in a stack of ``ewc_max_tasks`` slots with a count,
so the state's shape never changes. Past that many tasks the oldest slot is
overwritten (a ring).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from algorithms import fisher
from algorithms.base import Algorithm, Params, task_loss, tree_weighted_sq_dist

NAME = "ewc"
COMPATIBILITY = ("class", "task", "domain")
HPARAMS = {"ewc_lambda": 1000.0, "ewc_max_tasks": 10, "fisher_type": "empirical",
           "fisher_samples": 0}


class EWCState(NamedTuple):
    fisher: Params  # each leaf [K, ...]
    anchor: Params  # each leaf [K, ...]
    count: jax.Array  # tasks consolidated so far (slot of the next one: count % K)


def penalty(params: Params, state: EWCState) -> jax.Array:
    """sum over filled slots k of sum_i F_k,i (theta_i - anchor_k,i)^2."""
    size = jax.tree_util.tree_leaves(state.fisher)[0].shape[0]
    per_slot = jax.vmap(tree_weighted_sq_dist, in_axes=(0, None, 0))(
        state.fisher, params, state.anchor)
    filled = jnp.arange(size) < jnp.minimum(state.count, size)
    return jnp.sum(jnp.where(filled, per_slot, 0.0))


def make(hp: dict) -> Algorithm:
    slots = int(hp["ewc_max_tasks"])
    if slots < 1:
        raise ValueError(f"config.hp.ewc_max_tasks must be >= 1, got {slots}")

    def init(params, rng):
        del rng
        stack = jax.tree_util.tree_map(lambda p: jnp.zeros((slots,) + p.shape, p.dtype), params)
        return EWCState(stack, stack, jnp.zeros((), jnp.int32))

    def loss(params, state, batch, apply_fn, rng):
        del rng
        plain = task_loss(params, batch, apply_fn)
        reg = penalty(params, state)
        return plain + 0.5 * hp["ewc_lambda"] * reg, {"task_loss": plain, "penalty": reg}

    def end_task(params, state, task_data, apply_fn, rng):
        new = fisher.diagonal_fisher(params, task_data, apply_fn, rng, hp["fisher_type"],
                                     int(hp["fisher_samples"]))
        slot = state.count % slots
        put = lambda stack, leaf: stack.at[slot].set(leaf)
        return EWCState(jax.tree_util.tree_map(put, state.fisher, new),
                        jax.tree_util.tree_map(put, state.anchor, params),
                        state.count + 1)

    return Algorithm(init=init, loss=loss, end_task=end_task)
