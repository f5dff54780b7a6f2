"""Synaptic intelligence (Zenke et al. 2017): importance from the path integral of the loss.

Along a task, w_i += -g_i * (theta_i(t+1) - theta_i(t)) with g the gradient of
the TASK loss alone (``after_step`` receives the loss hook's gradient; the
penalty's own gradient, from the penalty hook, must not count). At the task's end

    Omega_i += w_i / ((Delta theta_i)^2 + xi),   Delta theta = theta_end - theta_start,

w resets, and L = L_task + c * sum_i Omega_i (theta_i - theta_start_i)^2.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from algorithms import quadratic
from algorithms.base import Algorithm, Params

NAME = "si"
COMPATIBILITY = ("class", "task", "domain")
HPARAMS = {"si_c": 1.0, "si_xi": 0.1}


class SIState(NamedTuple):
    importance: Params  # Omega
    anchor: Params  # parameters at the start of the current task
    path: Params  # w: the running path integral of this task


def consolidate(state: SIState, params: Params, xi: jax.Array) -> SIState:
    """Omega += w / (Delta^2 + xi); the anchor moves to ``params``; w resets."""
    omega = jax.tree_util.tree_map(
        lambda o, w, new, old: o + w / (jnp.square(new - old) + xi),
        state.importance, state.path, params, state.anchor)
    return SIState(omega, params, jax.tree_util.tree_map(jnp.zeros_like, state.path))


def make(hp: dict) -> Algorithm:
    def init(params, rng):
        del rng
        zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
        return SIState(zeros, params, zeros)

    def after_step(state, old_params, new_params, grads, batch, apply_fn, rng):
        del batch, apply_fn, rng
        path = jax.tree_util.tree_map(lambda w, g, new, old: w - g * (new - old),
                                      state.path, grads, new_params, old_params)
        return state._replace(path=path)

    def end_task(params, state, task_data, apply_fn, rng):
        del task_data, apply_fn, rng
        return consolidate(state, params, hp["si_xi"])

    return Algorithm(init=init, penalty=quadratic.make_penalty(hp["si_c"]),
                     after_step=after_step, end_task=end_task)
