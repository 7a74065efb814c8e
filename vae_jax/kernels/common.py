"""Pieces the kernels share: a bias add with a fast gradient, and the flipped initializer that
keeps the PyTorch-ordered transposed-conv kernels bit-compatible with flax's draws."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp


@jax.custom_vjp
def add_bias(y: jax.Array, bias: jax.Array) -> jax.Array:
  """y [..., C] + bias [C], whose bias gradient is a matrix-vector product (ones @ dy) rather
  than a reduction over the leading axes (which XLA:CPU vectorizes poorly for small C)."""
  return y + bias


def _add_bias_fwd(y, bias):
  return y + bias, None


def _add_bias_bwd(_, g):
  c = g.shape[-1]
  return g, jnp.ones((g.size // c,), g.dtype) @ g.reshape(-1, c)


add_bias.defvjp(_add_bias_fwd, _add_bias_bwd)


def flipped(init: nn.initializers.Initializer) -> nn.initializers.Initializer:
  """`init`'s draw with the two spatial axes of the kernel [kh, kw, ...] reversed: the same
  distribution for every init used here (i.i.d. entries). ConvTranspose stores this, so that
  flax's 'SAME' transposed conv with kernel K, which vae_jax computed before 0.2, is this
  layer with kernel flip(K): the same seed trains the same numbers as before, bit for bit."""
  return lambda key, shape, dtype=jnp.float32: init(key, shape, dtype)[::-1, ::-1]
