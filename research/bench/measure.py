"""Measurements for scripts.bench: the machine's matmul rate and our runs' speed.

Every figure is measured in the calling process, so the ratios in the report
compare numbers taken on the same machine at the same time.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

import algorithms


def matmul_size() -> int:
    """The side of the bench's square matmul: 2048 on a CPU, 8192 on an accelerator,
    whose launch latency would otherwise hide its rate."""
    return 2048 if jax.default_backend() == "cpu" else 8192


def matmul_flops(size: int | None = None, repeats: int = 5) -> float:
    """Best-of-repeats FLOP/s of one large jitted float32 matmul (the machine's own peak, at
    JAX's default precision, as the train step computes: TF32 on recent NVIDIA GPUs)."""
    size = size or matmul_size()
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


def handwritten_loop(hidden: tuple[int, ...] = (400, 400), batch: int = 32,
                     steps: int = 2000) -> Callable[[], float]:
    """A minimal hand-written jitted scan of the same MLP step (plain jnp, Adam 1e-3,
    digits rows), compiled with the engine's optimizer and XLA options: the floor the
    engine is compared with. Returns a turn: ``steps`` steps timed, as steps/s, so it
    can take its turns beside the engine's (``steady_rates_by_turn``)."""
    import optax
    from sklearn.datasets import load_digits

    from research import adam, compiled

    x, y = load_digits(return_X_y=True)
    x, y = jnp.asarray(x / 16.0, jnp.float32), jnp.asarray(y)
    dims = (x.shape[1], *hidden, 10)
    keys = jax.random.split(jax.random.PRNGKey(0), len(dims) - 1)
    params = [(jax.random.normal(k, (a, b)) * np.sqrt(2.0 / a), jnp.zeros(b))
              for k, a, b in zip(keys, dims[:-1], dims[1:], strict=True)]

    def loss(p, xb, yb):
        for i, (w, b) in enumerate(p):
            xb = xb @ w + b
            xb = jax.nn.relu(xb) if i < len(p) - 1 else xb
        return optax.softmax_cross_entropy_with_integer_labels(xb, yb).mean()

    opt = adam.adam(1e-3)  # the optimizer the engine's runs use

    def run(p, s, ids):
        def body(carry, i):
            p, s = carry
            g = jax.grad(loss)(p, x[i], y[i])
            u, s = opt.update(g, s, p)
            return (optax.apply_updates(p, u), s), None
        return jax.lax.scan(body, (p, s), ids)[0]

    ids = jax.random.randint(jax.random.PRNGKey(1), (steps, batch), 0, x.shape[0])
    carry = (params, opt.init(params))
    run = jax.jit(run).lower(*carry, ids).compile(compiled.compiler_options())  # as the engine's
    carry = jax.block_until_ready(run(*carry, ids))  # warm

    def turn() -> float:
        nonlocal carry
        start = time.perf_counter()
        carry = jax.block_until_ready(run(*carry, ids))
        return steps / (time.perf_counter() - start)

    return turn


def mlp_step_flops(in_dim: int, hidden: tuple[int, ...], classes: int, batch: int) -> float:
    """Matmul FLOPs one train step of an MLP computes: each layer's forward product and
    weight gradient, and the input gradient of every layer but the first (the step needs
    no gradient of its data), not the customary 3x forward, which would count that one too."""
    dims = (in_dim, *hidden, classes)
    products = [2 * a * b * batch for a, b in zip(dims[:-1], dims[1:], strict=True)]
    return 3.0 * sum(products) - products[0]


def available_methods(names: list[str]) -> tuple[list[str], list[str]]:
    """(present, missing) among algorithm names: a missing file is skipped with a note."""
    present = [n for n in names if os.path.exists(os.path.join(
        os.path.dirname(algorithms.__file__), f"{n}.py"))]
    return present, [n for n in names if n not in present]


def _figures(results: dict, wall_seconds: float) -> dict:
    figures = {k: results[k] for k in ("steps", "train_seconds", "compile_seconds",
                                       "steps_per_second", "num_runs", "peak_memory_bytes")}
    figures["wall_seconds"] = wall_seconds
    for key in ("class_il", "task_il"):
        if key in results:
            figures[f"{key}_ACC"] = results[key]["ACC"]
    return figures


def run_ours(config: ml_collections.ConfigDict) -> dict:
    """train_and_evaluate in a fresh workdir; end-to-end wall time includes compiling."""
    from research import train

    with tempfile.TemporaryDirectory() as workdir:
        start = time.perf_counter()
        results = train.train_and_evaluate(config, workdir)
        return _figures(results, time.perf_counter() - start)


def run_comparison(config: ml_collections.ConfigDict, methods: list[str]
                   ) -> tuple[dict[str, dict], dict[str, float]]:
    """``compare.compare`` in a fresh workdir, as scripts.compare runs it: each method's
    figures (its wall time from the end of the previous one's) and the whole
    comparison's wall and CPU seconds (every thread's), compiles and reports included."""
    from research import compare

    with tempfile.TemporaryDirectory() as workdir:
        start, cpu_start = time.perf_counter(), time.process_time()
        summary = compare.compare(config, methods, workdir)
        whole = {"wall_seconds": time.perf_counter() - start,
                 "cpu_seconds": time.process_time() - cpu_start}
    return {name: _figures(results, results["wall_seconds"])
            for name, results in summary["methods"].items()}, whole


@contextlib.contextmanager
def persistent_compilation_cache(directory: str) -> Iterator[None]:
    """JAX's persistent compilation cache in ``directory``, keeping every program as the
    scripts' workdir cache does (scripts.cli.cache_compiles_in), then as it was before."""
    from jax.experimental.compilation_cache import compilation_cache

    wanted = {"jax_enable_compilation_cache": True, "jax_compilation_cache_dir": directory,
              "jax_persistent_cache_min_compile_time_secs": 0.0}
    before = {name: getattr(jax.config, name) for name in wanted}
    for name, value in wanted.items():
        jax.config.update(name, value)
    compilation_cache.reset_cache()  # the next compile opens the cache here
    try:
        yield
    finally:
        for name, value in before.items():
            jax.config.update(name, value)
        compilation_cache.reset_cache()


def engine_turn(config: ml_collections.ConfigDict, epochs: int = 250) -> Callable[[], float]:
    """A turn of the config's compiled epochs alone, after a first task's consolidation
    (penalties, Fisher and buffers live), on its second task: ``epochs`` epochs (2000
    steps on Split-Digits) in the blocks of epochs per call its training runs
    (``train.epochs_per_call``), timed as steps/s; compile and end-of-task work left out."""
    from research import train

    run = train.build_run(config)
    pool = lambda task: jax.tree_util.tree_map(jnp.asarray, run.data.train_pool(task))
    first, second = pool(0), pool(1)
    state, _ = run.eng.epochs(run.state, first, run.hp)
    state = run.eng.end_task(state, first, run.hp)
    state = jax.block_until_ready(run.eng.epochs(state, second, run.hp))[0]  # warm
    calls = max(epochs // run.eng.epochs_per_call, 1)
    steps = calls * run.eng.epochs_per_call * run.eng.steps_per_epoch

    def turn() -> float:
        nonlocal state
        start = time.perf_counter()
        for _ in range(calls):
            state, metrics = run.eng.epochs(state, second, run.hp)
        state, _ = jax.block_until_ready((state, metrics))
        return steps / (time.perf_counter() - start)

    return turn


def steady_rates_by_turn(workloads: dict[str, Callable[[], float]], repeats: int = 5,
                         between_turns: Callable[[int], None] | None = None
                         ) -> dict[str, list[float]]:
    """The rate of every turn of each workload (``engine_turn``, ``handwritten_loop``),
    in order: the workloads take turns ``repeats`` times, so a slow moment of a shared
    machine does not fall on one alone (a workload's typical rate is its median turn,
    as Avalanche's steady rate is its mean over a whole run, not the best of several).
    ``between_turns(i)`` runs after turn i (the peer library's runs, so that both sides'
    figures come from the same minutes of a machine whose speed drifts)."""
    turns: dict[str, list[float]] = {name: [] for name in workloads}
    for turn in range(repeats):
        for name, workload in workloads.items():
            turns[name].append(workload())
        if between_turns is not None:
            between_turns(turn)
    return turns


def round_ratios(turns: list[float], peer_runs: list[dict], rate: str) -> list[float]:
    """Our turn i's rate over the peer's run of seed i (its figure ``rate``), which
    ``between_turns(i)`` ran right after it: the ratio in each stretch of minutes, whose
    spread shows the machine's drift."""
    return [turns[r["seed"]] / r[rate] for r in peer_runs if r["seed"] < len(turns)]


def median_run(runs: list[tuple[dict, dict]]) -> tuple[dict, dict]:
    """The ``run_comparison`` of median wall time among ``runs`` (of an even number, the
    slower of the middle two)."""
    return sorted(runs, key=lambda run: run[1]["wall_seconds"])[len(runs) // 2]


def bench_config(algorithm: str, epochs: int, seeds: int = 1, num_tasks: int = 5,
                 seed: int = 0) -> ml_collections.ConfigDict:
    """Split-Digits, MLP 2x400, batch 32, Adam 1e-3: the workload of the issue's targets."""
    from research.configs import split_digits

    config = split_digits.get_config()
    config.update(algorithm=algorithm, num_epochs=epochs, num_seeds=seeds, seed=seed,
                  num_tasks=num_tasks, progress=False, plots=False,
                  checkpoint_every_epochs=max(epochs, 1))
    return config
