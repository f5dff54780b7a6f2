"""The engine: one jitted train step, an epoch as ``lax.scan``, runs vmapped.

Every function here works on a *batch of runs*: seeds and swept
hyper-parameters are a leading axis that ``jax.vmap`` maps over, so a 5-seed
run or a lambda sweep is one compiled program. Inside, the algorithm is
rebuilt from the (traced) hyper-parameters, which is what makes them
sweepable: a method reads ``hp['ewc_lambda']`` as if it were a float.

Shapes never change across tasks (see ``research.data.stream``), so each
function compiles once per run; ``Engine.num_compiles`` counts them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from algorithms import base
from research import distributed, threefry_cpu
from research.compiled import Compiled

threefry_cpu.use_unrolled_threefry()  # the same bits, without a while loop per draw

Pool = dict[str, jax.Array]  # x, y, logit_mask, task, valid (weight): one run's rows


class RunState(NamedTuple):
    """Everything one run carries from step to step (a pytree, vmapped over runs)."""

    params: Any
    opt_state: Any
    alg_state: Any
    rng: jax.Array
    step: jax.Array


def over_runs(fn: Callable, in_axes: tuple) -> Callable:
    """``jax.vmap`` of ``fn`` over the leading run axis of the arguments marked 0.

    A single run is squeezed and called unbatched instead: XLA's CPU backend
    runs plain matmuls about 10% faster than batch-1 ones, and the numbers are
    the same up to float summation order.
    """
    mapped = jax.vmap(fn, in_axes=in_axes)

    def call(*args):
        runs = {leaf.shape[0] for arg, axis in zip(args, in_axes, strict=True) if axis == 0
                for leaf in jax.tree_util.tree_leaves(arg)}
        if runs != {1}:
            return mapped(*args)
        squeezed = [arg if axis is None else jax.tree_util.tree_map(lambda a: a[0], arg)
                    for arg, axis in zip(args, in_axes, strict=True)]
        return jax.tree_util.tree_map(lambda a: a[None], fn(*squeezed))

    return call


def split_hparams(hp: dict) -> tuple[dict, dict]:
    """(traced, static): float hyper-parameters are traced and so sweepable."""
    traced = {k: v for k, v in hp.items() if isinstance(v, float)}
    static = {k: v for k, v in hp.items() if k not in traced}
    return traced, static


def _as_batch(pool: Pool, ids: jax.Array) -> base.Batch:
    """Rows ``ids`` of the pool; ``x`` may be a pytree (token ids and masks for text). A
    row's weight in the loss is 1 where it is valid, or the pool's own ``weight``
    (a curriculum's soft self-paced weights)."""
    batch = {k: jax.tree_util.tree_map(lambda a: a[ids], pool[k])
             for k in ("x", "y", "logit_mask", "task")}
    batch["weight"] = pool.get("weight", pool["valid"])[ids].astype(jnp.float32)
    return batch


# An epoch gathers all its batches ahead of its steps when one run's pool is at most
# this big: the same numbers, and the MLP step on Split-Digits 10-15% faster on the
# CPU than with a gather in each step (docs/benchmarks.md), at the cost of a second
# copy of the pool for the length of the epoch.
EPOCH_GATHER_BYTES = 64 << 20


def tree_nbytes(tree: Any) -> int:
    """The bytes of every array in ``tree``."""
    return sum(leaf.size * leaf.dtype.itemsize for leaf in jax.tree_util.tree_leaves(tree))


def _recomputed_apart(params: Any, updates: Any) -> Any:
    """``params + updates`` again, behind a barrier XLA cannot merge with the carried sum.

    An ``after_step`` that reads the old and the new parameters (SI's path integral)
    would otherwise keep the old ones alive past the write of the new ones, and XLA
    would copy every weight each step to make room (7-14% of SI's MLP step on the
    CPU). Read from old and updates, the hook runs before the in-place write; the
    sum is the same float addition, so the same bits."""
    return optax.apply_updates(*jax.lax.optimization_barrier((params, updates)))


def _all_finite(tree) -> jax.Array:
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(tree)]))


def _zeros(shapes: Any) -> Any:
    return jax.tree_util.tree_map(lambda a: jnp.zeros(a.shape, a.dtype), shapes)


def _totals(metrics: dict, penalty: tuple[jax.Array, dict] | None) -> dict:
    """Sums of per-step metrics ``[steps]`` over the kept steps, and the step counts, so
    chunks of one epoch add up exactly; a penalty's value (and its aux), taken once at
    the parameters the steps end with, counts for each kept step."""
    metrics = dict(metrics)
    skipped = metrics.pop("skipped_steps", jnp.zeros_like(metrics["loss"]))
    ok = skipped == 0
    kept = jnp.sum(ok).astype(jnp.float32)
    totals = {k: jnp.sum(jnp.where(ok, v, 0.0)) for k, v in metrics.items()}
    if penalty is not None:
        value, aux = penalty
        totals = {**totals, "loss": totals["loss"] + kept * value,
                  **{k: kept * v for k, v in aux.items()}}
    return {**totals, "kept_steps": kept, "skipped_steps": jnp.sum(~ok).astype(jnp.float32)}


class Engine:
    """Builds the run-batched, compiled functions for one model and method."""

    def __init__(self, model, method, hp: dict, base_optimizer: optax.GradientTransformation,
                 batch_size: int, steps_per_epoch: int, eval_batch_size: int = 512,
                 skip_nonfinite: bool = False, placement: distributed.Placement | None = None,
                 compute_dtype: Any = jnp.float32, epochs_per_call: int = 1):
        self.model = model
        self.method = method
        self.hp_traced, self.hp_static = split_hparams(dict(hp))
        self.base_optimizer = base_optimizer
        self.batch_size = batch_size
        self.steps_per_epoch = steps_per_epoch
        self.eval_batch_size = eval_batch_size
        self.skip_nonfinite = skip_nonfinite
        self.placement = placement  # None: jit's default placement (one device)
        self.compute_dtype = compute_dtype
        self.epochs_per_call = epochs_per_call

        def over_runs_compiled(fn, in_axes, name, **jit_kwargs):
            return Compiled(over_runs(fn, in_axes), name, placement, in_axes, **jit_kwargs)

        self.init_params = over_runs_compiled(self._init_params, (0, None), "init_params")
        self.init_state = over_runs_compiled(self._init_state, (0, 0, 0), "init_state")
        self.reset_optimizer = over_runs_compiled(self._reset_optimizer, (0, 0),
                                                  "reset_optimizer")
        self.epochs = over_runs_compiled(self._epochs, (0, 0, 0), "epochs", donate_argnums=0)
        self.chunk = over_runs_compiled(self._chunk, (0, 0, 0), "chunk", donate_argnums=0)
        self.end_task = over_runs_compiled(self._end_task, (0, 0, 0), "end_task")
        self.evaluate_program = over_runs_compiled(self._evaluate, (0, 0, 0, 0), "evaluate")

    # -- pieces shared by the hooks ------------------------------------------
    def apply_fn(self, params, x):
        """The model; with a bfloat16 compute dtype, params and inputs are cast inside
        (the float32 master weights and optimizer state are what the step updates)."""
        return distributed.apply_in(self.compute_dtype,
                                    lambda p, v: self.model.apply({"params": p}, v), params, x)

    def algorithm(self, hp_traced: dict) -> base.Algorithm:
        return self.method.make({**self.hp_static, **hp_traced})

    @functools.cached_property
    def _predicts_from_params(self) -> bool:
        """The method keeps the plain predict and routes nothing: evaluation needs only
        the parameters."""
        hooks = self.algorithm(self.hp_traced)
        return hooks.predict is base.plain_predict and hooks.route is None

    def _evaluation_hooks(self, hp: dict) -> tuple[Callable, Callable | None]:
        if self._predicts_from_params:
            return base.plain_predict, None
        alg = self.algorithm(hp)
        return alg.predict, alg.route

    def optimizer(self, alg: base.Algorithm) -> optax.GradientTransformation:
        return alg.optimizer(self.base_optimizer)

    @property
    def functions(self) -> tuple[Compiled, ...]:
        return (self.init_params, self.init_state, self.reset_optimizer, self.epochs, self.chunk,
                self.end_task, self.evaluate_program)

    @property
    def num_compiles(self) -> int:
        return sum(f.num_compiles for f in self.functions)

    @property
    def compile_seconds(self) -> float:
        return sum(f.compile_seconds for f in self.functions)

    def init(self, rngs: jax.Array, hp: dict, sample_x: Any,
             start_from: Callable[[Any], Any] | None = None) -> RunState:
        """Every run's initial state. The parameters come from a program of their own,
        the same for every method on this model, so a comparison compiles it once.
        ``start_from`` maps them to the parameters the runs start from (pretrained
        weights put in) before the state is built on them: a method's state that starts
        from the parameters (SI's anchor, CLS-ER's mean models) starts from those."""
        params = self.init_params(rngs, sample_x)
        return self.init_state(rngs, params if start_from is None else start_from(params), hp)

    def evaluate(self, state: RunState, test: Pool, task_classes: jax.Array,
                 hp: dict) -> dict[str, jax.Array]:
        """``_evaluate`` of every run."""
        return self.evaluate_program(*self._evaluation_args(state, test, task_classes, hp))

    def _evaluation_args(self, state: RunState, test: Pool, task_classes: jax.Array,
                         hp: dict) -> tuple:
        """A method that predicts from the parameters alone passes neither its state nor
        its hyper-parameters, so its program is every such method's and compiles once
        per process."""
        if self._predicts_from_params:
            state, hp = state._replace(opt_state=(), alg_state=()), {}
        return state, test, task_classes, hp

    def precompile(self, state: RunState, pool: Pool, test: Pool, task_classes: jax.Array,
                   hp: dict, reset_optimizer: bool) -> None:
        """Starts compiling, on a background thread, the programs a run calls after its
        init, in the order it first calls them; each call waits for its own."""
        self.evaluate_program.precompile(*self._evaluation_args(state, test, task_classes, hp))
        if reset_optimizer:
            self.reset_optimizer.precompile(state, hp)
        self.epochs.precompile(state, pool, hp)
        self.end_task.precompile(state, pool, hp)

    # -- per-run functions (vmapped in __init__) -------------------------------
    def _init_params(self, rng: jax.Array, sample_x: Any) -> Any:
        init_rng, _, _ = jax.random.split(rng, 3)
        return self.model.init(init_rng, sample_x)["params"]

    def _init_state(self, rng: jax.Array, params: Any, hp: dict) -> RunState:
        _, alg_rng, rng = jax.random.split(rng, 3)
        alg = self.algorithm(hp)
        return RunState(params, self.optimizer(alg).init(params), alg.init(params, alg_rng),
                        rng, jnp.zeros((), jnp.int32))

    def _reset_optimizer(self, state: RunState, hp: dict) -> RunState:
        return state._replace(opt_state=self.optimizer(self.algorithm(hp)).init(state.params))

    def _train_step(self, alg: base.Algorithm, opt, state: RunState, batch: base.Batch):
        rng, step_rng, after_rng = jax.random.split(state.rng, 3)
        (loss, aux), data_grads = jax.value_and_grad(alg.loss, has_aux=True)(
            state.params, state.alg_state, batch, self.apply_fn, step_rng)
        grads = data_grads
        if alg.has_penalty:  # its value is taken once an epoch: see _epochs
            penalty_grads = jax.grad(lambda p: alg.penalty(p, state.alg_state)[0])(state.params)
            grads = jax.tree_util.tree_map(jnp.add, data_grads, penalty_grads)
        grads = alg.grads(grads, state.params, state.alg_state, batch, self.apply_fn, step_rng)
        updates, opt_state = opt.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        alg_state = alg.after_step(state.alg_state, state.params,
                                   _recomputed_apart(state.params, updates), data_grads, batch,
                                   self.apply_fn, after_rng)
        new = RunState(params, opt_state, alg_state, rng, state.step + 1)
        metrics = {"loss": loss, **aux}
        if self.skip_nonfinite:
            ok = jnp.isfinite(loss) & _all_finite(grads)
            new = jax.tree_util.tree_map(lambda a, b: jnp.where(ok, a, b), new,
                                         state._replace(rng=rng, step=state.step + 1))
            metrics["skipped_steps"] = 1.0 - ok.astype(jnp.float32)
        return new, metrics

    def _step_body(self, alg: base.Algorithm, opt, batch_of: Callable) -> Callable:
        """A scan body: one train step on ``batch_of(x)`` (placed on the mesh)."""
        def body(state, x):
            batch = batch_of(x)
            if self.placement is not None:
                batch = self.placement.constrain_batch(batch)
            return self._train_step(alg, opt, state, batch)
        return body

    def _epoch_order(self, rng: jax.Array, pool: Pool) -> jax.Array:
        """An epoch's ``[steps, batch]`` row ids: a seeded shuffle of the pool's real rows,
        repeated to fill the last batch."""
        keys = jnp.where(pool["valid"], jax.random.uniform(rng, pool["valid"].shape), 2.0)
        order = jnp.argsort(keys)
        count = jnp.maximum(jnp.sum(pool["valid"]), 1)
        total = self.steps_per_epoch * self.batch_size
        return order[jnp.arange(total) % count].reshape(self.steps_per_epoch, self.batch_size)

    def _epochs(self, state: RunState, pool: Pool, hp: dict) -> tuple[RunState, dict]:
        """``epochs_per_call`` epochs in one program, their metrics stacked ``[epochs]``: the
        host dispatches once per block between the points where it reads results.

        One scan over every step of the block, the first step of each epoch drawing its
        order (from the run's key, as epoch after epoch would): nested in a scan over
        epochs, XLA copied each updated weight matrix in every step (a tenth of the MLP
        step on the CPU, docs/benchmarks.md). An epoch's batches are gathered at its
        start when a pool is small (``EPOCH_GATHER_BYTES``).

        A penalty's gradient acts in every step, but its value is taken at the
        parameters each epoch ends with, and counted for each kept step: a value per
        step would cost a pass over every weight and a reduction per step (a fifth of an
        EWC step on the CPU) for a metric that moves little within an epoch."""
        alg = self.algorithm(hp)
        steps = self.steps_per_epoch
        gather_ahead = tree_nbytes(pool) <= EPOCH_GATHER_BYTES
        step = self._step_body(alg, self.optimizer(alg), (lambda batch: batch) if gather_ahead
                               else (lambda ids: _as_batch(pool, ids)))

        def draw_epoch(rng):
            rng, order_rng = jax.random.split(rng)
            ids = self._epoch_order(order_rng, pool)
            return rng, _as_batch(pool, ids) if gather_ahead else ids

        def penalty_at_epoch_end(i, state):
            return jax.lax.cond(i % steps == steps - 1, alg.penalty,
                                lambda *args: _zeros(jax.eval_shape(alg.penalty, *args)),
                                state.params, state.alg_state)

        def body(carry, i):
            state, epoch_xs = carry
            rng, epoch_xs = jax.lax.cond(i % steps == 0, draw_epoch,
                                         lambda rng: (rng, epoch_xs), state.rng)
            x = jax.tree_util.tree_map(lambda a: a[i % steps], epoch_xs)
            state, metrics = step(state._replace(rng=rng), x)
            if alg.has_penalty:
                metrics["penalty"] = penalty_at_epoch_end(i, state)
            return (state, epoch_xs), metrics

        no_epoch_yet = _zeros(jax.eval_shape(draw_epoch, state.rng)[1])
        (state, _), metrics = jax.lax.scan(body, (state, no_epoch_yet),
                                           jnp.arange(self.epochs_per_call * steps))
        by_epoch = jax.tree_util.tree_map(
            lambda a: a.reshape(self.epochs_per_call, steps, *a.shape[1:]), metrics)
        penalties = by_epoch.pop("penalty", None)

        def epoch_totals(metrics, penalty):
            last = None if penalty is None else jax.tree_util.tree_map(lambda a: a[-1], penalty)
            return epoch_means(_totals(metrics, last), self.skip_nonfinite)
        return state, jax.vmap(epoch_totals)(by_epoch, penalties)

    def _chunk(self, state: RunState, batches: dict, hp: dict) -> tuple[RunState, dict]:
        """Steps over batches the host streamed in (``[K, B, ...]`` each): metric totals, the
        penalty's value taken at the parameters the chunk ends with (see ``_epochs``)."""
        alg = self.algorithm(hp)
        step = self._step_body(alg, self.optimizer(alg), lambda batch: batch)
        state, metrics = jax.lax.scan(step, state, batches)
        penalty = alg.penalty(state.params, state.alg_state) if alg.has_penalty else None
        return state, _totals(metrics, penalty)

    def _end_task(self, state: RunState, pool: Pool, hp: dict) -> RunState:
        rng, end_rng = jax.random.split(state.rng)
        task_data = _as_batch(pool, jnp.arange(pool["y"].shape[0]))
        alg_state = self.algorithm(hp).end_task(state.params, state.alg_state, task_data,
                                                self.apply_fn, end_rng)
        return state._replace(alg_state=alg_state, rng=rng)

    def _evaluate(self, state: RunState, test: Pool, task_classes: jax.Array,
                  hp: dict) -> dict[str, jax.Array]:
        """Class-IL and task-IL accuracy of every task: [T] each. A method with a
        ``route`` hook adds ``routing`` [T, T]: task j's test rows sent to each stage."""
        predict, route = self._evaluation_hooks(hp)
        num_tasks = test["y"].shape[0]

        def scores_and_slots(chunk):
            """A chunk's scores and, with a route hook, the slots it chose; predict
            takes those slots rather than choosing them a second time."""
            args = (state.params, state.alg_state, chunk, self.apply_fn)
            if route is None:
                return predict(*args), None
            slots = route(*args)
            return predict(*args, slots=slots), slots

        def one_task(args):
            x, y, valid, classes = args
            chunks = jax.tree_util.tree_map(
                lambda a: a.reshape((-1, self.eval_batch_size) + a.shape[1:]), x)
            scores, slots = jax.tree_util.tree_map(lambda a: a.reshape((-1,) + a.shape[2:]),
                                                   jax.lax.map(scores_and_slots, chunks))
            weight = valid.astype(jnp.float32)
            count = jnp.maximum(jnp.sum(weight), 1.0)
            out = {"class_il": jnp.sum((jnp.argmax(scores, -1) == y) * weight) / count,
                   "task_il": jnp.sum((task_il_argmax(scores, classes[None, :]) == y) * weight)
                   / count}
            if slots is not None:
                out["routing"] = jnp.sum(jax.nn.one_hot(slots, num_tasks) * weight[:, None], 0)
            return out

        return jax.lax.map(one_task, (test["x"], test["y"], test["valid"], task_classes))


def task_il_argmax(scores: jax.Array, classes: jax.Array) -> jax.Array:
    """The best-scoring class among the task's ``classes``. The others are set to -inf,
    below any score a method gives (iCaRL scores a class with no mean yet -1e9, as
    ``base.masked_logits`` masks), so a task none of whose classes can be scored yet
    still predicts one of its own."""
    return jnp.argmax(jnp.where(classes, scores, -jnp.inf), -1)


def epoch_means(totals: dict, report_skipped: bool) -> dict:
    """Per-step means over the kept steps from ``_totals`` (of one or many scans)."""
    kept = jnp.maximum(totals["kept_steps"], 1.0)
    means = {k: v / kept for k, v in totals.items() if k not in ("kept_steps", "skipped_steps")}
    return {**means, "skipped_steps": totals["skipped_steps"]} if report_skipped else means


def pad_to_multiple(array: np.ndarray, axis: int, multiple: int) -> np.ndarray:
    """Zero-pads ``axis`` up to a multiple (fixed-size evaluation chunks)."""
    extra = -array.shape[axis] % multiple
    if not extra:
        return array
    widths = [(0, 0)] * array.ndim
    widths[axis] = (0, extra)
    return np.pad(array, widths)
