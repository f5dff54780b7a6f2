"""Learning without forgetting (Li & Hoiem 2017): distil the previous model on the new data.

    L = L_task + alpha * T^2 * KL(softmax(z_teacher / T) || softmax(z_student / T))

over the old classes (those seen before the current task; in domain-IL every
class once the first task is done), within each old output head and summed
over the heads (the paper's L_old per old task): a head is a finished task's
logit mask, so in task-IL each old task's classes have a softmax of their own,
and in class- and domain-IL, whose masks cover every class, all old classes
share one. The teacher is the model at the end of the last task, kept in the
state; the term is 0 until then and whenever the student equals the teacher.
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


def _log_softmax_by_head(z: jax.Array, classes: jax.Array, head: jax.Array | None
                         ) -> jax.Array:
    """log_softmax of ``z`` over ``classes``, each class's taken among its own head's."""
    z = jnp.where(classes, z, NEG_INF)
    if head is None:
        return jax.nn.log_softmax(z)
    together = (head[:, None] == head[None, :]) & classes[..., None, :]  # [B, C, C]
    return z - jax.nn.logsumexp(jnp.where(together, z[..., None, :], NEG_INF), axis=-1)


def distillation(student: jax.Array, teacher: jax.Array, classes: jax.Array, weight: jax.Array,
                 temperature: jax.Array, head: jax.Array | None = None) -> jax.Array:
    """T^2 * KL(teacher || student) on ``classes`` ([C] or [B, C] bool), summed over the
    output heads (``head`` [C]: classes of one value share a softmax; one head if None),
    weighted mean over rows."""
    classes = jnp.broadcast_to(classes, student.shape)
    log_p_student = _log_softmax_by_head(student / temperature, classes, head)
    log_p_teacher = _log_softmax_by_head(teacher / temperature, classes, head)
    p_teacher = jnp.exp(log_p_teacher)
    kl = jnp.sum(jnp.where(classes, p_teacher * (log_p_teacher - log_p_student), 0.0), -1)
    weight = weight * jnp.any(classes, -1)
    return temperature**2 * jnp.sum(kl * weight) / jnp.maximum(jnp.sum(weight), 1.0)


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
        real = task_data["weight"] > 0
        outputs = jnp.any(task_data["logit_mask"] & real[:, None], axis=0)
        return LwFState(params, state.seen | classes_in(task_data, state.seen.shape[0]),
                        jnp.where(outputs, state.tasks, state.head), state.tasks + 1)

    return Algorithm(init=init, loss=loss, end_task=end_task)
