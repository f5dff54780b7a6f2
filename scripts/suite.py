"""The continual-learning comparison: every method, three scenarios, 5 seeds each.

  python -m scripts.suite --workdir=runs/suite --num_seeds=5 \
      [--results=docs/results_continual.md]

Runs class-IL and task-IL Split-Digits and domain-IL Permuted-Digits with the
shipped defaults (MLP 2x400, Adam 1e-3, batch 32, 20 epochs per task), each
method vmapped over its seeds (resumable: rerun the same command to continue),
and writes WORKDIR/results_continual.md (or ``--results``; the repository's
docs/results_continual.md is regenerated with that path): one mean ± std table
per scenario and the acceptance checks of tests/test_methods_acceptance.py with
their outcome.
"""

from __future__ import annotations

import os

from absl import flags

from research import report, suite, workdirs
from research.config_check import check_names
from scripts import cli

_WORKDIR = flags.DEFINE_string("workdir", "runs/suite", "Where every run is written.")
_NUM_SEEDS = flags.DEFINE_integer("num_seeds", 5, "Seeds per method (vmapped).")
_METHODS = flags.DEFINE_list("methods", list(suite.METHODS), "Methods to run.")
_OUTPUT = flags.DEFINE_string("results", "", "The markdown written "
                              "(default: WORKDIR/results_continual.md).")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Discard runs of another config in workdir.")


def main(argv):
    cli.no_arguments(argv)

    def go():
        check_names(_METHODS.value, suite.METHODS, "--methods", "method",
                    among="not in the suite: progressive networks, S-Prompts and "
                          "distillation have their own configs; dynamic expansion runs "
                          "with --config.model=expansion")
        workdirs.writable_directory(_WORKDIR.value)
        output = workdirs.writable_file(
            _OUTPUT.value or os.path.join(_WORKDIR.value, "results_continual.md"), "--results")
        text = suite.run_suite(_WORKDIR.value, _NUM_SEEDS.value, _METHODS.value,
                               _OVERWRITE.value, _OUTPUT.value)
        report.atomic_write(output, text)
        print(text)

    cli.run_guarded(go, _WORKDIR.value)


if __name__ == "__main__":
    cli.main(main)
