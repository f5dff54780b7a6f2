"""Train one multi-task model and compare it with single-task baselines.

  python -m scripts.multitask --config=research/configs/multi_digits.py \
      --config.arch=cross_stitch --config.weighting=uw --workdir=DIR

Writes DIR/results.json (per-task metrics, single-task baselines, Delta_m) and
PNG plots. Rerunning the same command resumes from the last checkpoint in DIR;
a DIR holding another config is refused unless --overwrite. Bad input (an
unknown arch, weighting or config field, a foreign workdir) is a one-line
error, exit code 2.
"""

from __future__ import annotations

from absl import flags
from ml_collections import config_flags

from research import multitask
from scripts import cli

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config file (default: research/configs/multi_digits.py).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for results.json and plots.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Delete what the workdir holds and start over.")
flags.mark_flags_as_required(["workdir"])


def _run() -> None:
    config = _CONFIG.value
    multitask.validate(config)
    summary = multitask.train_and_evaluate(config, _WORKDIR.value, overwrite=_OVERWRITE.value,
                                           progress=config.get("progress", True))
    std = summary["per_task_std"]
    per_task = ", ".join(f"{k}={v:.4f}" + (f"±{std[k]:.4f}" if len(summary["seeds"]) > 1 else "")
                         for k, v in summary["per_task"].items())
    delta = summary["delta_m"]
    print(f"{config.arch}/{config.weighting} ({len(summary['seeds'])} seed(s)): {per_task}" +
          ("" if delta is None else f", delta_m={delta:+.2f}±{summary['delta_m_std']:.2f}%"))


def main(argv: list[str]) -> None:
    cli.no_arguments(argv)
    cli.run_guarded(_run, _WORKDIR.value)


if __name__ == "__main__":
    cli.main(main, default_config="multi_digits.py")
