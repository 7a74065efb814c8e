"""Latent-space analysis of trained VAEs: interpolation paths, latent arithmetic, active units,
KL per latent dimension, posterior-uncertainty maps, and 2-D projections (PCA, t-SNE).

Pure functions of arrays (projections call scikit-learn). Shape letters: N points, T steps,
Z latent size, S samples, H/W/C image.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

ACTIVE_UNIT_THRESHOLD = 0.01  # Burda et al. (2016), section 5.2.


def _check_path(z0, z1, steps):
  if steps < 2 or z0.shape != z1.shape:
    raise ValueError(f"need steps >= 2 and endpoints of one shape, got steps={steps}, "
                     f"{z0.shape} and {z1.shape}")


def linear_path(z_start_NxZ, z_end_NxZ, steps: int):
  """Points (1 - a) z_start + a z_end for a = 0, 1/(T-1), ..., 1 (the fc_vs_conv study's
  interpolation): [N, Z], [N, Z] -> [N, T, Z]; the first and last points are the endpoints.

  Raises:
    ValueError: steps < 2 or the endpoints' shapes differ.
  """
  z0, z1 = jnp.asarray(z_start_NxZ), jnp.asarray(z_end_NxZ)
  _check_path(z0, z1, steps)
  a_T = jnp.linspace(0.0, 1.0, steps, dtype=z0.dtype)
  return (1.0 - a_T)[None, :, None] * z0[:, None] + a_T[None, :, None] * z1[:, None]


def spherical_path(z_start_NxZ, z_end_NxZ, steps: int):
  """Spherical linear interpolation (slerp; Shoemake, 1985, as used for VAE/GAN latents by White,
  2016): sin((1-a) w) / sin(w) z_start + sin(a w) / sin(w) z_end, w the angle between the two;
  falls back to the linear path where they are (anti)parallel. [N, Z], [N, Z] -> [N, T, Z].

  Raises:
    ValueError: steps < 2 or the endpoints' shapes differ.
  """
  z0, z1 = jnp.asarray(z_start_NxZ), jnp.asarray(z_end_NxZ)
  _check_path(z0, z1, steps)
  norms = jnp.linalg.norm(z0, axis=-1) * jnp.linalg.norm(z1, axis=-1)
  cos = jnp.clip(jnp.sum(z0 * z1, axis=-1) / jnp.maximum(norms, 1e-12), -1.0, 1.0)
  omega_N = jnp.arccos(cos)[:, None]
  a_T = jnp.linspace(0.0, 1.0, steps, dtype=z0.dtype)[None, :]
  sin = jnp.sin(omega_N)
  safe = sin > 1e-6
  w0 = jnp.where(safe, jnp.sin((1.0 - a_T) * omega_N) / jnp.where(safe, sin, 1.0), 1.0 - a_T)
  w1 = jnp.where(safe, jnp.sin(a_T * omega_N) / jnp.where(safe, sin, 1.0), a_T)
  return w0[..., None] * z0[:, None] + w1[..., None] * z1[:, None]


def class_means(latents_NxZ, labels_N, num_classes: int) -> np.ndarray:
  """Mean latent of each class: [K, Z] (NaN rows for classes without points)."""
  latents, labels = np.asarray(latents_NxZ, np.float64), np.asarray(labels_N)
  return np.stack([latents[labels == k].mean(0) if np.any(labels == k)
                   else np.full(latents.shape[1], np.nan) for k in range(num_classes)])


def latent_arithmetic(z_NxZ, mean_from_Z, mean_to_Z):
  """z - mean z(class a) + mean z(class b): moves latents from class a towards class b keeping
  the rest (the 'attribute vector' arithmetic of White, 2016). [N, Z] -> [N, Z]."""
  return jnp.asarray(z_NxZ) - jnp.asarray(mean_from_Z) + jnp.asarray(mean_to_Z)


def active_units(posterior_means_NxZ, threshold: float = ACTIVE_UNIT_THRESHOLD):
  """Active units (Burda et al., 2016): latent dimensions u whose posterior mean varies over the
  data, Cov_x(E_q(z|x)[z_u]) > threshold.

  Args:
    posterior_means_NxZ: posterior means of N data points (e.g. the test set).
  Returns:
    (number of active units, the variances [Z] (float64)).
  Raises:
    ValueError: fewer than 2 points.
  """
  means = np.asarray(posterior_means_NxZ, np.float64)
  if means.ndim != 2 or len(means) < 2:
    raise ValueError(f"need posterior means [N >= 2, Z], got shape {means.shape}")
  variances = means.var(axis=0)
  return int(np.sum(variances > threshold)), variances


def kl_per_dimension(mean_NxZ, logvar_NxZ) -> np.ndarray:
  """Mean over the N points of KL(q(z_u|x) || N(0, 1)) per latent dimension u, in nats: [Z]
  (float64); it sums to the mean KL term (Kingma & Welling, 2014, appendix B)."""
  mean, logvar = np.asarray(mean_NxZ, np.float64), np.asarray(logvar_NxZ, np.float64)
  return np.mean(-0.5 * (1.0 + logvar - mean ** 2 - np.exp(logvar)), axis=0)


def uncertainty_maps(decode_mean: Callable, key, mean_NxZ, logvar_NxZ, num_samples: int):
  """Per-pixel posterior uncertainty: the mean and sd over S draws z ~ q(z|x) of the decoded
  means decode_mean(z) [N, H, W, C] in [0, 1].

  Returns:
    (mean [N, H, W, C], sd [N, H, W, C]).
  Raises:
    ValueError: num_samples < 2.
  """
  if num_samples < 2:
    raise ValueError(f"num_samples must be >= 2 for a standard deviation, got {num_samples}")
  mean, logvar = jnp.asarray(mean_NxZ), jnp.asarray(logvar_NxZ)
  eps = jax.random.normal(key, (num_samples, *mean.shape), mean.dtype)
  z_SxNxZ = mean + jnp.exp(0.5 * logvar) * eps
  n, z = mean.shape
  decoded = decode_mean(z_SxNxZ.reshape(num_samples * n, z))
  decoded = decoded.reshape(num_samples, n, *decoded.shape[1:])
  return decoded.mean(0), decoded.std(0, ddof=1)


def project_2d(points_NxD, method: str = "pca", seed: int = 0) -> np.ndarray:
  """2-D embedding of points [N, D] -> [N, 2] (float64) by scikit-learn's PCA or t-SNE (van der
  Maaten & Hinton, 2008; perplexity min(30, (N - 1) / 3), PCA init, seeded).

  Raises:
    ValueError: unknown method, or fewer than 3 points.
  """
  from sklearn.decomposition import PCA  # pylint: disable=import-outside-toplevel
  from sklearn.manifold import TSNE  # pylint: disable=import-outside-toplevel
  x = np.asarray(points_NxD, np.float64)
  if x.ndim != 2 or len(x) < 3:
    raise ValueError(f"need points [N >= 3, D], got shape {x.shape}")
  if method == "pca":
    return PCA(n_components=2, random_state=seed).fit_transform(x)
  if method == "tsne":
    return TSNE(n_components=2, perplexity=min(30.0, (len(x) - 1) / 3), init="pca",
                random_state=seed).fit_transform(x)
  raise ValueError(f"unknown projection {method!r}; choose pca or tsne")
