"""bench.md: a scripts.bench report (its bench.json) as the markdown a reader compares."""

from __future__ import annotations

from research import report
from research.bench import runs


def _text_step_lines(dtype: str, text: dict, eff: dict, backend: str) -> list[str]:
    """The text step's paragraph for one compute dtype."""
    lines = [f"Text step, {dtype}: " + (" / ".join(text["output"]) if "output" in text
                                         else text["skipped"]), ""]
    if "speedup" in text:
        ref = text["torch"]
        autocast = ", autocast bfloat16" if ref.get("compute_dtype") == "bfloat16" else ""
        lines += [f"PyTorch {ref['torch']} BertForSequenceClassification, same weights and "
                  f"shapes ({ref['threads']} threads, attention {ref['attention']}{autocast}): "
                  f"step median {1e3 * ref['step_seconds_median']:.0f} ms; ours "
                  f"{1e3 * text['ours']['step_seconds_median']:.0f} ms as the engine trains "
                  f"({text['ours']['steps_per_call']} steps per call): {text['speedup']:.2f}x "
                  f"{'(target 1.0x on CPU)' if backend == 'cpu' else '(no target here)'}; "
                  "one step per call "
                  f"{1e3 * text['ours']['one_step_per_call']['step_seconds_median']:.0f} ms: "
                  f"{text['speedup_one_step_per_call']:.2f}x.", ""]
        if dtype == "float32" and "matmul_flops_per_second" in ref:  # the libraries' rates
            lines += [f"Float32 matmul ({eff['matmul_size']}^2, best of 5) on {ref['device']}: "
                      f"PyTorch ({ref['float32_matmul_precision']} precision) "
                      f"{ref['matmul_flops_per_second'] / 1e9:.1f} GFLOP/s, XLA "
                      f"{eff['matmul_flops_per_second'] / 1e9:.1f} GFLOP/s.", ""]
    elif "torch" in text:
        lines += [f"PyTorch text step: {text['torch']['skipped']}", ""]
    return lines


def _spread(values: list[float]) -> str:
    return f"{min(values):.2f}-{max(values):.2f}x" if values else "-"


def _cores(cpu_seconds: float, wall_seconds: float) -> str:
    return f"{cpu_seconds:.1f} CPU s, {cpu_seconds / wall_seconds:.2f} cores busy on average"


def _comparison_lines(comparison: dict, e2e: dict | None, seeds: int) -> list[str]:
    """Our comparison's wall and CPU time, cold and rerun from the compilation cache, and
    its ratio to Avalanche's when that ran."""
    cold = [run["wall_seconds"] for run in comparison.get("cold_runs", [])]
    median = (f" (the median of {len(cold)} runs from cold: {min(cold):.1f}-{max(cold):.1f} s)"
              if len(cold) > 1 else "")
    lines = [f"Our comparison of every method x {seeds} seeds as scripts.compare runs it, "
             f"compile included: {comparison['wall_seconds']:.1f} s{median}, "
             f"{_cores(comparison['cpu_seconds'], comparison['wall_seconds'])}; rerun with "
             "its programs in the persistent compilation cache (as a rerun or resume of "
             f"scripts.compare finds them): {comparison['rerun']['wall_seconds']:.1f} s.", ""]
    if e2e is not None:
        line = (f"End to end, {len(e2e['methods'])} methods x {seeds} seeds, compile "
                f"included: ours {e2e['ours_wall_seconds']:.1f} s, Avalanche "
                f"{e2e['avalanche_wall_seconds']:.1f} s: {e2e['ratio']:.2f}x ("
                + (f"per round {_spread(e2e['round_ratios'])}; " if e2e.get("round_ratios")
                   else "")
                + ("no target here)." if e2e["target"] is None
                   else f"target {e2e['target']:.0f}x)."))
        if "avalanche_cpu_seconds" in e2e:
            line += (" Avalanche's CPU time (every thread): "
                     f"{_cores(e2e['avalanche_cpu_seconds'], e2e['avalanche_wall_seconds'])}.")
        lines += [line, ""]
    return lines


def _share_target(backend: str) -> str:
    target = runs.STEP_SHARE_TARGET.get(backend)
    return "(no target here)" if target is None else f"(target {100 * target:g}%)"


def _efficiency_line(eff: dict, backend: str) -> str:
    if "skipped" in eff:
        return f"the MLP step's share of it is not measured: {eff['skipped']}."
    low, high = eff["engine_over_handwritten_by_turn"]
    return (f"MLP 2x400 step {eff['mlp_step_flops'] / 1e6:.1f} MFLOP at naive's steps/s = "
            f"{eff['mlp_step_flops_per_second'] / 1e9:.2f} GFLOP/s = "
            f"{100 * eff['fraction_of_matmul']:.1f}% of matmul "
            f"{_share_target(backend)}. A hand-written "
            f"jitted scan of the same step, its turns right after naive's: "
            f"{eff['handwritten_steps_per_second']:.0f} steps/s "
            f"({100 * eff['handwritten_fraction_of_matmul']:.1f}%); the engine runs at "
            f"{eff['engine_over_handwritten']:.2f}x its rate ({low:.2f}-{high:.2f}x turn by "
            f"turn).")


def _device_peaks(two: int, five: int) -> str:
    """The accelerator's peaks, where the training state lives on a GPU (a CPU's are 0)."""
    if not (two and five):
        return ""
    return (f" Peak device memory: {two / 2**20:.0f} MiB at 2 tasks, {five / 2**20:.0f} MiB at "
            f"5 (ratio {five / two:.2f}).")


def bench_markdown(result: dict) -> str:
    """bench.md: the figures of one bench.json as sentences and tables."""
    eff, machine = result["step_efficiency"], result["machine"]
    backend = machine["backend"]
    lines = ["# Benchmark", "", f"Machine: {machine['platform']}, {machine['cpu_model']}, "
             f"{machine['cpu_count']} CPUs, jax {machine['jax']} computing on "
             f"{len(machine['devices'])} {backend} device(s) ({machine['devices'][0]}), load "
             f"average {', '.join(f'{x:.1f}' for x in machine['load_average'])} at start.",
             "", f"Matmul (float32 inputs at JAX's default precision, {eff['matmul_size']}^2, "
             f"best of 5): {eff['matmul_flops_per_second'] / 1e9:.1f} GFLOP/s; "
             + _efficiency_line(eff, backend), ""]
    seeds_run = result["config"]["comparison_seeds"]
    rows = [[name, f"{r['steady_steps_per_second']:.0f}",
             f"{1e3 / r['steady_steps_per_second']:.3f}", f"{r['train_seconds']:.2f}",
             f"{r['compile_seconds']:.1f}", f"{r['wall_seconds']:.1f}",
             f"{r.get('class_il_ACC', float('nan')):.3f}",
             f"{r['peak_memory_bytes']['host'] / 2**20:.0f}"]
            for name, r in result["ours"].items() if name != "missing"]
    lines += [report.markdown_table(
        ["method", "steady steps/s", "ms/step", f"train s ({seeds_run} seeds)", "compile s",
         "wall s (in the comparison)", "class-IL ACC", "peak RSS MiB (bench process)"], rows),
              "", "Peak RSS is this process's while the method ran in the comparison, the "
              "engines of the steady-state turns still in it; ER's alone is below.", ""]
    if result["ours"]["missing"]:
        lines += [f"Skipped (no algorithms/ file): {', '.join(result['ours']['missing'])}", ""]
    seeds, count = result["seeds"], result["config"]["seeds"]
    lines += [f"{count} seeds vmapped: {seeds['vmapped']['wall_seconds']:.1f} s wall, compile "
              f"included, {seeds['vmapped']['steps_per_second']:.0f} steps/s (each step trains "
              f"all {count}), vs {seeds['separate_wall_seconds']:.1f} s for separate runs "
              f"({seeds['speedup_wall']:.1f}x).", ""]
    mem = result["memory"]
    if "skipped" in mem:
        lines += [f"Peak memory not measured: {mem['skipped']}", ""]
    else:
        lines += [f"Peak host memory, ER: {mem['er_2_tasks']['host'] / 2**20:.0f} MiB at 2 "
                  f"tasks, {mem['er_5_tasks']['host'] / 2**20:.0f} MiB at 5 (ratio "
                  f"{mem['host_growth_ratio']:.2f}); its training state, buffer included: "
                  f"{mem['state_bytes_2_tasks'] / 2**20:.2f} MiB at 2 tasks, "
                  f"{mem['state_bytes_5_tasks'] / 2**20:.2f} MiB at 5."
                  + _device_peaks(mem["er_2_tasks"]["device"], mem["er_5_tasks"]["device"]), ""]
    ratios = result["ratios"]
    if ratios["steady"]:
        target = lambda v: "-" if v["target"] is None else f"{v['target']:.0f}x"
        lines += [report.markdown_table(
            ["Avalanche strategy", "ours steady steps/s", "Avalanche steady steps/s", "ratio",
             "per round", "target", "Avalanche over every task", "ours ACC", "Avalanche ACC"],
            [[k, f"{v['ours_steps_per_second']:.0f}", f"{v['avalanche_steps_per_second']:.1f}",
              f"{v['ratio']:.2f}x", _spread(v["round_ratios"]), target(v),
              f"{v['avalanche_every_task_steps_per_second']:.1f}", f"{v['ours_ACC']:.3f}",
              f"{v['avalanche_ACC']:.3f}"] for k, v in ratios["steady"].items()]),
            "", "Steady steps/s on both sides after the first task (ours on the second task, "
            "Avalanche's over experiences 2 to 5), where each method's penalty, teacher or "
            "replay is live; Avalanche over every task, its first included, for reference. "
            "Per round: the lowest and highest of our turn i over Avalanche's seed-i run, "
            "taken right after it (the machine's drift within this bench). Avalanche ran on "
            f"{result['avalanche']['device']}.", ""]
    lines += _comparison_lines(result["comparison"], ratios.get("end_to_end"), seeds_run)
    if not ratios["steady"]:
        avalanche = result["avalanche"]
        why = avalanche.get("skipped") or avalanche.get("error") or "none of its strategies ran"
        lines += [f"Avalanche not compared: {why}", ""]
    for dtype, text in result["text_step"].items():
        lines += _text_step_lines(dtype, text, eff, backend)
    return "\n".join(lines)
