"""Curriculum over a run: per-epoch masks on the engine's training pools.

The engine trains each epoch on a pool's ``valid`` rows in a fresh random
order. ``Pacer.pool`` keeps only the easiest ``c(epoch)`` fraction of them
valid, so the shapes never change and nothing recompiles; a run without
``config.curriculum`` never builds a Pacer and trains exactly as before.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from research.curriculum import difficulty, pacing, row_scores, self_paced, stages

CURRICULA = (*difficulty.TEXT_SCORES, "self_paced")
PACINGS = (*pacing.PACING, "threshold")  # config.pacing: a schedule c(t), or stages on validation


class Pacer:
    """Which rows of a stage's pool each epoch may train on (``config.curriculum``).

    Competence follows ``config.pacing`` from ``config.c0`` at epoch 0 to 1 at
    epoch ``config.curriculum_epochs`` (0: half of ``num_epochs``), restarting
    at every task; ``pacing='threshold'`` raises it a stage at a time on
    validation accuracy instead (``ValidationStages``), with full competence
    from ``curriculum_epochs`` on. Static curricula rank rows once by their
    text; ``self_paced`` ranks them every epoch by the current model's loss
    (Kumar et al. 2010 with a competence schedule in place of the growing
    threshold), and with ``config.self_paced_weights='linear'`` weighs the
    rows it admits (``self_paced.admitted_weights``). With
    ``config.curriculum_balanced`` the fraction is taken within each class.
    """

    def __init__(self, config, scores: np.ndarray | None, train_on: str, apply_fn: Callable,
                 seeds: Sequence[int] | None = None):
        self.name = str(config.curriculum)
        epochs = int(config.get("curriculum_epochs", 0)) or max(1, int(config.num_epochs) // 2)
        schedule = str(config.get("pacing", "linear"))
        if schedule not in PACINGS:
            raise ValueError(f"unknown config.pacing {schedule!r}; "
                             f"choose from {', '.join(PACINGS)}")
        self.stages = None
        if schedule == "threshold":
            self.stages = stages.ValidationStages(config, seeds, apply_fn, epochs, train_on)
        else:
            self.competence = pacing.pacing_function(schedule, epochs, float(config.get("c0", 0.1)))
        self.scores = None if scores is None else jnp.asarray(scores)  # [R, T, N]
        self.train_on = train_on
        self.balanced = bool(config.get("curriculum_balanced", False))
        weighting = str(config.get("self_paced_weights", "hard"))
        if weighting not in self_paced.WEIGHTINGS:
            raise ValueError(f"unknown config.self_paced_weights {weighting!r}; choose from "
                             f"{', '.join(self_paced.WEIGHTINGS)}")
        if weighting != "hard" and self.name != "self_paced":
            raise ValueError(f"config.self_paced_weights={weighting!r} weighs rows by the "
                             f"model's loss: it needs config.curriculum='self_paced', not "
                             f"{self.name!r}")
        self.soft = weighting == "linear"
        batch = int(config.eval_batch_size)
        self._losses = jax.jit(jax.vmap(
            lambda p, x, y, m: row_scores.example_losses(apply_fn, p, x, y, m, batch)))
        self._mask = jax.jit(jax.vmap(pacing.easiest_mask))
        self._balanced_mask = jax.jit(
            jax.vmap(pacing.balanced_easiest_mask, in_axes=(0, 0, 0, 0, None)), static_argnums=4)
        self._weights = jax.jit(jax.vmap(self_paced.admitted_weights))
        self._balanced_weights = jax.jit(
            jax.vmap(self_paced.balanced_admitted_weights, in_axes=(0, 0, 0, 0, None)),
            static_argnums=4)

    @classmethod
    def from_config(cls, config, seeds: Sequence[int], size: int, train_on: str,
                    apply_fn: Callable) -> Pacer | None:
        """The run's pacer, or None when ``config.curriculum`` is empty (random order)."""
        name = str(config.get("curriculum", ""))
        if not name:
            return None
        if name not in CURRICULA:
            raise ValueError(f"unknown config.curriculum {name!r}; choose from '' or "
                             f"{', '.join(CURRICULA)}")
        scores = None
        if name != "self_paced":
            by_seed = {s: difficulty.stream_difficulty(config, s, size) for s in sorted(set(seeds))}
            scores = np.stack([by_seed[s] for s in seeds])
        return cls(config, scores, train_on, apply_fn, seeds)

    def _stage_scores(self, stage_task: int) -> jax.Array:
        if self.train_on == "task":
            return self.scores[:, stage_task]
        runs, tasks, size = self.scores.shape
        return self.scores.reshape(runs, tasks * size)

    def pool(self, pool: dict, stage_task: int, epoch: int, params) -> dict:
        """``pool`` with ``valid`` cut to the easiest ``c(epoch)`` fraction of its rows (and,
        with soft self-paced weights, each row's ``weight`` in the loss).

        With ``pacing='threshold'`` the validation rows are never valid, and
        each run's competence is its own stage's.
        """
        train_rows = pool["valid"]
        if self.stages is None:
            competence = jnp.full(train_rows.shape[:1], self.competence(epoch))
        else:
            competence = self.stages.competence(pool, stage_task, epoch, params)
            train_rows = train_rows & ~self.stages.held_out(pool, stage_task)
        if self.name == "self_paced":
            scores = self._losses(params, pool["x"], pool["y"], pool["logit_mask"])
        else:
            scores = self._stage_scores(stage_task)
        num_classes = pool["logit_mask"].shape[-1]
        if self.balanced:
            valid = self._balanced_mask(scores, train_rows, competence, pool["y"], num_classes)
        else:
            valid = self._mask(scores, train_rows, competence)
        if not self.soft:
            return {**pool, "valid": valid}
        if self.balanced:
            weight = self._balanced_weights(scores, train_rows, valid, pool["y"], num_classes)
        else:
            weight = self._weights(scores, train_rows, valid)
        return {**pool, "valid": valid, "weight": weight}

    def without_held_out(self, pool: dict, stage_task: int) -> dict:
        """``pool`` without threshold pacing's validation rows, for what a method takes from
        the task once it ends (a replay buffer, a Fisher): those rows are never trained on."""
        if self.stages is None:
            return pool
        return {**pool, "valid": pool["valid"] & ~self.stages.held_out(pool, stage_task)}

    def metrics(self) -> dict[str, jax.Array]:
        """``[R]`` figures of the last ``pool`` call to log with the epoch (threshold pacing:
        the validation accuracy that decided the stage, the stage, the competence)."""
        return dict(self.stages.last) if self.stages is not None else {}

    def state(self) -> dict:
        """What a resumed run needs to pace as the uninterrupted one (JSON-able)."""
        return self.stages.state() if self.stages is not None else {}

    def restore(self, state: dict) -> None:
        if self.stages is not None:
            self.stages.restore(state)
