"""Adam's direction with its bias corrections folded into two scalars.

    mu_hat / (sqrt(nu_hat) + eps) = c1 * mu / (sqrt(nu) * c2 + eps),
    c1 = 1 / (1 - b1^t),  c2 = 1 / sqrt(1 - b2^t)

is optax.scale_by_adam's update, reassociated. (Kingma & Ba 2015, sec. 2,
suggest a similar reordering but move eps inside the correction; here eps
stays where Algorithm 1 and optax put it, so the update is the same up to
float rounding.) optax divides every moment by its correction: three divides
and a square root per parameter per step; this form makes one of each. On a
small model that elementwise pass is a large part of the step (the 400x400
weight's update took 75 of 551 us in the benchmark's MLP step), and the state
is optax's own ``ScaleByAdamState``, so checkpoints and state lookups are
unchanged.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def scale_by_adam(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8
                  ) -> optax.GradientTransformation:
    """optax.scale_by_adam (eps_root 0, no Nesterov), one divide per parameter."""

    def init(params):
        return optax.ScaleByAdamState(count=jnp.zeros([], jnp.int32),
                                      mu=optax.tree.zeros_like(params),
                                      nu=optax.tree.zeros_like(params))

    def update(updates, state, params=None):
        del params
        mu = optax.tree.update_moment(updates, state.mu, b1, 1)
        nu = optax.tree.update_moment_per_elem_norm(updates, state.nu, b2, 2)
        count = optax.safe_increment(state.count)
        c1 = 1.0 / (1.0 - b1 ** count)
        c2 = jax.lax.rsqrt(1.0 - b2 ** count)
        direction = jax.tree.map(
            lambda m, v: None if m is None else (c1 * m) / (jnp.sqrt(v) * c2 + eps),
            mu, nu, is_leaf=lambda x: x is None)
        return direction, optax.ScaleByAdamState(count=count, mu=mu, nu=nu)

    return optax.GradientTransformation(init, update)


def adam(learning_rate: float) -> optax.GradientTransformation:
    """optax.adam(learning_rate) with the folded direction; the same state tree."""
    return optax.chain(scale_by_adam(), optax.scale_by_learning_rate(learning_rate))


def matrices(params: optax.Params) -> optax.Params:
    """True at leaves of two or more axes: the weights BERT's recipe decays. Biases and
    LayerNorm gains and shifts (1-D) are left out, as in Devlin et al.'s optimizer
    (``exclude_from_weight_decay``) and Hugging Face's Trainer."""
    return jax.tree.map(lambda p: jnp.ndim(p) > 1, params)


def adamw(learning_rate: float, weight_decay: float, decay_vectors: bool = False
          ) -> optax.GradientTransformation:
    """optax.adamw(learning_rate, weight_decay=..., mask=matrices) with the folded
    direction; ``decay_vectors`` decays every leaf (optax's default, no mask)."""
    mask = None if decay_vectors else matrices
    return optax.chain(scale_by_adam(), optax.add_decayed_weights(weight_decay, mask),
                       optax.scale_by_learning_rate(learning_rate))
