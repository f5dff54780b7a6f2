"""S-Prompts (Wang, Huang & Hong, NeurIPS 2022): one soft prompt and head per domain.

The encoder stays frozen; each domain trains its own soft prompt (the leaf
``encoder/prompt``) and its own classifier ``head``. After a domain its
prompt and head are copied into slot t of a bank sized ``sprompts_max_tasks``
(``[T, P, H]`` prompts, ``[T, ...]`` heads) and K-means centroids ``[T, K, H]``
of its training rows' identification features are stored. At test time each
example's feature picks the domain of its nearest centroid (K-NN domain
identification) and is classified with that domain's prompt and head; earlier
slots are never written again, so there is no forgetting except by
misidentification.

Choices where our setting differs from the paper's:

* Identification feature: the paper uses the pretrained encoder with no
  prompt. Our model's prompt length is fixed by its config, so the feature is
  the head's input (the pooled states) with the prompt set to zeros: still a
  fixed function of the frozen encoder, identical for every domain and every
  point in training, which is what keeps stored centroids valid. Features
  are L2-normalised for clustering and for the look-up (the paper's code
  normalises only the former), distances are squared Euclidean.
* Initialisation: hooks cannot rewrite params between tasks, so each domain
  starts from the previous domain's prompt and head (the paper starts fresh).
* K-means: k-means++ seeding then ``sprompts_kmeans_iters`` Lloyd steps over
  the real rows, in jnp (the paper: sklearn, K=5).
* More domains than slots overwrite the oldest slot (a ring, as in EWC).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from algorithms import model_info
from algorithms.base import Algorithm, ApplyFn, Params
from models.text import peft

NAME = "s_prompts"
COMPATIBILITY = ("domain",)
HPARAMS = {"sprompts_max_tasks": 10, "sprompts_clusters": 5, "sprompts_kmeans_iters": 20}
TRAINED = ("prompt", "head")


class SPromptsState(NamedTuple):
    prompts: jax.Array  # [T, P, H] the prompt of each finished domain
    heads: Params  # the head pytree, each leaf [T, ...]
    centroids: jax.Array  # [T, K, H] normalised K-means centroids of each domain's features
    count: jax.Array  # int32: domains finished so far (slots filled: min(count, T))


def prompt_of(params: Params) -> jax.Array:
    """The soft prompt ``[P, H]``; ValueError when the model has none."""
    encoder = params.get("encoder", {}) if isinstance(params, dict) else {}
    if "prompt" not in encoder:
        raise ValueError("s_prompts trains a soft prompt per domain: run it with "
                         "--config.finetune=prompt and config.num_prompt_tokens > 0 "
                         f"(the params have no encoder/prompt; top-level keys: {list(params)})")
    return encoder["prompt"]


def with_prompt_and_head(params: Params, prompt: jax.Array, head: Params) -> Params:
    """``params`` with the soft prompt and the head replaced."""
    return {**params, "encoder": {**params["encoder"], "prompt": prompt}, "head": head}


def _normalise(v: jax.Array) -> jax.Array:
    return v / jnp.maximum(jnp.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def identification_features(params: Params, x: jax.Array, apply_fn: ApplyFn) -> jax.Array:
    """[B, H] normalised head inputs with the prompt zeroed: a fixed function of the frozen
    encoder, so centroids stored after one domain stay comparable after the next."""
    params = with_prompt_and_head(params, jnp.zeros_like(prompt_of(params)), params["head"])
    head = params["head"]
    if "kernel" not in head:  # the text heads nest their dense layer: head/out/{kernel,bias}
        if len(head) != 1:
            raise ValueError("s_prompts needs a head that is one dense layer; the head holds "
                             f"{list(head)}")
        (name, dense), = head.items()
        flat = {**params, "head": dense}
        nested_fn = lambda p, rows: apply_fn({**p, "head": {name: p["head"]}}, rows)
        return _normalise(model_info.head_features(flat, x, nested_fn))
    return _normalise(model_info.head_features(params, x, apply_fn))


def _sq_dist(a: jax.Array, b: jax.Array) -> jax.Array:
    """[N, M] squared distances between rows of ``a`` [N, D] and ``b`` [M, D]."""
    return jnp.sum(jnp.square(a[:, None, :] - b[None, :, :]), -1)


def kmeans(feats: jax.Array, valid: jax.Array, k: int, iters: int, rng: jax.Array) -> jax.Array:
    """[k, D] centroids of the ``valid`` rows: k-means++ seeding, then Lloyd steps.

    With fewer distinct valid rows than k, the extra centroids repeat one row.
    """
    keys = jax.random.split(rng, k)
    first = jax.random.categorical(keys[0], jnp.where(valid, 0.0, -jnp.inf))
    start = jnp.broadcast_to(feats[first], (k, feats.shape[1]))

    def seed(i, cent):
        d = jnp.min(_sq_dist(feats, cent), -1)
        open_ = valid & (d > 0)
        pick = jax.random.categorical(keys[i], jnp.where(open_, jnp.log(jnp.where(open_, d, 1.0)),
                                                         -jnp.inf))
        return cent.at[i].set(jnp.where(jnp.any(open_), feats[pick], cent[i]))

    cent = jax.lax.fori_loop(1, k, seed, start)

    def lloyd(cent, _):
        assign = jax.nn.one_hot(jnp.argmin(_sq_dist(feats, cent), -1), k) * valid[:, None]
        counts = jnp.sum(assign, 0)[:, None]
        return jnp.where(counts > 0, (assign.T @ feats) / jnp.maximum(counts, 1.0), cent), None

    cent, _ = jax.lax.scan(lloyd, cent, None, length=iters)
    return cent


def pick_slots(feats: jax.Array, centroids: jax.Array, filled: jax.Array) -> jax.Array:
    """[B] int32: for each feature row, the filled slot whose nearest centroid is closest."""
    d = jnp.sum(jnp.square(feats[:, None, None, :] - centroids[None]), -1)  # [B, T, K]
    nearest = jnp.where(filled[None, :], jnp.min(d, -1), jnp.inf)
    return jnp.argmin(nearest, -1).astype(jnp.int32)


def filled_slots(state: SPromptsState) -> jax.Array:
    """[T] bool: the slots that hold a finished domain."""
    slots = state.prompts.shape[0]
    return jnp.arange(slots) < jnp.minimum(state.count, slots)


def identify(params: Params, state: SPromptsState, x: jax.Array, apply_fn: ApplyFn) -> jax.Array:
    """[B] the domain slot each example of ``x`` is routed to (K-NN on the centroids)."""
    feats = identification_features(params, x, apply_fn)
    return pick_slots(feats, state.centroids, filled_slots(state))


def make(hp: dict) -> Algorithm:
    slots, clusters = int(hp["sprompts_max_tasks"]), int(hp["sprompts_clusters"])
    iters = int(hp["sprompts_kmeans_iters"])
    for name, value in (("sprompts_max_tasks", slots), ("sprompts_clusters", clusters)):
        if value < 1:
            raise ValueError(f"config.hp.{name} must be >= 1, got {value}")

    def init(params, rng):
        del rng
        prompt = prompt_of(params)
        bank = lambda leaf: jnp.zeros((slots,) + leaf.shape, leaf.dtype)
        return SPromptsState(bank(prompt), jax.tree_util.tree_map(bank, params["head"]),
                             jnp.zeros((slots, clusters, prompt.shape[-1]), prompt.dtype),
                             jnp.zeros((), jnp.int32))

    def end_task(params, state, task_data, apply_fn, rng):
        slot = state.count % slots
        feats = jax.lax.map(
            lambda row: identification_features(params, row[None], apply_fn)[0],
            task_data["x"], batch_size=64)
        cent = kmeans(feats, task_data["weight"] > 0, clusters, iters, rng)
        put = lambda bank, leaf: bank.at[slot].set(leaf)
        return SPromptsState(put(state.prompts, prompt_of(params)),
                             jax.tree_util.tree_map(put, state.heads, params["head"]),
                             put(state.centroids, cent), state.count + 1)

    def predict(params, state, x, apply_fn, slots=None):
        # Before the first domain ends, every row uses the prompt and head being trained.
        slot = identify(params, state, x, apply_fn) if slots is None else slots
        any_filled = state.count > 0
        prompts = jnp.where(any_filled, state.prompts[slot], prompt_of(params)[None])
        heads = jax.tree_util.tree_map(lambda bank, cur: jnp.where(any_filled, bank[slot],
                                                                    cur[None]),
                                       state.heads, params["head"])

        def one(prompt, head, row):
            rows = jax.tree_util.tree_map(lambda a: a[None], row)
            return apply_fn(with_prompt_and_head(params, prompt, head), rows)[0]

        return jax.vmap(one)(prompts, heads, x)

    def optimizer(base):
        # Only the prompt and head train, whatever config.finetune wrapped around ``base``.
        return optax.multi_transform({peft.TRAIN: base, peft.FREEZE: optax.set_to_zero()},
                                     lambda p: peft.param_labels(p, TRAINED))

    return Algorithm(init=init, end_task=end_task, predict=predict, route=identify,
                     optimizer=optimizer)
