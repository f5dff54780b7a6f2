"""Several methods, one stream: a table (markdown + CSV), a plot and summary.json."""

from __future__ import annotations

import copy
import os
import time
from concurrent import futures

import ml_collections

from algorithms import available as available_algorithms
from research import config_check, host_memory, report, train, workdirs

METRICS = ("ACC", "BWT", "forgetting")


def _row(algorithm: str, results: dict, scenario: str) -> dict:
    s = results[scenario]["summary"]
    return {"algorithm": algorithm, "scenario": scenario,
            **{m: s[m]["mean"] for m in METRICS}, **{f"{m}_std": s[m]["std"] for m in METRICS},
            "train_seconds": results["train_seconds"],
            "compile_seconds": results["compile_seconds"]}


def comparison_markdown(rows: list[dict], num_seeds: int, num_runs: int) -> str:
    """The table, headed by what its ± spans: the seeds, or with a sweep every run."""
    headers = ["algorithm", "scenario"] + list(METRICS) + ["train s"]
    body = [[r["algorithm"], r["scenario"]]
            + [f"{r[m]:.3f} ± {r[m + '_std']:.3f}" for m in METRICS]
            + [f"{r['train_seconds']:.1f}"] for r in rows]
    spans = (f"{num_seeds} seed(s)" if num_runs == num_seeds else
             f"{num_runs} runs ({num_seeds} seed(s) x {num_runs // num_seeds} sweep values)")
    return f"mean ± std over {spans}\n\n" + report.markdown_table(headers, body)


def _csv(rows: list[dict]) -> str:
    keys = list(rows[0])
    return "\n".join([",".join(keys)] + [",".join(str(r[k]) for k in keys) for r in rows]) + "\n"


def _plot(rows: list[dict], path: str) -> None:
    import numpy as np

    plt = report.pyplot()

    scenarios = sorted({r["scenario"] for r in rows})
    algorithms = list(dict.fromkeys(r["algorithm"] for r in rows))
    fig, ax = plt.subplots(figsize=(max(5, 1.1 * len(algorithms)), 3.5))
    width = 0.8 / len(scenarios)
    for k, scenario in enumerate(scenarios):
        picked = {r["algorithm"]: r for r in rows if r["scenario"] == scenario}
        x = np.arange(len(algorithms)) + k * width
        ax.bar(x, [picked[a]["ACC"] if a in picked else 0 for a in algorithms], width,
               yerr=[picked[a]["ACC_std"] if a in picked else 0 for a in algorithms],
               label=scenario, capsize=2)
    ax.set_xticks(np.arange(len(algorithms)) + width * (len(scenarios) - 1) / 2, algorithms,
                  rotation=30)
    ax.set(ylabel="final average accuracy (ACC)", ylim=(0, 1.05))
    ax.legend(fontsize=8)
    report.save_figure(fig, path)
    plt.close(fig)


def compare(config: ml_collections.ConfigDict, algorithms: list[str], workdir: str,
            overwrite: bool = False) -> dict:
    """Runs each algorithm into workdir/<name> and writes the comparison files. The next
    method's data, initial state and programs are built on a background thread while
    one trains (bit-identical to running them one by one)."""
    config_check.check_names(algorithms, tuple(available_algorithms()), "--algorithms",
                             "algorithm")
    configs = []
    for algorithm in algorithms:  # validate every method before running any
        run_config = copy.deepcopy(config)
        run_config.algorithm = algorithm
        config_check.validate(run_config)
        configs.append(run_config)
    workdirs.writable_directory(workdir)  # one line naming it, before any method runs
    rows, per_method = [], {}
    with futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="next_method") as ahead:
        upcoming = ahead.submit(train.build_run, configs[0])
        for i, run_config in enumerate(configs):
            start = time.perf_counter()
            host_memory.reset_peak()  # each method's results report its own minutes' peak
            run = upcoming.result()
            if i + 1 < len(configs):  # built and compiled while this method trains
                upcoming = ahead.submit(train.build_run, configs[i + 1])
            else:  # and the plot's imports while the last one does
                ahead.submit(report.pyplot)
            results = train.train_and_evaluate(
                run_config, os.path.join(workdir, run_config.algorithm), overwrite, run)
            per_method[run_config.algorithm] = {
                "wall_seconds": time.perf_counter() - start,
                **{k: results[k] for k in results if k in report.SCENARIO_KEYS or k in (
                    "train_seconds", "compile_seconds", "num_compiles", "steps",
                    "steps_per_second", "num_runs", "peak_memory_bytes")}}
            rows += [_row(run_config.algorithm, results, k)
                     for k in report.SCENARIO_KEYS if k in results]
    markdown = comparison_markdown(rows, config.num_seeds, len(config_check.run_grid(config)))
    report.atomic_write(os.path.join(workdir, "comparison.md"), markdown)
    report.atomic_write(os.path.join(workdir, "comparison.csv"), _csv(rows))
    _plot(rows, os.path.join(workdir, "comparison.png"))
    summary = {"config": config.to_dict(), "rows": rows, "methods": per_method,
               "markdown": markdown}
    report.write_json(os.path.join(workdir, "summary.json"), summary)
    return summary
