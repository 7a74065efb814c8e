"""The per-example bounds and losses the objectives are made of, in nats per example: the
single-sample negative ELBO (analytic KL, or a learned prior's single-sample KL), the
autoencoder's reconstruction term, the L-sample ELBO and the chunked importance-weighted bound.

Shape letters: B batch, K importance samples, L ELBO samples, Z latent, H/W/C image. `model` is a
vae_jax.models model and `params` its param pytree; `x_BxHxWxC` are floats in [0, 1]; `label_B`
int32 class labels (ignored by unconditional models).
"""

from __future__ import annotations

import jax.numpy as jnp

from vae_jax import distributions as dist, iwae, schedules


def neg_elbo(model, params, x_BxHxWxC, key, label_B=None, *, beta=1.0, free_bits=0.0,
             likelihood: str = "bernoulli"):
  """Single-sample negative ELBO: reconstruction + beta * KL (Kingma & Welling, 2014; beta as in
  Higgins et al., 2017; conditional on a label for a CVAE, Sohn et al., 2015).

  Args:
    free_bits: lambda > 0 puts schedules.free_bits_kl (nats per latent dimension, Kingma et al.,
      2016) in the loss in place of the KL; 'kl' stays the KL.
  Returns:
    dict of [B] arrays in nats per example: 'loss' (reconstruction + beta*KL), 'recon'
    (-log p(x|z), z ~ q(z|x) by reparameterization) and 'kl' (analytic KL(q(z|x) || p(z))).
  """
  out, mean_BxZ, logvar_BxZ = model.apply({"params": params}, x_BxHxWxC, key, label_B)
  recon_B = -dist.log_likelihood_fn(likelihood)(out, x_BxHxWxC)
  kl_B = dist.kl_diag_gaussian_standard(mean_BxZ, logvar_BxZ)
  kl_loss_B = jnp.where(free_bits > 0, schedules.free_bits_kl(
      dist.kl_diag_gaussian_standard_per_dim(mean_BxZ, logvar_BxZ), free_bits), kl_B)
  return {"loss": recon_B + beta * kl_loss_B, "recon": recon_B, "kl": kl_B}


def neg_elbo_learned_prior(model, params, x_BxHxWxC, key, log_prior, label_B=None, *, beta=1.0,
                           likelihood: str = "bernoulli"):
  """neg_elbo under a learned prior with no analytic KL (VampPrior; Tomczak & Welling, 2018):
  the KL by its single-sample estimate log q(z|x) - log p(z) at the reparameterized z the
  reconstruction term uses.

  Args:
    log_prior: (params, z [..., Z]) -> log p(z) [...] (the objectives' log_prior_fn).
  Returns:
    dict of [B] arrays in nats per example: 'loss', 'recon', 'kl' (the estimate; it can be
    negative for one z).
  """
  mean_BxZ, logvar_BxZ = model.apply({"params": params}, x_BxHxWxC, label_B, method=model.encode)
  z_BxZ = dist.reparameterize(key, mean_BxZ, logvar_BxZ)
  out = model.apply({"params": params}, z_BxZ, label_B, method=model.decode)
  recon_B = -dist.log_likelihood_fn(likelihood)(out, x_BxHxWxC)
  kl_B = dist.log_normal_diag(z_BxZ, mean_BxZ, logvar_BxZ) - log_prior(params, z_BxZ)
  return {"loss": recon_B + beta * kl_B, "recon": recon_B, "kl": kl_B}


def autoencoder_loss(model, params, x_BxHxWxC, label_B=None, *, likelihood: str = "mse"):
  """Reconstruction term of a deterministic models.Autoencoder: -log p(x | z = encode(x)).

  Returns:
    dict of [B] arrays per example: 'loss' and 'recon' (equal; no KL, no sampling). With the
    'mse' likelihood this is the squared error summed over pixels.
  """
  out, _ = model.apply({"params": params}, x_BxHxWxC, None, label_B)
  recon_B = -dist.log_likelihood_fn(likelihood)(out, x_BxHxWxC)
  return {"loss": recon_B, "recon": recon_B}


def elbo_multi_sample(model, params, x_BxHxWxC, key, num_samples: int, label_B=None, *,
                      likelihood: str = "bernoulli"):
  """ELBO estimated with L latent samples: mean_l log p(x|z_l) - KL(q(z|x) || p(z)).

  This is the estimate of the growth study (L = 20), computed here on whole test sets.

  Returns:
    [B] ELBO in nats per example (negative; higher is better).
  """
  mean_BxZ, logvar_BxZ = model.apply({"params": params}, x_BxHxWxC, label_B, method=model.encode)
  z_LxBxZ = dist.reparameterize(key, jnp.broadcast_to(mean_BxZ, (num_samples, *mean_BxZ.shape)),
                                jnp.broadcast_to(logvar_BxZ, (num_samples, *logvar_BxZ.shape)))
  ll_LxB = dist.log_likelihood_fn(likelihood)(iwae.decode_many(model, params, z_LxBxZ, label_B),
                                              x_BxHxWxC)
  return jnp.mean(ll_LxB, axis=0) - dist.kl_diag_gaussian_standard(mean_BxZ, logvar_BxZ)


def iwae_bound(model, params, x_BxHxWxC, key, num_samples: int, label_B=None, *,
               chunk_size: int = 100, likelihood: str = "bernoulli", unroll: bool = False,
               log_prior=None):
  """Importance-weighted bound log (1/K) sum_k p(x, z_k) / q(z_k|x), z_k ~ q(z|x) (Burda et al.,
  2016); for a CVAE every term is conditioned on the label, so it bounds log p(x | y).

  The K samples are drawn `chunk_size` at a time inside a `lax.scan` with a running logsumexp, so
  memory is O(chunk_size * B * H * W * C) whatever K is. With K = 1 this equals the single-sample
  ELBO on the same sample; it rises towards log p(x) as K grows. -iwae_bound at K = 5000 is the
  usual importance-weighted NLL estimate.

  Args:
    num_samples: K >= 1. chunk_size: samples per scan step (the last chunk is masked if K is not
      a multiple). unroll: unroll the scan (conv models on XLA:CPU run ~10x faster unrolled).
    log_prior: (params, z [..., Z]) -> log p(z) [...] of a learned prior (VampPrior; the
      objectives' log_prior_fn); None: N(0, I).

  Returns:
    [B] bound in nats per example.

  Raises:
    ValueError: num_samples or chunk_size < 1.
  """
  log_lik = dist.log_likelihood_fn(likelihood)
  mean_BxZ, logvar_BxZ = model.apply({"params": params}, x_BxHxWxC, label_B, method=model.encode)

  def log_weights(key_i, chunk):
    shape = (chunk, *mean_BxZ.shape)
    z_CxBxZ = dist.reparameterize(key_i, jnp.broadcast_to(mean_BxZ, shape),
                                  jnp.broadcast_to(logvar_BxZ, shape))
    return (log_lik(iwae.decode_many(model, params, z_CxBxZ, label_B), x_BxHxWxC)
            + (dist.log_normal_standard(z_CxBxZ) if log_prior is None
               else log_prior(params, z_CxBxZ))
            - dist.log_normal_diag(z_CxBxZ, mean_BxZ, logvar_BxZ))

  return iwae.log_mean_exp_chunked(log_weights, key, num_samples, chunk_size,
                                   mean_BxZ.shape[0], mean_BxZ.dtype, unroll)
