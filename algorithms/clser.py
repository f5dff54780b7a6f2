"""CLS-ER (Arani et al. 2022): replay with a plastic and a stable semantic memory.

Two exponential moving averages of the working model, updated stochastically
after each step: the plastic one often (rate r_p) and the stable one rarely
(r_s < r_p), each with decay min(1 - 1/(step + 1), alpha). The working model
trains on the current batch and a replayed one, plus a consistency term on
the replayed rows: MSE to the logits of whichever memory gives the row's
label the higher probability. Evaluation uses the stable model.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from algorithms import der, replay, replay_buffer
from algorithms.base import Algorithm, Params, cross_entropy, masked_logits

NAME = "clser"
COMPATIBILITY = ("class", "task", "domain")
HPARAMS = {**replay.REPLAY_HPARAMS, "clser_reg_weight": 0.1, "clser_plastic_rate": 0.9,
           "clser_plastic_alpha": 0.97, "clser_stable_rate": 0.8, "clser_stable_alpha": 0.99}


class CLSERState(NamedTuple):
    buffer: replay_buffer.Buffer
    plastic: Params
    stable: Params
    step: jax.Array


def ema_update(memory: Params, working: Params, rng: jax.Array, rate: jax.Array,
               alpha: jax.Array, step: jax.Array) -> Params:
    """With probability ``rate``: m <- a m + (1 - a) w, a = min(1 - 1/(t + 1), alpha)."""
    decay = jnp.minimum(1.0 - 1.0 / (step + 1.0), alpha)
    decay = jnp.where(jax.random.uniform(rng) < rate, decay, 1.0)
    return jax.tree_util.tree_map(lambda m, w: decay * m + (1.0 - decay) * w, memory, working)


def consistency_targets(plastic: jax.Array, stable: jax.Array, memory: dict) -> jax.Array:
    """Per row, the logits of the memory more confident in the row's label."""
    label_prob = lambda z: jnp.take_along_axis(
        jax.nn.softmax(masked_logits(z, memory["logit_mask"])), memory["y"][:, None], 1)[:, 0]
    use_stable = label_prob(stable) >= label_prob(plastic)
    return jnp.where(use_stable[:, None], stable, plastic)


def make(hp: dict) -> Algorithm:
    count = int(hp["replay_batch_size"])

    def init(params, rng):
        return CLSERState(replay_buffer.for_params(params, hp), params, params,
                          jnp.zeros((), jnp.int32))

    def loss(params, state, batch, apply_fn, rng):
        memory = replay_buffer.sample(state.buffer, rng, count, batch["x"])
        joint = replay_buffer.concat(batch, memory)
        logits = apply_fn(params, joint["x"])
        plain = cross_entropy(logits[: batch["y"].shape[0]], batch)
        targets = consistency_targets(
            jax.lax.stop_gradient(apply_fn(state.plastic, memory["x"])),
            jax.lax.stop_gradient(apply_fn(state.stable, memory["x"])), memory)
        consistency = der.logit_matching(logits[batch["y"].shape[0]:],
                                         {**memory, "logits": targets})
        total = cross_entropy(logits, joint) + hp["clser_reg_weight"] * consistency
        return total, {"task_loss": plain, "consistency": consistency}

    def after_step(state, old_params, new_params, grads, batch, apply_fn, rng):
        del old_params, grads, apply_fn
        add_rng, plastic_rng, stable_rng = jax.random.split(rng, 3)
        step = state.step + 1
        return CLSERState(
            replay_buffer.reservoir_add(state.buffer, batch, add_rng),
            ema_update(state.plastic, new_params, plastic_rng, hp["clser_plastic_rate"],
                       hp["clser_plastic_alpha"], step),
            ema_update(state.stable, new_params, stable_rng, hp["clser_stable_rate"],
                       hp["clser_stable_alpha"], step),
            step)

    def predict(params, state, x, apply_fn):
        del params
        return apply_fn(state.stable, x)

    return Algorithm(init=init, loss=loss, after_step=after_step, predict=predict)
