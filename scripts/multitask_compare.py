"""Every architecture x weighting on one multi-task dataset, against one set of baselines.

  python -m scripts.multitask_compare --config=research/configs/multi_digits.py --workdir=DIR
  python -m scripts.multitask_compare --config=research/configs/sentiment_multitask.py \
      --workdir=DIR

Each run writes DIR/<arch>_<weighting>/ (results.json + plots) and the
baselines DIR/single_task/; every one of them resumes when the command is run
again, so an interrupted comparison continues where it stopped. The whole
comparison writes DIR/results.md (full table and a Delta_m grid),
DIR/results.csv, and DIR/docs_section.md (a section for docs/results_multitask.md).
"""

from __future__ import annotations

import csv
import io
import os
import platform
import time

import ml_collections
import numpy as np
from absl import flags
from ml_collections import config_flags
from tqdm.auto import tqdm

from algorithms import mtl_weighting
from models import multitask as mt_models
from research import multitask, report, workdirs
from research.config_check import check_names
from scripts import cli

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config file (default: research/configs/multi_digits.py).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for every run and the tables.")
_ARCHS = flags.DEFINE_list("archs", list(mt_models.ARCHS), "Architectures to run.")
_WEIGHTINGS = flags.DEFINE_list("weightings", list(mtl_weighting.WEIGHTINGS), "Weightings to run.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Delete what the workdir holds and start over.")
flags.mark_flags_as_required(["workdir"])

TITLES = {"multi_digits": "Multi-Digits", "sentiment_multitask": "Sentiment polarity + intensity"}


def run_all(config: ml_collections.ConfigDict, workdir: str, archs: list[str],
            weightings: list[str], overwrite: bool = False) -> list[dict]:
    """Baselines once, then each arch x weighting; returns one row per run."""
    workdirs.prepare(workdir, multitask.identity(config), overwrite)
    train, test = multitask.load_seeded(config)
    single = multitask.single_task_baselines(
        config, train, test, progress=False, ckpt_dir=os.path.join(workdir, "single_task"))
    report.write_json(os.path.join(workdir, "single_task.json"), single)
    rows = []
    grid = [(a, w) for a in archs for w in weightings]
    for arch, weighting in tqdm(grid, desc="arch x weighting"):
        cfg = ml_collections.ConfigDict(config.to_dict())
        cfg.arch, cfg.weighting = arch, weighting
        summary = multitask.train_and_evaluate(
            cfg, os.path.join(workdir, f"{arch}_{weighting}"), single_task=single, progress=False
        )
        rows.append(_row(arch, weighting, summary["per_task"], summary["per_task_std"],
                         summary["delta_m"], summary["delta_m_std"], summary["seconds"]))
    rows.append(_row("single-task", "-", {k: float(np.mean(v)) for k, v in single.items()},
                     {k: float(np.std(v)) for k, v in single.items()}, 0.0, 0.0, float("nan")))
    return rows


def _row(arch: str, weighting: str, mean: dict, std: dict, delta: float, delta_std: float,
         seconds: float) -> dict:
    """One table row: each figure's mean over seeds, and its std as ``<name>_std``."""
    return {"arch": arch, "weighting": weighting, **mean, "delta_m": delta, "seconds": seconds,
            **{f"{k}_std": v for k, v in std.items()}, "delta_m_std": delta_std}


def columns(tasks: multitask.Tasks) -> tuple[str, ...]:
    return ("arch", "weighting", *tasks.names, "delta_m", "seconds")


def csv_columns(tasks: multitask.Tasks) -> tuple[str, ...]:
    return (*columns(tasks), *(f"{n}_std" for n in tasks.names), "delta_m_std")


def _fmt(name: str, row: dict, tasks: multitask.Tasks, seeds: int) -> str:
    value = row[name]
    if isinstance(value, str):
        return value
    std = row.get(f"{name}_std")
    if name in tasks.names:
        metric = dict(zip(tasks.names, tasks.metrics, strict=True))[name]
        if metric == "accuracy":
            return f"{100 * value:.1f}" + ("" if seeds < 2 else f" ± {100 * std:.1f}")
        return f"{value:.3f}" + ("" if seeds < 2 else f" ± {std:.3f}")
    if name == "delta_m":
        return f"{value:+.2f}" + ("" if seeds < 2 else f" ± {std:.2f}")
    return f"{value:.1f}"


def _seeds(config: ml_collections.ConfigDict) -> str:
    seeds = multitask.seeds_of(config)
    return f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {seeds[0]}-{seeds[-1]} (vmapped)"


def markdown(rows: list[dict], config: ml_collections.ConfigDict, archs: list[str],
             weightings: list[str], wall: float) -> str:
    """The full table, then a Delta_m grid (arch rows, weighting columns)."""
    tasks = multitask.tasks_of(config)
    cols = columns(tasks)
    heads = [f"{n} ({'acc %' if m == 'accuracy' else m.upper()})"
             for n, m in zip(tasks.names, tasks.metrics, strict=True)]
    title = TITLES[config.get("dataset", "multi_digits")]
    lines = [
        f"{title}, hidden={tuple(config.hidden)}, {config.epochs} epochs, batch "
        f"{config.batch_size}, Adam {config.learning_rate}, {_seeds(config)}; "
        f"{len(rows) - 1} runs + baselines in {wall:.0f} s on a 2-core {platform.machine()} CPU.",
        "Delta_m (%, LibMTL) against single-task networks of the same trunk; higher is better"
        + (" (mean ± std over seeds)." if config.get("num_seeds", 1) > 1 else "."),
        "",
        "| arch | weighting | " + " | ".join(heads) + " | Delta_m % | train s |",
        "|" + "---|" * len(cols),
    ]
    seeds = config.get("num_seeds", 1)
    for row in rows:
        lines.append("| " + " | ".join(_fmt(c, row, tasks, seeds) for c in cols) + " |")
    by_key = {(r["arch"], r["weighting"]): r["delta_m"] for r in rows}
    lines += ["", "Delta_m (%) by architecture and weighting:", "",
              "| arch | " + " | ".join(weightings) + " |", "|" + "---|" * (len(weightings) + 1)]
    for arch in archs:
        lines.append(f"| {arch} | " + " | ".join(f"{by_key[(arch, w)]:+.2f}" for w in weightings)
                     + " |")
    return "\n".join(lines) + "\n"


def write_tables(rows: list[dict], config: ml_collections.ConfigDict, workdir: str,
                 table: str, command: str) -> None:
    """results.md, docs_section.md and results.csv, each written atomically."""
    title = TITLES[config.get("dataset", "multi_digits")]
    report.atomic_write(os.path.join(workdir, "results.md"), table)
    report.atomic_write(os.path.join(workdir, "docs_section.md"),
                        f"## Multi-task learning: {title}\n\n`{command}`\n\n{table}")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=csv_columns(multitask.tasks_of(config)))
    writer.writeheader()
    writer.writerows(rows)
    report.atomic_write(os.path.join(workdir, "results.csv"), buffer.getvalue())


def _run() -> None:
    check_names(_ARCHS.value, mt_models.ARCHS, "--archs", "architecture")
    check_names(_WEIGHTINGS.value, mtl_weighting.WEIGHTINGS, "--weightings", "weighting")
    config, workdir = _CONFIG.value, _WORKDIR.value
    multitask.validate(config)
    start = time.perf_counter()
    rows = run_all(config, workdir, _ARCHS.value, _WEIGHTINGS.value, _OVERWRITE.value)
    table = markdown(rows, config, _ARCHS.value, _WEIGHTINGS.value, time.perf_counter() - start)
    config_file = config_flags.get_config_filename(flags.FLAGS["config"])
    command = f"python -m scripts.multitask_compare --config={config_file} --workdir=DIR"
    write_tables(rows, config, workdir, table, command)
    print(table)


def main(argv: list[str]) -> None:
    cli.no_arguments(argv)
    cli.run_guarded(_run, _WORKDIR.value)  # compiled programs kept in WORKDIR/xla_cache


if __name__ == "__main__":
    cli.main(main, default_config="multi_digits.py")
