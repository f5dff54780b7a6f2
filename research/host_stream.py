"""Epochs streamed from host memory, for training pools too large for the device.

With ``config.stream_chunk_steps = K > 0`` a task's pool stays in host memory
(a NumPy array, or anything indexable the same way, such as a memory-mapped
file). Each epoch the host draws a seeded order of the real rows, gathers K
steps of batches at a time, and hands them to the engine's compiled
``chunk`` scan. The next chunk's transfer is issued before the current chunk
runs, so copy and compute overlap (JAX dispatches both without waiting), and
the host reads device values only where the pool path does. On a mesh each
device is sent only the slice of each batch it computes (or its own runs).

The order depends only on (seed, task, epoch), so a resumed run streams the
same batches. It is drawn by NumPy, not by the device RNG, so a streamed run
sees other batches than the same config with the pool on the device.
Consolidation at a task's end (Fisher, herding, teacher snapshots) sees a
seeded sample of up to ``K x batch_size`` of the task's rows.
"""

from __future__ import annotations

import jax
import numpy as np

from research import engine as engine_lib

BATCH_FIELDS = ("x", "y", "logit_mask", "task")


def epoch_order(valid: np.ndarray, seed: int, task: int, epoch: int, steps: int,
                batch_size: int) -> np.ndarray:
    """``[steps, batch]`` row ids: a seeded permutation of the real rows, cycled to fill."""
    real = np.flatnonzero(valid)
    if real.size == 0:
        real = np.zeros(1, np.int64)
    perm = np.random.default_rng([seed, task, epoch, 0]).permutation(real)
    return perm[np.arange(steps * batch_size) % perm.size].reshape(steps, batch_size)


def _take(pool: dict, ids: np.ndarray, fields: tuple[str, ...]) -> dict:
    """``pool[field][r, ids[r]]`` for every run r: host pool ``[R, N, ...]``, ids ``[R, ...]``."""
    runs = np.arange(ids.shape[0]).reshape((-1,) + (1,) * (ids.ndim - 1))
    return {k: jax.tree_util.tree_map(lambda a: np.asarray(a[runs, ids]), pool[k])
            for k in fields}


def gather(pool: dict, ids: np.ndarray) -> dict:
    """Run-stacked batches ``[R, K, B, ...]`` from a host pool ``[R, N, ...]`` and ids
    ``[R, K, B]``; ``weight`` marks the real rows as the engine's batches do."""
    batch = _take(pool, ids, (*BATCH_FIELDS, "valid"))
    batch["weight"] = batch.pop("valid").astype(np.float32)
    return batch


class HostStream:
    """Runs the engine's epochs over a host-resident pool, K steps per compiled call."""

    def __init__(self, eng: engine_lib.Engine, seeds: list[int], chunk_steps: int):
        self.eng, self.seeds = eng, seeds
        self.chunk_steps = min(chunk_steps, eng.steps_per_epoch)
        # whole chunks: up to K - 1 steps more than the pool path's epoch
        self.steps_per_epoch = -(-eng.steps_per_epoch // self.chunk_steps) * self.chunk_steps

    def _ids(self, pool: dict, task: int, epoch: int) -> np.ndarray:
        return np.stack([epoch_order(valid, seed, task, epoch, self.steps_per_epoch,
                                     self.eng.batch_size)
                         for valid, seed in zip(pool["valid"], self.seeds, strict=True)])

    def epoch(self, state: engine_lib.RunState, pool: dict, hp: dict, task: int,
              epoch: int) -> tuple[engine_lib.RunState, dict]:
        """One epoch in chunks, the next chunk's copy issued before the current one runs."""
        ids = self._ids(pool, task, epoch)
        starts = range(0, ids.shape[1], self.chunk_steps)
        chunk = lambda start: self.eng.placement.place_streamed(
            gather(pool, ids[:, start:start + self.chunk_steps]))
        upcoming, totals = chunk(0), None
        for i, _ in enumerate(starts):
            current = upcoming
            if i + 1 < len(starts):
                upcoming = chunk(starts[i + 1])
            state, part = self.eng.chunk(state, current, hp)
            totals = part if totals is None else jax.tree_util.tree_map(
                lambda a, b: a + b, totals, part)
        return state, engine_lib.epoch_means(totals, self.eng.skip_nonfinite)

    def consolidation_pool(self, pool: dict, task: int) -> dict:
        """The rows ``end_task`` sees: a seeded sample of up to K x batch of the real ones."""
        size = self.chunk_steps * self.eng.batch_size
        picked, counts = [], []
        for valid, seed in zip(pool["valid"], self.seeds, strict=True):
            rng = np.random.default_rng([seed, task, 0, 1])  # tag 1: not an epoch order
            take = rng.permutation(np.flatnonzero(valid))[:size]
            picked.append(np.pad(take, (0, size - take.size)))
            counts.append(take.size)
        out = _take(pool, np.stack(picked), BATCH_FIELDS)
        out["valid"] = np.arange(size)[None] < np.asarray(counts)[:, None]
        return jax.device_put(out)
