"""Dark experience replay (Buzzega et al. 2020): replay the stored logits, not the labels.

    L = L_task + alpha * || z(x_buf) - z_stored ||^2   (mean over the stored task-masked classes)

Rows enter a reservoir in ``after_step``, which sees no model function, so a
row's logits are recorded by ``end_task`` with the model at the end of the
task the row came from; until then the row is skipped by the logit term. (The
paper records them at insertion, mid-task; ``has_logits`` marks the rows ready.)
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


def record_logits(params, buf: replay_buffer.Buffer, like_x: jax.Array, apply_fn):
    """Stores the current model's logits for the rows that have none yet."""
    fresh = buf.valid & ~buf.has_logits
    logits = apply_fn(params, replay_buffer.inputs(buf, like_x))
    return buf._replace(logits=jnp.where(fresh[:, None], logits, buf.logits),
                        has_logits=buf.has_logits | fresh)


def make_der(hp: dict, alpha: jax.Array, beta: jax.Array | None) -> Algorithm:
    """DER (``beta`` None) or DER++ (label replay of a second sample, weighted ``beta``)."""
    count = int(hp["replay_batch_size"])

    def loss(params, buf, batch, apply_fn, rng):
        logit_rng, label_rng = jax.random.split(rng)
        plain = cross_entropy(apply_fn(params, batch["x"]), batch)
        memory = replay_buffer.sample(buf, logit_rng, count, batch["x"], only=buf.has_logits)
        matching = logit_matching(apply_fn(params, memory["x"]), memory)
        total, aux = plain + alpha * matching, {"task_loss": plain, "logit_matching": matching}
        if beta is not None:
            labelled = replay_buffer.sample(buf, label_rng, count, batch["x"])
            aux["label_replay"] = cross_entropy(apply_fn(params, labelled["x"]), labelled)
            total = total + beta * aux["label_replay"]
        return total, aux

    def end_task(params, buf, task_data, apply_fn, rng):
        del rng
        return record_logits(params, buf, task_data["x"], apply_fn)

    return Algorithm(init=replay.init_buffer(hp), loss=loss, end_task=end_task,
                     after_step=replay.insert_after_step(replay_buffer.reservoir_add))


def make(hp: dict) -> Algorithm:
    return make_der(hp, hp["der_alpha"], None)
