"""Multi-task training: one jitted step, epochs as ``lax.scan``, baselines and Delta_m.

``train_and_evaluate(config, workdir)`` trains the multi-task model chosen by
``config.arch`` with the weighting ``config.weighting``, plus single-task
baselines, and writes ``workdir/results.json`` and PNG plots. PCGrad and MGDA
combine gradients over the shared parameters only (as LibMTL's
``get_share_params``): every parameter one task owns (``mt.is_task_specific``:
its head, MTAN attention, batch norm, soft-sharing column) gets its own task's
plain gradient (Sener & Koltun, Alg. 2). MGDA uses gradients with
respect to the shared representation (MGDA-UB) where the model exposes one
(hard sharing, MTAN trunk), and shared-parameter gradients otherwise.

Single-task baselines are the soft-sharing model with its penalty off and
equal weights: T independent columns of the same trunk trained side by side,
which under Adam is exactly T separate single-task runs, in one program.

The tasks and their data come from ``research/data/<config.dataset>.py``
(``TASK_NAMES``, ``TASK_OUTPUTS``, ``REGRESSION``, ``METRICS``,
``LOWER_IS_BETTER`` and ``load_splits(config)``): the file system is the registry.

Runs resume: the whole state (``MTState``) and the metric history are an
orbax checkpoint (research/checkpoint.py) every ``checkpoint_every_epochs``
epochs and at the end of each fit, the single-task baselines in their own
``single_task/`` subdirectory; rerunning the same command with the same
workdir continues from the last complete checkpoint and ends with the same
figures. A workdir holding another config is refused unless ``overwrite``.

Seeds: ``config.num_seeds`` models (seeds ``seed``, ``seed + 1``, ...; each
with its own data split, init and batch order) train as one vmapped program;
results.json reports the mean over seeds, its std (``*_std``) and every
seed's figures (``per_seed``). Seed k of a vmapped run matches the single run
with seed k up to float rounding.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from jax.flatten_util import ravel_pytree
from tqdm.auto import tqdm

from algorithms import mtl_weighting as mtw
from models import multitask as mt
from research import adam, checkpoint, report
from research import metrics as metrics_lib
from research import train as train_lib
from research.data.multi_digits import Split

GRAD_METHODS = ("pcgrad", "mgda")
DATASETS = ("multi_digits", "sentiment_multitask")
# Fields that change how a run is carried out, not what it computes.
OPERATIONAL = ("checkpoint_every_epochs", "keep_checkpoints", "progress")


class Tasks(NamedTuple):
    """What the trainer needs to know about a dataset's tasks (from its data module)."""

    names: tuple[str, ...]
    outputs: tuple[int, ...]
    regression: tuple[bool, ...]
    metrics: tuple[str, ...]
    lower_is_better: tuple[bool, ...]


def data_module(config: ml_collections.ConfigDict) -> Any:
    """``research/data/<config.dataset>.py``; ValueError naming the choices."""
    name = config.get("dataset", "multi_digits")
    if name not in DATASETS:
        raise ValueError(f"unknown --config.dataset {name!r}; choices: {', '.join(DATASETS)}")
    return importlib.import_module(f"research.data.{name}")


def tasks_of(config: ml_collections.ConfigDict) -> Tasks:
    mod = data_module(config)
    return Tasks(tuple(mod.TASK_NAMES), tuple(mod.TASK_OUTPUTS), tuple(mod.REGRESSION),
                 tuple(mod.METRICS), tuple(mod.LOWER_IS_BETTER))


class MTState(NamedTuple):
    """Everything a multi-task run carries between steps (one pytree)."""

    params: Any  # {'model': flax params, 'log_vars': [T]}
    batch_stats: Any  # per-task BatchNorm statistics ({} for other archs)
    opt_state: Any
    weights: jax.Array  # [T] loss weights (DWA, GradNorm); ones otherwise
    initial_losses: jax.Array  # [T] L_t(0), GradNorm's reference
    loss_hist: jax.Array  # [2, T] mean training losses of epochs e-1, e-2 (DWA)
    epoch: jax.Array
    rng: jax.Array
    step: jax.Array


def validate(config: ml_collections.ConfigDict) -> None:
    """One-line ValueError for an unknown dataset, arch or weighting, naming the choices."""
    data_module(config)
    for field in ("epochs", "batch_size", "checkpoint_every_epochs", "keep_checkpoints",
                  "num_seeds"):
        value = config.get(field, 1)
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"--config.{field} must be a positive integer, got {value!r}")
    if config.arch not in mt.ARCHS:
        raise ValueError(f"unknown --config.arch {config.arch!r}; choices: {', '.join(mt.ARCHS)}")
    if config.weighting not in mtw.WEIGHTINGS:
        raise ValueError(
            f"unknown --config.weighting {config.weighting!r}; "
            f"choices: {', '.join(mtw.WEIGHTINGS)}"
        )


def _mean(values: jax.Array, valid: jax.Array | None) -> jax.Array:
    """The mean over the rows, or over the valid ones (a padded test split)."""
    if valid is None:
        return jnp.mean(values)
    return jnp.sum(jnp.where(valid, values, 0.0)) / jnp.maximum(jnp.sum(valid), 1)


def task_losses(
    outputs: Sequence[jax.Array], y: jax.Array, regression: Sequence[bool],
    valid: jax.Array | None = None,
) -> jax.Array:
    """Per-task losses ``[T]``: cross-entropy for classification tasks, MSE for regression."""
    losses = []
    for t, (out, is_regression) in enumerate(zip(outputs, regression, strict=True)):
        if is_regression:
            losses.append(_mean(jnp.square(out[:, 0] - y[:, t]), valid))
        else:
            labels = y[:, t].astype(jnp.int32)
            losses.append(_mean(optax.softmax_cross_entropy_with_integer_labels(out, labels),
                                valid))
    return jnp.stack(losses)


def task_metrics(
    outputs: Sequence[jax.Array], y: jax.Array, regression: Sequence[bool],
    valid: jax.Array | None = None,
) -> jax.Array:
    """Per-task metrics ``[T]``: accuracy for classification, MAE for regression."""
    values = []
    for t, (out, is_regression) in enumerate(zip(outputs, regression, strict=True)):
        if is_regression:
            values.append(_mean(jnp.abs(out[:, 0] - y[:, t]), valid))
        else:
            values.append(_mean(jnp.argmax(out, -1) == y[:, t].astype(jnp.int32), valid))
    return jnp.stack(values)


def delta_m(
    multi: Sequence[float], single: Sequence[float], lower_is_better: Sequence[bool]
) -> float:
    """LibMTL's Delta_m: mean_t (-1)^{l_t} (M_mt,t - M_st,t) / M_st,t * 100."""
    terms = [
        (-1.0 if low else 1.0) * (m - s) / s * 100.0
        for m, s, low in zip(multi, single, lower_is_better, strict=True)
    ]
    return float(np.mean(terms))


def with_aux(out: tuple[jax.Array, Any]) -> tuple[jax.Array, tuple[jax.Array, Any]]:
    """``(losses, stats)`` as ``jacrev(has_aux=True)`` wants it: the losses also kept as aux."""
    return out[0], out


class Trainer:
    """The jitted pieces of one run: ``init``, ``epoch`` (a scan of steps) and ``evaluate``."""

    def __init__(self, config: ml_collections.ConfigDict, num_train: int):
        validate(config)
        self.config = config
        self.tasks = tasks_of(config)
        self.num_tasks = len(self.tasks.outputs)
        self.depth = len(config.hidden)
        self.model = mt.build(config.arch, self.tasks.outputs, config.hidden)
        # log-variances (UW) get their own, faster Adam so sigma tracks the losses
        self.optimizer = optax.multi_transform(
            {"model": adam.adam(config.learning_rate), "log_vars": adam.adam(config.uw_lr)},
            {"model": "model", "log_vars": "log_vars"},
        )
        self.steps_per_epoch = num_train // config.batch_size
        if self.steps_per_epoch < 1:
            raise ValueError(
                f"batch_size {config.batch_size} exceeds the {num_train} training examples"
            )
        self.regression = jnp.asarray(self.tasks.regression)
        # Every entry point maps over a leading seed axis (state, data, keys): one program
        # runs all of config.num_seeds; the perturbation template is shared.
        self.init = jax.jit(jax.vmap(self._init))
        self.epoch = jax.jit(jax.vmap(self._epoch, in_axes=(0, 0, 0, None)))
        self.evaluate = jax.jit(jax.vmap(self._evaluate))

    # --- model plumbing -------------------------------------------------------------

    def _forward(self, model_params, batch_stats, x, train, perturb=None):
        variables = {"params": model_params}
        if batch_stats:
            variables["batch_stats"] = batch_stats
        if perturb:
            variables["perturbations"] = perturb
        if train and batch_stats:
            outs, updates = self.model.apply(variables, x, train=True, mutable=["batch_stats"])
            return outs, updates["batch_stats"]
        return self.model.apply(variables, x, train=train), batch_stats

    def _loss_vector(self, model_params, batch_stats, batch, perturb=None):
        outs, new_stats = self._forward(model_params, batch_stats, batch[0], True, perturb)
        return task_losses(outs, batch[1], self.tasks.regression), new_stats

    def _penalty(self, model_params) -> jax.Array:
        if self.config.arch != "soft" or self.config.soft_lambda == 0:
            return jnp.zeros(())
        return self.config.soft_lambda * mt.soft_sharing_penalty(
            model_params, self.num_tasks, self.depth
        )

    def _init(self, x: jax.Array, rng: jax.Array) -> MTState:
        rng, init_key = jax.random.split(rng)
        variables = self.model.init(init_key, x[: self.config.batch_size], train=False)
        params = {"model": variables["params"], "log_vars": jnp.zeros((self.num_tasks,))}
        ones = jnp.ones((self.num_tasks,))
        return MTState(
            params=params,
            batch_stats=variables.get("batch_stats", {}),
            opt_state=self.optimizer.init(params),
            weights=ones,
            initial_losses=ones,
            loss_hist=jnp.ones((2, self.num_tasks)),
            epoch=jnp.zeros((), jnp.int32),
            rng=rng,
            step=jnp.zeros((), jnp.int32),
        )

    def perturb_template(self, x: jax.Array) -> dict:
        """Zeros shaped like the model's shared representation for one batch ({} if none).

        ``x`` is one seed's inputs (no seed axis).
        """
        shapes = jax.eval_shape(
            lambda: self.model.init(jax.random.key(0), x[: self.config.batch_size], train=False)
        )
        return jax.tree_util.tree_map(
            lambda s: jnp.zeros(s.shape, s.dtype), dict(shapes.get("perturbations", {}))
        )

    # --- one step -------------------------------------------------------------------

    def _weighted_step(self, state: MTState, batch):
        """equal / uw / dwa: one backward pass of a weighted sum of task losses."""
        cfg = self.config

        def objective(trainable):
            losses, stats = self._loss_vector(trainable["model"], state.batch_stats, batch)
            if cfg.weighting == "uw":
                total = mtw.uncertainty_loss(losses, trainable["log_vars"], self.regression)
            else:
                total = jnp.sum(jax.lax.stop_gradient(state.weights) * losses)
            return total + self._penalty(trainable["model"]), (losses, stats)

        grads, (losses, stats) = jax.grad(objective, has_aux=True)(state.params)
        if cfg.weighting == "uw":
            weights = mtw.uncertainty_weights(state.params["log_vars"], self.regression)
        else:
            weights = state.weights
        return grads, losses, stats, weights, state.weights, state.initial_losses

    def _jacobian_step(self, state: MTState, batch, key, perturb):
        """gradnorm / pcgrad / mgda: per-task gradients from one jacrev of the loss vector."""
        cfg = self.config
        model_params = state.params["model"]
        use_rep = cfg.weighting == "mgda" and bool(perturb)
        if use_rep:
            (jac, rep_jac), (losses, stats) = jax.jacrev(
                lambda p, pert: with_aux(self._loss_vector(p, state.batch_stats, batch, pert)),
                argnums=(0, 1),
                has_aux=True,
            )(model_params, perturb)
        else:
            jac, (losses, stats) = jax.jacrev(
                lambda p: with_aux(self._loss_vector(p, state.batch_stats, batch)), has_aux=True
            )(model_params)

        own = jax.tree_util.tree_map_with_path(
            lambda path, _: mt.is_task_specific(path, cfg.arch), jac
        )
        shared_jac = jax.tree_util.tree_map(
            lambda j, o: jnp.zeros_like(j) if o else j, jac, own
        )
        new_weights, initial = state.weights, state.initial_losses
        if cfg.weighting == "gradnorm":
            initial = jnp.where(state.step == 0, losses, state.initial_losses)
            last = jax.tree_util.tree_map_with_path(
                lambda path, j: jnp.sum(jnp.square(j.reshape(j.shape[0], -1)), axis=1)
                if mt.last_shared_kernels(path, self.depth)
                else jnp.zeros((self.num_tasks,)),
                jac,
            )
            norms = jnp.sqrt(sum(jax.tree_util.tree_leaves(last)))
            weights = state.weights
            model_grads = jax.tree_util.tree_map(lambda j: jnp.tensordot(weights, j, 1), jac)
            new_weights = mtw.gradnorm_update(
                weights, norms, losses, initial, cfg.gradnorm_alpha, cfg.gradnorm_lr
            )
        else:
            # other tasks' gradients on a task's own parameters are zero: the sum is its own
            own_grads = jax.tree_util.tree_map(
                lambda j, o: jnp.sum(j, 0) if o else jnp.zeros_like(j[0]), jac, own
            )
            flat = mtw.flatten_task_grads(shared_jac)
            if cfg.weighting == "pcgrad":
                weights = jnp.ones((self.num_tasks,))
                _, unravel = ravel_pytree(jax.tree_util.tree_map(lambda j: j[0], jac))
                shared = unravel(mtw.pcgrad(flat, key))
            else:
                rep = mtw.flatten_task_grads(rep_jac) if use_rep else flat
                weights = mtw.mgda_weights(rep, cfg.mgda_iters)
                shared = jax.tree_util.tree_map(
                    lambda j: jnp.tensordot(weights, j, 1), shared_jac
                )
            model_grads = jax.tree_util.tree_map(jnp.add, shared, own_grads)
        model_grads = jax.tree_util.tree_map(
            jnp.add, model_grads, jax.grad(self._penalty)(model_params)
        )
        grads = {"model": model_grads, "log_vars": jnp.zeros((self.num_tasks,))}
        return grads, losses, stats, weights, new_weights, initial

    def _step(self, state: MTState, batch, perturb):
        rng, key = jax.random.split(state.rng)
        if self.config.weighting in ("equal", "uw", "dwa"):
            out = self._weighted_step(state, batch)
        else:
            out = self._jacobian_step(state, batch, key, perturb)
        grads, losses, stats, used_weights, new_weights, initial = out
        updates, opt_state = self.optimizer.update(grads, state.opt_state, state.params)
        new_state = state._replace(
            params=optax.apply_updates(state.params, updates),
            batch_stats=stats,
            opt_state=opt_state,
            weights=new_weights,
            initial_losses=initial,
            rng=rng,
            step=state.step + 1,
        )
        return new_state, (losses, used_weights)

    # --- epoch and evaluation -------------------------------------------------------

    def _epoch(self, state: MTState, x: jax.Array, y: jax.Array, perturb: dict):
        """One shuffled pass as ``lax.scan``; DWA weights refresh at the end of the epoch."""
        rng, perm_key = jax.random.split(state.rng)
        state = state._replace(rng=rng)
        n, bs = self.steps_per_epoch, self.config.batch_size
        order = jax.random.permutation(perm_key, x.shape[0])[: n * bs]
        xs = x[order].reshape((n, bs) + x.shape[1:])
        ys = y[order].reshape((n, bs) + y.shape[1:])
        state, (losses, weights) = jax.lax.scan(
            lambda s, b: self._step(s, b, perturb), state, (xs, ys)
        )
        mean_losses = jnp.mean(losses, axis=0)
        hist = jnp.stack([mean_losses, state.loss_hist[0]])
        epoch = state.epoch + 1
        if self.config.weighting == "dwa":
            dwa = mtw.dwa_weights(hist[0], hist[1], self.config.dwa_temperature)
            state = state._replace(weights=jnp.where(epoch >= 2, dwa, state.weights))
        state = state._replace(loss_hist=hist, epoch=epoch)
        return state, mean_losses, jnp.mean(weights, axis=0)

    def _evaluate(self, state: MTState, x: jax.Array, y: jax.Array, valid: jax.Array):
        outs, _ = self._forward(state.params["model"], state.batch_stats, x, False)
        regression = self.tasks.regression
        return (task_metrics(outs, y, regression, valid),
                task_losses(outs, y, regression, valid))


HISTORY_KEYS = ("train_loss", "test_loss", "test_metric", "weights", "log_vars")


def seeds_of(config: ml_collections.ConfigDict) -> list[int]:
    """``config.seed``, ``config.seed + 1``, ... (``config.num_seeds`` of them)."""
    return [config.seed + k for k in range(config.get("num_seeds", 1))]


def load_seeded(config: ml_collections.ConfigDict) -> tuple[Split, Split]:
    """Each seed's (train, test) splits, stacked on a leading seed axis. The test splits
    may differ in size (the text ones hold out no sentence their training part
    repeats): they are zero-padded to the longest, ``valid`` marking the real rows."""
    pairs = []
    for seed in seeds_of(config):
        one = ml_collections.ConfigDict(config.to_dict())
        one.seed = seed
        pairs.append(load_splits(one))
    train = Split(np.stack([p[0].x for p in pairs]), np.stack([p[0].y for p in pairs]))
    tests = [p[1] for p in pairs]
    rows = max(len(t.x) for t in tests)
    pad = lambda a: np.pad(a, [(0, rows - len(a))] + [(0, 0)] * (a.ndim - 1))
    test = Split(np.stack([pad(t.x) for t in tests]), np.stack([pad(t.y) for t in tests]),
                 np.stack([np.arange(rows) < len(t.x) for t in tests]))
    return train, test


def fit(
    config: ml_collections.ConfigDict,
    train: Split,
    test: Split,
    progress: bool = True,
    ckpt_dir: str | None = None,
) -> dict:
    """Train every seed's model at once (vmapped); final metrics ``[S][T]`` and history.

    ``train``/``test`` carry a leading seed axis (``load_seeded``). History
    entries are ``[epoch][seed][task]``. With ``ckpt_dir`` the state and history
    are checkpointed under ``ckpt_dir/checkpoints`` and a rerun resumes from the
    newest readable step.
    """
    trainer = Trainer(config, train.x.shape[1])
    x, y = jnp.asarray(train.x), jnp.asarray(train.y)
    xt, yt = jnp.asarray(test.x), jnp.asarray(test.y)
    vt = jnp.ones(yt.shape[:2], bool) if test.valid is None else jnp.asarray(test.valid)
    perturb = trainer.perturb_template(x[0])
    start = time.perf_counter()
    keys = jnp.stack([jax.random.PRNGKey(s) for s in seeds_of(config)])
    state = trainer.init(x, keys)
    record: dict[str, Any] = {"epoch": 0, "seconds": 0.0,
                              "history": {k: [] for k in HISTORY_KEYS}}
    with contextlib.ExitStack() as stack:
        mngr = None
        if ckpt_dir is not None:
            mngr = stack.enter_context(
                checkpoint.opened(ckpt_dir, config.get("keep_checkpoints", 2)))
            restored = checkpoint.restore_latest(mngr, state)
            if restored is not None:
                state, record = restored
        history, seconds = record["history"], record["seconds"]
        already = seconds  # a rerun of a finished run reports the time it took
        every = config.get("checkpoint_every_epochs", 5)
        desc = f"{config.arch}/{config.weighting}"
        bar = tqdm(total=config.epochs, initial=record["epoch"], desc=desc, disable=not progress,
                   leave=False)
        for epoch in range(record["epoch"], config.epochs):
            state, losses, weights = trainer.epoch(state, x, y, perturb)
            metrics, test_losses = trainer.evaluate(state, xt, yt, vt)
            history["train_loss"].append(np.asarray(losses).tolist())
            history["test_loss"].append(np.asarray(test_losses).tolist())
            history["test_metric"].append(np.asarray(metrics).tolist())
            history["weights"].append(np.asarray(weights).tolist())
            history["log_vars"].append(np.asarray(state.params["log_vars"]).tolist())
            bar.update(1)
            done = epoch + 1
            seconds = already + time.perf_counter() - start
            if mngr is not None and (done % every == 0 or done == config.epochs):
                checkpoint.save(mngr, done, state,
                                {"epoch": done, "seconds": seconds, "history": history})
        bar.close()
    nan = [[float("nan")] * trainer.num_tasks] * len(keys)
    return {
        "metrics": history["test_metric"][-1] if history["test_metric"] else nan,
        "history": history,
        "seconds": seconds,
        "params": jax.device_get(state.params["model"]),
        "steps": int(state.step[0]),
    }


def single_task_baselines(
    config: ml_collections.ConfigDict,
    train: Split,
    test: Split,
    progress: bool = True,
    ckpt_dir: str | None = None,
) -> dict[str, list[float]]:
    """Each task's metric per seed with its own copy of the trunk (soft columns, no penalty)."""
    base = ml_collections.ConfigDict(config.to_dict())
    base.arch, base.weighting, base.soft_lambda = "soft", "equal", 0.0
    per_seed = np.asarray(fit(base, train, test, progress, ckpt_dir)["metrics"])  # [S, T]
    return {name: per_seed[:, t].tolist() for t, name in enumerate(tasks_of(config).names)}


def cross_stitch_alphas(params: Any, depth: int) -> list[list[list[float]]]:
    """Per layer, the mixing matrix ``alpha[t_out, t_in]`` averaged over channels and seeds."""
    return [np.asarray(params[f"stitch_{layer}"]).mean(axis=(0, -1)).tolist()
            for layer in range(depth)]


def identity(config: ml_collections.ConfigDict) -> dict:
    """The config as it defines the run's numbers (operational fields left out)."""
    found = json.loads(config.to_json())
    return {k: v for k, v in found.items() if k not in OPERATIONAL}


def load_splits(config: ml_collections.ConfigDict) -> tuple[Split, Split]:
    """The (train, test) splits of ``config.dataset``."""
    return data_module(config).load_splits(config)


def _by_task(names: Sequence[str], values: Any) -> dict[str, float]:
    return {name: float(v) for name, v in zip(names, values, strict=True)}


def seed_summary(tasks: Tasks, seeds: Sequence[int], metrics: Any,
                 single_task: dict[str, list[float]] | None) -> dict[str, Any]:
    """results.json's figures: ``per_task``, ``single_task``, ``delta_m`` as means over
    seeds, each with its population std (``*_std``), and every seed's own figures.

    Delta_m is computed per seed against that seed's baselines, then averaged.
    """
    metrics = np.asarray(metrics, np.float64)  # [S, T]
    single = None if single_task is None else np.asarray(
        [single_task[n] for n in tasks.names], np.float64).T  # [S, T]
    per_seed = []
    for k, seed in enumerate(seeds):
        row: dict[str, Any] = {"seed": seed, "per_task": _by_task(tasks.names, metrics[k]),
                               "single_task": None, "delta_m": None}
        if single is not None:
            row["single_task"] = _by_task(tasks.names, single[k])
            row["delta_m"] = delta_m(metrics[k], single[k], tasks.lower_is_better)
        per_seed.append(row)
    out: dict[str, Any] = {
        "seeds": list(seeds),
        "per_task": _by_task(tasks.names, metrics.mean(0)),
        "per_task_std": _by_task(tasks.names, metrics.std(0)),
        "single_task": None, "single_task_std": None, "delta_m": None, "delta_m_std": None,
        "per_seed": per_seed,
    }
    if single is not None:
        deltas = [row["delta_m"] for row in per_seed]
        out.update(single_task=_by_task(tasks.names, single.mean(0)),
                   single_task_std=_by_task(tasks.names, single.std(0)),
                   delta_m=metrics_lib.mean_std(deltas)["mean"],
                   delta_m_std=metrics_lib.mean_std(deltas)["std"])
    return out


def train_and_evaluate(
    config: ml_collections.ConfigDict,
    workdir: str,
    single_task: dict[str, list[float]] | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> dict:
    """Train (or resume), compare with single-task baselines, write results.json and plots.

    ``single_task`` (per task, one value per seed) skips training the baselines.
    """
    validate(config)
    train_lib.prepare_workdir(workdir, identity(config), overwrite)
    tasks = tasks_of(config)
    train, test = load_seeded(config)
    result = fit(config, train, test, progress, ckpt_dir=workdir)
    if single_task is None and config.single_task:
        single_task = single_task_baselines(
            config, train, test, progress, ckpt_dir=os.path.join(workdir, "single_task"))
    summary: dict[str, Any] = {
        "dataset": config.get("dataset", "multi_digits"),
        "arch": config.arch,
        "weighting": config.weighting,
        "tasks": list(tasks.names),
        "metric_names": dict(zip(tasks.names, tasks.metrics, strict=True)),
        "lower_is_better": dict(zip(tasks.names, tasks.lower_is_better, strict=True)),
        **seed_summary(tasks, seeds_of(config), result["metrics"], single_task),
        "seconds": result["seconds"],
        "steps": result["steps"],
        "history": result["history"],
        "config": config.to_dict(),
    }
    if config.weighting == "uw":
        log_vars = np.asarray(result["history"]["log_vars"][-1])  # [S, T]
        summary["sigmas"] = np.exp(0.5 * log_vars).mean(0).tolist()
    if config.arch == "cross_stitch":
        summary["cross_stitch"] = cross_stitch_alphas(result["params"], len(config.hidden))
    report.write_json(os.path.join(workdir, "results.json"), summary)
    write_plots(summary, workdir)
    return summary


def write_plots(summary: dict, workdir: str) -> list[str]:
    """PNG plots: per-task loss curves, task weights, UW sigmas, cross-stitch coefficients."""
    plt = report.pyplot()
    names, hist, written = summary["tasks"], summary["history"], []

    def save(fig, name):
        path = os.path.join(workdir, name)
        report.save_figure(fig, path, dpi=100)
        plt.close(fig)
        written.append(path)

    if hist["train_loss"]:
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
        for ax, key in zip(axes, ("train_loss", "test_loss"), strict=True):
            values = np.asarray(hist[key]).mean(1)  # [epoch, task], mean over seeds
            for t, name in enumerate(names):
                ax.plot(np.arange(1, len(values) + 1), values[:, t], label=name)
            ax.set(yscale="log", xlabel="epoch", ylabel=key.replace("_", " "))
            ax.legend()
        fig.suptitle(f"{summary['arch']} / {summary['weighting']}: per-task losses")
        save(fig, "loss_curves.png")

        fig, ax = plt.subplots(figsize=(5, 3.5))
        weights = np.asarray(hist["weights"]).mean(1)
        for t, name in enumerate(names):
            ax.plot(np.arange(1, len(weights) + 1), weights[:, t], label=name)
        ax.set(xlabel="epoch", ylabel="mean loss weight", title=f"{summary['weighting']} weights")
        ax.legend()
        save(fig, "task_weights.png")

    if "sigmas" in summary:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        sig = np.exp(0.5 * np.asarray(hist["log_vars"])).mean(1)
        for t, name in enumerate(names):
            ax.plot(np.arange(1, len(sig) + 1), sig[:, t], label=name)
        ax.set(xlabel="epoch", ylabel="sigma_t", yscale="log", title="uncertainty weighting")
        ax.legend()
        save(fig, "uw_sigmas.png")

    if "cross_stitch" in summary:
        alphas = summary["cross_stitch"]
        fig, axes = plt.subplots(1, len(alphas), figsize=(4 * len(alphas), 3.5), squeeze=False)
        for layer, (ax, alpha) in enumerate(zip(axes[0], alphas, strict=True)):
            alpha = np.asarray(alpha)
            im = ax.imshow(alpha, vmin=0.0, vmax=max(1.0, alpha.max()), cmap="viridis")
            for (i, j), v in np.ndenumerate(alpha):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", color="k" if v > 0.5 else "w")
            ax.set(xticks=range(len(names)), yticks=range(len(names)), title=f"layer {layer}")
            ax.set_xticklabels(names)
            ax.set_yticklabels(names)
            ax.set(xlabel="from column", ylabel="into task")
            fig.colorbar(im, ax=ax)
        fig.suptitle("cross-stitch alpha (mean over channels)")
        save(fig, "cross_stitch.png")
    return written
