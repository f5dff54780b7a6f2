"""Runs several methods on one stream (each vmapped over seeds) and compares them.

  python -m scripts.compare --config=research/configs/split_digits.py \
      --algorithms=naive,joint,cumulative --num_seeds=3 --workdir=runs/compare

Each method runs in DIR/<algorithm>/ (resumable like scripts.run); DIR gets
comparison.md, comparison.csv, comparison.png and summary.json.
"""

from __future__ import annotations

import copy
import os

from absl import flags
from ml_collections import config_flags

from research import compare
from scripts import cli

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.")
_ALGORITHMS = flags.DEFINE_list("algorithms", None, "Methods to compare, e.g. naive,ewc,er.")
_NUM_SEEDS = flags.DEFINE_integer("num_seeds", None, "Seeds per method (overrides the config).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Where the comparison writes everything.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Discard runs of another config in workdir.")
flags.mark_flags_as_required(["config", "algorithms", "workdir"])


def main(argv):
    cli.no_arguments(argv)

    def go():
        config = copy.deepcopy(_CONFIG.value)
        if _NUM_SEEDS.value is not None:
            config.num_seeds = _NUM_SEEDS.value
        summary = compare.compare(config, _ALGORITHMS.value, _WORKDIR.value, _OVERWRITE.value)
        print(summary["markdown"])
        print(f"wrote {os.path.join(_WORKDIR.value, 'comparison.md')}")

    cli.run_guarded(go, _WORKDIR.value)


if __name__ == "__main__":
    cli.main(main)
