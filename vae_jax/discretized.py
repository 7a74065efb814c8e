"""Likelihoods of 8-bit images: a discretized Gaussian with a learned per-pixel scale and the
discretized logistic mixture of Salimans, Karpathy, Chen & Kingma (2017), "PixelCNN++", eq. 2.

Both give each of the 256 intensity levels k of a pixel the probability mass of its bin
[k/255 - 1/510, k/255 + 1/510] under a continuous density over x in [0, 1] (pixels as
preprocessed: uint8 / 255), the two edge bins extended to -inf and +inf, so the masses of the 256
levels sum to 1: log p(x | z) is a normalized log-likelihood of the 8-bit image in nats, and
-log p / (H * W * C * ln 2) its bits/dim, the number the literature reports for CIFAR-10.

Decoder outputs, per pixel (P channels):
  gaussian: [mean_1..C, log_scale_1..C] (P = 2C)
  logistic_mixture with M components: [logits_1..M, means (C x M), log_scales (C x M)] and, for
    RGB (C = 3), 3M coefficients (PixelCNN++'s linear dependence of the green mean on red and of
    blue on red and green); P = 3M for C = 1, 10M for C = 3.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.special import log_ndtr

HALF_BIN = 1.0 / 510.0  # Half the width of an intensity level's bin (levels k / 255).
MIN_LOG_SCALE = -7.0  # As PixelCNN++: scales below e^-7 put all mass in one bin anyway.
_EDGE = 1e-3  # x below this is level 0, above 1 - _EDGE level 255.


def output_channels(name: str, channels: int, components: int = 5) -> int:
  """P, the decoder's output channels per pixel for likelihood `name` on C-channel images."""
  if name == "gaussian":
    return 2 * channels
  if name == "logistic_mixture":
    if channels not in (1, 3):
      raise ValueError(f"the logistic mixture likelihood takes 1 or 3 channels, got {channels}")
    return components * (3 if channels == 1 else 10)
  return channels


def _flat(a):
  return a.reshape(*a.shape[:-3], -1)


def _log_bin_mass(log_cdf_plus, log_sf_min, log_delta, x):
  """log mass of x's bin: the lower edge bin (-inf, 1/510], the upper edge bin
  [1 - 1/510, inf), or the interior bin (log_delta)."""
  return jnp.where(x < _EDGE, log_cdf_plus, jnp.where(x > 1.0 - _EDGE, log_sf_min, log_delta))


def _log_diff_exp(a, b):
  """log(exp(a) - exp(b)) for a >= b, accurate for close a and b (expm1); at least
  log(1e-30) + a, so that an empty bin stays finite and differentiable."""
  return a + jnp.log(jnp.maximum(-jnp.expm1(b - a), 1e-30))


def gaussian_log_likelihood(output: jax.Array, x: jax.Array) -> jax.Array:
  """log p(x | z), nats per image, of a discretized Gaussian per pixel (module docstring).

  Args:
    output: [..., H, W, 2C] decoder outputs: means, then log scales (clamped below at -7).
    x: [..., H, W, C] pixels in [0, 1] (levels k / 255); broadcast against output.
  Returns:
    [...] nats per example.
  """
  c = x.shape[-1]
  mean, log_s = output[..., :c], jnp.maximum(output[..., c:], MIN_LOG_SCALE)
  inv_s = jnp.exp(-log_s)
  plus, minus = inv_s * (x - mean + HALF_BIN), inv_s * (x - mean - HALF_BIN)
  # The bin's mass from whichever tail is smaller (no cancellation of two CDFs near 1).
  upper = minus > 0
  log_delta = jnp.where(upper, _log_diff_exp(log_ndtr(-minus), log_ndtr(-plus)),
                        _log_diff_exp(log_ndtr(plus), log_ndtr(minus)))
  return jnp.sum(_flat(_log_bin_mass(log_ndtr(plus), log_ndtr(-minus), log_delta, x)), axis=-1)


def _mixture_parts(output: jax.Array, channels: int):
  """(logits [..., M], means [..., C, M], log scales [..., C, M], coefficients [..., 3, M] or
  None) of a logistic mixture output [..., P]."""
  m = output.shape[-1] // (3 if channels == 1 else 10)
  logits = output[..., :m]
  means = output[..., m:m + channels * m].reshape(*output.shape[:-1], channels, m)
  log_s = output[..., m + channels * m:m + 2 * channels * m].reshape(*output.shape[:-1],
                                                                     channels, m)
  coeffs = None
  if channels == 3:
    coeffs = jnp.tanh(output[..., m + 6 * m:].reshape(*output.shape[:-1], 3, m))
  return logits, means, jnp.maximum(log_s, MIN_LOG_SCALE), coeffs


def _rgb_means(means, coeffs, x):
  """PixelCNN++'s means: green shifted by a * red, blue by b * red + c * green (x the pixels)."""
  r, g = x[..., 0:1, None], x[..., 1:2, None]  # [..., 1, 1]
  mean_g = means[..., 1:2, :] + coeffs[..., 0:1, :] * r
  mean_b = means[..., 2:3, :] + coeffs[..., 1:2, :] * r + coeffs[..., 2:3, :] * g
  return jnp.concatenate([means[..., 0:1, :], mean_g, mean_b], axis=-2)


def logistic_mixture_log_likelihood(output: jax.Array, x: jax.Array) -> jax.Array:
  """log p(x | z), nats per image, of a discretized mixture of logistics per pixel (Salimans et
  al., 2017; module docstring), the mixture weights shared by a pixel's channels.

  Args:
    output: [..., H, W, P] decoder outputs (P = 3M for C = 1, 10M for C = 3).
    x: [..., H, W, C] pixels in [0, 1] (levels k / 255); broadcast against output.
  Returns:
    [...] nats per example.
  """
  c = x.shape[-1]
  lead = jnp.broadcast_shapes(x.shape[:-1], output.shape[:-1])
  x, output = jnp.broadcast_to(x, (*lead, c)), jnp.broadcast_to(output, (*lead, output.shape[-1]))
  logits, means, log_s, coeffs = _mixture_parts(output, c)
  if coeffs is not None:
    means = _rgb_means(means, coeffs, x)
  xc = x[..., None]  # [..., C, 1] against [..., C, M]
  inv_s = jnp.exp(-log_s)
  plus, minus = inv_s * (xc - means + HALF_BIN), inv_s * (xc - means - HALF_BIN)
  log_cdf_plus = plus - jax.nn.softplus(plus)  # log sigmoid(plus)
  log_sf_min = -jax.nn.softplus(minus)  # log (1 - sigmoid(minus))
  # log(sigmoid(plus) - sigmoid(minus)), from the smaller tail.
  log_delta = jnp.where(minus > 0, _log_diff_exp(log_sf_min, -jax.nn.softplus(plus)),
                        _log_diff_exp(log_cdf_plus, minus - jax.nn.softplus(minus)))
  log_p = _log_bin_mass(log_cdf_plus, log_sf_min, log_delta, xc)  # [..., C, M]
  per_pixel = jax.nn.logsumexp(jnp.sum(log_p, axis=-2) + jax.nn.log_softmax(logits), axis=-1)
  return jnp.sum(per_pixel.reshape(*per_pixel.shape[:-2], -1), axis=-1)


def mean_image(name: str, output: jax.Array, components: int = 5) -> jax.Array:
  """The likelihood's mean image [..., H, W, C] in [0, 1] from decoder outputs [..., H, W, P]
  (for the mixture, the mean of each component's logistic, RGB shifts applied to the channel
  means in order; the discretization's edge bins are ignored)."""
  if name == "gaussian":
    return jnp.clip(output[..., : output.shape[-1] // 2], 0.0, 1.0)
  channels = 1 if output.shape[-1] == 3 * components else 3
  logits, means, _, coeffs = _mixture_parts(output, channels)
  weights = jax.nn.softmax(logits)[..., None, :]  # [..., 1, M]
  if coeffs is not None:  # Each component's channel means, in order (E[r | m] = its mean).
    r = means[..., 0, :]
    g = means[..., 1, :] + coeffs[..., 0, :] * r
    b = means[..., 2, :] + coeffs[..., 1, :] * r + coeffs[..., 2, :] * g
    means = jnp.stack([r, g, b], axis=-2)
  return jnp.clip(jnp.sum(weights * means, axis=-1), 0.0, 1.0)
