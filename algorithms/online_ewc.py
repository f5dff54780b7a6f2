"""Online EWC (Schwarz et al. 2018): one running Fisher, decayed by gamma at each task.

    F <- gamma * F + F_t,   theta* <- theta_t,
    L = L_task + lambda/2 * sum_i F_i (theta_i - theta*_i)^2

Constant memory in the number of tasks, unlike offline EWC's stack.
"""

from __future__ import annotations

import jax

from algorithms import fisher, quadratic
from algorithms.base import Algorithm

NAME = "online_ewc"
COMPATIBILITY = ("class", "task", "domain")
HPARAMS = {"online_ewc_lambda": 1000.0, "online_ewc_gamma": 0.8, "fisher_type": "empirical",
           "fisher_samples": 0}


def make(hp: dict) -> Algorithm:
    def end_task(params, state, task_data, apply_fn, rng):
        new = fisher.diagonal_fisher(params, task_data, apply_fn, rng, hp["fisher_type"],
                                     int(hp["fisher_samples"]))
        decayed = jax.tree_util.tree_map(lambda f, n: hp["online_ewc_gamma"] * f + n,
                                         state.importance, new)
        return quadratic.Anchored(decayed, params)

    return Algorithm(init=lambda params, rng: quadratic.init(params),
                     penalty=quadratic.make_penalty(0.5 * hp["online_ewc_lambda"]),
                     end_task=end_task)
