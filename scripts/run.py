"""Runs one continual-learning method on one stream and writes its reports.

  python -m scripts.run --config=research/configs/split_digits.py \
      --config.algorithm=ewc --config.num_seeds=5 --workdir=runs/ewc

Rerunning the same command resumes from the last checkpoint in --workdir.
"""

from __future__ import annotations

import json

from absl import flags
from ml_collections import config_flags

from research import distributed, report, train
from scripts import cli

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where the run writes everything.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Discard a run of another config in workdir.")
flags.mark_flags_as_required(["config", "workdir"])
distributed.define_flags()


def _summary(results: dict) -> str:
    lines = []
    for key in report.SCENARIO_KEYS:
        if key in results:
            for label, s, _ in report.scenario_groups(results[key]):
                lines.append(f"{key}{f' [{label}]' if label else ''}: ACC {s['ACC']['mean']:.3f}"
                             f" ± {s['ACC']['std']:.3f}  BWT {s['BWT']['mean']:+.3f}  "
                             f"forgetting {s['forgetting']['mean']:.3f}")
    lines.append(json.dumps({k: results[k] for k in (
        "train_seconds", "compile_seconds", "num_compiles", "steps")}))
    return "\n".join(lines)


def main(argv):
    cli.no_arguments(argv)
    cli.run_guarded(distributed.initialize_from_flags)  # before anything touches a device
    cli.run_guarded(lambda: print(_summary(
        train.train_and_evaluate(_CONFIG.value, _WORKDIR.value, _OVERWRITE.value))),
        _WORKDIR.value)


if __name__ == "__main__":
    cli.main(main)
