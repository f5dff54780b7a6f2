"""results.json's figures of a multi-task run: per-task means and stds over seeds, Delta_m."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from research import metrics as metrics_lib
from research.multitask.tasks import Tasks


def delta_m(
    multi: Sequence[float], single: Sequence[float], lower_is_better: Sequence[bool]
) -> float:
    """LibMTL's Delta_m: mean_t (-1)^{l_t} (M_mt,t - M_st,t) / M_st,t * 100."""
    terms = [
        (-1.0 if low else 1.0) * (m - s) / s * 100.0
        for m, s, low in zip(multi, single, lower_is_better, strict=True)
    ]
    return float(np.mean(terms))


def cross_stitch_alphas(params: Any, depth: int) -> list[list[list[float]]]:
    """Per layer, the mixing matrix ``alpha[t_out, t_in]`` averaged over channels and seeds."""
    return [np.asarray(params[f"stitch_{layer}"]).mean(axis=(0, -1)).tolist()
            for layer in range(depth)]


def _by_task(names: Sequence[str], values: Any) -> dict[str, float]:
    return {name: float(v) for name, v in zip(names, values, strict=True)}


def seed_summary(tasks: Tasks, seeds: Sequence[int], metrics: Any,
                 single_task: dict[str, list[float]] | None) -> dict[str, Any]:
    """results.json's figures: ``per_task``, ``single_task``, ``delta_m`` as means over
    seeds, each with its population std (``*_std``), and every seed's own figures.

    Delta_m is computed per seed against that seed's baselines, then averaged.
    """
    metrics = np.asarray(metrics, np.float64)  # [S, T]
    single = None if single_task is None else np.asarray(
        [single_task[n] for n in tasks.names], np.float64).T  # [S, T]
    per_seed = []
    for k, seed in enumerate(seeds):
        row: dict[str, Any] = {"seed": seed, "per_task": _by_task(tasks.names, metrics[k]),
                               "single_task": None, "delta_m": None}
        if single is not None:
            row["single_task"] = _by_task(tasks.names, single[k])
            row["delta_m"] = delta_m(metrics[k], single[k], tasks.lower_is_better)
        per_seed.append(row)
    out: dict[str, Any] = {
        "seeds": list(seeds),
        "per_task": _by_task(tasks.names, metrics.mean(0)),
        "per_task_std": _by_task(tasks.names, metrics.std(0)),
        "single_task": None, "single_task_std": None, "delta_m": None, "delta_m_std": None,
        "per_seed": per_seed,
    }
    if single is not None:
        deltas = [row["delta_m"] for row in per_seed]
        out.update(single_task=_by_task(tasks.names, single.mean(0)),
                   single_task_std=_by_task(tasks.names, single.std(0)),
                   delta_m=metrics_lib.mean_std(deltas)["mean"],
                   delta_m_std=metrics_lib.mean_std(deltas)["std"])
    return out
