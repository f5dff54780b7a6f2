"""scripts.bench as a user runs it: bad flags are refused before minutes of measuring, the
PyTorch references find their interpreter (each in a process of its own: the command's
flags would clash with other scripts' in this one), and bench.md says what was measured."""

import json
import subprocess
import sys

import pytest

from research.bench.markdown import bench_markdown


@pytest.mark.parametrize("flag, value, says", [
    ("epochs", "1", "--epochs must be at least 2"),
    ("comparison_rounds", "0", "--comparison_rounds=0: 0 is not a positive integer"),
    ("seeds", "0", "--seeds=0: 0 is not a positive integer"),
    ("comparison_seeds", "0", "--comparison_seeds=0: 0 is not a positive integer"),
    ("methods", "nosuch,nor_this", "--methods must name at least one of our algorithms"),
    ("torch_python", "/nowhere/python", "--torch_python must name a Python interpreter"),
    ("torch_text_python", "README.md", "--torch_text_python must name a Python interpreter")])
def test_bench_refuses_bad_flags_before_it_starts(tmp_path, flag, value, says):
    done = subprocess.run([sys.executable, "-m", "scripts.bench", f"--output={tmp_path}",
                           f"--{flag}={value}"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and says in done.stderr
    assert not list(tmp_path.iterdir())  # nothing measured, nothing written


def test_bench_refuses_an_output_it_could_not_write_in_one_line(tmp_path):
    (tmp_path / "a_file").write_text("")
    output = tmp_path / "a_file" / "bench"
    done = subprocess.run([sys.executable, "-m", "scripts.bench", f"--output={output}"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: cannot create --output folder '{output}': Not a directory"]



_TEXT_REFERENCE = """
import importlib.util, json, sys
from absl import flags
from scripts import bench
flags.FLAGS(["bench", "--output=unused", *sys.argv[2:]])
found = importlib.util.find_spec  # torch and transformers installed here, or torch not
importlib.util.find_spec = lambda name, *a: (
    (object() if sys.argv[1] == "installed" else None) if name in ("torch", "transformers")
    else found(name, *a))
print(json.dumps(bench._torch_text_python()))
"""


def _text_reference(here: str, *flags: str) -> list:
    done = subprocess.run([sys.executable, "-c", _TEXT_REFERENCE, here, *flags],
                          capture_output=True, text=True, timeout=60, check=True)
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.parametrize("here, flags, expected", [
    ("installed", [], sys.executable),  # as --torch_python's default: this interpreter
    ("installed", ["--torch_python=python3"], "python3"),
    ("installed", ["--torch_python=python3", "--torch_text_python=sh"], "sh"),
    ("absent", ["--torch_python=python3"], "python3")])
def test_text_reference_interpreter_is_found_as_avalanches(here, flags, expected):
    assert _text_reference(here, *flags) == [expected, ""]


def test_text_reference_without_torch_says_what_to_install():
    python, why = _text_reference("absent")
    assert python is None and "torch/transformers are not installed" in why


_BENCH_CALL = """
import json, subprocess, sys
from absl import flags
from scripts import bench
flags.FLAGS(["bench", "--output=unused"])
def failed(args, check=False, **kwargs):  # every child fails as one out of memory would
    proc = subprocess.CompletedProcess(args, 1, "", "Traceback ...\\nRuntimeError: out of memory")
    if check:
        proc.check_returncode()
    return proc
bench.subprocess.run = failed
call, argument = sys.argv[1], json.loads(sys.argv[2])
print(json.dumps(getattr(bench, call)(argument)))
"""


def _bench_call(call: str, argument):
    """``scripts.bench.<call>(argument)`` in a process of its own, whose children fail."""
    done = subprocess.run([sys.executable, "-c", _BENCH_CALL, call, json.dumps(argument)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def _report(**parts) -> dict:
    """A bench.json with what its markdown reads (Avalanche and the text step skipped)."""
    ours = {"steady_steps_per_second": 2000.0, "train_seconds": 10.0, "compile_seconds": 2.0,
            "wall_seconds": 14.0, "class_il_ACC": 0.2,
            "peak_memory_bytes": {"host": 2**30, "device": 0}}
    return {"machine": {"platform": "Linux", "cpu_model": "EPYC", "cpu_count": 2,
                        "backend": "cpu", "devices": ["TFRT_CPU_0"], "jax": "0.x",
                        "load_average": [1.0, 1.0, 1.0]},
            "config": {"seeds": 5, "comparison_seeds": 3},
            "step_efficiency": {"matmul_flops_per_second": 2e11, "matmul_size": 2048,
                                "skipped": "naive is not among --methods"},
            "ours": {"missing": [], "ewc": ours},
            "seeds": {"vmapped": {"wall_seconds": 8.0, "steps_per_second": 900.0},
                      "separate_wall_seconds": 30.0, "speedup_wall": 3.75},
            "comparison": {"wall_seconds": 40.0, "cpu_seconds": 60.0,
                           "rerun": {"wall_seconds": 20.0}},
            "avalanche": {"skipped": "no torch"}, "ratios": {"steady": {}},
            "text_step": {"float32": {"skipped": "--notext_step"}}, **parts}


def test_a_failed_memory_run_is_reported_not_raised():
    # It ran after every other figure: its traceback lost them all, the report unwritten.
    memory = _bench_call("_memory_growth", 2)
    assert memory == {"skipped": "scripts.run of ER at 2 tasks failed: "
                                 "RuntimeError: out of memory"}
    markdown = bench_markdown(_report(memory=memory))
    assert f"Peak memory not measured: {memory['skipped']}" in markdown


def test_markdown_gives_the_vmapped_runs_steps_per_second():
    # The issue asks for steps/s and wall time of the vmapped seeds as of each method.
    markdown = bench_markdown(_report(memory={"skipped": "not run"}))
    assert ("5 seeds vmapped: 8.0 s wall, compile included, 900 steps/s (each step trains "
            "all 5), vs 30.0 s for separate runs (3.8x).") in markdown


def test_markdown_gives_the_device_memory_where_the_state_lives_on_one():
    peaks = lambda host, device: {"host": host * 2**20, "device": device * 2**20}
    memory = {"er_2_tasks": peaks(900, 40), "er_5_tasks": peaks(918, 42),
              "host_growth_ratio": 1.02, "state_bytes_2_tasks": 2**20,
              "state_bytes_5_tasks": 2**20}
    gpu = bench_markdown(_report(memory=memory))
    assert ("Peak host memory, ER: 900 MiB at 2 tasks, 918 MiB at 5 (ratio 1.02)" in gpu
            and "Peak device memory: 40 MiB at 2 tasks, 42 MiB at 5 (ratio 1.05)." in gpu)
    memory["er_2_tasks"]["device"] = memory["er_5_tasks"]["device"] = 0  # a CPU reports none
    assert "Peak device memory" not in bench_markdown(_report(memory=memory))
