"""Measurements for scripts.bench: the machine's matmul rate and our runs' speed.

Every figure is measured in the calling process, so the ratios in the report
compare numbers taken on the same machine at the same time.
"""

from __future__ import annotations

import os
import tempfile
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

import algorithms


def matmul_flops(size: int = 2048, repeats: int = 5) -> float:
    """Best-of-repeats float32 FLOP/s of one large jitted matmul (the machine's own peak)."""
    a = jax.random.normal(jax.random.PRNGKey(0), (size, size), jnp.float32)
    b = jax.random.normal(jax.random.PRNGKey(1), (size, size), jnp.float32)
    mm = jax.jit(jnp.matmul)
    mm(a, b).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        mm(a, b).block_until_ready()
        best = min(best, time.perf_counter() - start)
    return 2.0 * size ** 3 / best


def mlp_step_flops(in_dim: int, hidden: tuple[int, ...], classes: int, batch: int) -> float:
    """FLOPs of one train step of an MLP: forward matmuls x3 (backward is two more of each)."""
    dims = (in_dim, *hidden, classes)
    forward = sum(2 * a * b for a, b in zip(dims[:-1], dims[1:], strict=False)) * batch
    return 3.0 * forward


def available_methods(names: list[str]) -> tuple[list[str], list[str]]:
    """(present, missing) among algorithm names: a missing file is skipped with a note."""
    present = [n for n in names if os.path.exists(os.path.join(
        os.path.dirname(algorithms.__file__), f"{n}.py"))]
    return present, [n for n in names if n not in present]


def run_ours(config: ml_collections.ConfigDict) -> dict:
    """train_and_evaluate in a fresh workdir; end-to-end wall time includes compiling."""
    from research import train

    with tempfile.TemporaryDirectory() as workdir:
        start = time.perf_counter()
        results = train.train_and_evaluate(config, workdir)
        wall = time.perf_counter() - start
    figures = {k: results[k] for k in ("steps", "train_seconds", "compile_seconds",
                                       "steps_per_second", "num_runs", "peak_memory_bytes")}
    figures["wall_seconds"] = wall
    for key in ("class_il", "task_il"):
        if key in results:
            figures[f"{key}_ACC"] = results[key]["ACC"]
    return figures


def bench_config(algorithm: str, epochs: int, seeds: int = 1, num_tasks: int = 5,
                 seed: int = 0) -> ml_collections.ConfigDict:
    """Split-Digits, MLP 2x400, batch 32, Adam 1e-3: the workload of the issue's targets."""
    from research.configs import split_digits

    config = split_digits.get_config()
    config.update(algorithm=algorithm, num_epochs=epochs, num_seeds=seeds, seed=seed,
                  num_tasks=num_tasks, progress=False, plots=False,
                  checkpoint_every_epochs=max(epochs, 1))
    return config


def live_device_bytes() -> int:
    return int(sum(np.prod(a.shape) * a.dtype.itemsize for a in jax.live_arrays()))
