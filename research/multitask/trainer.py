"""The jitted pieces of one multi-task run: init, an epoch as ``lax.scan``, evaluation.

PCGrad and MGDA combine gradients over the shared parameters only (as LibMTL's
``get_share_params``): every parameter one task owns (``mt.is_task_specific``:
its head, MTAN attention, batch norm, soft-sharing column) gets its own task's
plain gradient (Sener & Koltun, Alg. 2). MGDA uses gradients with respect to
the shared representation (MGDA-UB) where the model exposes one (hard
sharing, MTAN trunk), and shared-parameter gradients otherwise.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import optax
from jax.flatten_util import ravel_pytree

from algorithms import mtl_weighting as mtw
from models import multitask as mt
from research import adam
from research.multitask.objectives import task_losses, task_metrics
from research.multitask.tasks import tasks_of, validate


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
