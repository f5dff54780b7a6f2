"""Knowledge distillation from a fixed teacher (Hinton et al. 2015) into a smaller student.

    L = T^2 * KL(p_a || p_b) + lambda * L_data,   p = softmax(z / T)

``distill_direction`` picks the KL: ``'student_teacher'`` is KL(p_student ||
p_teacher) (mode-seeking, the default), ``'teacher_student'`` KL(p_teacher ||
p_student) (Hinton's, mass-covering). The teacher may be any model: its logits
are computed once, before training, and travel in the batch as
``x = {'tokens': ..., 'teacher': logits [B, C]}`` (``research/data/text_stream.py``
adds them for ``algorithm='distill'``), so the student never runs the teacher.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from algorithms.base import Algorithm, cross_entropy, masked_logits

NAME = "distill"
COMPATIBILITY = ("class", "task", "domain")
HPARAMS = {"distill_direction": "student_teacher", "distill_temperature": 2.0,
           "distill_lambda": 1.0}
DIRECTIONS = ("student_teacher", "teacher_student")


def kl_divergence(student: jax.Array, teacher: jax.Array, weight: jax.Array,
                  temperature: jax.Array, direction: str) -> jax.Array:
    """T^2 * KL in ``direction`` between tempered softmaxes, weighted mean over rows."""
    log_s = jax.nn.log_softmax(student / temperature)
    log_t = jax.nn.log_softmax(teacher / temperature)
    log_p, log_q = (log_s, log_t) if direction == "student_teacher" else (log_t, log_s)
    kl = jnp.sum(jnp.exp(log_p) * (log_p - log_q), axis=-1)
    return temperature**2 * jnp.sum(kl * weight) / jnp.maximum(jnp.sum(weight), 1.0)


def teacher_logits(batch) -> jax.Array:
    x = batch["x"]
    if not isinstance(x, dict) or "teacher" not in x:
        raise ValueError("distill needs the teacher's logits in the batch, x['teacher']; "
                         "set config.teacher_workdir so the text stream adds them")
    return x["teacher"]


def make(hp: dict) -> Algorithm:
    direction = hp["distill_direction"]
    if direction not in DIRECTIONS:
        raise ValueError(f"unknown config.hp.distill_direction {direction!r}; "
                         f"choices: {', '.join(DIRECTIONS)}")

    def loss(params, state, batch, apply_fn, rng):
        del state, rng
        logits = apply_fn(params, batch["x"])
        data = cross_entropy(logits, batch)
        mask = batch["logit_mask"]
        kd = kl_divergence(masked_logits(logits, mask),
                           masked_logits(jax.lax.stop_gradient(teacher_logits(batch)), mask),
                           batch["weight"], hp["distill_temperature"], direction)
        return kd + hp["distill_lambda"] * data, {"task_loss": data, "distillation": kd}

    return Algorithm(loss=loss)
