"""A fixed-size replay buffer on the device: pure functions used inside the jitted step.

Insertion happens in ``after_step``, so the buffer lives in the algorithm
state and is checkpointed, vmapped over seeds and never leaves the device.
Inputs are stored flattened (``[S, D]``) and reshaped to the batch's layout
when sampled; ``logit_mask`` and ``task`` are stored so task-IL replay masks
each example to its own task's classes. ``logits`` hold DER's targets, written
with the row when the offered batch carries ``logits``.

Two insertion policies:

* ``reservoir_add`` (Vitter's algorithm R): after n real examples each one
  is in the buffer with probability S/n. Vectorised over the batch with the
  sequential semantics kept exactly (a later example that draws the same slot
  wins).
* ``balanced_add`` (class-balancing reservoir, Chrysakis & Moens 2020, Alg. 1):
  once the buffer is full, a class is *full* when it is, or has been since,
  the largest in the buffer. An example of a class that is not full evicts a
  random member of a largest class; one of a full class replaces a random
  member of its own class with probability (stored of its class) / (seen of
  its class).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from algorithms import model_info
from algorithms.base import Batch, Params, pad_rows, random_rows


class Buffer(NamedTuple):
    x: jax.Array  # [S, D] flattened inputs
    y: jax.Array  # [S] int32
    logit_mask: jax.Array  # [S, C] bool
    task: jax.Array  # [S] int32
    logits: jax.Array  # [S, C] float32: DER targets (zeros when not offered)
    valid: jax.Array  # [S] bool
    num_seen: jax.Array  # [] int32: real examples offered so far
    class_seen: jax.Array  # [C] int32: real examples offered per class
    class_full: jax.Array  # [C] bool: largest in the full buffer now or before (balanced_add)


def empty(size: int, input_size: int, num_classes: int) -> Buffer:
    if size < 1:
        raise ValueError(f"config.hp.buffer_size must be >= 1, got {size}")
    return Buffer(jnp.zeros((size, input_size), jnp.float32), jnp.zeros((size,), jnp.int32),
                  jnp.zeros((size, num_classes), bool), jnp.zeros((size,), jnp.int32),
                  jnp.zeros((size, num_classes), jnp.float32),
                  jnp.zeros((size,), bool), jnp.zeros((), jnp.int32),
                  jnp.zeros((num_classes,), jnp.int32), jnp.zeros((num_classes,), bool))


def for_params(params: Params, hp: dict) -> Buffer:
    """An empty buffer of ``hp['buffer_size']`` rows sized from the model's parameters."""
    return empty(int(hp["buffer_size"]),
                 model_info.input_size(params, int(hp.get("buffer_input_size", 0))),
                 model_info.num_classes(params))


def rows_of(batch: Batch) -> dict:
    """The fields a buffer stores, inputs flattened."""
    x = model_info.flatten_inputs(batch["x"])
    rows = {"x": x, "y": batch["y"].astype(jnp.int32), "logit_mask": batch["logit_mask"],
            "task": batch.get("task", jnp.zeros_like(batch["y"])).astype(jnp.int32)}
    if "logits" in batch:
        rows["logits"] = batch["logits"].astype(jnp.float32)
    return rows


def _write(buf: Buffer, slots: jax.Array, rows: dict) -> Buffer:
    """Rows go to ``slots``; a slot equal to the size drops the row."""
    put = lambda a, v: a.at[slots].set(v, mode="drop")
    logits = put(buf.logits, rows["logits"]) if "logits" in rows else buf.logits
    return buf._replace(x=put(buf.x, rows["x"]), y=put(buf.y, rows["y"]),
                        logit_mask=put(buf.logit_mask, rows["logit_mask"]),
                        task=put(buf.task, rows["task"]), logits=logits,
                        valid=put(buf.valid, jnp.ones_like(rows["y"], bool)))


def reservoir_add(buf: Buffer, batch: Batch, rng: jax.Array) -> Buffer:
    """Reservoir sampling of the batch's real rows (weight > 0) into the buffer."""
    size = buf.y.shape[0]
    real = batch["weight"] > 0
    n = buf.num_seen + jnp.cumsum(real) - 1  # each real row's index in the whole stream
    draw = jax.random.randint(rng, n.shape, 0, jnp.maximum(n + 1, 1))  # uniform in [0, n]
    slot = jnp.where(n < size, n, draw)
    slot = jnp.where(real & (slot < size), slot, size)
    order = jnp.arange(slot.shape[0])
    overwritten = (slot[None, :] == slot[:, None]) & (order[None, :] > order[:, None])
    slot = jnp.where(jnp.any(overwritten, axis=1), size, slot)
    buf = _write(buf, slot, rows_of(batch))
    seen = buf.class_seen.at[batch["y"]].add(real.astype(jnp.int32))
    return buf._replace(num_seen=buf.num_seen + jnp.sum(real, dtype=jnp.int32),
                        class_seen=seen)


def reservoir_add_all(buf: Buffer, data: Batch, rng: jax.Array, chunk: int = 256) -> Buffer:
    """``reservoir_add`` of every row of ``data`` (a whole task), ``chunk`` rows at a time
    under ``lax.scan``, so its collision check stays ``[chunk, chunk]`` on a task of any size."""
    chunk = min(chunk, data["y"].shape[0])
    chunks = jax.tree_util.tree_map(
        lambda a: pad_rows(a, chunk).reshape((-1, chunk) + a.shape[1:]), data)
    keys = jax.random.split(rng, chunks["y"].shape[0])
    buf, _ = jax.lax.scan(lambda b, part: (reservoir_add(b, *part), None), buf, (chunks, keys))
    return buf


def _random_member(rng: jax.Array, candidates: jax.Array) -> jax.Array:
    """A uniformly chosen index among the True entries of ``candidates``."""
    keys = jnp.where(candidates, jax.random.uniform(rng, candidates.shape), -1.0)
    return jnp.argmax(keys)


def _balanced_one(buf: Buffer, item: tuple) -> tuple[Buffer, None]:
    row, real, rng = item
    size = buf.y.shape[0]
    pick_rng, accept_rng = jax.random.split(rng)
    label = row["y"]
    class_seen = buf.class_seen.at[label].add(real.astype(jnp.int32))
    stored = jnp.zeros_like(buf.class_seen).at[buf.y].add(buf.valid.astype(jnp.int32))
    largest = jnp.max(stored)
    filled = jnp.all(buf.valid)
    class_full = jnp.where(real & filled, buf.class_full | (stored == largest), buf.class_full)
    free_slot = jnp.argmin(buf.valid)
    evict = _random_member(pick_rng, buf.valid & (stored[buf.y] == largest))
    own = _random_member(pick_rng, buf.valid & (buf.y == label))
    accept = jax.random.uniform(accept_rng) * class_seen[label] < stored[label]
    slot = jnp.where(~filled, free_slot,
                     jnp.where(class_full[label], jnp.where(accept, own, size), evict))
    slot = jnp.where(real, slot, size)
    rows = jax.tree_util.tree_map(lambda a: a[None], row)
    buf = _write(buf, slot[None], rows)
    return buf._replace(num_seen=buf.num_seen + real.astype(jnp.int32),
                        class_seen=class_seen, class_full=class_full), None


def balanced_add(buf: Buffer, batch: Batch, rng: jax.Array) -> Buffer:
    """Class-balancing reservoir insertion, one real row at a time (``lax.scan``)."""
    rows = rows_of(batch)
    keys = jax.random.split(rng, batch["y"].shape[0])
    buf, _ = jax.lax.scan(_balanced_one, buf, (rows, batch["weight"] > 0, keys))
    return buf


def sample(buf: Buffer, rng: jax.Array, count: int, like_x: jax.Array) -> dict:
    """``count`` distinct stored rows as a batch shaped like ``like_x`` (weight 0 if missing)."""
    eligible = buf.valid
    ids = random_rows(eligible, rng, count)
    return {"x": buf.x[ids].reshape((ids.shape[0],) + like_x.shape[1:]).astype(like_x.dtype),
            "y": buf.y[ids], "logit_mask": buf.logit_mask[ids], "task": buf.task[ids],
            "weight": eligible[ids].astype(jnp.float32), "logits": buf.logits[ids]}


def inputs(buf: Buffer, like_x: jax.Array) -> jax.Array:
    """Every stored input, shaped like a batch ``like_x``."""
    return buf.x.reshape((buf.x.shape[0],) + like_x.shape[1:]).astype(like_x.dtype)


def concat(a: Batch, b: Batch) -> dict:
    """One batch of the rows of two (the fields a loss needs)."""
    return {k: jnp.concatenate([a[k], b[k]]) for k in ("x", "y", "logit_mask", "weight")}


def count(buf: Buffer) -> jax.Array:
    return jnp.sum(buf.valid)
