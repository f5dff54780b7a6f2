"""Continual-learning metrics from the accuracy matrix R[i][j] (after task i, on task j).

Definitions follow Lopez-Paz & Ranzato (2017) for ACC, BWT and FWT and
Chaudhry et al. (2018) for average forgetting.
"""

from __future__ import annotations

import numpy as np


def average_accuracy(r: np.ndarray) -> float:
    """ACC: mean accuracy over all tasks after the last task."""
    return float(np.mean(r[-1]))


def backward_transfer(r: np.ndarray) -> float:
    """BWT: mean of R[T-1][j] - R[j][j] over j < T-1 (negative = forgetting)."""
    t = r.shape[0]
    if t < 2:
        return 0.0
    return float(np.mean([r[-1, j] - r[j, j] for j in range(t - 1)]))


def forward_transfer(r: np.ndarray, random_init: np.ndarray) -> float:
    """FWT: mean of R[j-1][j] - b_j over j >= 1, b_j the random-init model's accuracy."""
    t = r.shape[0]
    if t < 2:
        return 0.0
    return float(np.mean([r[j - 1, j] - random_init[j] for j in range(1, t)]))


def forgetting(r: np.ndarray) -> float:
    """Average forgetting: mean over j < T-1 of max_{i<T-1} R[i][j] - R[T-1][j]."""
    t = r.shape[0]
    if t < 2:
        return 0.0
    return float(np.mean([np.max(r[: t - 1, j]) - r[-1, j] for j in range(t - 1)]))


def learning_accuracy(r: np.ndarray) -> float:
    """Mean of R[j][j]: how well each task is learned when it is the current one."""
    return float(np.mean(np.diag(r)))


def summarize(r: np.ndarray, random_init: np.ndarray) -> dict:
    """All figures of one accuracy matrix, JSON-ready."""
    r = np.asarray(r, np.float64)
    return {
        "accuracy_matrix": r.round(6).tolist(),
        "ACC": average_accuracy(r),
        "BWT": backward_transfer(r),
        "FWT": forward_transfer(r, np.asarray(random_init)),
        "forgetting": forgetting(r),
        "learning_accuracy": learning_accuracy(r),
        "random_init": np.asarray(random_init, np.float64).round(6).tolist(),
    }


def routing_summary(counts: np.ndarray) -> dict:
    """A routing confusion [T, T] (rows: the test rows' task, columns: the stage they
    were sent to; stage j learned task j) and the share sent to their own task's stage."""
    counts = np.asarray(counts, np.float64)
    return {"confusion": counts.round().astype(int).tolist(),
            "routed_right": float(np.trace(counts) / max(counts.sum(), 1.0)),
            "routed_right_per_task": (np.diag(counts) / np.maximum(counts.sum(1), 1.0))
            .round(6).tolist()}


def mean_std(values: list[float]) -> dict:
    """{'mean', 'std'} over seeds (population std; 0 for one seed)."""
    arr = np.asarray(values, np.float64)
    return {"mean": float(arr.mean()), "std": float(arr.std())}


SUMMARY_METRICS = ("ACC", "BWT", "FWT", "forgetting", "learning_accuracy")


def summary_of(runs: list[dict]) -> dict:
    """Mean ± std over ``runs`` (each ``summarize``'s figures) of every summary metric."""
    return {m: mean_std([run[m] for run in runs]) for m in SUMMARY_METRICS}


def hp_label(hp: dict) -> str:
    """``'ewc_lambda=100, ...'``: a swept value as a table row or a plot names it."""
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in hp.items())


def by_hp(runs: list[dict]) -> list[dict]:
    """A sweep's runs grouped by their swept values (in run order): each group's ``hp``,
    its seeds, its summary and its mean accuracy matrix. Figures pooled over several
    values would mix different methods' results."""
    groups: dict[str, list[dict]] = {}
    for run in runs:
        groups.setdefault(hp_label(run["hp"]), []).append(run)
    return [{"hp": group[0]["hp"], "seeds": [run["seed"] for run in group],
             "summary": summary_of(group),
             "accuracy_matrix": np.mean([run["accuracy_matrix"] for run in group], axis=0)
             .round(6).tolist()} for group in groups.values()]

