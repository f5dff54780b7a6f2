"""A multi-task dataset's tasks and its seeded splits.

The tasks and their data come from ``research/data/<config.dataset>.py``
(``TASK_NAMES``, ``TASK_OUTPUTS``, ``REGRESSION``, ``METRICS``,
``LOWER_IS_BETTER`` and ``load_splits(config)``): the file system is the registry.
"""

from __future__ import annotations

import importlib
from typing import Any, NamedTuple

import ml_collections
import numpy as np

from algorithms import mtl_weighting as mtw
from models import multitask as mt
from research.config_check import check_widths
from research.data.multi_digits import Split

DATASETS = ("multi_digits", "sentiment_multitask")


class Tasks(NamedTuple):
    """What the trainer needs to know about a dataset's tasks (from its data module)."""

    names: tuple[str, ...]
    outputs: tuple[int, ...]
    regression: tuple[bool, ...]
    metrics: tuple[str, ...]
    lower_is_better: tuple[bool, ...]


def data_module(config: ml_collections.ConfigDict) -> Any:
    """``research/data/<config.dataset>.py``; ValueError naming the choices."""
    name = config.get("dataset", "multi_digits")
    if name not in DATASETS:
        raise ValueError(f"unknown --config.dataset {name!r}; choices: {', '.join(DATASETS)}")
    return importlib.import_module(f"research.data.{name}")


def tasks_of(config: ml_collections.ConfigDict) -> Tasks:
    mod = data_module(config)
    return Tasks(tuple(mod.TASK_NAMES), tuple(mod.TASK_OUTPUTS), tuple(mod.REGRESSION),
                 tuple(mod.METRICS), tuple(mod.LOWER_IS_BETTER))


def load_splits(config: ml_collections.ConfigDict) -> tuple[Split, Split]:
    """The (train, test) splits of ``config.dataset``."""
    return data_module(config).load_splits(config)


def validate(config: ml_collections.ConfigDict) -> None:
    """One-line ValueError for an unknown dataset, arch or weighting, naming the choices."""
    data_module(config)
    for field in ("epochs", "batch_size", "checkpoint_every_epochs", "keep_checkpoints",
                  "num_seeds"):
        value = config.get(field, 1)
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"--config.{field} must be a positive integer, got {value!r}")
    # every arch shares (or mixes) its hidden layers: a model without one has none to share
    check_widths(config.hidden, "--config.hidden", at_least_one=True)
    if config.arch not in mt.ARCHS:
        raise ValueError(f"unknown --config.arch {config.arch!r}; choices: {', '.join(mt.ARCHS)}")
    if config.weighting not in mtw.WEIGHTINGS:
        raise ValueError(
            f"unknown --config.weighting {config.weighting!r}; "
            f"choices: {', '.join(mtw.WEIGHTINGS)}"
        )


def seeds_of(config: ml_collections.ConfigDict) -> list[int]:
    """``config.seed``, ``config.seed + 1``, ... (``config.num_seeds`` of them)."""
    return [config.seed + k for k in range(config.get("num_seeds", 1))]


def load_seeded(config: ml_collections.ConfigDict) -> tuple[Split, Split]:
    """Each seed's (train, test) splits, stacked on a leading seed axis. The test splits
    may differ in size (the text ones hold out no sentence their training part
    repeats): they are zero-padded to the longest, ``valid`` marking the real rows."""
    pairs = []
    for seed in seeds_of(config):
        one = ml_collections.ConfigDict(config.to_dict())
        one.seed = seed
        pairs.append(load_splits(one))
    train = Split(np.stack([p[0].x for p in pairs]), np.stack([p[0].y for p in pairs]))
    tests = [p[1] for p in pairs]
    rows = max(len(t.x) for t in tests)
    pad = lambda a: np.pad(a, [(0, rows - len(a))] + [(0, 0)] * (a.ndim - 1))
    test = Split(np.stack([pad(t.x) for t in tests]), np.stack([pad(t.y) for t in tests]),
                 np.stack([np.arange(rows) < len(t.x) for t in tests]))
    return train, test
