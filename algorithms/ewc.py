"""Elastic weight consolidation, offline (Kirkpatrick et al. 2017): one penalty per past task.

    L = L_task + lambda/2 * sum_k sum_i F_k,i (theta_i - theta*_k,i)^2

The Fisher F_k (per-example, see algorithms/fisher.py) and anchor theta*_k
of every finished task sit in a stack of ``ewc_max_tasks`` slots with a count,
so the state's shape never changes. Past that many tasks the oldest slot is
overwritten (a ring). The penalty reads the stack through running sums,
sum_k F_k, sum_k F_k theta*_k and the scalar sum of F_k theta*_k^2, which give
the same penalty and gradient at the cost of one quadratic instead of K, and
read two arrays per parameter per step.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from algorithms import fisher
from algorithms.base import Algorithm, Params, tree_sum

NAME = "ewc"
COMPATIBILITY = ("class", "task", "domain")
HPARAMS = {"ewc_lambda": 1000.0, "ewc_max_tasks": 10, "fisher_type": "empirical",
           "fisher_samples": 0}


class Moments(NamedTuple):
    f: Params  # sum_k F_k
    fa: Params  # sum_k F_k * anchor_k
    faa: jax.Array  # sum over k and every parameter of F_k * anchor_k^2 (a scalar)


class EWCState(NamedTuple):
    fisher: Params  # each leaf [K, ...]
    anchor: Params  # each leaf [K, ...]
    count: jax.Array  # tasks consolidated so far (the next one goes to slot count % K)
    moments: Moments  # of the filled slots


def _moments(fisher_stack: Params, anchor_stack: Params) -> Moments:
    sum0 = lambda t: jax.tree_util.tree_map(lambda a: jnp.sum(a, 0), t)
    fa = jax.tree_util.tree_map(jnp.multiply, fisher_stack, anchor_stack)
    faa = tree_sum(jax.tree_util.tree_map(jnp.multiply, fa, anchor_stack))
    return Moments(sum0(fisher_stack), sum0(fa), faa)


def penalty(params: Params, state: EWCState) -> jax.Array:
    """sum_k sum_i F_k,i (theta_i - anchor_k,i)^2 over the filled slots."""
    m = state.moments
    return tree_sum(jax.tree_util.tree_map(lambda p, f, fa: p * (f * p - 2 * fa),
                                           params, m.f, m.fa)) + m.faa


def make(hp: dict) -> Algorithm:
    slots = int(hp["ewc_max_tasks"])
    if slots < 1:
        raise ValueError(f"config.hp.ewc_max_tasks must be >= 1, got {slots}")

    def init(params, rng):
        del rng
        stack = jax.tree_util.tree_map(lambda p: jnp.zeros((slots,) + p.shape, p.dtype), params)
        return EWCState(stack, stack, jnp.zeros((), jnp.int32), _moments(stack, stack))

    def ewc_penalty(params, state):
        reg = penalty(params, state)
        return 0.5 * hp["ewc_lambda"] * reg, {"penalty": reg}

    def end_task(params, state, task_data, apply_fn, rng):
        new = fisher.diagonal_fisher(params, task_data, apply_fn, rng, hp["fisher_type"],
                                     int(hp["fisher_samples"]))
        slot = state.count % slots
        put = lambda stack, leaf: stack.at[slot].set(leaf)
        fishers = jax.tree_util.tree_map(put, state.fisher, new)
        anchors = jax.tree_util.tree_map(put, state.anchor, params)
        return EWCState(fishers, anchors, state.count + 1, _moments(fishers, anchors))

    return Algorithm(init=init, penalty=ewc_penalty, end_task=end_task)
