"""VAE objectives, per example, in nats. Callers reduce (mean over the batch, masked sums, ...).

Shape letters: B batch, K importance samples, L ELBO samples, Z latent, H/W/C image.
`model` is a models.VAE (models.Autoencoder where stated) and `params` its param pytree; `x_BxHxWxC` are floats in [0, 1].
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from vae_jax import distributions as dist
from vae_jax import models


def neg_elbo(model, params, x_BxHxWxC, key, *, beta: float = 1.0, likelihood: str = "bernoulli"):
  """Single-sample negative ELBO: reconstruction + beta * KL (Kingma & Welling, 2014; beta as in
  Higgins et al., 2017).

  Returns:
    dict of [B] arrays in nats per example: 'loss' (reconstruction + beta*KL), 'recon'
    (-log p(x|z), z ~ q(z|x) by reparameterization) and 'kl' (analytic KL(q(z|x) || p(z))).
  """
  out, mean_BxZ, logvar_BxZ = model.apply({"params": params}, x_BxHxWxC, key)
  recon_B = -dist.log_likelihood_fn(likelihood)(out, x_BxHxWxC)
  kl_B = dist.kl_diag_gaussian_standard(mean_BxZ, logvar_BxZ)
  return {"loss": recon_B + beta * kl_B, "recon": recon_B, "kl": kl_B}


def autoencoder_loss(model, params, x_BxHxWxC, *, likelihood: str = "mse"):
  """Reconstruction term of a deterministic models.Autoencoder: -log p(x | z = encode(x)).

  Returns:
    dict of [B] arrays per example: 'loss' and 'recon' (equal; no KL, no sampling). With the
    'mse' likelihood this is the squared error summed over pixels.
  """
  out, _ = model.apply({"params": params}, x_BxHxWxC)
  recon_B = -dist.log_likelihood_fn(likelihood)(out, x_BxHxWxC)
  return {"loss": recon_B, "recon": recon_B}


def reconstruction_mse(model, params, x_BxHxWxC, *, likelihood: str = "bernoulli"):
  """Squared error summed over pixels between x and the mean reconstruction decoded from the
  posterior mean (VAE) or the code (Autoencoder): no sampling. [B] per example."""
  z_BxZ = models.latent_mean(model, params, x_BxHxWxC)
  out = model.apply({"params": params}, z_BxZ, method=model.decode)
  return dist.squared_error(dist.mean_from_output(likelihood, out), x_BxHxWxC)


def _decode_many(model, params, z_NxBxZ):
  n, b, z = z_NxBxZ.shape
  out = model.apply({"params": params}, z_NxBxZ.reshape(n * b, z), method=model.decode)
  return out.reshape(n, b, *out.shape[1:])


def elbo_multi_sample(model, params, x_BxHxWxC, key, num_samples: int, *,
                      likelihood: str = "bernoulli"):
  """ELBO estimated with L latent samples: mean_l log p(x|z_l) - KL(q(z|x) || p(z)).

  This is the estimate of the growth study (L = 20), computed here on whole test sets.

  Returns:
    [B] ELBO in nats per example (negative; higher is better).
  """
  mean_BxZ, logvar_BxZ = model.apply({"params": params}, x_BxHxWxC, method=model.encode)
  z_LxBxZ = dist.reparameterize(key, jnp.broadcast_to(mean_BxZ, (num_samples, *mean_BxZ.shape)),
                                jnp.broadcast_to(logvar_BxZ, (num_samples, *logvar_BxZ.shape)))
  ll_LxB = dist.log_likelihood_fn(likelihood)(_decode_many(model, params, z_LxBxZ), x_BxHxWxC)
  return jnp.mean(ll_LxB, axis=0) - dist.kl_diag_gaussian_standard(mean_BxZ, logvar_BxZ)


def iwae_bound(model, params, x_BxHxWxC, key, num_samples: int, *, chunk_size: int = 100,
               likelihood: str = "bernoulli"):
  """Importance-weighted bound log (1/K) sum_k p(x, z_k) / q(z_k|x), z_k ~ q(z|x) (Burda et al., 2016).

  The K samples are drawn `chunk_size` at a time inside a `lax.scan` with a running logsumexp, so
  memory is O(chunk_size * B * H * W * C) whatever K is. With K = 1 this equals the single-sample
  ELBO on the same sample; it rises towards log p(x) as K grows. -iwae_bound at K = 5000 is the
  usual importance-weighted NLL estimate.

  Args:
    num_samples: K >= 1. chunk_size: samples per scan step (the last chunk is masked if K is not
      a multiple).

  Returns:
    [B] bound in nats per example.
  """
  if num_samples < 1 or chunk_size < 1:
    raise ValueError(f"num_samples and chunk_size must be >= 1, got {num_samples}, {chunk_size}")
  chunk = min(chunk_size, num_samples)
  num_chunks = math.ceil(num_samples / chunk)
  log_lik = dist.log_likelihood_fn(likelihood)
  mean_BxZ, logvar_BxZ = model.apply({"params": params}, x_BxHxWxC, method=model.encode)
  shape = (chunk, *mean_BxZ.shape)

  def body(lse_B, i):
    z_CxBxZ = dist.reparameterize(jax.random.fold_in(key, i), jnp.broadcast_to(mean_BxZ, shape),
                                  jnp.broadcast_to(logvar_BxZ, shape))
    logw_CxB = (log_lik(_decode_many(model, params, z_CxBxZ), x_BxHxWxC)
                + dist.log_normal_standard(z_CxBxZ)
                - dist.log_normal_diag(z_CxBxZ, mean_BxZ, logvar_BxZ))
    valid_C = i * chunk + jnp.arange(chunk) < num_samples
    logw_CxB = jnp.where(valid_C[:, None], logw_CxB, -jnp.inf)
    return jnp.logaddexp(lse_B, jax.nn.logsumexp(logw_CxB, axis=0)), None

  init = jnp.full(mean_BxZ.shape[:1], -jnp.inf, mean_BxZ.dtype)
  lse_B, _ = jax.lax.scan(body, init, jnp.arange(num_chunks))
  return lse_B - math.log(num_samples)
