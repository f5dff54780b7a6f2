"""Learning without forgetting (Li & Hoiem 2017): distil the previous model on the new data.

    L = L_task + alpha * T^2 * KL(softmax(z_teacher / T) || softmax(z_student / T))

over the old classes (those seen before the current task; in domain-IL every
class once the first task is done). The teacher is the model at the end of
the last task, kept in the state; the term is 0 until then and whenever the
student equals the teacher.
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


def classes_in(data: Batch, num_classes: int) -> jax.Array:
    """[C] bool: the labels of the real rows of ``data``."""
    real = (data["weight"] > 0).astype(jnp.int32)
    return jnp.zeros((num_classes,), jnp.int32).at[data["y"]].max(real) > 0


def distillation(student: jax.Array, teacher: jax.Array, classes: jax.Array, weight: jax.Array,
                 temperature: jax.Array) -> jax.Array:
    """T^2 * KL(teacher || student) on ``classes`` ([C] or [B, C] bool), weighted mean over rows."""
    classes = jnp.broadcast_to(classes, student.shape)
    log_p_student = jax.nn.log_softmax(jnp.where(classes, student / temperature, NEG_INF))
    log_p_teacher = jax.nn.log_softmax(jnp.where(classes, teacher / temperature, NEG_INF))
    p_teacher = jnp.exp(log_p_teacher)
    kl = jnp.sum(jnp.where(classes, p_teacher * (log_p_teacher - log_p_student), 0.0), -1)
    weight = weight * jnp.any(classes, -1)
    return temperature**2 * jnp.sum(kl * weight) / jnp.maximum(jnp.sum(weight), 1.0)


def make(hp: dict) -> Algorithm:
    def init(params, rng):
        del rng
        return LwFState(params, jnp.zeros((model_info.num_classes(params),), bool))

    def loss(params, state, batch, apply_fn, rng):
        del rng
        logits = apply_fn(params, batch["x"])
        plain = cross_entropy(logits, batch)
        teacher = jax.lax.stop_gradient(apply_fn(state.teacher, batch["x"]))
        kd = distillation(logits, teacher, state.seen, batch["weight"], hp["lwf_temperature"])
        return plain + hp["lwf_alpha"] * kd, {"task_loss": plain, "distillation": kd}

    def end_task(params, state, task_data, apply_fn, rng):
        del apply_fn, rng
        return LwFState(params, state.seen | classes_in(task_data, state.seen.shape[0]))

    return Algorithm(init=init, loss=loss, end_task=end_task)
