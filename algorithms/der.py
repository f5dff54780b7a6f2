"""Dark experience replay (Buzzega et al. 2020): replay the stored logits, not the labels.

    L = L_task + alpha * || z(x_buf) - z_stored ||^2   (mean over the stored task-masked classes)

Rows enter a reservoir in ``after_step`` with their logits under the
parameters the step started from: the outputs of the step's own forward pass,
as in the paper (the logits of a row are never refreshed).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from algorithms import replay, replay_buffer
from algorithms.base import Algorithm, cross_entropy

NAME = "der"
COMPATIBILITY = ("class", "task", "domain")
HPARAMS = {**replay.REPLAY_HPARAMS, "der_alpha": 0.3}


def logit_matching(logits: jax.Array, memory: dict) -> jax.Array:
    """Mean squared error to the stored logits over each row's own classes (weighted rows)."""
    mask = memory["logit_mask"]
    per_row = jnp.sum(jnp.where(mask, jnp.square(logits - memory["logits"]), 0.0), -1)
    per_row = per_row / jnp.maximum(jnp.sum(mask, -1), 1)
    weight = memory["weight"]
    return jnp.sum(per_row * weight) / jnp.maximum(jnp.sum(weight), 1.0)


def insert_with_logits(buf: replay_buffer.Buffer, old_params, batch, apply_fn,
                       rng: jax.Array) -> replay_buffer.Buffer:
    """Reservoir insertion of the batch with the logits the step trained on."""
    logits = jax.lax.stop_gradient(apply_fn(old_params, batch["x"]))
    return replay_buffer.reservoir_add(buf, {**batch, "logits": logits}, rng)


def make_der(hp: dict, alpha: jax.Array, beta: jax.Array | None) -> Algorithm:
    """DER (``beta`` None) or DER++ (label replay of a second sample, weighted ``beta``)."""
    count = int(hp["replay_batch_size"])

    def loss(params, buf, batch, apply_fn, rng):
        logit_rng, label_rng = jax.random.split(rng)
        plain = cross_entropy(apply_fn(params, batch["x"]), batch)
        memory = replay_buffer.sample(buf, logit_rng, count, batch["x"])
        matching = logit_matching(apply_fn(params, memory["x"]), memory)
        total, aux = plain + alpha * matching, {"task_loss": plain, "logit_matching": matching}
        if beta is not None:
            labelled = replay_buffer.sample(buf, label_rng, count, batch["x"])
            aux["label_replay"] = cross_entropy(apply_fn(params, labelled["x"]), labelled)
            total = total + beta * aux["label_replay"]
        return total, aux

    def after_step(buf, old_params, new_params, grads, batch, apply_fn, rng):
        del new_params, grads
        return insert_with_logits(buf, old_params, batch, apply_fn, rng)

    return Algorithm(init=replay.init_buffer(hp), loss=loss, after_step=after_step)


def make(hp: dict) -> Algorithm:
    return make_der(hp, hp["der_alpha"], None)
