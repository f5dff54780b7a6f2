"""Training every seed's model at once, with checkpoints, and the single-task baselines.

Single-task baselines are the soft-sharing model with its penalty off and
equal weights: T independent columns of the same trunk trained side by side,
which under Adam is exactly T separate single-task runs, in one program.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from tqdm.auto import tqdm

from research import checkpoint
from research.data.multi_digits import Split
from research.multitask.tasks import seeds_of, tasks_of
from research.multitask.trainer import Trainer

HISTORY_KEYS = ("train_loss", "test_loss", "test_metric", "weights", "log_vars")


def fit(
    config: ml_collections.ConfigDict,
    train: Split,
    test: Split,
    progress: bool = True,
    ckpt_dir: str | None = None,
) -> dict:
    """Train every seed's model at once (vmapped); final metrics ``[S][T]`` and history.

    ``train``/``test`` carry a leading seed axis (``load_seeded``). History
    entries are ``[epoch][seed][task]``. With ``ckpt_dir`` the state and history
    are checkpointed under ``ckpt_dir/checkpoints`` and a rerun resumes from the
    newest readable step.
    """
    trainer = Trainer(config, train.x.shape[1])
    x, y = jnp.asarray(train.x), jnp.asarray(train.y)
    xt, yt = jnp.asarray(test.x), jnp.asarray(test.y)
    vt = jnp.ones(yt.shape[:2], bool) if test.valid is None else jnp.asarray(test.valid)
    perturb = trainer.perturb_template(x[0])
    start = time.perf_counter()
    keys = jnp.stack([jax.random.PRNGKey(s) for s in seeds_of(config)])
    state = trainer.init(x, keys)
    record: dict[str, Any] = {"epoch": 0, "seconds": 0.0,
                              "history": {k: [] for k in HISTORY_KEYS}}
    with contextlib.ExitStack() as stack:
        mngr = None
        if ckpt_dir is not None:
            mngr = stack.enter_context(
                checkpoint.opened(ckpt_dir, config.get("keep_checkpoints", 2)))
            restored = checkpoint.restore_latest(mngr, state)
            if restored is not None:
                state, record = restored
        history, seconds = record["history"], record["seconds"]
        already = seconds  # a rerun of a finished run reports the time it took
        every = config.get("checkpoint_every_epochs", 5)
        desc = f"{config.arch}/{config.weighting}"
        bar = tqdm(total=config.epochs, initial=record["epoch"], desc=desc, disable=not progress,
                   leave=False)
        for epoch in range(record["epoch"], config.epochs):
            state, losses, weights = trainer.epoch(state, x, y, perturb)
            metrics, test_losses = trainer.evaluate(state, xt, yt, vt)
            history["train_loss"].append(np.asarray(losses).tolist())
            history["test_loss"].append(np.asarray(test_losses).tolist())
            history["test_metric"].append(np.asarray(metrics).tolist())
            history["weights"].append(np.asarray(weights).tolist())
            history["log_vars"].append(np.asarray(state.params["log_vars"]).tolist())
            bar.update(1)
            done = epoch + 1
            seconds = already + time.perf_counter() - start
            if mngr is not None and (done % every == 0 or done == config.epochs):
                checkpoint.save(mngr, done, state,
                                {"epoch": done, "seconds": seconds, "history": history})
        bar.close()
    nan = [[float("nan")] * trainer.num_tasks] * len(keys)
    return {
        "metrics": history["test_metric"][-1] if history["test_metric"] else nan,
        "history": history,
        "seconds": seconds,
        "params": jax.device_get(state.params["model"]),
        "steps": int(state.step[0]),
    }


def single_task_baselines(
    config: ml_collections.ConfigDict,
    train: Split,
    test: Split,
    progress: bool = True,
    ckpt_dir: str | None = None,
) -> dict[str, list[float]]:
    """Each task's metric per seed with its own copy of the trunk (soft columns, no penalty)."""
    base = ml_collections.ConfigDict(config.to_dict())
    base.arch, base.weighting, base.soft_lambda = "soft", "equal", 0.0
    per_seed = np.asarray(fit(base, train, test, progress, ckpt_dir)["metrics"])  # [S, T]
    return {name: per_seed[:, t].tolist() for t, name in enumerate(tasks_of(config).names)}
