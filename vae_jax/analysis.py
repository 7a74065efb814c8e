"""Latent-space analysis of trained VAEs: interpolation paths between latents.

Pure functions of arrays; shape letters: N points, T steps, Z latent size.
"""

from __future__ import annotations

import jax.numpy as jnp


def linear_path(z_start_NxZ, z_end_NxZ, steps: int):
  """Points (1 - a) z_start + a z_end for a = 0, 1/(T-1), ..., 1 (the fc_vs_conv study's
  interpolation): [N, Z], [N, Z] -> [N, T, Z]; the first and last points are the endpoints.

  Raises:
    ValueError: steps < 2 or the endpoints' shapes differ.
  """
  z0, z1 = jnp.asarray(z_start_NxZ), jnp.asarray(z_end_NxZ)
  if steps < 2 or z0.shape != z1.shape:
    raise ValueError(f"need steps >= 2 and endpoints of one shape, got steps={steps}, "
                     f"{z0.shape} and {z1.shape}")
  a_T = jnp.linspace(0.0, 1.0, steps, dtype=z0.dtype)
  return (1.0 - a_T)[None, :, None] * z0[:, None] + a_T[None, :, None] * z1[:, None]
