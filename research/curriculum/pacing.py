"""Competence-based pacing (Platanios et al., NAACL 2019).

At step ``t`` the model samples only from the easiest ``c(t)`` fraction of the
data, with ``c(0) = c0`` and ``c(t) = 1`` from ``t = T`` on, non-decreasing.
Everything here is jnp, so ``t`` and ``c`` may be traced inside a jitted step.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike


def _check_total(total_steps: int) -> None:
    if total_steps <= 0:
        raise ValueError(f"total_steps must be positive, got {total_steps}")


def _progress(t: ArrayLike, total_steps: int) -> jax.Array:
    _check_total(total_steps)
    return jnp.clip(jnp.asarray(t, jnp.float32) / total_steps, 0.0, 1.0)


def check_c0(c0: float) -> None:
    if not 0.0 < c0 <= 1.0:
        raise ValueError(f"initial competence c0 must be in (0, 1], got {c0}")


def linear_competence(t: ArrayLike, total_steps: int, c0: float = 0.01) -> jax.Array:
    """``min(1, t (1 - c0) / T + c0)``."""
    check_c0(c0)
    return jnp.minimum(1.0, _progress(t, total_steps) * (1.0 - c0) + c0)


def root_competence(t: ArrayLike, total_steps: int, c0: float = 0.01, p: int = 2) -> jax.Array:
    """``min(1, (t (1 - c0^p) / T + c0^p)^(1/p))``; p=2 is Platanios et al.'s square root."""
    check_c0(c0)
    if p < 1:
        raise ValueError(f"root degree p must be >= 1, got {p}")
    base = _progress(t, total_steps) * (1.0 - c0**p) + c0**p
    return jnp.minimum(1.0, base ** (1.0 / p))


def step_competence(
    t: ArrayLike, total_steps: int, c0: float = 0.01, num_stages: int = 4
) -> jax.Array:
    """Staircase from c0 to 1 in ``num_stages`` equal jumps at ``k T / num_stages``.

    The stage counts the jumps passed, ``t K >= k T`` (products exact in float32),
    not ``floor(t / T * K)``: jitted or over an array, XLA's ``t / T`` can land an
    ulp below a multiple, and a jump came a step late (T=25, K=5: at t=6, not 5;
    T=41: c(41) = 0.82, not 1).
    """
    check_c0(c0)
    if num_stages < 1:
        raise ValueError(f"num_stages must be >= 1, got {num_stages}")
    _check_total(total_steps)
    t = jnp.asarray(t, jnp.float32)[..., None]
    jumps = jnp.arange(1, num_stages + 1, dtype=jnp.float32) * total_steps
    stage = jnp.sum(t * num_stages >= jumps, axis=-1) / num_stages
    return jnp.minimum(1.0, c0 + (1.0 - c0) * stage)


def exponential_competence(t: ArrayLike, total_steps: int, c0: float = 0.01) -> jax.Array:
    """``c0 * (1 / c0)^(t / T)``: grows by a constant factor per step, reaching 1 at T."""
    check_c0(c0)
    return jnp.minimum(1.0, c0 * (1.0 / c0) ** _progress(t, total_steps))


PACING: dict[str, Callable[..., jax.Array]] = {
    "linear": linear_competence,
    "root": root_competence,
    "step": step_competence,
    "exponential": exponential_competence,
}


def pacing_function(
    name: str, total_steps: int, c0: float = 0.01, **kwargs: int
) -> Callable[[ArrayLike], jax.Array]:
    """``c(t)`` by name (``'linear'``, ``'root'``, ``'step'``, ``'exponential'``)."""
    if name not in PACING:
        raise ValueError(f"unknown pacing {name!r}; choose from {sorted(PACING)}")
    fn = PACING[name]
    fn(0, total_steps, c0, **kwargs)  # validate the arguments now, not at trace time
    return lambda t: fn(t, total_steps, c0, **kwargs)


# What the model may see at competence c.


def num_available(competence: ArrayLike, num_examples: int) -> jax.Array:
    """``ceil(c n)`` examples, at least one."""
    count = jnp.ceil(jnp.asarray(competence, jnp.float32) * num_examples - 1e-6)
    return jnp.clip(count.astype(jnp.int32), 1, num_examples)


def easiest_subset(order: np.ndarray, competence: float) -> np.ndarray:
    """Indices of the easiest ``c`` fraction (host side), easiest first."""
    return np.asarray(order)[: int(num_available(competence, len(order)))]


def sample_easiest(
    key: jax.Array, order: jax.Array, competence: ArrayLike, batch_size: int
) -> jax.Array:
    """A batch of example indices drawn uniformly from the easiest ``c`` fraction.

    Jittable with a traced ``competence``: the subset size is dynamic but the
    batch shape is fixed, so nothing recompiles as competence grows.
    """
    available = num_available(competence, order.shape[0])
    positions = jax.random.randint(key, (batch_size,), 0, available)
    return jnp.asarray(order)[positions]


def easiest_mask(scores: jax.Array, valid: jax.Array, competence: ArrayLike) -> jax.Array:
    """``valid`` rows among the ``ceil(c n)`` lowest scores (n valid rows; stable ties)."""
    order = jnp.argsort(jnp.where(valid, scores, jnp.inf), stable=True)
    ranks = jnp.zeros_like(order).at[order].set(jnp.arange(order.shape[0], dtype=order.dtype))
    count = num_available(competence, jnp.maximum(jnp.sum(valid), 1))
    return valid & (ranks < count)


def balanced_easiest_mask(scores: jax.Array, valid: jax.Array, competence: ArrayLike,
                          labels: jax.Array, num_classes: int) -> jax.Array:
    """The easiest ``c`` fraction of each class's valid rows: an easy subset with the data's
    class mix (an unbalanced one can be a single class, e.g. by a teacher's loss)."""
    per_class = jax.vmap(lambda k: easiest_mask(scores, valid & (labels == k), competence))
    return jnp.any(per_class(jnp.arange(num_classes)), axis=0)

