"""Averaged gradient episodic memory (Chaudhry et al. 2019, Alg. 2).

The gradient g of the current batch is projected when it would raise the loss
on a sample of the episodic memory: with g_ref the memory gradient,

    g <- g - (g . g_ref / ||g_ref||^2) g_ref   if g . g_ref < 0,

so the update never points against g_ref. As in the paper, the memory holds
the earlier tasks alone: a task's rows enter it when the task ends
(UpdateEpisodicMemory), by reservoir sampling over every row of the tasks so
far, so the first task trains unconstrained and no task is constrained by its
own rows (filling the memory from each trained batch, as Mammoth's A-GEM-R
does, would be another method).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from algorithms import replay, replay_buffer
from algorithms.base import Algorithm, Params, task_loss, tree_sum

NAME = "agem"
COMPATIBILITY = ("class", "task", "domain")
HPARAMS = {**replay.REPLAY_HPARAMS, "agem_ref_size": 256}


def project(grads: Params, reference: Params) -> Params:
    """A-GEM's projection: remove the component of ``grads`` against ``reference``."""
    dot = tree_sum(jax.tree_util.tree_map(jnp.multiply, grads, reference))
    norm = tree_sum(jax.tree_util.tree_map(jnp.square, reference))
    scale = jnp.where(dot < 0, dot / jnp.maximum(norm, 1e-12), 0.0)
    return jax.tree_util.tree_map(lambda g, r: g - scale * r, grads, reference)


def make(hp: dict) -> Algorithm:
    size = int(hp["agem_ref_size"])

    def grads(grads, params, buf, batch, apply_fn, rng):
        memory = replay_buffer.sample(buf, rng, size, batch["x"])
        reference = jax.grad(task_loss)(params, memory, apply_fn)  # zero while memory is empty
        return project(grads, reference)

    def end_task(params, buf, task_data, apply_fn, rng):
        del params, apply_fn
        return replay_buffer.reservoir_add_all(buf, task_data, rng)

    return Algorithm(init=replay.init_buffer(hp), grads=grads, end_task=end_task)
