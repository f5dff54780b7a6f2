"""Experience replay's pieces shared by ER, class-balanced ER, A-GEM, DER and CLS-ER.

State is a ``replay_buffer.Buffer`` filled inside the jitted step (A-GEM's when
a task ends); the loss adds a batch of ``replay_batch_size`` stored examples to
the current one.
"""

from __future__ import annotations

from collections.abc import Callable

import jax

from algorithms import replay_buffer
from algorithms.base import Algorithm, cross_entropy

REPLAY_HPARAMS = {"buffer_size": 200, "replay_batch_size": 32, "buffer_input_size": 0}

AddFn = Callable[[replay_buffer.Buffer, dict, jax.Array], replay_buffer.Buffer]


def init_buffer(hp: dict) -> Callable:
    return lambda params, rng: replay_buffer.for_params(params, hp)


def insert_after_step(add: AddFn) -> Callable:
    """after_step that offers each trained batch to the buffer."""

    def after_step(state, old_params, new_params, grads, batch, apply_fn, rng):
        del old_params, new_params, grads, apply_fn
        return add(state, batch, rng)

    return after_step


def make_experience_replay(hp: dict, add: AddFn) -> Algorithm:
    """ER: cross-entropy over the current batch and an equal-weight replayed one."""
    count = int(hp["replay_batch_size"])

    def loss(params, buf, batch, apply_fn, rng):
        joint = replay_buffer.concat(batch, replay_buffer.sample(buf, rng, count, batch["x"]))
        logits = apply_fn(params, joint["x"])
        plain = cross_entropy(logits[: batch["y"].shape[0]], batch)  # one forward pass
        return cross_entropy(logits, joint), {"task_loss": plain}

    return Algorithm(init=init_buffer(hp), loss=loss, after_step=insert_after_step(add))
