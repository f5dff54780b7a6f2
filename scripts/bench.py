"""Speed report: our train step against the machine's matmul rate and against Avalanche.

  python -m scripts.bench --output=runs/bench [--torch_python=PYTHON]

One run measures, on this machine and in this order: (1) float32 matmul
FLOP/s and the fraction of it the MLP step reaches, and a minimal hand-written
jitted scan of the same step, its turns taken right after naive's, as the floor
the engine is compared with; (2) for naive/ewc/si/lwf/er
on Split-Digits (MLP 2x400, batch 32, Adam, --epochs per task) the steady-state
steps/s (the compiled epoch alone, after a first task's consolidation), and
the end-to-end wall and CPU time, compile included, of their comparison at
--comparison_seeds seeds as scripts.compare runs it (--comparison_rounds runs
from cold, each after a round of Avalanche's, the median one reported), with
each method's class-IL ACC, and its wall time rerun with the programs in the
persistent compilation cache; 5 seeds vmapped vs 5 separate runs; peak memory
at 2 and 5 tasks; (3) the same workload in Avalanche when --torch_python (or this
interpreter) has torch and avalanche-lib, one seed of every strategy between
two of our steady-state turns (so both sides of a ratio are timed in the same
minutes): its steady-state steps/s (epochs after each experience's first, over the
experiences after the first, as ours is taken on the second task),
the wall and CPU time of the same comparison and its ACC, and the ratios, with
their spread over those rounds;
on a GPU the PyTorch references run on the same GPU (--peer_device);
(4) our full fine-tuning step of MiniLM (scripts.bench_text_step) and, when
--torch_text_python (or --torch_python, or this interpreter) has torch and transformers, the
PyTorch BertForSequenceClassification step on the same weights, each in
float32 and in bfloat16 mixed precision (ours ``--compute_dtype=bfloat16``,
PyTorch's ``torch.autocast``). Writes bench.json and bench.md in --output, and
bench.png (the ratios to Avalanche against their targets) when Avalanche ran;
``scripts.bench_compare`` sets several reports side by side.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

# On a GPU, JAX takes 75% of its memory at start by default; the bench, its JAX
# children (ER's memory runs, the text step) and PyTorch's references share one
# device, so each allocates as it goes (this process's children inherit it).
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import jax
import numpy as np
from absl import flags, logging

from research import compiled, report, workdirs
from research.bench import measure, peer, runs
from research.bench.markdown import bench_markdown
from scripts import cli

_OUTPUT = flags.DEFINE_string("output", None, "Directory for bench.json and bench.md.")
_EPOCHS = flags.DEFINE_integer("epochs", 50, "Epochs per task.")
_METHODS = flags.DEFINE_list("methods", ["naive", "ewc", "si", "lwf", "er"], "Our methods.")
_SEEDS = flags.DEFINE_integer("seeds", 5, "Seeds for the vmapped vs separate comparison.",
                              lower_bound=1)
_COMPARISON_SEEDS = flags.DEFINE_integer("comparison_seeds", 3,
                                         "Seeds per method in the end-to-end comparison.",
                                         lower_bound=1)
_COMPARISON_ROUNDS = flags.DEFINE_integer(
    "comparison_rounds", 3, "Runs from cold of the end-to-end comparison, each after a round "
    "of Avalanche's; the median one is reported (a CPU's speed drifts from run to run).",
    lower_bound=1)
_TORCH_THREADS = flags.DEFINE_integer("torch_threads", 0,
                                      "torch.set_num_threads for Avalanche (0: torch's default).")
_TORCH_PYTHON = flags.DEFINE_string(
    "torch_python", None, "Interpreter with torch + avalanche-lib (default: this one if it "
    "has them; otherwise the Avalanche part is skipped with the reason).")
_AVALANCHE = flags.DEFINE_list("avalanche", ["naive", "ewc", "si", "lwf", "replay"],
                               "Avalanche strategies (replay is compared with our er).")
_TEXT_STEP = flags.DEFINE_bool("text_step", True, "Include scripts.bench_text_step's figures.")
_PEER_DEVICE = flags.DEFINE_enum(
    "peer_device", "auto", ["auto", "cpu", "cuda"], "Where the PyTorch references run; auto: "
    "the device JAX computes on (cuda on a GPU), none on a TPU, so each ratio compares "
    "the same hardware.")
_TORCH_TEXT_PYTHON = flags.DEFINE_string(
    "torch_text_python", None, "Interpreter with torch + transformers for the text step's "
    "PyTorch reference (default: --torch_python, else this one if it has them).")
flags.mark_flag_as_required("output")
flags.register_validator("methods", lambda names: bool(measure.available_methods(names)[0]),
                         "--methods must name at least one of our algorithms (a file in "
                         "algorithms/): the comparison and the steady turns run them")
flags.register_validator("epochs", lambda epochs: epochs >= 2,
                         "--epochs must be at least 2: steady rates leave out each task's "
                         "first epoch, its warm-up")
for _interpreter in ("torch_python", "torch_text_python"):  # checked before minutes of work
    flags.register_validator(
        _interpreter, lambda path: path is None or shutil.which(path) is not None,
        f"--{_interpreter} must name a Python interpreter that exists and can be run")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_STARTED = time.perf_counter()


def _progress(message: str) -> None:
    """A line on stderr as each stage starts: the bench runs for minutes."""
    print(f"[bench {time.perf_counter() - _STARTED:5.0f} s] {message}", file=sys.stderr,
          flush=True)


def _cpu_model() -> str:
    """The processor's name (runs on different machines differ most by it)."""
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    except OSError:
        names = []
    return names[0] if names else platform.processor() or "unknown"


def _machine() -> dict:
    return {"platform": platform.platform(), "cpu_model": _cpu_model(),
            "cpu_count": os.cpu_count(),
            "backend": jax.default_backend(),
            "devices": [str(d) for d in jax.devices()], "jax": jax.__version__,
            "load_average": os.getloadavg()}


def _step_efficiency(peak: float, naive_turns: list[float], handwritten_turns: list[float]
                     ) -> dict:
    """Naive's step against the machine's matmul rate and against the hand-written loop,
    whose turns ran beside naive's (turn i of each in the same minute)."""
    step = measure.mlp_step_flops(64, (400, 400), 10, 32)
    ours, handwritten = float(np.median(naive_turns)), float(np.median(handwritten_turns))
    by_turn = [a / b for a, b in zip(naive_turns, handwritten_turns, strict=True)]
    return {"mlp_step_flops": step,
            "mlp_step_flops_per_second": step * ours,
            "fraction_of_matmul": step * ours / peak,
            "handwritten_steps_per_second": handwritten, "handwritten_turns": handwritten_turns,
            "handwritten_fraction_of_matmul": step * handwritten / peak,
            "engine_over_handwritten": ours / handwritten,
            "engine_over_handwritten_by_turn": [min(by_turn), max(by_turn)]}


def _ours(methods: list[str], epochs: int, seeds: int, rounds: int, avalanche: _Avalanche
          ) -> tuple[dict, dict, list[float]]:
    """Per method: steady-state steps/s (the peer's rounds run between its turns) and its
    figures in a comparison of every method at ``seeds`` seeds; that comparison's wall
    and CPU seconds end to end (compile included), from cold (``rounds`` runs, the first
    ones each right after a round of the peer's, the median one reported) and rerun with
    its programs in the persistent compilation cache (as a rerun or resume of
    scripts.compare finds them in its workdir); and the hand-written loop's turns, each
    taken right after naive's."""
    present, missing = measure.available_methods(methods)
    _progress(f"building the steady-state turns of {', '.join(present)}")
    workloads = {name: measure.engine_turn(measure.bench_config(name, epochs))
                 for name in present}
    if "naive" in workloads:  # the hand-written loop's turns follow naive's
        workloads = dict(naive=workloads.pop("naive"), handwritten=measure.handwritten_loop(),
                         **workloads)

    config = measure.bench_config(present[0], epochs, seeds=seeds)
    cold: list[tuple[dict, dict]] = []
    caches = tempfile.TemporaryDirectory()

    def cache_of(run: int) -> str:
        """Where cold run ``run`` keeps its compiled programs."""
        return os.path.join(caches.name, str(run))

    def comparison_from_cold() -> None:
        compiled.forget_compiled()  # it compiles from cold, sharing what its methods share
        _progress(f"the comparison, {seeds} seeds, from cold ({len(cold) + 1} of {rounds})")
        with measure.persistent_compilation_cache(cache_of(len(cold))):
            cold.append(measure.run_comparison(config, present))

    def between_turns(turn: int) -> None:
        _progress(f"steady-state round {turn + 1} done")
        avalanche.round(turn)
        if turn < rounds:
            comparison_from_cold()

    with caches:
        turns = measure.steady_rates_by_turn(workloads, between_turns=between_turns)
        while len(cold) < rounds:
            comparison_from_cold()
        figures, median = measure.median_run(cold)
        whole = {**median, "cold_runs": [run for _, run in cold]}
        compiled.forget_compiled()
        _progress("the comparison again, its programs in the compilation cache")
        with measure.persistent_compilation_cache(cache_of(rounds - 1)):  # the last cold run's
            whole["rerun"] = measure.run_comparison(config, present)[1]
    out: dict = {"missing": missing}
    for name in present:
        out[name] = {"steady_steps_per_second": float(np.median(turns[name])),
                     "steady_turns": turns[name], **figures[name]}
        print(name, json.dumps(out[name]), flush=True)
    return out, whole, turns.get("handwritten", [])


def _seeds(seeds: int, epochs: int) -> dict:
    _progress(f"{seeds} seeds vmapped, then as separate runs")
    compiled.forget_compiled()
    vmapped = measure.run_ours(measure.bench_config("naive", epochs, seeds=seeds))
    separate = []
    for seed in range(seeds):  # as separate processes would: each compiles from cold
        compiled.forget_compiled()
        separate.append(measure.run_ours(measure.bench_config("naive", epochs, seed=seed)))
    total = sum(r["wall_seconds"] for r in separate)
    return {"vmapped": vmapped, "separate_wall_seconds": total,
            "separate_train_seconds": sum(r["train_seconds"] for r in separate),
            "speedup_wall": total / vmapped["wall_seconds"]}


def _memory_growth(epochs: int) -> dict:
    """Peak host memory and training-state size of an ER run (its buffer is the state
    that could grow) at 2 vs 5 tasks, each in a process of its own; a run that fails is
    reported with its error (the bench's other figures are still written)."""
    _progress("ER's memory at 2 and 5 tasks")
    peaks, states = {}, {}
    for tasks in (2, 5):
        with tempfile.TemporaryDirectory() as workdir:
            proc = subprocess.run([sys.executable, "-m", "scripts.run",
                                   "--config=research/configs/split_digits.py",
                                   "--config.algorithm=er", f"--config.num_tasks={tasks}",
                                   f"--config.num_epochs={epochs}", "--config.progress=False",
                                   "--config.plots=False", f"--workdir={workdir}"],
                                  cwd=ROOT, capture_output=True, text=True)
            if proc.returncode:
                return {"skipped": f"scripts.run of ER at {tasks} tasks failed: "
                                   f"{_last_error(proc)}"}
            with open(os.path.join(workdir, "results.json")) as f:
                results = json.load(f)
            peaks[tasks], states[tasks] = results["peak_memory_bytes"], results["state_bytes"]
    return {"er_2_tasks": peaks[2], "er_5_tasks": peaks[5],
            "host_growth_ratio": peaks[5]["host"] / peaks[2]["host"],
            "state_bytes_2_tasks": states[2], "state_bytes_5_tasks": states[5]}


def _torch_python() -> tuple[str | None, str]:
    if _TORCH_PYTHON.value:
        return _TORCH_PYTHON.value, ""
    if all(importlib.util.find_spec(m) for m in ("torch", "avalanche")):
        return sys.executable, ""
    return None, ("torch/avalanche-lib are not installed in this interpreter; install the "
                  "'bench' extra or pass --torch_python")


class _Avalanche:
    """The same workload in Avalanche, one seed of every strategy per round. The rounds run
    between our steady-state turns (``round``), so both sides of each ratio are timed in
    the same minutes of a machine whose speed drifts."""

    def __init__(self, epochs: int, strategies: list[str], seeds: int, threads: int,
                 device: tuple[str | None, str]):
        self.device = device[0]
        self.python, self.skipped = (None, device[1]) if self.device is None else _torch_python()
        self.args = [os.path.join(ROOT, "research", "bench", "avalanche_workload.py"),
                     f"--epochs={epochs}", f"--threads={threads}",
                     f"--strategies={','.join(strategies)}", "--seeds=1",
                     *peer.torch_device_args(self.device or "cpu")]
        self.strategies, self.seeds = strategies, seeds
        self.done: set[int] = set()
        self.rows: list[dict] = []
        self.errors: list[str] = []
        self.process_wall_seconds = 0.0

    def round(self, seed: int) -> None:
        """Every strategy's run of ``seed`` (nothing when skipped, done, or past the seeds)."""
        if self.python is None or seed in self.done or seed >= self.seeds:
            return
        self.done.add(seed)
        _progress(f"Avalanche, seed {seed} of every strategy")
        start = time.perf_counter()
        proc = subprocess.run([self.python, *self.args, f"--first_seed={seed}"],
                              capture_output=True, text=True, cwd=tempfile.gettempdir())
        self.process_wall_seconds += time.perf_counter() - start
        self.rows += [json.loads(line) for line in proc.stdout.splitlines()
                      if line.startswith("{")]
        if proc.returncode:
            self.errors.append(f"{self.python} failed: {_last_error(proc)}")

    def summary(self) -> dict:
        """Per strategy: its seeds' runs, with the wall time summed and the figures averaged
        (seeds no round has run yet run now)."""
        if self.python is None:
            return {"skipped": self.skipped}
        for seed in range(self.seeds):
            self.round(seed)
        out: dict = {"process_wall_seconds": self.process_wall_seconds,
                     "device": self.rows[0]["device"] if self.rows else self.device}
        for name in self.strategies:
            mine = [r for r in self.rows if r["strategy"] == name]
            if mine:
                mean = lambda key, runs=mine: sum(r[key] for r in runs) / len(runs)
                out[name] = {"runs": mine, "wall_seconds": sum(r["wall_seconds"] for r in mine),
                             **{k: mean(k) for k in ("steps_per_second",
                                                     "steady_steps_per_second", peer.PEER_RATE,
                                                     "class_il_ACC")}}
        if self.errors:
            out["error"] = self.errors[0]
        return out


def _last_error(proc: subprocess.CompletedProcess) -> str:
    """The last line a failed child wrote to stderr (its exception, usually)."""
    return " ".join(proc.stderr.strip().splitlines()[-1:])


TEXT_STEP_DTYPES = ("float32", "bfloat16")


def _torch_text_python() -> tuple[str | None, str]:
    """The interpreter of the text step's PyTorch reference, as --torch_python's is found:
    --torch_text_python, else --torch_python, else this one if it has torch and
    transformers; or None and why."""
    given = _TORCH_TEXT_PYTHON.value or _TORCH_PYTHON.value
    if given:
        return given, ""
    if all(importlib.util.find_spec(m) for m in ("torch", "transformers")):
        return sys.executable, ""
    return None, ("torch/transformers are not installed in this interpreter; install the "
                  "'bench' and 'text' extras or pass --torch_text_python")


def _text_step(torch_python: tuple[str | None, str], dtype: str,
               device: tuple[str | None, str]) -> dict:
    """Our full fine-tuning step (scripts.bench_text_step) computing in ``dtype`` and, when
    ``torch_python`` (``_torch_text_python``) has torch and transformers, the
    BertForSequenceClassification step on the same weights on ``device`` (autocast to
    bfloat16 for our bfloat16)."""
    _progress(f"the text step in {dtype}")
    proc = subprocess.run([sys.executable, "-m", "scripts.bench_text_step",
                           f"--compute_dtype={dtype}"], cwd=ROOT, capture_output=True, text=True)
    if proc.returncode:
        return {"skipped": "bench_text_step failed: " + _last_error(proc)}
    lines = proc.stdout.strip().splitlines()
    out: dict = {"output": lines[:-1], "ours": json.loads(lines[-1])}
    if torch_python[0] is None or device[0] is None:
        out["torch"] = {"skipped": device[1] or torch_python[1]}
        return out
    from models.text.load import MINILM, resolve_model_dir

    script = os.path.join(ROOT, "research", "bench", "torch_text_step.py")
    autocast = ["--bfloat16"] if dtype == "bfloat16" else []
    ref = subprocess.run([torch_python[0], script, f"--model_dir={resolve_model_dir(MINILM)}",
                          f"--matmul_size={measure.matmul_size()}", *autocast,
                          *peer.torch_device_args(device[0])],
                         capture_output=True, text=True, cwd=tempfile.gettempdir())
    if ref.returncode:
        out["torch"] = {"skipped": "torch_text_step failed: " + _last_error(ref)}
        return out
    out["torch"] = json.loads(ref.stdout.strip().splitlines()[-1])
    torch_step = out["torch"]["step_seconds_median"]
    out["speedup"] = torch_step / out["ours"]["step_seconds_median"]
    out["speedup_one_step_per_call"] = (
        torch_step / out["ours"]["one_step_per_call"]["step_seconds_median"])
    return out


def main(argv: list[str]) -> None:
    cli.no_arguments(argv)
    logging.set_verbosity(logging.WARNING)  # orbax logs every checkpoint save at INFO
    jax.config.update("jax_enable_compilation_cache", False)  # every compile from cold
    cli.run_guarded(lambda: workdirs.writable_directory(_OUTPUT.value, "--output folder"))
    start = time.perf_counter()
    result: dict = {"machine": _machine(), "xla_flags": os.environ.get("XLA_FLAGS", ""),
                    "config": {"epochs": _EPOCHS.value, "seeds": _SEEDS.value,
                               "comparison_seeds": _COMPARISON_SEEDS.value,
                               "comparison_rounds": _COMPARISON_ROUNDS.value,
                               "torch_threads": _TORCH_THREADS.value,
                               "model": "mlp 2x400", "batch_size": 32, "optimizer": "adam 1e-3"}}
    backend = jax.default_backend()
    device = peer.peer_device(backend, _PEER_DEVICE.value)
    _progress("the machine's matmul rate")
    matmul = {"matmul_flops_per_second": measure.matmul_flops(),
              "matmul_size": measure.matmul_size()}
    avalanche = _Avalanche(_EPOCHS.value, _AVALANCHE.value, _COMPARISON_SEEDS.value,
                           _TORCH_THREADS.value, device)
    result["ours"], result["comparison"], handwritten_turns = _ours(
        _METHODS.value, _EPOCHS.value, _COMPARISON_SEEDS.value, _COMPARISON_ROUNDS.value,
        avalanche)
    result["step_efficiency"] = {**matmul, **(
        _step_efficiency(matmul["matmul_flops_per_second"],
                         result["ours"]["naive"]["steady_turns"], handwritten_turns)
        if handwritten_turns else {"skipped": "naive is not among --methods"})}
    result["seeds"] = _seeds(_SEEDS.value, _EPOCHS.value)
    result["memory"] = _memory_growth(min(_EPOCHS.value, 5))
    result["avalanche"] = avalanche.summary()
    result["ratios"] = peer.ratios(result["ours"], result["avalanche"], result["comparison"],
                                   backend)
    result["text_step"] = {
        dtype: (_text_step(_torch_text_python(), dtype, device)
                if _TEXT_STEP.value else {"skipped": "--notext_step"})
        for dtype in TEXT_STEP_DTYPES}
    result["bench_seconds"] = time.perf_counter() - start
    report.write_json(os.path.join(_OUTPUT.value, "bench.json"), result)
    markdown = bench_markdown(result)
    report.atomic_write(os.path.join(_OUTPUT.value, "bench.md"), markdown)
    runs.ratios_figure([(os.path.basename(os.path.abspath(_OUTPUT.value)), result)],
                       os.path.join(_OUTPUT.value, "bench.png"))
    print(markdown)


if __name__ == "__main__":
    cli.main(main)
