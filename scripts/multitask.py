"""Train one multi-task model on Multi-Digits and compare it with single-task baselines.

  python -m scripts.multitask --config=research/configs/multi_digits.py \
      --config.arch=cross_stitch --config.weighting=uw --workdir=DIR

Writes DIR/results.json (per-task metrics, single-task baselines, Delta_m) and
PNG plots. An unknown arch or weighting is a one-line error, exit code 2.
"""

from __future__ import annotations

import sys

from absl import app, flags
from ml_collections import config_flags

from research import multitask

_CONFIG = config_flags.DEFINE_config_file("config", "research/configs/multi_digits.py")
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for results.json and plots.")
flags.mark_flags_as_required(["workdir"])


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    config = _CONFIG.value
    try:
        multitask.validate(config)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    summary = multitask.train_and_evaluate(config, _WORKDIR.value)
    per_task = ", ".join(f"{k}={v:.4f}" for k, v in summary["per_task"].items())
    delta = summary["delta_m"]
    print(f"{config.arch}/{config.weighting}: {per_task}" +
          ("" if delta is None else f", delta_m={delta:+.2f}%"))


if __name__ == "__main__":
    app.run(main)
