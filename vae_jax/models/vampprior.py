"""The VAE with a VampPrior (Tomczak & Welling, 2018, "VAE with a VampPrior"): the prior is the
mixture of the posteriors of K learned pseudo-inputs, p(z) = (1/K) sum_k q(z | u_k).

Shape letters: B batch, N latents, K pseudo-inputs, Z latent size, H/W/C image.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from vae_jax import distributions
from vae_jax.models.composites import VAE


def log_normal_mixture(z: jax.Array, mean: jax.Array, logvar: jax.Array) -> jax.Array:
  """log (1/K) sum_k N(z; mean_k, diag(exp(logvar_k))) for z [..., Z] and components
  [K, Z] -> [...] nats, through two [N, Z] x [Z, K] products (no [N, K, Z] array)."""
  flat = z.reshape(-1, z.shape[-1])
  inv_var = jnp.exp(-logvar)  # [K, Z]
  quad = (jnp.square(flat) @ inv_var.T - 2.0 * flat @ (mean * inv_var).T
          + jnp.sum(jnp.square(mean) * inv_var, axis=-1))  # [N, K]
  log_comp = -0.5 * (quad + jnp.sum(logvar, axis=-1) + z.shape[-1] * math.log(2 * math.pi))
  return (jax.nn.logsumexp(log_comp, axis=-1) - math.log(mean.shape[0])).reshape(z.shape[:-1])


class VampPriorVAE(VAE):
  """A models.VAE whose prior is the VampPrior: `num_pseudo_inputs` pseudo-inputs of
  `pseudo_shape`, `params["pseudo_inputs"]` of shape [K, H, W, C], clipped to [0, 1] (the
  hardtanh of the paper's code) and initialized N(pseudo_mean, pseudo_std^2) as there (0.05,
  0.01 on MNIST).

  Beyond VAE's interface: log_prior(z) and sample_prior(key, n); the objectives use them (KL
  by the single-sample estimate log q(z|x) - log p(z), IW-NLL under the mixture).
  """
  num_pseudo_inputs: int = 500
  pseudo_shape: tuple = (28, 28, 1)
  pseudo_mean: float = 0.05
  pseudo_std: float = 0.01

  def setup(self):
    def init(key, shape):
      return self.pseudo_mean + self.pseudo_std * jax.random.normal(key, shape)
    self.pseudo_inputs = self.param("pseudo_inputs", init,
                                    (self.num_pseudo_inputs, *self.pseudo_shape))

  def pseudo_posteriors(self):
    """(mean [K, Z], logvar [K, Z]) of q(z | u_k) for the K pseudo-inputs."""
    return self.encoder(jnp.clip(self.pseudo_inputs, 0.0, 1.0))

  def log_prior(self, z: jax.Array) -> jax.Array:
    """log p(z) under the VampPrior: z [..., Z] -> [...] nats."""
    return log_normal_mixture(z, *self.pseudo_posteriors())

  def sample_prior(self, key: jax.Array, n: int) -> jax.Array:
    """n latents [n, Z] from p(z): a pseudo-input uniformly, then its posterior."""
    mean, logvar = self.pseudo_posteriors()
    k_pick, k_z = jax.random.split(key)
    pick = jax.random.randint(k_pick, (n,), 0, mean.shape[0])
    return distributions.reparameterize(k_z, mean[pick], logvar[pick])

  def __call__(self, x: jax.Array, key: jax.Array, label: jax.Array | None = None):
    """As VAE.__call__; at init it also creates the pseudo-inputs (through the prior)."""
    out, mean, logvar = super().__call__(x, key, label)
    if self.is_initializing():
      self.log_prior(mean)
    return out, mean, logvar
