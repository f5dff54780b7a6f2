"""Weight decay towards the previous task's parameters: EWC with an identity Fisher.

L = L_task + lambda/2 * ||theta - theta*||^2 once a task has ended; the
baseline that tells whether a method's importance weights buy anything.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from algorithms import quadratic
from algorithms.base import Algorithm

NAME = "l2"
COMPATIBILITY = ("class", "task", "domain")
HPARAMS = {"l2_lambda": 0.1}


def make(hp: dict) -> Algorithm:
    def end_task(params, state, task_data, apply_fn, rng):
        del task_data, apply_fn, rng
        return quadratic.Anchored(jax.tree_util.tree_map(jnp.ones_like, state.importance),
                                  params)

    return Algorithm(init=lambda params, rng: quadratic.init(params),
                     penalty=quadratic.make_penalty(0.5 * hp["l2_lambda"]),
                     end_task=end_task)
