"""The importance-weighted training objective (IWAE; Burda, Grosse & Salakhutdinov, 2016,
"Importance weighted autoencoders") and its doubly reparameterized gradient estimator for the
encoder (DReG; Tucker, Lawson, Gu & Maddison, 2019, "Doubly reparameterized gradient estimators
for Monte Carlo objectives").

Shape letters: K importance samples, B batch, Z latent, H/W/C image. `model` is a models.VAE or
CVAE (or any module with its encode / decode), `params` its param pytree.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from vae_jax import distributions as dist

ESTIMATORS = ("iwae", "dreg")


def decode_many(model, params, z_NxBxZ, label_B=None):
  """The decoder's outputs for N latents per example, in ONE batched pass over N * B rows:
  z [N, B, Z] -> [N, B, H, W, C] (a CVAE's labels tiled alongside)."""
  n, b, z = z_NxBxZ.shape
  label = None if label_B is None else jnp.tile(label_B, n)
  out = model.apply({"params": params}, z_NxBxZ.reshape(n * b, z), label, method=model.decode)
  return out.reshape(n, b, *out.shape[1:])


def log_mean_exp_chunked(log_weights, key, num_samples: int, chunk_size: int, batch: int,
                         dtype=jnp.float32, unroll: bool = False) -> jax.Array:
  """log (1/K) sum_k w_k over K = num_samples importance samples drawn `chunk_size` at a time
  inside a `lax.scan` with a running logsumexp (memory of one chunk whatever K is); the last chunk
  is masked when K is not a multiple.

  Args:
    log_weights: (key, C) -> log w [C, B] of C fresh samples drawn with `key`; chunk i gets
      fold_in(key, i).
  Returns:
    [B] nats.
  Raises:
    ValueError: num_samples or chunk_size < 1.
  """
  if num_samples < 1 or chunk_size < 1:
    raise ValueError(f"num_samples and chunk_size must be >= 1, got {num_samples}, {chunk_size}")
  chunk = min(chunk_size, num_samples)

  def body(lse_B, i):
    logw_CxB = log_weights(jax.random.fold_in(key, i), chunk)
    valid_C = i * chunk + jnp.arange(chunk) < num_samples
    logw_CxB = jnp.where(valid_C[:, None], logw_CxB, -jnp.inf)
    return jnp.logaddexp(lse_B, jax.nn.logsumexp(logw_CxB, axis=0)), None

  init = jnp.full((batch,), -jnp.inf, dtype)
  lse_B, _ = jax.lax.scan(body, init, jnp.arange(math.ceil(num_samples / chunk)), unroll=unroll)
  return lse_B - math.log(num_samples)


def _log_weights(model, params, x, z_KxBxZ, mean, logvar, label, likelihood, beta, log_prior):
  """(log w [K, B] = log p(x|z) + beta * (log p(z) - log q(z|x)), log p(x|z) [K, B])."""
  log_lik_KxB = dist.log_likelihood_fn(likelihood)(decode_many(model, params, z_KxBxZ, label), x)
  log_p_z = (dist.log_normal_standard(z_KxBxZ) if log_prior is None
             else log_prior(params, z_KxBxZ))
  log_ratio_KxB = log_p_z - dist.log_normal_diag(z_KxBxZ, mean, logvar)
  return log_lik_KxB + beta * log_ratio_KxB, log_lik_KxB


def iwae_terms(model, params, x_BxHxWxC, key, num_samples: int, label_B=None, *, beta=1.0,
               likelihood: str = "bernoulli", estimator: str = "iwae",
               log_prior=None) -> dict[str, jax.Array]:
  """The negative IWAE bound -log (1/K) sum_k w_k, w_k = p(x, z_k) / q(z_k|x), z_k ~ q(z|x) by
  reparameterization (Burda et al., 2016, eq. 8), its K samples decoded in one batched pass. With
  beta != 1 the log prior ratio is weighted by beta (a beta-IWAE; beta = 1 is the bound, and
  K = 1 the single-sample ELBO on the same draw).

  estimator='iwae' differentiates the bound itself (Burda et al.'s gradient). 'dreg' keeps the
  bound's value and its decoder gradient but gives the encoder the doubly reparameterized gradient
  sum_k w~_k^2 d log w_k / dz_k dz_k / dphi (Tucker et al., 2019, eq. 5; w~ the normalized
  weights), which drops the score-function term whose variance grows with K. The two surrogate
  terms each run the decoder once (params stopped in one, latents stopped in the other), so a
  DReG step costs about two decoder passes.

  Args:
    x_BxHxWxC: floats in [0, 1]. num_samples: K >= 1 (static). beta: float32 scalar (traced).
    log_prior: (params, z [..., Z]) -> log p(z) [...] of a learned prior whose params live in
      `params` (DReG's encoder term passes them stopped, its decoder term live); None: N(0, I).
  Returns:
    dict of [B] arrays in nats per example: 'loss' (-bound), 'recon' (-mean_k log p(x|z_k)) and
    'kl' (analytic KL(q(z|x) || p(z)), as the ELBO reports it).
  Raises:
    ValueError: num_samples < 1 or an unknown estimator.
  """
  if num_samples < 1:
    raise ValueError(f"num_samples must be >= 1, got {num_samples}")
  if estimator not in ESTIMATORS:
    raise ValueError(f"unknown estimator {estimator!r}; choose one of {', '.join(ESTIMATORS)}")
  mean_BxZ, logvar_BxZ = model.apply({"params": params}, x_BxHxWxC, label_B, method=model.encode)
  shape = (num_samples, *mean_BxZ.shape)
  z_KxBxZ = dist.reparameterize(key, jnp.broadcast_to(mean_BxZ, shape),
                                jnp.broadcast_to(logvar_BxZ, shape))
  log_k = math.log(num_samples)
  if estimator == "iwae":
    logw_KxB, log_lik_KxB = _log_weights(model, params, x_BxHxWxC, z_KxBxZ, mean_BxZ,
                                         logvar_BxZ, label_B, likelihood, beta, log_prior)
    bound_B = jax.nn.logsumexp(logw_KxB, axis=0) - log_k
  else:
    sg = jax.lax.stop_gradient
    # Decoder term: the latents (and the encoder behind them) held fixed; its value is the bound.
    logw_KxB, log_lik_KxB = _log_weights(model, params, x_BxHxWxC, sg(z_KxBxZ), sg(mean_BxZ),
                                         sg(logvar_BxZ), label_B, likelihood, beta, log_prior)
    # Encoder term: only the path through z, weighted by w~^2; q's parameters stopped in log q.
    path_KxB, _ = _log_weights(model, sg(params), x_BxHxWxC, z_KxBxZ, sg(mean_BxZ),
                               sg(logvar_BxZ), label_B, likelihood, beta, log_prior)
    weights_KxB = sg(jnp.square(jax.nn.softmax(logw_KxB, axis=0)))
    surrogate_B = jnp.sum(weights_KxB * path_KxB, axis=0)
    bound_B = jax.nn.logsumexp(logw_KxB, axis=0) - log_k + surrogate_B - sg(surrogate_B)
  kl_B = (dist.kl_diag_gaussian_standard(mean_BxZ, logvar_BxZ) if log_prior is None else
          jnp.mean(dist.log_normal_diag(z_KxBxZ, mean_BxZ, logvar_BxZ)
                   - log_prior(params, z_KxBxZ), axis=0))
  return {"loss": -bound_B, "recon": -jnp.mean(log_lik_KxB, axis=0), "kl": kl_B}
