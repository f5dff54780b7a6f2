"""What a run leaves behind: results.json, metrics.jsonl, a markdown table, PNG plots.

Every file is written to a temporary name and renamed, so a reader never sees
half a report.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import types
from collections.abc import Iterable

import numpy as np

from research import metrics as metrics_lib

SCENARIO_KEYS = ("class_il", "task_il", "domain_il")
_UMASK = os.umask(0)  # read once, on import, before any thread writes a report
os.umask(_UMASK)


def atomic_write(path: str, data: str | bytes) -> None:
    """Writes ``path`` via a temporary file in the same directory and an atomic rename."""
    directory = os.path.dirname(os.path.abspath(path))
    mode = "wb" if isinstance(data, bytes) else "w"
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-" + os.path.basename(path))
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # as open() would make it; mkstemp's is owner-only
        with os.fdopen(fd, mode) as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json(path: str, obj) -> None:
    atomic_write(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_jsonl(path: str, rows: Iterable[dict]) -> None:
    atomic_write(path, "".join(json.dumps(r) + "\n" for r in rows))


def _fmt(stat: dict) -> str:
    return f"{stat['mean']:.3f} ± {stat['std']:.3f}"


def _rate(per_second: float) -> str:
    """Whole steps at digit-model rates; two significant figures below 10 (a text
    model's step takes seconds)."""
    return f"{per_second:.0f}" if per_second >= 10 else f"{per_second:.2g}"


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def scenario_groups(scenario: dict) -> list[tuple[str, dict, np.ndarray]]:
    """``(label, summary, mean accuracy matrix)`` of a scenario's runs: one per swept value
    (``by_hp``), or one unlabelled group of every run."""
    if "by_hp" in scenario:
        return [(metrics_lib.hp_label(g["hp"]), g["summary"], np.asarray(g["accuracy_matrix"]))
                for g in scenario["by_hp"]]
    return [("", scenario["summary"],
             np.mean([run["accuracy_matrix"] for run in scenario["runs"]], axis=0))]


def run_markdown(results: dict) -> str:
    """The one-run summary: figures per scenario (mean ± std over seeds, apart for each
    swept value) and the accuracy matrix."""
    parts = [f"# {results['config']['algorithm']} on {results['config']['dataset']}\n"]
    swept = any("by_hp" in results[key] for key in SCENARIO_KEYS if key in results)
    rows = []
    for key in SCENARIO_KEYS:
        if key in results:
            for label, s, _ in scenario_groups(results[key]):
                rows.append([key] + [label] * swept
                            + [_fmt(s[m]) for m in ("ACC", "BWT", "FWT", "forgetting")])
    parts.append(markdown_table(["scenario"] + ["swept"] * swept
                                + ["ACC", "BWT", "FWT", "forgetting"], rows))
    for key in SCENARIO_KEYS:
        if key in results:
            for label, _, matrix in scenario_groups(results[key]):
                headers = ["after task"] + [f"task {j}" for j in range(matrix.shape[1])]
                body = [[str(i)] + [f"{v:.3f}" for v in row] for i, row in enumerate(matrix)]
                over = f"{label}, mean over its seeds" if label else "mean over runs"
                parts.append(f"\n## {key} accuracy matrix ({over})\n\n")
                parts.append(markdown_table(headers, body))
    if "routing" in results:
        confusion = np.sum([run["confusion"] for run in results["routing"]["runs"]], axis=0)
        headers = ["task \\ sent to stage"] + [str(j) for j in range(confusion.shape[1])]
        body = [[str(i)] + [str(int(v)) for v in row] for i, row in enumerate(confusion)]
        parts.append(f"\n## routing of the test rows after the last stage (summed over runs): "
                     f"{_fmt(results['routing']['routed_right'])} to their own task's stage"
                     "\n\n")
        parts.append(markdown_table(headers, body))
    parts.append(f"\ntrain {results['train_seconds']:.1f} s, compile "
                 f"{results['compile_seconds']:.1f} s, {results['num_compiles']} compiles, "
                 f"{_rate(results['steps_per_second'])} steps/s\n")
    return "".join(parts)


def pyplot() -> types.ModuleType:
    """matplotlib's pyplot on the file-only backend (imported on first use: about half a
    second, which runs that make no plot do not pay)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str, dpi: int = 110) -> None:
    """``fig`` as a PNG at ``path``, written atomically like every other report file."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    atomic_write(path, buffer.getvalue())


def plot_run(results: dict, workdir: str) -> list[str]:
    """Accuracy-matrix heat map and accuracy-per-task curves for each scenario reported,
    a panel per swept value."""
    plt = pyplot()
    algorithm, paths = results["config"]["algorithm"], []
    for key in SCENARIO_KEYS:
        if key not in results:
            continue
        groups = scenario_groups(results[key])
        fig, axes = plt.subplots(1, len(groups), figsize=(4.5 * len(groups), 4), squeeze=False)
        for ax, (label, _, matrix) in zip(axes[0], groups, strict=True):
            image = ax.imshow(matrix, vmin=0, vmax=1, cmap="viridis")
            for (i, j), v in np.ndenumerate(matrix):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if v < 0.6 else "black")
            ax.set(xlabel="evaluated on task", ylabel="after training task",
                   title=f"{algorithm}: {key} R[i][j]" + (f"\n{label}" if label else ""))
            fig.colorbar(image, ax=ax)
        paths.append(os.path.join(workdir, f"accuracy_matrix_{key}.png"))
        save_figure(fig, paths[-1])
        plt.close(fig)

        fig, axes = plt.subplots(1, len(groups), figsize=(5.5 * len(groups), 3.5),
                                 squeeze=False)
        for ax, (label, _, matrix) in zip(axes[0], groups, strict=True):
            for j in range(matrix.shape[1]):
                ax.plot(range(j, matrix.shape[0]), matrix[j:, j], marker="o", label=f"task {j}")
            ax.plot(range(matrix.shape[0]),
                    [row[: i + 1].mean() for i, row in enumerate(matrix)], "k--",
                    label="mean seen")
            ax.set(xlabel="after training task", ylabel="accuracy", ylim=(0, 1.02),
                   title=f"{algorithm}: {key} accuracy over the stream"
                   + (f"\n{label}" if label else ""))
            ax.legend(fontsize=7, ncol=2)
        paths.append(os.path.join(workdir, f"accuracy_curves_{key}.png"))
        save_figure(fig, paths[-1])
        plt.close(fig)
    return paths
