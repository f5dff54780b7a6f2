"""``train_and_evaluate(config, workdir)``: one continual run (all its seeds), resumable.

The host loop walks tasks and blocks of epochs; each block is one call of the
engine's compiled, run-vmapped scan, dispatched without waiting. The host reads
device values only when it checkpoints or finishes a task, and it checks them for
NaN/inf then, before anything is saved, so a bad step never reaches disk.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

import algorithms
import models
from research import (
    checkpoint,
    config_check,
    distributed,
    host_memory,
    host_stream,
    metrics,
    optim,
    report,
    workdirs,
)
from research import engine as engine_lib
from research.curriculum.pacer import Pacer
from research.data import load as data_load
from research.data.stream import Stream


class NonFiniteError(FloatingPointError):
    """A loss term became NaN or infinite."""


def _tree_index(tree, index):
    return jax.tree_util.tree_map(lambda a: a[index], tree)


def _stack_rows(arrays: list[np.ndarray]) -> np.ndarray:
    """``[T, N_r, ...]`` arrays stacked ``[R, T, N, ...]``, zero rows padding each to the
    largest ``N_r``: a stream generated per seed (MNIST-1D) has as many rows as its seed
    drew, and the row counts (``n_train``, ``n_test``) mask the padding."""
    rows = max(a.shape[1] for a in arrays)
    return np.stack([np.pad(a, [(0, 0), (0, rows - a.shape[1])] + [(0, 0)] * (a.ndim - 2))
                     for a in arrays])


def _stack_runs(streams: list[Stream], field: str):
    return jax.tree_util.tree_map(lambda *a: _stack_rows(list(a)),
                                  *[getattr(s, field) for s in streams])


def stage_tasks(train_on: str, num_tasks: int) -> list[int]:
    """The task index each training stage ends on (joint: one stage, all tasks); a run
    whose checkpoint says stage ``len(...)`` has finished."""
    return [num_tasks - 1] if train_on == "all" else list(range(num_tasks))


class RunData:
    """The stream of every run, stacked on a leading run axis, and the pools built from it."""

    def __init__(self, streams: list[Stream], scenario: str, train_on: str, eval_batch: int):
        first = streams[0]
        self.num_tasks, self.num_classes = first.num_tasks, first.num_classes
        self.task_classes = np.stack([s.task_classes for s in streams])  # [R, T, C]
        self.train_x = _stack_runs(streams, "train_x")  # [R, T, N, ...]
        self.train_y = _stack_runs(streams, "train_y")
        self.n_train = np.stack([s.n_train for s in streams])
        self.scenario, self.train_on = scenario, train_on
        pad = lambda a: engine_lib.pad_to_multiple(a, 2, eval_batch)
        test_x = jax.tree_util.tree_map(pad, _stack_runs(streams, "test_x"))
        test_y = pad(_stack_runs(streams, "test_y"))
        size = test_y.shape[2]
        valid = np.arange(size)[None, None] < np.stack([s.n_test for s in streams])[..., None]
        self.test = {"x": test_x, "y": test_y, "valid": valid}

    @property
    def stages(self) -> list[int]:
        return stage_tasks(self.train_on, self.num_tasks)

    def steps_per_epoch(self, batch_size: int) -> int:
        rows = self.n_train.sum(1).max() if self.train_on == "all" else self.n_train.max()
        return max(1, math.ceil(int(rows) / batch_size))

    def _logit_mask(self, task_ids: np.ndarray) -> np.ndarray:
        """[R, M, C]: the classes each example's loss may see."""
        runs = np.arange(task_ids.shape[0])[:, None]
        if self.scenario == "task":
            return self.task_classes[runs, task_ids]
        return np.ones(task_ids.shape + (self.num_classes,), bool)

    def pool(self, stage_task: int, current_only: bool) -> dict:
        """The rows a stage trains on: the current task, or every task up to it."""
        runs, tasks, size = self.train_y.shape
        real = np.arange(size)[None, None] < self.n_train[..., None]  # [R, T, N]
        task_ids = np.broadcast_to(np.arange(tasks)[None, :, None], (runs, tasks, size))
        if current_only:
            pick = lambda a: a[:, stage_task]
            valid = pick(real)
        else:
            pick = lambda a: a.reshape((runs, tasks * size) + a.shape[3:])
            valid = pick(real & (task_ids <= stage_task))
        task = pick(task_ids).astype(np.int32)
        return {"x": jax.tree_util.tree_map(pick, self.train_x), "y": pick(self.train_y),
                "task": task, "valid": valid, "logit_mask": self._logit_mask(task)}

    def train_pool(self, stage_task: int) -> dict:
        return self.pool(stage_task, current_only=self.train_on == "task")


def run_identity(config: ml_collections.ConfigDict) -> dict:
    """The config as it defines this run: other methods' hyper-parameters left out."""
    own = set(algorithms.load(config.algorithm).HPARAMS)
    identity = json.loads(config.to_json())
    for group in ("hp", "sweep"):
        identity[group] = {k: v for k, v in identity[group].items() if k in own}
    return identity


def _check_finite(rows: list[dict]) -> None:
    """Raises NonFiniteError for the first row with a NaN/inf, naming the culprit terms."""
    for row in rows:
        bad = [k for k, v in row.items() if isinstance(v, float) and not math.isfinite(v)]
        if bad:
            terms = [k for k in bad if k != "loss"] or bad  # the penalty, not just the total
            raise NonFiniteError(
                f"non-finite {', '.join(terms)} in task {row['task']}, epoch {row['epoch']} "
                f"(run {row['run']}, seed {row['seed']}); the last good checkpoint is kept. "
                "Lower the learning rate, set config.clip_norm, or config.skip_nonfinite=True")


def _null_skipped_epochs(rows: list[dict], steps_per_epoch: int) -> None:
    """An epoch whose every step ``config.skip_nonfinite`` skipped has no loss: its terms
    become None (null in metrics.jsonl, not a mean of nothing read as 0), with a warning."""
    empty = [row for row in rows if row.get("skipped_steps", 0) >= steps_per_epoch]
    for row in empty:
        row.update({k: None for k in row if k not in _ROW_KEYS})
    if empty:
        first = empty[0]
        logging.warning("%d epoch(s) had every step non-finite and skipped (config."
                        "skip_nonfinite), first task %d, epoch %d, run %d: the run did not "
                        "train there; their loss is null in metrics.jsonl", len(empty),
                        first["task"], first["epoch"], first["run"])


_ROW_KEYS = ("task", "epoch", "run", "seed", "skipped_steps")  # a metrics row's non-loss keys


class _TrainClock:
    """Wall time of training: compile time and checkpoint writes are taken out."""

    def __init__(self, already: float, eng: engine_lib.Engine):
        self._already, self._eng = already, eng
        self._start = time.perf_counter()
        self._compile_start = eng.compile_seconds
        self._paused = 0.0

    def seconds(self) -> float:
        elapsed = time.perf_counter() - self._start - self._paused
        return self._already + elapsed - (self._eng.compile_seconds - self._compile_start)

    @contextlib.contextmanager
    def paused(self):
        tic = time.perf_counter()
        try:
            yield
        finally:
            self._paused += time.perf_counter() - tic


class _Progress:
    """A tqdm bar over epochs when enabled; a no-op otherwise."""

    def __init__(self, total: int, initial: int, enabled: bool, desc: str):
        self.bar = None
        if enabled:
            from tqdm import tqdm
            self.bar = tqdm(total=total, initial=initial, desc=desc, unit="epoch",
                            dynamic_ncols=True, leave=False)

    def update(self, postfix: str, epochs: int) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(postfix, refresh=False)
            self.bar.update(epochs)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _peak_memory_bytes() -> dict:
    stats = jax.local_devices()[0].memory_stats() or {}
    return {"device": int(stats.get("peak_bytes_in_use", 0)), "host": host_memory.peak_bytes()}


class Run(NamedTuple):
    """A config made ready to train: data, the compiled engine, and every run's initial state."""

    grid: list[tuple[int, dict]]  # (seed, hyper-parameters) of each vmapped run
    data: RunData
    model_module: Any  # the models/ module (growth reports, pretrained weights)
    eng: engine_lib.Engine
    hp: dict[str, jax.Array]  # the traced hyper-parameters, [runs] each
    state: engine_lib.RunState
    test: dict
    task_classes: jax.Array

    @property
    def seeds(self) -> list[int]:
        return [seed for seed, _ in self.grid]


def epochs_per_call(config: ml_collections.ConfigDict) -> int:
    """Epochs the engine runs per call: all those between two points where the host reads
    results (checkpoints and a task's end), in equal blocks so one program serves them.
    A curriculum picks each epoch's rows and a host stream feeds each epoch's batches,
    so those run one epoch per call."""
    if config.get("curriculum", "") or config.get("stream_chunk_steps", 0):
        return 1
    return math.gcd(min(config.checkpoint_every_epochs, config.num_epochs), config.num_epochs)


def build_run(config: ml_collections.ConfigDict,
              start_from: Callable[[Any], Any] | None = None) -> Run:
    """Loads the stream of every (seed, hyper-parameter) run, builds the engine, inits state,
    and starts compiling the programs training calls next on a background thread.
    ``start_from`` maps the initial parameters (pretrained ones put in) to those the runs
    start from, before any state is built on them (an update starts from its old run's)."""
    config_check.validate(config)
    method = algorithms.load(config.algorithm)
    grid = config_check.run_grid(config)
    seeds = [seed for seed, _ in grid]
    by_seed = {seed: data_load.make_stream(config, seed) for seed in sorted(set(seeds))}
    data = RunData([by_seed[s] for s in seeds], config.scenario, method.make(grid[0][1]).train_on,
                   config.eval_batch_size)
    model_module = models.load(config.model)
    model = model_module.build(config, data.num_classes)
    traced_names = sorted(engine_lib.split_hparams(grid[0][1])[0])
    hp = {k: jnp.asarray([h[k] for _, h in grid], jnp.float32) for k in traced_names}
    eng = engine_lib.Engine(
        model, method, config.hp.to_dict(),
        optim.from_config(config),
        config.batch_size, data.steps_per_epoch(config.batch_size), config.eval_batch_size,
        config.skip_nonfinite, **distributed.engine_options(config),
        epochs_per_call=epochs_per_call(config))
    rngs = jnp.stack([jax.random.PRNGKey(s) for s in seeds])
    sample_x = jax.tree_util.tree_map(lambda a: jnp.asarray(a[0, 0, :1]), data.train_x)
    def starting_params(params: Any) -> Any:
        if hasattr(model_module, "pretrained_params"):
            params = model_module.pretrained_params(config, params)
        return params if start_from is None else start_from(params)

    state = eng.init(rngs, hp, sample_x, starting_params)
    test = jax.tree_util.tree_map(jnp.asarray, data.test)
    task_classes = jnp.asarray(data.task_classes)
    if not config.get("stream_chunk_steps", 0):  # a host-streamed run trains by chunks
        first_pool = eng.placement.place_rows(data.train_pool(data.stages[0]))
        eng.precompile(state, first_pool, test, task_classes, hp, config.reset_optimizer)
    return Run(grid, data, model_module, eng, hp, state, test, task_classes)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       overwrite: bool = False, run: Run | None = None) -> dict:
    """Runs (or resumes) the config's continual stream and writes its reports to workdir.
    ``run``: ``build_run(config)`` when the caller built it already (a comparison builds
    the next method's while one trains)."""
    config_check.validate(config)
    workdirs.prepare(workdir, run_identity(config), overwrite)
    run = run or build_run(config)
    grid, seeds, data, eng, hp, state = run.grid, run.seeds, run.data, run.eng, run.hp, run.state
    test, task_classes = run.test, run.task_classes
    random_init = distributed.fetch(eng.evaluate(state, test, task_classes, hp))

    runs, tasks, epochs = len(grid), data.num_tasks, config.num_epochs
    pacer = Pacer.from_config(config, seeds, data.train_y.shape[2], data.train_on,
                                         eng.apply_fn)  # None: random order over every row
    stream = (host_stream.HostStream(eng, seeds, config.stream_chunk_steps)
              if config.get("stream_chunk_steps", 0) else None)
    with checkpoint.opened(workdir, config.keep_checkpoints) as mngr:
        progress = {"stage": 0, "epoch": 0, "rows": [], "train_seconds": 0.0,
                    "class_il": np.zeros((runs, tasks, tasks)).tolist(),
                    "task_il": np.zeros((runs, tasks, tasks)).tolist()}
        restored = checkpoint.restore_latest(mngr, state)
        if restored is not None:
            state, progress = restored
            if pacer:
                pacer.restore(progress.get("pacer", {}))
        acc = {k: np.asarray(progress[k]) for k in ("class_il", "task_il")}
        routing = progress.get("routing")  # [runs, T, T] for methods with a route hook
        rows: list[dict] = progress["rows"]
        pending: list[tuple[int, int, dict]] = []
        clock = _TrainClock(progress["train_seconds"], eng)

        def flush() -> None:
            """Fetches the epoch metrics dispatched so far (the one host sync) and checks them."""
            fetched = distributed.fetch([m for _, _, m in pending])
            new = []
            for (t, first, _), got in zip(pending, fetched, strict=True):
                got = {k: np.asarray(v).reshape(runs, -1) for k, v in got.items()}  # [R, epochs]
                count = next(iter(got.values())).shape[1]  # the epochs of one call
                new += [{"task": t, "epoch": first + i, "run": r, "seed": seeds[r],
                         **{k: float(v[r, i]) for k, v in got.items()}}
                        for i in range(count) for r in range(runs)]
            _check_finite(new)
            _null_skipped_epochs(new, eng.steps_per_epoch)
            rows.extend(new)
            pending.clear()

        def save(step: int, stage: int, epoch: int) -> None:
            flush()
            with clock.paused():
                checkpoint.save(mngr, step, state, {
                    "stage": stage, "epoch": epoch, "rows": rows, "train_seconds": clock.seconds(),
                    "pacer": pacer.state() if pacer else {},
                    "routing": routing,
                    **{k: v.tolist() for k, v in acc.items()}})

        stages = data.stages
        bar = _progress_bar(config, len(stages) * epochs, progress, runs)
        for stage in range(progress["stage"], len(stages)):
            task = stages[stage]
            host_pool = data.train_pool(task)
            if stream is None:  # a sharded pool goes from the host to its devices, never whole
                placed = pool = eng.placement.place_rows(host_pool)
                if pacer and eng.placement.shard_data:  # the pacer ranks the unpadded rows
                    pool = jax.tree_util.tree_map(jnp.asarray, host_pool)
            else:
                placed = stream.consolidation_pool(host_pool, task)
            start_epoch = progress["epoch"] if stage == progress["stage"] else 0
            if start_epoch == 0 and config.reset_optimizer:
                state = eng.reset_optimizer(state, hp)
            block = eng.epochs_per_call
            for epoch in range(start_epoch, epochs, block):  # checkpoints fall between blocks
                if stream is not None:
                    state, epoch_metrics = stream.epoch(state, host_pool, hp, task, epoch)
                else:
                    paced = (eng.placement.place_rows(pacer.pool(pool, task, epoch, state.params))
                             if pacer else placed)
                    state, epoch_metrics = eng.epochs(state, paced, hp)
                    if pacer:
                        epoch_metrics = {**epoch_metrics, **pacer.metrics()}
                pending.append((task, epoch, epoch_metrics))
                done = epoch + block
                if done < epochs and done % config.checkpoint_every_epochs == 0:
                    save(stage * epochs + done, stage, done)
                bar.update(f"task {task}", block)
            if pacer and pacer.stages is not None:  # threshold pacing's validation rows
                placed = eng.placement.place_rows(pacer.without_held_out(pool, task))
            state = eng.end_task(state, placed, hp)
            result = distributed.fetch(eng.evaluate(state, test, task_classes, hp))
            for key in acc:
                for i in range(tasks) if data.train_on == "all" else [task]:
                    acc[key][:, i, :] = result[key]
            if "routing" in result:
                routing = result["routing"].tolist()
            save((stage + 1) * epochs, stage + 1, 0)
        train_seconds = clock.seconds()
        bar.close()

    results = _results(config, grid, acc, random_init, rows, eng, train_seconds,
                       len(stages) * epochs * (stream or eng).steps_per_epoch)
    results["state_bytes"] = engine_lib.tree_nbytes(state)
    # where it ran: a figure is read beside the devices and hosts that produced it
    results["num_devices"], results["num_processes"] = jax.device_count(), jax.process_count()
    if routing is not None:
        runs_routing = [metrics.routing_summary(r) for r in routing]
        results["routing"] = {
            "routed_right": metrics.mean_std([r["routed_right"] for r in runs_routing]),
            "runs": runs_routing}
    if hasattr(run.model_module, "parameter_growth"):  # growing models report their size
        results["parameters_per_task"] = run.model_module.parameter_growth(
            _tree_index(distributed.fetch(state.params), 0))
    if distributed.is_primary():
        _write_reports(results, rows, workdir, config)
    return results


def _progress_bar(config, total: int, progress: dict, runs: int) -> _Progress:
    done = progress["stage"] * config.num_epochs + progress["epoch"]
    return _Progress(total, done, config.progress, f"{config.algorithm} x{runs}")


def _results(config, grid, acc, random_init, rows, eng, train_seconds, steps) -> dict:
    """results.json: per-run figures and mean ± std for each scenario the run reports."""
    keys = {"class": ("class_il", "task_il"), "task": ("task_il",), "domain": ("class_il",)}
    results: dict = {"config": json.loads(config.to_json())}
    for key in keys[config.scenario]:
        name = "domain_il" if config.scenario == "domain" else key
        runs = []
        for r, (seed, hp) in enumerate(grid):
            figures = metrics.summarize(acc[key][r], random_init[key][r])
            runs.append({"seed": seed, "hp": {k: hp[k] for k in config_check.parse_sweep(config)},
                         **figures})
        summary = metrics.summary_of(runs)
        results[name] = {"summary": summary, "runs": runs,
                         "accuracy_matrix": runs[0]["accuracy_matrix"],
                         **{m: summary[m]["mean"] for m in summary}}
        if config_check.parse_sweep(config):
            results[name]["by_hp"] = metrics.by_hp(runs)
    results.update({
        "train_seconds": train_seconds,
        "compile_seconds": eng.compile_seconds,
        "num_compiles": eng.num_compiles,
        "steps": steps,
        "num_runs": len(grid),
        "num_tasks": int(np.shape(acc["class_il"])[1]),  # the stream's, whatever config says
        "steps_per_second": steps / max(train_seconds, 1e-9),
        "peak_memory_bytes": _peak_memory_bytes(),
        "final_loss": {k: v for k, v in rows[-1].items() if k not in ("run", "seed")}
        if rows else {},
    })
    return results


def _write_reports(results: dict, rows: list[dict], workdir: str, config) -> None:
    report.write_json(os.path.join(workdir, "results.json"), results)
    report.write_jsonl(os.path.join(workdir, "metrics.jsonl"), rows)
    report.atomic_write(os.path.join(workdir, "results.md"), report.run_markdown(results))
    if config.plots:
        report.plot_run(results, workdir)
    if config.tensorboard:
        from research import tensorboard
        tensorboard.write(rows, workdir)
