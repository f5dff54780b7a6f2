"""Memory aware synapses (Aljundi et al. 2018): importance without labels.

Omega_i is the mean over the task's examples of |d ||f(x)||^2 / d theta_i|
(per-example gradients of the squared L2 norm of the task-masked output),
accumulated over tasks; L = L_task + lambda * sum_i Omega_i (theta_i - theta*_i)^2.
"""

from __future__ import annotations

import jax

from algorithms import fisher, quadratic
from algorithms.base import Algorithm

NAME = "mas"
COMPATIBILITY = ("class", "task", "domain")
HPARAMS = {"mas_lambda": 0.1, "fisher_samples": 0}


def make(hp: dict) -> Algorithm:
    def end_task(params, state, task_data, apply_fn, rng):
        new = fisher.output_sensitivity(params, task_data, apply_fn, rng,
                                        int(hp["fisher_samples"]))
        total = jax.tree_util.tree_map(lambda a, b: a + b, state.importance, new)
        return quadratic.Anchored(total, params)

    return Algorithm(init=lambda params, rng: quadratic.init(params),
                     penalty=quadratic.make_penalty(hp["mas_lambda"]),
                     end_task=end_task)
