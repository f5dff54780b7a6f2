"""Multi-task learning over one dataset's tasks; ``train_and_evaluate`` is the entry point.

One idea per module (``tasks``, ``objectives``, ``trainer``, ``fit``,
``summary``, ``plots``, ``train``); the names a script or a test needs are
importable from the package itself, as optax's are.
"""

from research.multitask.fit import fit, single_task_baselines
from research.multitask.objectives import task_losses, task_metrics
from research.multitask.plots import write_plots
from research.multitask.summary import cross_stitch_alphas, delta_m, seed_summary
from research.multitask.tasks import (
    DATASETS,
    Tasks,
    load_seeded,
    load_splits,
    seeds_of,
    tasks_of,
    validate,
)
from research.multitask.train import identity, train_and_evaluate
from research.multitask.trainer import MTState, Trainer

__all__ = [
    "DATASETS", "MTState", "Tasks", "Trainer", "cross_stitch_alphas", "delta_m", "fit",
    "identity", "load_seeded", "load_splits", "seed_summary", "seeds_of",
    "single_task_baselines", "task_losses", "task_metrics", "tasks_of", "train_and_evaluate",
    "validate", "write_plots",
]
