"""Every architecture x weighting on Multi-Digits, against one set of single-task baselines.

  python -m scripts.multitask_compare --config=research/configs/multi_digits.py --workdir=DIR

Each run writes DIR/<arch>_<weighting>/ (results.json + plots); the whole
comparison writes DIR/results.md (full table and a Delta_m grid),
DIR/results.csv, and DIR/docs_section.md (a section for docs/results.md).
"""

from __future__ import annotations

import csv
import json
import os
import platform
import sys
import time

import ml_collections
from absl import app, flags
from ml_collections import config_flags
from tqdm.auto import tqdm

from algorithms import mtl_weighting
from models import multitask as mt_models
from research import multitask
from research.data import multi_digits as md

_CONFIG = config_flags.DEFINE_config_file("config", "research/configs/multi_digits.py")
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for every run and the tables.")
_ARCHS = flags.DEFINE_list("archs", list(mt_models.ARCHS), "Architectures to run.")
_WEIGHTINGS = flags.DEFINE_list("weightings", list(mtl_weighting.WEIGHTINGS), "Weightings to run.")
flags.mark_flags_as_required(["workdir"])

COLUMNS = ("arch", "weighting", *md.TASK_NAMES, "delta_m", "seconds")


def _check(values: list[str], choices: tuple[str, ...], flag: str) -> None:
    for value in values:
        if value not in choices:
            print(f"error: unknown --{flag} value {value!r}; choices: {', '.join(choices)}",
                  file=sys.stderr)
            sys.exit(2)


def run_all(config: ml_collections.ConfigDict, workdir: str, archs: list[str],
            weightings: list[str]) -> list[dict]:
    """Baselines once, then each arch x weighting; returns one row per run."""
    os.makedirs(workdir, exist_ok=True)
    train, test = md.load(config.seed, config.n_train, config.n_test)
    single = multitask.single_task_baselines(config, train, test, progress=False)
    with open(os.path.join(workdir, "single_task.json"), "w") as f:
        json.dump(single, f, indent=2)
    rows = []
    grid = [(a, w) for a in archs for w in weightings]
    for arch, weighting in tqdm(grid, desc="arch x weighting"):
        cfg = ml_collections.ConfigDict(config.to_dict())
        cfg.arch, cfg.weighting = arch, weighting
        summary = multitask.train_and_evaluate(
            cfg, os.path.join(workdir, f"{arch}_{weighting}"), single_task=single, progress=False
        )
        rows.append({"arch": arch, "weighting": weighting, **summary["per_task"],
                     "delta_m": summary["delta_m"], "seconds": summary["seconds"]})
    rows.append({"arch": "single-task", "weighting": "-", **single, "delta_m": 0.0,
                 "seconds": float("nan")})
    return rows


def _fmt(name: str, value) -> str:
    if isinstance(value, str):
        return value
    if name in md.TASK_NAMES:
        metric = dict(zip(md.TASK_NAMES, md.METRICS, strict=True))[name]
        return f"{100 * value:.1f}" if metric == "accuracy" else f"{value:.3f}"
    if name == "delta_m":
        return f"{value:+.2f}"
    return f"{value:.1f}"


def markdown(rows: list[dict], config: ml_collections.ConfigDict, archs: list[str],
             weightings: list[str], wall: float) -> str:
    """The full table, then a Delta_m grid (arch rows, weighting columns)."""
    heads = [f"{n} ({'acc %' if m == 'accuracy' else 'MAE'})"
             for n, m in zip(md.TASK_NAMES, md.METRICS, strict=True)]
    lines = [
        f"Multi-Digits, hidden={tuple(config.hidden)}, {config.epochs} epochs, batch "
        f"{config.batch_size}, Adam {config.learning_rate}, seed {config.seed}; "
        f"{len(rows) - 1} runs + baselines in {wall:.0f} s on {platform.machine()} CPU.",
        "Delta_m (%, LibMTL) against single-task networks of the same trunk; higher is better.",
        "",
        "| arch | weighting | " + " | ".join(heads) + " | Delta_m % | train s |",
        "|" + "---|" * (len(COLUMNS)),
    ]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(c, row[c]) for c in COLUMNS) + " |")
    by_key = {(r["arch"], r["weighting"]): r["delta_m"] for r in rows}
    lines += ["", "Delta_m (%) by architecture and weighting:", "",
              "| arch | " + " | ".join(weightings) + " |", "|" + "---|" * (len(weightings) + 1)]
    for arch in archs:
        lines.append(f"| {arch} | " + " | ".join(f"{by_key[(arch, w)]:+.2f}" for w in weightings)
                     + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    _check(_ARCHS.value, mt_models.ARCHS, "archs")
    _check(_WEIGHTINGS.value, mtl_weighting.WEIGHTINGS, "weightings")
    config, workdir = _CONFIG.value, _WORKDIR.value
    start = time.perf_counter()
    rows = run_all(config, workdir, _ARCHS.value, _WEIGHTINGS.value)
    table = markdown(rows, config, _ARCHS.value, _WEIGHTINGS.value, time.perf_counter() - start)
    with open(os.path.join(workdir, "results.md"), "w") as f:
        f.write(table)
    with open(os.path.join(workdir, "docs_section.md"), "w") as f:
        f.write("## Multi-task learning on Multi-Digits\n\n"
                "`python -m scripts.multitask_compare --config=research/configs/multi_digits.py "
                "--workdir=DIR`\n\n" + table)
    with open(os.path.join(workdir, "results.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    print(table)


if __name__ == "__main__":
    app.run(main)
