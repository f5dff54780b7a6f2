"""The algorithm protocol: a continual method is a bundle of pure hooks.

Every hook is traced into the engine's one jitted train step, so a method is
just functions over pytrees: it jits, vmaps (over seeds and hyper-parameters)
and checkpoints for free. A method module (``algorithms/<name>.py``) declares

* ``NAME``: the value of ``--config.algorithm``;
* ``COMPATIBILITY``: the scenarios it supports (``'class'``, ``'task'``,
  ``'domain'``), so the runner refuses the others up front;
* ``HPARAMS``: its hyper-parameters and their defaults. Float values are
  traced (sweepable with ``jax.vmap``); ints, bools and strings are static;
* ``make(hp) -> Algorithm``: builds the hooks from the hyper-parameters.

A batch is a dict with ``x`` (inputs), ``y`` (int labels), ``logit_mask``
(bool ``[B, C]``: the classes the loss may see for each example) and
``weight`` (float ``[B]``: 0 for padding). ``apply_fn(params, x)`` returns
logits ``[B, C]``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import optax

Params = Any
State = Any
Batch = Mapping[str, jax.Array]
ApplyFn = Callable[[Params, jax.Array], jax.Array]
Aux = dict[str, jax.Array]

NEG_INF = -1e9


def masked_logits(logits: jax.Array, logit_mask: jax.Array) -> jax.Array:
    """Logits with the classes outside ``logit_mask`` pushed to -inf."""
    return jnp.where(logit_mask, logits, NEG_INF)


def cross_entropy(logits: jax.Array, batch: Batch) -> jax.Array:
    """Mean cross-entropy over the real (weighted) examples, masked classes out."""
    logits = masked_logits(logits, batch["logit_mask"])
    per_example = optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"])
    weight = batch["weight"]
    return jnp.sum(per_example * weight) / jnp.maximum(jnp.sum(weight), 1.0)


def task_loss(params: Params, batch: Batch, apply_fn: ApplyFn) -> jax.Array:
    """The plain supervised loss every method starts from."""
    return cross_entropy(apply_fn(params, batch["x"]), batch)


def _no_state(params: Params, rng: jax.Array) -> State:
    del params, rng
    return ()


def _task_loss_only(
    params: Params, state: State, batch: Batch, apply_fn: ApplyFn, rng: jax.Array
) -> tuple[jax.Array, Aux]:
    del state, rng
    loss = task_loss(params, batch, apply_fn)
    return loss, {"task_loss": loss}


def _keep_grads(grads: Params, params: Params, state: State, batch: Batch,
                apply_fn: ApplyFn, rng: jax.Array) -> Params:
    del params, state, batch, apply_fn, rng
    return grads


def _no_penalty(params: Params, state: State) -> tuple[jax.Array, Aux]:
    del params, state
    return jnp.zeros(()), {}


def _keep_state_after_step(state: State, old_params: Params, new_params: Params,
                           grads: Params, batch: Batch, apply_fn: ApplyFn,
                           rng: jax.Array) -> State:
    del old_params, new_params, grads, batch, apply_fn, rng
    return state


def plain_predict(params: Params, state: State, x: jax.Array, apply_fn: ApplyFn) -> jax.Array:
    del state
    return apply_fn(params, x)


def _keep_state_end_task(params: Params, state: State, task_data: Batch,
                         apply_fn: ApplyFn, rng: jax.Array) -> State:
    del params, task_data, apply_fn, rng
    return state


@dataclasses.dataclass(frozen=True)
class Algorithm:
    """Hooks the engine calls; leave out the ones a method does not need.

    init(params, rng) -> state
        Algorithm state created at the start of the run (anchors, buffers...).
        Its shapes must not change across tasks.
    loss(params, state, batch, apply_fn, rng) -> (loss, aux)
        The data terms: task loss plus any term that needs the model's outputs
        (distillation, replay). ``aux`` holds scalars to log; keep
        ``aux['task_loss']`` the plain task loss.
    penalty(params, state) -> (penalty, aux)
        A regulariser of the parameters alone (EWC, SI, MAS, L2). The engine
        adds its gradient to the loss's in every step; it costs no pass through
        the model, and keeps the loss's gradient the data gradient. Its value
        (and ``aux``) is logged at the parameters each epoch (or chunk) ends with.
    grads(grads, params, state, batch, apply_fn, rng) -> grads
        Gradient surgery before the optimizer (A-GEM projection).
    after_step(state, old_params, new_params, grads, batch, apply_fn, rng) -> state
        Bookkeeping after each update (SI path integral, buffer insertion,
        DER's logits). ``grads`` are the loss hook's, without the penalty's.
    end_task(params, state, task_data, apply_fn, rng) -> state
        Consolidation after a task (Fisher, anchors, teacher snapshot).
        ``task_data`` is the whole task's padded training set as a batch.
    predict(params, state, x, apply_fn) -> scores [B, C]
        What evaluation takes the argmax of (iCaRL's nearest-mean classifier).
    route(params, state, x, apply_fn) -> slots [B] int, or None
        For methods that send each input to a module learned at one stage
        (S-Prompts' domain identification): the stage's index. Evaluation then
        reports how each task's test rows were routed (``results.json``), and
        passes the slots to ``predict`` as ``slots=`` so that it routes the
        rows once; ``predict`` must also work without them.
    optimizer(base) -> optimizer
        Wraps the base optax optimizer (freezing, per-layer rates).
    train_on: which data each stage trains on: ``'task'`` (the current task),
        ``'seen'`` (all tasks so far, the cumulative bound) or ``'all'``
        (every task at once, a single stage: the joint bound).
    """

    init: Callable[[Params, jax.Array], State] = _no_state
    loss: Callable[..., tuple[jax.Array, Aux]] = _task_loss_only
    penalty: Callable[[Params, State], tuple[jax.Array, Aux]] = _no_penalty
    grads: Callable[..., Params] = _keep_grads
    after_step: Callable[..., State] = _keep_state_after_step
    end_task: Callable[..., State] = _keep_state_end_task
    predict: Callable[..., jax.Array] = plain_predict
    route: Callable[..., jax.Array] | None = None
    optimizer: Callable[[optax.GradientTransformation], optax.GradientTransformation] = (
        lambda base: base
    )
    train_on: str = "task"

    @property
    def has_penalty(self) -> bool:
        return self.penalty is not _no_penalty


def tree_sum(tree: Params) -> jax.Array:
    """Sum of all leaves of a pytree (a scalar)."""
    return sum(jnp.sum(leaf) for leaf in jax.tree_util.tree_leaves(tree))


def tree_weighted_sq_dist(weights: Params, a: Params, b: Params) -> jax.Array:
    """sum_i w_i (a_i - b_i)^2 over a pytree: the quadratic penalty of EWC, SI, MAS, L2."""
    return tree_sum(jax.tree_util.tree_map(lambda w, x, y: w * jnp.square(x - y), weights, a, b))


def pad_rows(a: jax.Array, multiple: int) -> jax.Array:
    """``a`` padded with zero rows (weight 0, so never counted) to a multiple of ``multiple``
    rows, for chunks of equal size under ``lax.scan``."""
    return jnp.pad(a, [(0, -a.shape[0] % multiple)] + [(0, 0)] * (a.ndim - 1))


def random_rows(eligible: jax.Array, rng: jax.Array, count: int) -> jax.Array:
    """``count`` distinct indices (all, if there are fewer) drawn uniformly among the True
    entries of ``eligible``, the others following in index order when too few are. They
    are the ``count`` smallest of one uniform key per entry, taken by ``lax.top_k``: the
    same indices, in the same order, as ``argsort(keys)[:count]``, 3-5x faster on the CPU
    for a 200-row buffer than sorting it."""
    keys = jnp.where(eligible, jax.random.uniform(rng, eligible.shape), 2.0)
    return jax.lax.top_k(-keys, min(count, keys.shape[-1]))[1]
