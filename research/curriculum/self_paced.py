"""Self-paced weights (``config.self_paced_weights``) over the rows a competence admits.

``curriculum='self_paced'`` admits each epoch the rows the current model finds
easiest, the ``c(epoch)`` fraction of lowest loss: Kumar et al.'s (NeurIPS
2010) hard weights ``v_i = 1[loss_i < lambda]``, with ``lambda`` the loss at
the competence's cut in place of a hand-grown threshold. ``'linear'`` weighs
the admitted rows with Jiang et al.'s (2014) soft weights
``v_i = max(0, 1 - loss_i / lambda)`` instead: the easiest count most, and the
weights fall towards 0 at the cut.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

WEIGHTINGS = ("hard", "linear")


def linear_weights(losses: ArrayLike, lam: ArrayLike) -> jax.Array:
    """Linear soft weights ``max(0, 1 - loss_i / lambda)``: easy examples count more."""
    return jnp.clip(1.0 - jnp.asarray(losses, jnp.float32) / lam, 0.0, 1.0)


def admitted_weights(losses: jax.Array, train_rows: jax.Array,
                     admitted: jax.Array) -> jax.Array:
    """Linear weights of the ``admitted`` rows (0 elsewhere), ``lambda`` the lowest loss
    among the training rows left out: infinite once every row is admitted, so a run at
    full competence trains with every weight 1, as without a curriculum."""
    lam = jnp.min(jnp.where(train_rows & ~admitted, losses, jnp.inf))
    return jnp.where(admitted, linear_weights(losses, lam), 0.0)


def balanced_admitted_weights(losses: jax.Array, train_rows: jax.Array, admitted: jax.Array,
                              labels: jax.Array, num_classes: int) -> jax.Array:
    """``admitted_weights`` within each class, whose cut the balanced mask made apart."""
    of_class = lambda k: admitted_weights(losses, train_rows & (labels == k),
                                          admitted & (labels == k))
    return jnp.sum(jax.vmap(of_class)(jnp.arange(num_classes)), axis=0)
