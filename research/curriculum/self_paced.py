"""Self-paced learning (Kumar et al., NeurIPS 2010) and its linear soft variant (Jiang et al. 2014).

Hard weights ``v_i = 1[loss_i < lambda]`` with ``lambda`` grown over time, or
``v_i = max(0, 1 - loss_i / lambda)``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike


def threshold(t: ArrayLike, lambda0: float, growth: float = 1.1) -> jax.Array:
    """``lambda(t) = lambda0 * growth^t``: admits harder examples as training goes on."""
    if lambda0 <= 0 or growth < 1:
        raise ValueError(f"need lambda0 > 0 and growth >= 1, got {lambda0}, {growth}")
    return lambda0 * jnp.power(growth, jnp.asarray(t, jnp.float32))


def hard_weights(losses: ArrayLike, lam: ArrayLike) -> jax.Array:
    """Kumar et al. 2010: ``v_i = 1[loss_i < lambda]``, the closed-form minimiser in v."""
    return (jnp.asarray(losses) < lam).astype(jnp.float32)


def linear_weights(losses: ArrayLike, lam: ArrayLike) -> jax.Array:
    """Linear soft weights ``max(0, 1 - loss_i / lambda)``: easy examples count more."""
    return jnp.clip(1.0 - jnp.asarray(losses, jnp.float32) / lam, 0.0, 1.0)

