"""Running scripts.run as a real subprocess, for kill and CLI tests."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
SMALL = ["--config=research/configs/split_digits.py", "--config.num_epochs=8",
         "--config.hidden=(64,)", "--config.checkpoint_every_epochs=1",
         "--config.progress=False", "--config.plots=False"]


def run_cmd(workdir, *extra: str) -> list[str]:
    return [sys.executable, "-m", "scripts.run", *SMALL, f"--workdir={workdir}", *extra]


def env() -> dict:
    cache = os.path.join(os.environ.get("TMPDIR", "/tmp"), "continual_jax_test_xla_cache")
    return {**os.environ, "JAX_COMPILATION_CACHE_DIR": cache,
            "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0.5", "PYTHONHASHSEED": "0"}


def run(cmd: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, env=env(), capture_output=True, text=True,
                          timeout=timeout)


def figures(workdir) -> dict:
    """What must be identical between an interrupted and an uninterrupted run."""
    results = json.loads((pathlib.Path(workdir) / "results.json").read_text())
    return {k: results[k]["accuracy_matrix"] for k in ("class_il", "task_il")} | {
        "final_loss": results["final_loss"], "steps": results["steps"]}


def corrupt(step_dir: pathlib.Path) -> None:
    """Truncates every file of a checkpoint step to half its length."""
    for path in step_dir.rglob("*"):
        if path.is_file() and path.stat().st_size > 0:
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def steps(workdir: pathlib.Path) -> list[int]:
    """The checkpoint steps in a workdir, oldest first."""
    return sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
