"""A small MLP variational auto-encoder: the generator of generative replay.

Inputs are flat rows in [0, 1]; the decoder returns Bernoulli logits (one per
input feature) and the encoder a diagonal Gaussian posterior over the latent.
``algorithms/generative_replay.py`` trains it with the ELBO and samples it
through ``decode`` with z drawn from the standard normal prior.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp


class VAE(nn.Module):
    """Encoder D -> hidden -> (mean, log-variance) of ``latent``; decoder latent -> hidden -> D."""

    features: int
    latent: int = 32
    hidden: int = 256

    def setup(self) -> None:
        self.enc_hidden = nn.Dense(self.hidden)
        self.enc_mean = nn.Dense(self.latent)
        self.enc_logvar = nn.Dense(self.latent)
        self.dec_hidden = nn.Dense(self.hidden)
        self.dec_out = nn.Dense(self.features)

    def encode(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """[B, D] rows -> posterior mean and log-variance, [B, latent] each."""
        h = nn.relu(self.enc_hidden(x))
        return self.enc_mean(h), self.enc_logvar(h)

    def decode(self, z: jax.Array) -> jax.Array:
        """[B, latent] codes -> [B, D] Bernoulli logits of the inputs."""
        return self.dec_out(nn.relu(self.dec_hidden(z)))

    def __call__(self, x: jax.Array, rng: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """Reconstruction logits of ``x`` through one reparameterised draw, and the posterior."""
        mean, logvar = self.encode(x)
        z = mean + jnp.exp(0.5 * logvar) * jax.random.normal(rng, mean.shape)
        return self.decode(z), mean, logvar
