"""Bench reports side by side: several bench.json files as one table and one plot.

The bench is taken from one machine to another (a laptop, CI's CPU, a GPU), and
its figures drift from run to run on the same machine, so a single report is
read against others. ``scripts.bench`` plots its own ratios with
``ratios_figure``; ``scripts.bench_compare`` sets any number of reports next to
each other.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import NamedTuple

from research import report

REQUIRED_FIELDS = ("machine", "ours", "step_efficiency", "ratios")
END_TO_END = "end to end"
# The target for the naive step's share of the matmul rate, on its 2-core CPU only.
STEP_SHARE_TARGET = {"cpu": 0.5}

Run = tuple[str, dict]  # (label, the contents of a bench.json)


class BenchFileError(ValueError):
    """A path that is not a readable scripts.bench report."""


def load(path: str) -> Run:
    """``path`` (a scripts.bench output directory or its bench.json) as (label, report)."""
    file = os.path.join(path, "bench.json") if os.path.isdir(path) else path
    try:
        with open(file) as f:
            result = json.load(f)
    except OSError as error:
        raise BenchFileError(f"{file}: cannot be read ({error.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BenchFileError(f"{file}: not JSON ({error})") from None
    missing = [k for k in REQUIRED_FIELDS if k not in result] if isinstance(result, dict) \
        else list(REQUIRED_FIELDS)
    if missing:
        raise BenchFileError(f"{file}: not a scripts.bench report (it lacks the field(s) "
                             f"{', '.join(missing)})")
    label = os.path.basename(os.path.dirname(os.path.abspath(file))) or file
    return label, result


def _dig(tree: dict, *keys: str):
    """tree[k1][k2]...; None where a part of the bench was skipped."""
    for key in keys:
        if not isinstance(tree, dict) or key not in tree:
            return None
        tree = tree[key]
    return tree


def _ratio_cell(figures: dict | None, unit: str = "", digits: int = 0) -> str:
    """'4.66x = 2769 / 593.7', in bold where the target is met."""
    if figures is None:
        return "-"
    ours = figures.get("ours_steps_per_second", figures.get("ours_wall_seconds"))
    peer = figures.get("avalanche_steps_per_second", figures.get("avalanche_wall_seconds"))
    ratio = f"{figures['ratio']:.2f}x"
    if figures.get("met"):
        ratio = f"**{ratio}**"
    return f"{ratio} = {ours:.{digits}f} / {peer:.{digits or 1}f}{unit}"


def _pair(first, second, fmt: str, unit: str = "") -> str:
    if first is None or second is None:
        return "-"
    return f"{first:{fmt}} / {second:{fmt}}{unit}"


def _text_cell(text: dict | None) -> str:
    if text is None or "speedup" not in text:
        return "-"
    ours, torch = text["ours"]["step_seconds_median"], text["torch"]["step_seconds_median"]
    return f"{text['speedup']:.2f}x = {ours * 1e3:.0f} / {torch * 1e3:.0f} ms"


def _machine(result: dict) -> str:
    m = result["machine"]
    return f"{m.get('cpu_model', '?')}, {m.get('cpu_count', '?')} CPUs, " \
           f"{m.get('backend', '?')} ({', '.join(m.get('devices', []))})"


def _number(value, fmt: str, scale: float = 1.0, unit: str = "") -> str:
    return "-" if value is None else f"{value * scale:{fmt}}{unit}"


def _efficiency(result: dict, key: str):
    return _dig(result, "step_efficiency", key)


def _share_cell(result: dict) -> str:
    """The naive step's share of the matmul rate, in bold where it meets its backend's target."""
    share = _efficiency(result, "fraction_of_matmul")
    target = STEP_SHARE_TARGET.get(result["machine"].get("backend"))
    cell = _number(share, ".1f", 100, "%")
    return f"**{cell}**" if share is not None and target is not None and share >= target else cell


def _share_targets(runs: list[Run]) -> str:
    """The share's target on each run's backend ('-' where none has one, as on a GPU)."""
    found = [STEP_SHARE_TARGET.get(result["machine"].get("backend")) for _, result in runs]
    return " / ".join(dict.fromkeys(f"{100 * t:g}%" for t in found if t is not None)) or "-"


def _targets_of(*keys: str) -> Callable[[list[Run]], str]:
    """The targets stored at ``keys`` in each run, in run order ('4x / 20x' where the
    runs' backends differ)."""
    def targets(runs: list[Run]) -> str:
        found = [_dig(result, *keys) for _, result in runs]
        return " / ".join(dict.fromkeys(f"{t:g}x" for t in found if t is not None)) or "-"
    return targets


class Row(NamedTuple):
    label: str
    cell: Callable[[dict], str]  # one run's figure
    target: Callable[[list[Run]], str] = lambda runs: ""


def _rows(runs: list[Run]) -> list[Row]:
    strategies = list(dict.fromkeys(k for _, r in runs for k in _dig(r, "ratios", "steady") or {}))
    seeds = "/".join(map(str, sorted({_dig(r, "config", "seeds") for _, r in runs} - {None})))
    return [
        Row("machine", _machine),
        Row("jax", lambda r: r["machine"].get("jax", "-")),
        Row("matmul GFLOP/s",
            lambda r: _number(_efficiency(r, "matmul_flops_per_second"), ".1f", 1e-9)),
        Row("naive step, share of matmul", _share_cell, _share_targets),
        Row("hand-written loop, share of matmul",
            lambda r: _number(_efficiency(r, "handwritten_fraction_of_matmul"), ".1f", 100, "%")),
        Row("engine / hand-written loop",
            lambda r: _number(_efficiency(r, "engine_over_handwritten"), ".2f", unit="x"),
            lambda runs: "1.00x (nothing measurable)"),
        *(Row(f"{name}: steady steps/s, ours / Avalanche",
              lambda r, name=name: _ratio_cell(_dig(r, "ratios", "steady", name)),
              _targets_of("ratios", "steady", name, "target")) for name in strategies),
        Row(f"{END_TO_END}, compile included (s)",
            lambda r: _ratio_cell(_dig(r, "ratios", "end_to_end"), " s", 1),
            _targets_of("ratios", "end_to_end", "target")),
        Row("our comparison, cold / cached (s)",
            lambda r: _pair(_dig(r, "comparison", "wall_seconds"),
                            _dig(r, "comparison", "rerun", "wall_seconds"), ".1f")),
        Row(f"{seeds or 'N'} seeds, vmapped / separate (s)",
            lambda r: _pair(_dig(r, "seeds", "vmapped", "wall_seconds"),
                            _dig(r, "seeds", "separate_wall_seconds"), ".1f")),
        Row("ER peak host MiB, 2 / 5 tasks",
            lambda r: _pair(*(None if v is None else v / 2**20 for v in (
                _dig(r, "memory", "er_2_tasks", "host"),
                _dig(r, "memory", "er_5_tasks", "host"))), ".0f")),
        *(Row(f"text step {dtype}, ours / PyTorch",
              lambda r, dtype=dtype: _text_cell(_dig(r, "text_step", dtype)))
          for dtype in ("float32", "bfloat16")),
        *(Row(f"{name}: class-IL ACC, ours / Avalanche",
              lambda r, name=name: _pair(_dig(r, "ratios", "steady", name, "ours_ACC"),
                                         _dig(r, "ratios", "steady", name, "avalanche_ACC"),
                                         ".3f"),
              lambda runs: "ours equal or better") for name in strategies),
    ]


def figures_table(runs: list[Run]) -> str:
    """The runs' figures as one markdown table, a column per run (targets met in bold)."""
    if not runs:
        raise BenchFileError("no bench reports given")
    rows = [[row.label, *(row.cell(result) for _, result in runs), row.target(runs)]
            for row in _rows(runs)]
    return report.markdown_table(["figure", *(label for label, _ in runs), "target"], rows)


def ratios_figure(runs: list[Run], path: str) -> bool:
    """Bars of our speed over Avalanche's per strategy and end to end, a group per
    strategy and a bar per run, the per-round range as a grey line and each run's
    target as a black tick. False (and no file) when no run has Avalanche's figures."""
    import numpy as np

    groups = list(dict.fromkeys(k for _, r in runs for k in _dig(r, "ratios", "steady") or {}))
    if any(_dig(r, "ratios", "end_to_end") for _, r in runs):
        groups.append(END_TO_END)
    if not groups:
        return False
    plt = report.pyplot()
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(groups) * max(1, len(runs)) ** 0.5), 3.5))
    width = 0.8 / len(runs)
    for i, (label, result) in enumerate(runs):
        figures = [_dig(result, "ratios", "end_to_end") if g == END_TO_END
                   else _dig(result, "ratios", "steady", g) for g in groups]
        x = np.arange(len(groups)) + (i - (len(runs) - 1) / 2) * width
        ratio = np.array([f["ratio"] if f else np.nan for f in figures])
        spread = [f.get("round_ratios") if f else None for f in figures]
        low = np.array([min(r) if r else np.nan for r in spread])
        high = np.array([max(r) if r else np.nan for r in spread])
        ax.bar(x, ratio, width, label=label)
        # The rounds' range need not hold the ratio of the medians, so not an error bar.
        ax.vlines(x, low, high, colors="0.3", linewidth=1.5,
                  label="per-round range" if i == 0 else None)
        targets = [f["target"] if f and f.get("target") else np.nan for f in figures]
        ax.plot(x, targets, "k_", markersize=max(6.0, 40 * width), markeredgewidth=2,
                label="target" if i == 0 else None)
    ax.set_xticks(np.arange(len(groups)), groups, rotation=20)
    ax.set(ylabel="ours / Avalanche (x)", ylim=(0, None))
    ax.legend(fontsize=8)
    report.save_figure(fig, path)
    plt.close(fig)
    return True
