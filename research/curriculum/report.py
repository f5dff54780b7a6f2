"""The curriculum comparison's settings, stage histories and table (scripts.curriculum_compare).

Pure functions over run results and metrics files, apart from the script so
they can be imported without its command-line flags.
"""

from __future__ import annotations

import json
import os

import numpy as np

from research.curriculum import pacer


def settings(curricula: list[str], pacings: list[str]) -> list[tuple[str, str]]:
    """(curriculum, pacing) pairs: random order first."""
    for name in curricula:
        if name not in pacer.CURRICULA:
            raise ValueError(f"unknown curriculum {name!r}; choose from {pacer.CURRICULA}")
    for name in pacings:
        if name not in pacer.PACINGS:
            raise ValueError(f"unknown pacing {name!r}; choose from {list(pacer.PACINGS)}")
    return [("", "")] + [(c, p) for c in curricula for p in pacings]


def parse_budgets(values: list[str]) -> list[int]:
    """The epoch budgets of ``--budgets``; a ValueError naming the flag for any other text."""
    message = f"--budgets must be ascending positive integers, got {','.join(values)}"
    try:
        budgets = [int(v) for v in values]
    except ValueError:
        raise ValueError(message) from None
    if not budgets or budgets != sorted(set(budgets)) or budgets[0] < 1:
        raise ValueError(message)
    return budgets


def stage_history(workdir: str) -> list[list[int]]:
    """[runs][epochs]: the stage each seed trained each epoch at (the run's metrics.jsonl)."""
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    runs = 1 + max(r["run"] for r in rows)
    by_run: list[list[int]] = [[] for _ in range(runs)]
    for r in sorted(rows, key=lambda r: (r["task"], r["epoch"])):
        by_run[r["run"]].append(int(r["curriculum_stage"]))
    return by_run


def _mean_std(values) -> str:
    values = np.asarray(values)
    return f"{values.mean():.3f} ± {values.std():.3f}"


def first_reaching(curve: list[dict], target: float) -> str:
    """Steps of the first budget whose mean overall accuracy reaches ``target``."""
    for point in curve:
        if np.mean(point["overall"]) >= target:
            return f"{point['steps']} ({point['epochs']} ep)"
    return "not reached"


def table(rows: list[dict], domains: list[str], target: float) -> str:
    budgets = [p["epochs"] for p in rows[0]["curve"]]
    head = ([f"acc @{e} ep" for e in budgets] + [f"{d} @{budgets[-1]}" for d in domains]
            + [f"steps to {target:.2f}"])
    lines = ["| curriculum | pacing | " + " | ".join(head) + " |",
             "|---|---|" + "---|" * len(head)]
    for row in rows:
        curve = row["curve"]
        cells = [_mean_std(p["overall"]) for p in curve]
        per_domain = np.asarray(curve[-1]["per_domain"])
        cells += [_mean_std(per_domain[:, d]) for d in range(len(domains))]
        cells.append(first_reaching(curve, target))
        lines.append(f"| {row['curriculum'] or 'random order'} | {row['pacing'] or '-'} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
