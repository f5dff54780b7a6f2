"""Multi-task loss weighting and gradient combination: pure, jittable functions.

Loss weighting (over the vector of per-task losses ``[T]``): equal, uncertainty
(Kendall et al. 2018), DWA (Liu et al. 2019), GradNorm (Chen et al. 2018).
Gradient combination (over per-task gradients flattened to ``[T, P]``):
PCGrad (Yu et al. 2020) and the MGDA min-norm solver (Sener & Koltun 2018).
Per-task gradients come from one ``jax.jacrev`` of the loss vector
(``per_task_grads``): T backward passes vectorised, not a Python loop.

This module is a toolbox for the multi-task loop, not a continual method: it
deliberately defines no ``NAME``/``make``, so ``algorithms.available()`` skips it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

WEIGHTINGS = ("equal", "uw", "dwa", "gradnorm", "pcgrad", "mgda")

Params = Any


# --- loss weighting -----------------------------------------------------------------


def equal_loss(losses: jax.Array) -> jax.Array:
    """sum_t L_t: every task weighted 1."""
    return jnp.sum(losses)


def uncertainty_loss(
    losses: jax.Array, log_vars: jax.Array, regression: jax.Array | None = None
) -> jax.Array:
    """Kendall et al. 2018 with ``s_t = log sigma_t^2`` learned alongside the network.

    Classification: ``exp(-s) L + s/2`` (= L/sigma^2 + log sigma); regression:
    ``0.5 exp(-s) L + s/2`` (= L/(2 sigma^2) + log sigma), the paper's two
    forms. At the optimum sigma^2 = 2L (classification) or L (regression):
    a task with a larger loss scale learns a larger variance and a smaller weight.
    """
    factor = jnp.ones_like(losses) if regression is None else jnp.where(regression, 0.5, 1.0)
    return jnp.sum(factor * jnp.exp(-log_vars) * losses + 0.5 * log_vars)


def uncertainty_weights(log_vars: jax.Array, regression: jax.Array | None = None) -> jax.Array:
    """The effective weight each task's loss gets under ``uncertainty_loss``."""
    factor = jnp.ones_like(log_vars) if regression is None else jnp.where(regression, 0.5, 1.0)
    return factor * jnp.exp(-log_vars)


def dwa_weights(prev: jax.Array, prev2: jax.Array, temperature: float = 2.0) -> jax.Array:
    """Dynamic weight average: ``w_t = T * softmax(r_t / temp)``, ``r_t = L_t(e-1) / L_t(e-2)``.

    ``prev``/``prev2`` are the mean per-task training losses of the last two
    epochs; callers use weights 1 for the first two epochs (no history yet).
    """
    ratio = prev / jnp.maximum(prev2, 1e-12)
    return prev.shape[0] * jax.nn.softmax(ratio / temperature)


def gradnorm_loss(
    weights: jax.Array,
    grad_norms: jax.Array,
    losses: jax.Array,
    initial_losses: jax.Array,
    alpha: float = 1.5,
) -> jax.Array:
    """GradNorm's L_grad = sum_t |G_t - mean(G) r_t^alpha|, target held constant.

    ``grad_norms[t] = ||d L_t / d W||`` (unweighted, W the last shared layer),
    so ``G_t = w_t * grad_norms[t]``. ``r_t`` is task t's inverse training rate
    ``(L_t / L_t(0))`` over its mean: tasks that train slower get a larger target.
    """
    g = weights * grad_norms
    rel = losses / jnp.maximum(initial_losses, 1e-12)
    rate = rel / jnp.mean(rel)
    target = jax.lax.stop_gradient(jnp.mean(g) * rate**alpha)
    return jnp.sum(jnp.abs(g - target))


def gradnorm_update(
    weights: jax.Array,
    grad_norms: jax.Array,
    losses: jax.Array,
    initial_losses: jax.Array,
    alpha: float = 1.5,
    lr: float = 0.025,
) -> jax.Array:
    """One gradient step on ``gradnorm_loss``, then renormalise so the weights sum to T."""
    grad = jax.grad(gradnorm_loss)(weights, grad_norms, losses, initial_losses, alpha)
    new = jnp.maximum(weights - lr * grad, 1e-3)
    return new * (weights.shape[0] / jnp.sum(new))


# --- gradient combination -----------------------------------------------------------


def per_task_grads(loss_vector_fn: Callable[..., jax.Array], params: Params, *args) -> Params:
    """d L_t / d params for every task at once: each leaf gains a leading ``[T]`` axis."""
    return jax.jacrev(loss_vector_fn)(params, *args)


def flatten_task_grads(grads: Params) -> jax.Array:
    """A per-task gradient pytree (leading ``[T]`` on every leaf) as one ``[T, P]`` matrix."""
    leaves = jax.tree_util.tree_leaves(grads)
    return jnp.concatenate([leaf.reshape((leaf.shape[0], -1)) for leaf in leaves], axis=1)


def pcgrad(grads: jax.Array, rng: jax.Array) -> jax.Array:
    """PCGrad: project each task gradient off the others it conflicts with, then sum.

    ``grads`` is ``[T, P]``. For every task i, the other tasks are visited in a
    random order (one permutation per i, from ``rng``); whenever
    ``g_i . g_j < 0``, ``g_i <- g_i - (g_i . g_j / ||g_j||^2) g_j``.
    Task i itself is skipped (Alg. 1 visits only j != i): with three or more
    tasks the partly projected ``g_i`` can conflict with the original ``g_i``,
    and projecting that off too is not PCGrad.
    Returns the summed ``[P]`` update direction.
    """
    num_tasks = grads.shape[0]
    orders = jax.vmap(lambda k: jax.random.permutation(k, num_tasks))(
        jax.random.split(rng, num_tasks)
    )
    sq_norms = jnp.maximum(jnp.sum(grads * grads, axis=1), 1e-20)

    def project_one(i: jax.Array, order: jax.Array) -> jax.Array:
        def body(k, g):
            j = order[k]
            dot = jnp.dot(g, grads[j])
            return jnp.where((dot < 0) & (j != i), g - dot / sq_norms[j] * grads[j], g)

        return jax.lax.fori_loop(0, num_tasks, body, grads[i])

    return jnp.sum(jax.vmap(project_one)(jnp.arange(num_tasks), orders), axis=0)


def min_norm_weights(gram: jax.Array, iters: int = 100) -> jax.Array:
    """Frank-Wolfe min-norm point of the convex hull: argmin_{a in simplex} a^T G a.

    ``gram[s, t] = g_s . g_t`` (Sener & Koltun 2018, Algorithm 2). Each step
    moves toward the vertex with the smallest ``(G a)_t`` by the exact
    line-search step; a fixed iteration count keeps it jittable.
    """
    num_tasks = gram.shape[0]

    def body(_, a):
        ga = gram @ a
        t = jnp.argmin(ga)
        aa, at, tt = a @ ga, ga[t], gram[t, t]
        # min over gamma of ||gamma v_a + (1 - gamma) g_t||^2, v_a = sum a_s g_s.
        denom = aa + tt - 2.0 * at
        gamma = jnp.where(denom > 1e-12, jnp.clip((tt - at) / jnp.maximum(denom, 1e-12), 0, 1), 1.0)
        return gamma * a + (1.0 - gamma) * jax.nn.one_hot(t, num_tasks, dtype=a.dtype)

    return jax.lax.fori_loop(0, iters, body, jnp.full((num_tasks,), 1.0 / num_tasks, gram.dtype))


def mgda_weights(grads: jax.Array, iters: int = 100) -> jax.Array:
    """MGDA weights for ``[T, P]`` gradients (MGDA-UB when they are representation gradients)."""
    return min_norm_weights(grads @ grads.T, iters)


def two_task_min_norm(g1: jax.Array, g2: jax.Array) -> jax.Array:
    """T=2 closed form: weights (gamma, 1-gamma), gamma = clip((g2-g1).g2 / |g1-g2|^2, 0, 1)."""
    diff = g1 - g2
    gamma = jnp.clip(jnp.dot(g2 - g1, g2) / jnp.maximum(jnp.dot(diff, diff), 1e-12), 0.0, 1.0)
    return jnp.stack([gamma, 1.0 - gamma])
