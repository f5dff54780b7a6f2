"""Stage advancement (``pacing='threshold'``): competence rises on validation accuracy.

Competence climbs from ``c0`` to 1 in ``num_stages`` steps, one step only once
the model's accuracy on held-out rows of the training pool passes the stage's
threshold (jnp, one stage index per vmapped run).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from research.curriculum import pacing, row_scores


def advance_stage(
    stage: ArrayLike, val_accuracy: ArrayLike, thresholds: ArrayLike, num_stages: int
) -> jax.Array:
    """The next stage index: ``stage + 1`` once ``val_accuracy >= thresholds[stage]``.

    ``thresholds`` is a scalar or one value per stage; the last stage is final.
    """
    if num_stages < 1:
        raise ValueError(f"num_stages must be >= 1, got {num_stages}")
    stage = jnp.asarray(stage, jnp.int32)
    per_stage = jnp.broadcast_to(jnp.asarray(thresholds, jnp.float32), (num_stages,))
    passed = jnp.asarray(val_accuracy, jnp.float32) >= per_stage[jnp.clip(stage, 0, num_stages - 1)]
    return jnp.where(passed & (stage < num_stages - 1), stage + 1, stage)


def parse_thresholds(value: str | float | Sequence[float], num_stages: int = 0) -> np.ndarray:
    """``config.stage_thresholds`` (``'0.5,0.6'``, a number or a sequence) as one per stage.

    ``num_stages=0`` takes one stage per threshold; a single threshold serves every stage.
    """
    items = value.split(",") if isinstance(value, str) else np.atleast_1d(value).tolist()
    try:
        thresholds = np.array([float(v) for v in items], np.float32)
    except (TypeError, ValueError):
        raise ValueError(f"config.stage_thresholds must be accuracies in [0, 1] separated by "
                         f"commas, got {value!r}") from None
    if thresholds.size == 0 or np.any((thresholds < 0) | (thresholds > 1)):
        raise ValueError(f"config.stage_thresholds must be accuracies in [0, 1] separated by "
                         f"commas, got {value!r}")
    num_stages = num_stages or thresholds.size
    if thresholds.size not in (1, num_stages):
        raise ValueError(f"config.stage_thresholds has {thresholds.size} values for "
                         f"config.num_stages={num_stages}; give one or {num_stages}")
    return np.broadcast_to(thresholds, (num_stages,)).copy()


def stage_competence(stage: ArrayLike, num_stages: int, c0: float) -> jax.Array:
    """``c0 + (1 - c0) k / num_stages`` at stage k: the step pacing's levels, reached on merit."""
    pacing.check_c0(c0)
    return c0 + (1.0 - c0) * jnp.asarray(stage, jnp.float32) / num_stages


def next_stage(stage: ArrayLike, epochs_in_stage: ArrayLike, val_accuracy: ArrayLike,
               thresholds: ArrayLike, max_epochs_per_stage: int = 0) -> tuple[jax.Array, jax.Array]:
    """``(stage, epochs_in_stage)`` after one more epoch at ``stage`` scored ``val_accuracy``.

    Stages run 0..K (K = len(thresholds)); stage k < K is left once the accuracy
    reaches ``thresholds[k]``, or after ``max_epochs_per_stage`` epochs in it
    (0: no limit) so a run that never passes still reaches full competence.
    """
    thresholds = jnp.asarray(thresholds, jnp.float32)
    num_stages = thresholds.shape[0]
    stage = jnp.asarray(stage, jnp.int32)
    epochs_in_stage = jnp.asarray(epochs_in_stage, jnp.int32) + 1
    final = jnp.append(thresholds, thresholds[-1])  # stage K is final: its entry is never used
    moved = advance_stage(stage, val_accuracy, final, num_stages + 1)
    if max_epochs_per_stage > 0:
        timed_out = (epochs_in_stage >= max_epochs_per_stage) & (stage < num_stages)
        moved = jnp.where(timed_out, stage + 1, moved)
    return moved, jnp.where(moved != stage, 0, epochs_in_stage)


def held_out_rows(key: jax.Array, task: jax.Array, valid: jax.Array,
                  fraction: float) -> jax.Array:
    """The validation rows of one run's pool: ``ceil(fraction n)`` random valid rows of each task.

    Each row's draw depends only on ``key`` and its position, so a task's rows
    are held out the same way whichever pool (current task, seen, all) holds
    them. A task keeps at least one row to train on.
    """
    draw = jax.random.uniform(key, valid.shape)
    group = jnp.where(valid, task, jnp.iinfo(jnp.int32).max).astype(jnp.int32)
    order = jnp.lexsort((draw, group))
    rank = jnp.zeros_like(order).at[order].set(jnp.arange(order.shape[0], dtype=order.dtype))
    grouped = group[order]
    first = jnp.searchsorted(grouped, group, side="left")
    rows = jnp.searchsorted(grouped, group, side="right") - first
    count = jnp.minimum(jnp.ceil(fraction * rows - 1e-6).astype(rows.dtype), rows - 1)
    return valid & (rank - first < count)


class ValidationStages:
    """``pacing='threshold'``: each run's stage, and the held-out rows that decide it.

    Every epoch (from a task's second on) the model's accuracy on the
    validation rows (``config.validation_fraction`` of each task's rows, drawn
    from the run's seed and never trained on) moves a run to the next stage
    once it reaches ``config.stage_thresholds[stage]``. Stages restart at every
    task; from epoch ``cap_epochs`` on every run has full competence anyway.
    The stage lives on the device, one per vmapped run, and ``state()`` goes
    into the checkpoint so a resumed run decides as the uninterrupted one.
    """

    def __init__(self, config, seeds: Sequence[int] | None, apply_fn: Callable,
                 cap_epochs: int, train_on: str):
        self.thresholds = parse_thresholds(config.get("stage_thresholds", "0.5,0.55,0.6"),
                                           int(config.get("num_stages", 0)))
        self.c0 = float(config.get("c0", 0.1))
        pacing.check_c0(self.c0)
        self.fraction = float(config.get("validation_fraction", 0.1))
        if not 0.0 < self.fraction < 1.0:
            raise ValueError(f"config.validation_fraction must be in (0, 1), got {self.fraction}")
        self.patience = int(config.get("max_epochs_per_stage", 0))
        if self.patience < 0:
            raise ValueError(f"config.max_epochs_per_stage must be >= 0 (0: no limit), "
                             f"got {self.patience}")
        self.seeds, self.cap_epochs, self.train_on = seeds, cap_epochs, train_on
        self.stage: jax.Array | None = None  # [R] int32
        self.epochs_in_stage: jax.Array | None = None  # [R] int32
        self.last: dict[str, jax.Array] = {}
        self._rows: tuple | None = None  # (stage_task, held [R, M], index [R, V], weight [R, V])
        batch = int(config.eval_batch_size)
        self._accuracy = jax.jit(jax.vmap(
            lambda p, x, y, m, w: row_scores.weighted_accuracy(apply_fn, p, x, y, m, w, batch)))
        self._held_out = jax.jit(jax.vmap(held_out_rows, in_axes=(0, 0, 0, None)),
                                 static_argnums=3)
        self._next = jax.jit(functools.partial(next_stage, max_epochs_per_stage=self.patience))

    def _keys(self, runs: int, stage_task: int) -> jax.Array:
        seeds = range(runs) if self.seeds is None else self.seeds
        keys = [jax.random.fold_in(jax.random.PRNGKey(s), 0x5EED) for s in seeds]
        if self.train_on == "task":  # each task's pool draws its own rows
            keys = [jax.random.fold_in(k, stage_task) for k in keys]
        return jnp.stack(keys)

    def held_out(self, pool: dict, stage_task: int) -> jax.Array:
        """``[R, M]``: the pool's validation rows (computed once per stage, one host sync)."""
        if self._rows is None or self._rows[0] != stage_task:
            valid = pool["valid"]
            held = self._held_out(self._keys(valid.shape[0], stage_task), pool["task"], valid,
                                  self.fraction)
            width = max(1, int(jnp.max(jnp.sum(held, axis=1))))
            index = jnp.argsort(~held, axis=1, stable=True)[:, :width]
            weight = jnp.take_along_axis(held, index, axis=1).astype(jnp.float32)
            self._rows = (stage_task, held, index, weight)
        return self._rows[1]

    def competence(self, pool: dict, stage_task: int, epoch: int, params) -> jax.Array:
        """``[R]``: each run's competence this epoch, after this epoch's advancement check."""
        self.held_out(pool, stage_task)
        _, _, index, weight = self._rows
        rows = lambda a: jax.vmap(lambda b, i: b[i])(a, index)
        accuracy = self._accuracy(params, jax.tree_util.tree_map(rows, pool["x"]),
                                  rows(pool["y"]), rows(pool["logit_mask"]), weight)
        if epoch == 0 or self.stage is None:
            self.stage = jnp.zeros(index.shape[:1], jnp.int32)
            self.epochs_in_stage = jnp.zeros(index.shape[:1], jnp.int32)
        else:
            self.stage, self.epochs_in_stage = self._next(
                self.stage, self.epochs_in_stage, accuracy, self.thresholds)
        competence = stage_competence(self.stage, len(self.thresholds), self.c0)
        if epoch >= self.cap_epochs:
            competence = jnp.ones_like(competence)
        self.last = {"val_accuracy": accuracy, "curriculum_stage": self.stage,
                     "competence": competence}
        return competence

    def state(self) -> dict:
        if self.stage is None:
            return {}
        stage, epochs = jax.device_get((self.stage, self.epochs_in_stage))
        return {"stage": stage.tolist(), "epochs_in_stage": epochs.tolist()}

    def restore(self, state: dict) -> None:
        if state:
            self.stage = jnp.asarray(state["stage"], jnp.int32)
            self.epochs_in_stage = jnp.asarray(state["epochs_in_stage"], jnp.int32)
