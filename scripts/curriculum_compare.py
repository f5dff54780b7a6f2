"""Curriculum against random order, in one table: every difficulty x pacing, seeds vmapped.

  python -m scripts.curriculum_compare --output=runs/curriculum \
      [--config=research/configs/sentiment_curriculum.py] [--config.num_seeds=3] \
      [--budgets=1,2,4,8,20] [--target=0.65]

Each setting (random order, then every ``--curricula`` x ``--pacings``; pacing
``threshold`` advances on validation accuracy, ``config.stage_thresholds``) runs
through ``research.train.train_and_evaluate`` once per epoch budget; a shorter
budget is an exact prefix of the longer run (same seeds, same competence
schedule: ``config.curriculum_epochs`` does not depend on ``num_epochs``), so
the budgets trace test accuracy over training. Writes ``curriculum.md`` (the
table) and ``curriculum.json`` under ``--output`` and prints the table.
Rerunning the command resumes: finished runs are read back, not trained again;
an ``--output`` holding runs of another config is refused unless ``--overwrite``.
"""

from __future__ import annotations

import json
import os

import numpy as np
from absl import flags
from ml_collections import config_flags
from tqdm import tqdm

from research import report, train, workdirs
from research.curriculum import pacer
from research.curriculum.report import parse_budgets, settings, stage_history, table
from scripts import cli

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config file (default: "
    "research/configs/sentiment_curriculum.py).", lock_config=False)
_OUTPUT = flags.DEFINE_string("output", None, "Directory for the runs and the table.")
_CURRICULA = flags.DEFINE_list("curricula", list(pacer.CURRICULA), "Difficulties to compare.")
_PACINGS = flags.DEFINE_list("pacings", list(pacer.PACINGS), "Pacings to compare.")
_BUDGETS = flags.DEFINE_list("budgets", ["1", "2", "4", "8", "20"],
                             "Epoch budgets, ascending; the last is the full run.")
_TARGET = flags.DEFINE_float("target", 0.65, "Mean test accuracy whose first budget is reported.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Discard runs of another config in --output.")
flags.mark_flag_as_required("output")


def _final_row(results: dict) -> np.ndarray:
    """[runs, domains]: each seed's test accuracy per domain after training."""
    return np.array([run["accuracy_matrix"][-1] for run in results["domain_il"]["runs"]])


def _run_config(config, name: str, pacing: str, epochs: int):
    """(the run's config, its folder under --output) for one setting and budget."""
    run = config.copy_and_resolve_references()
    run.curriculum, run.num_epochs = name, epochs
    if pacing:
        run.pacing = pacing
    return run, f"{name or 'random'}_{pacing or 'none'}_e{epochs}"


def check_config(config, pacings: list[str]) -> None:
    """ValueError for a config this comparison cannot report on, before any run: its table
    holds each sentiment domain's test accuracy (domain-IL), its caption the curriculum
    fields. (A digits config trained every run, then failed with KeyError 'domain_il'.)"""
    dataset = config.get("dataset")
    if dataset != "sentiment":
        raise ValueError(
            "scripts.curriculum_compare compares curricula on the sentiment domains: "
            f"config.dataset must be 'sentiment', got {dataset!r} (its default config is "
            "research/configs/sentiment_curriculum.py)")
    fields = ["c0", "curriculum_epochs"] + (
        ["stage_thresholds", "validation_fraction"] if "threshold" in pacings else [])
    missing = [f"config.{f}" for f in fields if f not in config]
    if missing:
        raise ValueError(f"the config lacks the curriculum field(s) {', '.join(missing)}; "
                         "start from research/configs/sentiment_curriculum.py")


def claim_workdirs(config, grid: list[tuple[str, str]], budgets: list[int], output: str,
                   overwrite: bool) -> None:
    """Claims every run's folder under ``output`` before any run trains: one holding a
    run of another config is refused now (naming --output), not after the runs before it
    (or cleared, with ``overwrite``)."""
    for name, pacing in grid:
        for epochs in budgets:
            run, tag = _run_config(config, name, pacing, epochs)
            workdirs.prepare(os.path.join(output, tag), train.run_identity(run), overwrite,
                             flag="--output")


def run_setting(config, name: str, pacing: str, budgets: list[int], output: str,
                bar: tqdm | None = None) -> dict:
    """Test accuracy after each budget for one setting; ``bar`` advances once per run.
    The runs' folders are claimed already (``claim_workdirs``): each resumes or starts."""
    curve = []
    for epochs in budgets:
        run, tag = _run_config(config, name, pacing, epochs)
        results = train.train_and_evaluate(run, os.path.join(output, tag))
        acc = _final_row(results)
        curve.append({"epochs": epochs, "steps": results["steps"], "overall": acc.mean(1).tolist(),
                      "per_domain": acc.tolist()})
        if bar is not None:
            bar.update(1)
    row = {"curriculum": name, "pacing": pacing, "curve": curve}
    if pacing == "threshold":
        row["stages"] = stage_history(os.path.join(output, tag))
    return row


def compare(config, output: str, curricula: list[str], pacings: list[str],
            budgets: list[int], target: float, overwrite: bool = False) -> str:
    grid = settings(curricula, pacings)
    check_config(config, pacings)
    workdirs.writable_directory(output, "--output folder")
    claim_workdirs(config, grid, budgets, output, overwrite)
    # The runs' own bars are off in the shipped config: this one counts the runs.
    with tqdm(total=len(grid) * len(budgets), desc="curriculum runs", unit="run") as bar:
        rows = [run_setting(config, name, pacing, budgets, output, bar)
                for name, pacing in grid]
    domains = [d.strip() for d in str(config.domains).split(",") if d.strip()]
    caption = (f"{config.num_seeds} seeds, test accuracy mean ± std over seeds (overall = mean "
               f"of the {len(domains)} domains), c0={config.c0}, full competence after "
               f"{config.curriculum_epochs} epochs"
               + (", easiest fraction taken within each class" if config.get(
                   "curriculum_balanced") else "")
               + (f"; threshold: stages on accuracy {config.stage_thresholds} over "
                  f"{config.validation_fraction:.0%} held-out training rows (not trained on)"
                  if "threshold" in pacings else "") + ".\n\n")
    text = caption + table(rows, domains, target)
    # Written to a temporary file and renamed, as every report is (docs/reliability.md).
    report.atomic_write(os.path.join(output, "curriculum.md"), text)
    report.atomic_write(os.path.join(output, "curriculum.json"), json.dumps(
        {"config": json.loads(config.to_json()), "rows": rows}, indent=1))
    return text


def main(argv):
    cli.no_arguments(argv)
    # Every run has the same shapes: compiled once, then loaded from OUTPUT/xla_cache
    # (or JAX_COMPILATION_CACHE_DIR, when set).
    cli.run_guarded(lambda: print(compare(
        _CONFIG.value, _OUTPUT.value, _CURRICULA.value, _PACINGS.value,
        parse_budgets(_BUDGETS.value), _TARGET.value, _OVERWRITE.value), end=""), _OUTPUT.value)


if __name__ == "__main__":
    cli.main(main, default_config="sentiment_curriculum.py")
