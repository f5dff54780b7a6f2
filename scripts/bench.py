"""Speed report: our train step against the machine's matmul rate and against Avalanche.

  python -m scripts.bench --output=runs/bench [--torch_python=PYTHON]

One run measures, on this machine and in this order: (1) float32 matmul
FLOP/s and the fraction of it the MLP step reaches, (2) steps/s and wall time
of naive/ewc/si/lwf/er on Split-Digits (MLP 2x400, batch 32, Adam, --epochs
per task), 5 seeds vmapped vs 5 separate runs, peak memory at 2 and 5 tasks,
(3) the same workload in Avalanche when --torch_python (or this interpreter)
has torch and avalanche-lib, (4) scripts.bench_text_step when present.
Writes bench.json and bench.md in --output.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import jax
from absl import app, flags

from research import report
from research.bench import measure

_OUTPUT = flags.DEFINE_string("output", None, "Directory for bench.json and bench.md.")
_EPOCHS = flags.DEFINE_integer("epochs", 50, "Epochs per task.")
_METHODS = flags.DEFINE_list("methods", ["naive", "ewc", "si", "lwf", "er"], "Our methods.")
_SEEDS = flags.DEFINE_integer("seeds", 5, "Seeds for the vmapped vs separate comparison.")
_TORCH_PYTHON = flags.DEFINE_string(
    "torch_python", None, "Interpreter with torch + avalanche-lib (default: this one if it "
    "has them; otherwise the Avalanche part is skipped with the reason).")
_AVALANCHE = flags.DEFINE_list("avalanche", ["naive", "ewc", "si", "replay"],
                               "Avalanche strategies (replay is compared with our er).")
_TEXT_STEP = flags.DEFINE_bool("text_step", True, "Include scripts.bench_text_step's figures.")
flags.mark_flag_as_required("output")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OURS_FOR = {"naive": "naive", "ewc": "ewc", "si": "si", "replay": "er", "lwf": "lwf"}
TARGETS = {"naive": 4.0, "ewc": 8.0, "si": 8.0, "replay": 5.0}


def _machine() -> dict:
    return {"platform": platform.platform(), "cpu_count": os.cpu_count(),
            "devices": [str(d) for d in jax.devices()], "jax": jax.__version__,
            "load_average": os.getloadavg()}


def _step_efficiency(peak: float, steps_per_second: float) -> dict:
    step = measure.mlp_step_flops(64, (400, 400), 10, 32)
    return {"matmul_flops_per_second": peak, "mlp_step_flops": step,
            "mlp_step_flops_per_second": step * steps_per_second,
            "fraction_of_matmul": step * steps_per_second / peak}


def _ours(methods: list[str], epochs: int) -> dict:
    present, missing = measure.available_methods(methods)
    out = {"missing": missing}
    for name in present:
        out[name] = measure.run_ours(measure.bench_config(name, epochs))
        print(name, json.dumps(out[name]), flush=True)
    return out


def _seeds(seeds: int, epochs: int) -> dict:
    vmapped = measure.run_ours(measure.bench_config("naive", epochs, seeds=seeds))
    separate = [measure.run_ours(measure.bench_config("naive", epochs, seed=s))
                for s in range(seeds)]
    total = sum(r["wall_seconds"] for r in separate)
    return {"vmapped": vmapped, "separate_wall_seconds": total,
            "separate_train_seconds": sum(r["train_seconds"] for r in separate),
            "speedup_wall": total / vmapped["wall_seconds"]}


def _memory_growth(epochs: int) -> dict:
    """Peak host memory of an ER run (its buffer is the state that could grow) at 2 vs 5 tasks."""
    peaks = {}
    for tasks in (2, 5):
        with tempfile.TemporaryDirectory() as workdir:
            subprocess.run([sys.executable, "-m", "scripts.run",
                            "--config=research/configs/split_digits.py", "--config.algorithm=er",
                            f"--config.num_tasks={tasks}", f"--config.num_epochs={epochs}",
                            "--config.progress=False", "--config.plots=False",
                            f"--workdir={workdir}"], cwd=ROOT, check=True,
                           capture_output=True)
            with open(os.path.join(workdir, "results.json")) as f:
                peaks[tasks] = json.load(f)["peak_memory_bytes"]
    return {"er_2_tasks": peaks[2], "er_5_tasks": peaks[5],
            "host_growth_ratio": peaks[5]["host"] / peaks[2]["host"]}


def _torch_python() -> tuple[str | None, str]:
    if _TORCH_PYTHON.value:
        return _TORCH_PYTHON.value, ""
    if all(importlib.util.find_spec(m) for m in ("torch", "avalanche")):
        return sys.executable, ""
    return None, ("torch/avalanche-lib are not installed in this interpreter; install the "
                  "'bench' extra or pass --torch_python")


def _avalanche(epochs: int, strategies: list[str]) -> dict:
    python, why = _torch_python()
    if python is None:
        return {"skipped": why}
    script = os.path.join(ROOT, "research", "bench", "avalanche_workload.py")
    proc = subprocess.run([python, script, f"--epochs={epochs}",
                           f"--strategies={','.join(strategies)}"],
                          capture_output=True, text=True, cwd=tempfile.gettempdir())
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    out = {row["strategy"]: row for row in rows}
    if proc.returncode:
        out["error"] = proc.stderr.strip().splitlines()[-1:]
    return out


def _text_step() -> dict:
    if not os.path.exists(os.path.join(ROOT, "scripts", "bench_text_step.py")):
        return {"skipped": "scripts/bench_text_step.py is not present"}
    proc = subprocess.run([sys.executable, "-m", "scripts.bench_text_step"], cwd=ROOT,
                          capture_output=True, text=True)
    if proc.returncode:
        return {"skipped": "bench_text_step failed: " + " ".join(
            proc.stderr.strip().splitlines()[-1:])}
    return {"output": proc.stdout.strip().splitlines()}


def _ratios(ours: dict, peer: dict) -> dict:
    out = {}
    for name, target in TARGETS.items():
        mine = ours.get(OURS_FOR[name])
        if mine and name in peer:
            ratio = mine["steps_per_second"] / peer[name]["steps_per_second"]
            out[name] = {"ours_steps_per_second": mine["steps_per_second"],
                         "avalanche_steps_per_second": peer[name]["steps_per_second"],
                         "ratio": ratio, "target": target, "met": ratio >= target}
    return out


def _markdown(result: dict) -> str:
    eff = result["step_efficiency"]
    lines = ["# Benchmark", "", f"Machine: {result['machine']['platform']}, "
             f"{result['machine']['cpu_count']} CPUs, load average "
             f"{', '.join(f'{x:.1f}' for x in result['machine']['load_average'])} at start.",
             "", f"Matmul (float32, 2048^2, best of 5): "
             f"{eff['matmul_flops_per_second'] / 1e9:.1f} GFLOP/s; MLP 2x400 step "
             f"{eff['mlp_step_flops'] / 1e6:.1f} MFLOP at naive's steps/s = "
             f"{eff['mlp_step_flops_per_second'] / 1e9:.2f} GFLOP/s = "
             f"{100 * eff['fraction_of_matmul']:.1f}% of matmul (target 50%).", ""]
    rows = [[name, f"{r['steps_per_second']:.0f}", f"{r['train_seconds']:.2f}",
             f"{r['compile_seconds']:.1f}", f"{r['wall_seconds']:.1f}",
             f"{r.get('class_il_ACC', float('nan')):.3f}",
             f"{r['peak_memory_bytes']['host'] / 2**20:.0f}"]
            for name, r in result["ours"].items() if name != "missing"]
    lines += [report.markdown_table(["method", "steps/s", "train s", "compile s", "wall s",
                                     "class-IL ACC", "peak RSS MiB"], rows), ""]
    if result["ours"]["missing"]:
        lines += [f"Skipped (no algorithms/ file): {', '.join(result['ours']['missing'])}", ""]
    seeds = result["seeds"]
    lines += [f"{result['config']['seeds']} seeds vmapped: {seeds['vmapped']['wall_seconds']:.1f}"
              f" s wall vs {seeds['separate_wall_seconds']:.1f} s for separate runs "
              f"({seeds['speedup_wall']:.1f}x).", ""]
    mem = result["memory"]
    lines += [f"Peak host memory, ER: {mem['er_2_tasks']['host'] / 2**20:.0f} MiB at 2 tasks, "
              f"{mem['er_5_tasks']['host'] / 2**20:.0f} MiB at 5 (ratio "
              f"{mem['host_growth_ratio']:.2f}).", ""]
    if result["ratios"]:
        lines += [report.markdown_table(
            ["Avalanche strategy", "ours steps/s", "Avalanche steps/s", "ratio", "target"],
            [[k, f"{v['ours_steps_per_second']:.0f}", f"{v['avalanche_steps_per_second']:.1f}",
              f"{v['ratio']:.1f}x", f"{v['target']:.0f}x"] for k, v in result["ratios"].items()]),
            ""]
    else:
        lines += [f"Avalanche: {json.dumps(result['avalanche'])}", ""]
    text = result["text_step"]
    lines += ["Text step: " + (" / ".join(text["output"]) if "output" in text
                               else text["skipped"]), ""]
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    del argv
    os.makedirs(_OUTPUT.value, exist_ok=True)
    start = time.perf_counter()
    result: dict = {"machine": _machine(),
                    "config": {"epochs": _EPOCHS.value, "seeds": _SEEDS.value,
                               "model": "mlp 2x400", "batch_size": 32, "optimizer": "adam 1e-3"}}
    peak = measure.matmul_flops()
    result["ours"] = _ours(_METHODS.value, _EPOCHS.value)
    naive_rate = result["ours"].get("naive", {}).get("steps_per_second", 0.0)
    result["step_efficiency"] = _step_efficiency(peak, naive_rate)
    result["seeds"] = _seeds(_SEEDS.value, _EPOCHS.value)
    result["memory"] = _memory_growth(min(_EPOCHS.value, 5))
    result["avalanche"] = _avalanche(_EPOCHS.value, _AVALANCHE.value)
    result["ratios"] = _ratios(result["ours"], result["avalanche"])
    result["text_step"] = _text_step() if _TEXT_STEP.value else {"skipped": "--notext_step"}
    result["bench_seconds"] = time.perf_counter() - start
    report.write_json(os.path.join(_OUTPUT.value, "bench.json"), result)
    report.atomic_write(os.path.join(_OUTPUT.value, "bench.md"), _markdown(result))
    print(_markdown(result))


if __name__ == "__main__":
    app.run(main)
