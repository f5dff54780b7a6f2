"""Several bench reports side by side.

  python -m scripts.bench_compare runs/bench_cpu runs/bench_gpu [--plot=runs/ratios.png]

Each argument is a ``scripts.bench`` output directory or its bench.json. Prints
one markdown table, a column per report (the targets each figure is read
against in the last column, met ones in bold); ``--plot`` also draws the
ratios to Avalanche, a bar per report. The bench's figures drift from run to
run on one machine, so compare several runs of each side.
"""

from __future__ import annotations

from absl import flags

from research import workdirs
from research.bench import runs
from scripts import cli

_PLOT = flags.DEFINE_string("plot", None, "PNG path for the ratios' bar chart.")


def _compare(paths: list[str]) -> None:
    if not paths:
        raise ValueError("name at least one scripts.bench output directory or bench.json")
    if _PLOT.value:  # before the reports are read: a path that cannot be written says so
        workdirs.writable_file(_PLOT.value, "--plot")
    loaded = [runs.load(path) for path in paths]
    if len({label for label, _ in loaded}) < len(loaded):  # two folders of the same name
        loaded = [(path, result) for path, (_, result) in zip(paths, loaded, strict=True)]
    print(runs.figures_table(loaded))
    if _PLOT.value:
        drawn = runs.ratios_figure(loaded, _PLOT.value)
        print(f"wrote {_PLOT.value}" if drawn else
              "no plot: none of these reports has Avalanche's figures")


def main(argv: list[str]) -> None:
    cli.run_guarded(lambda: _compare(argv[1:]))


if __name__ == "__main__":
    cli.main(main)
