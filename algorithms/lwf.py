"""Learning without forgetting (Li & Hoiem 2017): distil the previous model on the new data.

    L = L_task + alpha * KL(softmax(z_teacher / T) || softmax(z_student / T))

over the old classes (those seen before the current task; in domain-IL every
class once the first task is done), within each old output head and summed
over the heads (the paper's L_old per old task): a head is a finished task's
logit mask, so in task-IL each old task's classes have a softmax of their own,
and in class- and domain-IL, whose masks cover every class, all old classes
share one. The teacher is the model at the end of the last task, kept in the
state; the term is 0 until then and whenever the student equals the teacher.

The KL differs from the paper's L_old = -sum_i y'_i log yhat'_i by the
teacher's entropy alone, so it has the same gradient, and ``lwf_alpha`` is the
paper's lambda_o (1 by default, T = 2, as there and in Avalanche and Mammoth):
no Hinton-style T^2 factor, which would make the default weight 4.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from algorithms import model_info
from algorithms.base import NEG_INF, Algorithm, Batch, Params, cross_entropy

NAME = "lwf"
COMPATIBILITY = ("class", "task", "domain")
HPARAMS = {"lwf_alpha": 1.0, "lwf_temperature": 2.0}


class LwFState(NamedTuple):
    teacher: Params
    seen: jax.Array  # [C] bool: classes of the finished tasks
    head: jax.Array  # [C] int32: the last finished task whose logit mask held the class
    tasks: jax.Array  # [] int32: tasks finished


def classes_in(data: Batch, num_classes: int) -> jax.Array:
    """[C] bool: the labels of the real rows of ``data``."""
    real = (data["weight"] > 0).astype(jnp.int32)
    return jnp.zeros((num_classes,), jnp.int32).at[data["y"]].max(real) > 0


def heads_after(head: jax.Array, task_data: Batch, task: jax.Array) -> jax.Array:
    """[C] int32: each class's output head once ``task`` ends: the task's own index for the
    classes its logit mask holds (every class in class- and domain-IL, whose masks
    cover them all, so there is one head; the task's classes alone in task-IL)."""
    real = task_data["weight"] > 0
    outputs = jnp.any(task_data["logit_mask"] & real[:, None], axis=0)
    return jnp.where(outputs, task, head)


def log_softmax_by_head(z: jax.Array, classes: jax.Array, head: jax.Array | None
                        ) -> jax.Array:
    """log_softmax of ``z`` over ``classes``, each class's taken among its own head's."""
    z = jnp.where(classes, z, NEG_INF)
    if head is None:
        return jax.nn.log_softmax(z)
    together = (head[:, None] == head[None, :]) & classes[..., None, :]  # [B, C, C]
    return z - jax.nn.logsumexp(jnp.where(together, z[..., None, :], NEG_INF), axis=-1)


def distillation(student: jax.Array, teacher: jax.Array, classes: jax.Array, weight: jax.Array,
                 temperature: jax.Array, head: jax.Array | None = None) -> jax.Array:
    """KL(teacher || student) at ``temperature`` on ``classes`` ([C] or [B, C] bool), summed
    over the output heads (``head`` [C]: classes of one value share a softmax; one head if None),
    weighted mean over rows."""
    classes = jnp.broadcast_to(classes, student.shape)
    log_p_student = log_softmax_by_head(student / temperature, classes, head)
    log_p_teacher = log_softmax_by_head(teacher / temperature, classes, head)
    p_teacher = jnp.exp(log_p_teacher)
    kl = jnp.sum(jnp.where(classes, p_teacher * (log_p_teacher - log_p_student), 0.0), -1)
    weight = weight * jnp.any(classes, -1)
    return jnp.sum(kl * weight) / jnp.maximum(jnp.sum(weight), 1.0)


def make(hp: dict) -> Algorithm:
    def init(params, rng):
        del rng
        classes = model_info.num_classes(params)
        return LwFState(params, jnp.zeros((classes,), bool), jnp.zeros((classes,), jnp.int32),
                        jnp.zeros((), jnp.int32))

    def loss(params, state, batch, apply_fn, rng):
        del rng
        logits = apply_fn(params, batch["x"])
        plain = cross_entropy(logits, batch)
        teacher = jax.lax.stop_gradient(apply_fn(state.teacher, batch["x"]))
        kd = distillation(logits, teacher, state.seen, batch["weight"], hp["lwf_temperature"],
                          state.head)
        return plain + hp["lwf_alpha"] * kd, {"task_loss": plain, "distillation": kd}

    def end_task(params, state, task_data, apply_fn, rng):
        del apply_fn, rng
        return LwFState(params, state.seen | classes_in(task_data, state.seen.shape[0]),
                        heads_after(state.head, task_data, state.tasks), state.tasks + 1)

    return Algorithm(init=init, loss=loss, end_task=end_task)
