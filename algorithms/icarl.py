"""iCaRL (Rebuffi et al. 2017): exemplars, sigmoid distillation, nearest-mean-of-exemplars.

* Exemplars: a fixed buffer of ``buffer_size`` rows shared equally by the
  classes seen so far (m = size // classes). At a task's end each new class
  ranks its rows by herding (greedy match of the class's mean feature; or at
  random), every class keeps its m best-ranked rows; herding ranks are nested,
  so shrinking a class just drops its highest ranks.
* Loss: binary cross-entropy on the current batch plus a replayed exemplar
  batch, over the classes met so far (Alg. 3's outputs 1..t: those of the
  finished tasks and those of the current task's batches so far, never a
  later task's); targets are one-hot for new classes and the previous model's
  sigmoid outputs for the classes seen before (the distillation term).
* Prediction: nearest mean of the L2-normalised exemplar features (the input
  of the ``head`` layer, see ``model_info.head_features``), class means taken
  with the model at the end of each task.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from algorithms import lwf, model_info, replay, replay_buffer
from algorithms.base import NEG_INF, Algorithm, Params, cross_entropy

NAME = "icarl"
COMPATIBILITY = ("class", "task")
SELECTIONS = ("herding", "random")
HPARAMS = {**replay.REPLAY_HPARAMS, "icarl_selection": "herding"}
UNRANKED = 2**30


class ICaRLState(NamedTuple):
    buffer: replay_buffer.Buffer
    rank: jax.Array  # [S] int32: each exemplar's rank within its class
    teacher: Params
    seen: jax.Array  # [C] bool: classes of the finished tasks
    training: jax.Array  # [C] bool: classes of the current task's batches so far
    means: jax.Array  # [C, D] normalised class means of the exemplar features
    has_mean: jax.Array  # [C] bool


def _normalise(v: jax.Array) -> jax.Array:
    return v / jnp.maximum(jnp.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def herding_ranks(feats: jax.Array, labels: jax.Array, eligible: jax.Array, num_classes: int,
                  steps: int) -> jax.Array:
    """[N] rank of each eligible row in its class's herding order (UNRANKED past ``steps``)."""

    def one_class(c):
        members = eligible & (labels == c)
        mean = jnp.sum(feats * members[:, None], 0) / jnp.maximum(jnp.sum(members), 1)

        def pick(carry, k):
            total, rank = carry
            open_ = members & (rank == UNRANKED)
            dist = jnp.sum(jnp.square(mean - (total + feats) / (k + 1)), -1)
            i = jnp.argmin(jnp.where(open_, dist, jnp.inf))
            ok = jnp.any(open_)
            return (jnp.where(ok, total + feats[i], total),
                    rank.at[i].set(jnp.where(ok, k, rank[i]))), None

        start = (jnp.zeros(feats.shape[1]), jnp.full(labels.shape, UNRANKED, jnp.int32))
        (_, rank), _ = jax.lax.scan(pick, start, jnp.arange(steps))
        return rank

    return jnp.min(jax.vmap(one_class)(jnp.arange(num_classes)), axis=0)


def random_ranks(rng: jax.Array, labels: jax.Array, eligible: jax.Array) -> jax.Array:
    """[N] position of each eligible row in a random order of its class."""
    keys = jax.random.uniform(rng, labels.shape)
    same = (labels[None, :] == labels[:, None]) & eligible[None, :]
    before = same & (keys[None, :] < keys[:, None])
    return jnp.where(eligible, jnp.sum(before, 1), UNRANKED).astype(jnp.int32)


def class_means(feats: jax.Array, labels: jax.Array, valid: jax.Array,
                num_classes: int) -> tuple[jax.Array, jax.Array]:
    onehot = jax.nn.one_hot(labels, num_classes) * valid[:, None]
    sums = onehot.T @ feats
    return _normalise(sums), jnp.sum(onehot, 0) > 0


def make(hp: dict) -> Algorithm:
    selection = hp["icarl_selection"]
    if selection not in SELECTIONS:
        raise ValueError(f"unknown config.hp.icarl_selection {selection!r}; choices: "
                         f"{', '.join(SELECTIONS)}")
    count = int(hp["replay_batch_size"])

    def init(params, rng):
        buf = replay_buffer.for_params(params, hp)
        size, classes = buf.y.shape[0], buf.logits.shape[1]
        width = params["head"]["kernel"].shape[0]
        none = jnp.zeros((classes,), bool)
        return ICaRLState(buf, jnp.full((size,), UNRANKED, jnp.int32), params, none, none,
                          jnp.zeros((classes, width)), none)

    def loss(params, state, batch, apply_fn, rng):
        memory = replay_buffer.sample(state.buffer, rng, count, batch["x"])
        joint = replay_buffer.concat(batch, memory)
        logits = apply_fn(params, joint["x"])
        old = jax.nn.sigmoid(jax.lax.stop_gradient(apply_fn(state.teacher, joint["x"])))
        targets = jnp.where(state.seen, old, jax.nn.one_hot(joint["y"], logits.shape[-1]))
        met = state.seen | state.training | lwf.classes_in(batch, logits.shape[-1])
        mask = joint["logit_mask"] & met
        bce = jnp.where(mask, optax.sigmoid_binary_cross_entropy(logits, targets), 0.0)
        per_row = jnp.sum(bce, -1) / jnp.maximum(jnp.sum(mask, -1), 1)
        weight = joint["weight"]
        total = jnp.sum(per_row * weight) / jnp.maximum(jnp.sum(weight), 1.0)
        return total, {"task_loss": cross_entropy(logits[: batch["y"].shape[0]], batch)}

    def end_task(params, state, task_data, apply_fn, rng):
        buf = state.buffer
        size, classes = buf.y.shape[0], buf.logits.shape[1]
        real = task_data["weight"] > 0
        seen = state.seen | lwf.classes_in(task_data, classes)
        per_class = size // jnp.maximum(jnp.sum(seen), 1)
        feats = _normalise(model_info.head_features(params, task_data["x"], apply_fn))
        if selection == "herding":
            steps = min(size, task_data["y"].shape[0])
            new_rank = herding_ranks(feats, task_data["y"], real, classes, steps)
        else:
            new_rank = random_ranks(rng, task_data["y"], real)
        rows = replay_buffer.rows_of(task_data)
        pool = {"x": jnp.concatenate([buf.x, rows["x"]]),
                "y": jnp.concatenate([buf.y, rows["y"]]),
                "logit_mask": jnp.concatenate([buf.logit_mask, rows["logit_mask"]]),
                "task": jnp.concatenate([buf.task, rows["task"]]),
                "rank": jnp.concatenate([state.rank, new_rank])}
        keep = jnp.concatenate([buf.valid, real]) & (pool["rank"] < per_class)
        order = jnp.argsort(~keep, stable=True)[:size]
        pick = {k: v[order] for k, v in pool.items()}
        buf = buf._replace(x=pick["x"], y=pick["y"], logit_mask=pick["logit_mask"],
                           task=pick["task"], valid=keep[order])
        exemplar_feats = _normalise(model_info.head_features(
            params, replay_buffer.inputs(buf, task_data["x"]), apply_fn))
        means, has_mean = class_means(exemplar_feats, buf.y, buf.valid, classes)
        return ICaRLState(buf, jnp.where(buf.valid, pick["rank"], UNRANKED), params, seen,
                          jnp.zeros_like(seen), means, has_mean)

    def after_step(state, old_params, new_params, grads, batch, apply_fn, rng):
        del old_params, new_params, grads, apply_fn, rng
        classes = state.training.shape[0]
        return state._replace(training=state.training | lwf.classes_in(batch, classes))

    def predict(params, state, x, apply_fn):
        feats = _normalise(model_info.head_features(params, x, apply_fn))
        dist = jnp.sum(jnp.square(feats[:, None, :] - state.means[None]), -1)
        nme = jnp.where(state.has_mean, -dist, NEG_INF)
        return jnp.where(jnp.any(state.has_mean), nme, apply_fn(params, x))

    return Algorithm(init=init, loss=loss, after_step=after_step, end_task=end_task,
                     predict=predict)
