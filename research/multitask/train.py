"""Multi-task training and evaluation: ``train_and_evaluate(config, workdir)``.

Trains the multi-task model chosen by ``config.arch`` (models/multitask.py)
with the loss weighting or gradient combination ``config.weighting``
(algorithms/mtl_weighting.py), plus single-task baselines, and writes
``workdir/results.json`` and PNG plots. The pieces: ``tasks`` (what the
dataset's tasks are), ``trainer`` (the jitted step, epoch and evaluation),
``fit`` (every seed at once, checkpointed), ``summary`` (means, stds, Delta_m)
and ``plots``.

Runs resume: the whole state (``MTState``) and the metric history are an
orbax checkpoint (research/checkpoint.py) every ``checkpoint_every_epochs``
epochs and at the end of each fit, the single-task baselines in their own
``single_task/`` subdirectory; rerunning the same command with the same
workdir continues from the last complete checkpoint and ends with the same
figures. A workdir holding another config is refused unless ``overwrite``.

Seeds: ``config.num_seeds`` models (seeds ``seed``, ``seed + 1``, ...; each
with its own data split, init and batch order) train as one vmapped program;
results.json reports the mean over seeds, its std (``*_std``) and every
seed's figures (``per_seed``). Seed k of a vmapped run matches the single run
with seed k up to float rounding.
"""

from __future__ import annotations

import json
import os
from typing import Any

import ml_collections
import numpy as np

from research import report, workdirs
from research.multitask.fit import fit, single_task_baselines
from research.multitask.plots import write_plots
from research.multitask.summary import cross_stitch_alphas, seed_summary
from research.multitask.tasks import load_seeded, seeds_of, tasks_of, validate

# Fields that change how a run is carried out, not what it computes.
OPERATIONAL = ("checkpoint_every_epochs", "keep_checkpoints", "progress")


def identity(config: ml_collections.ConfigDict) -> dict:
    """The config as it defines the run's numbers (operational fields left out)."""
    found = json.loads(config.to_json())
    return {k: v for k, v in found.items() if k not in OPERATIONAL}


def train_and_evaluate(
    config: ml_collections.ConfigDict,
    workdir: str,
    single_task: dict[str, list[float]] | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> dict:
    """Train (or resume), compare with single-task baselines, write results.json and plots.

    ``single_task`` (per task, one value per seed) skips training the baselines.
    """
    validate(config)
    workdirs.prepare(workdir, identity(config), overwrite)
    tasks = tasks_of(config)
    train, test = load_seeded(config)
    result = fit(config, train, test, progress, ckpt_dir=workdir)
    if single_task is None and config.single_task:
        single_task = single_task_baselines(
            config, train, test, progress, ckpt_dir=os.path.join(workdir, "single_task"))
    summary: dict[str, Any] = {
        "dataset": config.get("dataset", "multi_digits"),
        "arch": config.arch,
        "weighting": config.weighting,
        "tasks": list(tasks.names),
        "metric_names": dict(zip(tasks.names, tasks.metrics, strict=True)),
        "lower_is_better": dict(zip(tasks.names, tasks.lower_is_better, strict=True)),
        **seed_summary(tasks, seeds_of(config), result["metrics"], single_task),
        "seconds": result["seconds"],
        "steps": result["steps"],
        "history": result["history"],
        "config": config.to_dict(),
    }
    if config.weighting == "uw":
        log_vars = np.asarray(result["history"]["log_vars"][-1])  # [S, T]
        summary["sigmas"] = np.exp(0.5 * log_vars).mean(0).tolist()
    if config.arch == "cross_stitch":
        summary["cross_stitch"] = cross_stitch_alphas(result["params"], len(config.hidden))
    report.write_json(os.path.join(workdir, "results.json"), summary)
    write_plots(summary, workdir)
    return summary
