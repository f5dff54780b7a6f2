"""The anchored quadratic penalty shared by online EWC, SI, MAS and L2.

    L = L_task + strength * sum_i w_i (theta_i - anchor_i)^2

Methods differ only in how they compute the importances ``w`` at a task's end
(or along the path); the state and the penalty hook are this one pair.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from algorithms.base import Aux, Params, tree_weighted_sq_dist


class Anchored(NamedTuple):
    importance: Params  # w: zeros until the first task ends, so the penalty starts at 0
    anchor: Params  # theta*: the parameters at the end of the last task


def init(params: Params) -> Anchored:
    return Anchored(jax.tree_util.tree_map(jnp.zeros_like, params), params)


def make_penalty(strength: jax.Array) -> Callable[..., tuple[jax.Array, Aux]]:
    """penalty(params, state) for a state with ``importance``/``anchor``."""

    def penalty(params, state):
        reg = tree_weighted_sq_dist(state.importance, params, state.anchor)
        return strength * reg, {"penalty": reg}

    return penalty
