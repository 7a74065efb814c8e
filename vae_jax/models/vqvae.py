"""VQ-VAE (van den Oord, Vinyals & Kavukcuoglu, 2017, "Neural discrete representation learning"):
each image is encoded to N vectors of size D, each replaced by its nearest of K codebook vectors,
and decoded from those; the codebook follows exponential moving averages of the encodings
assigned to it (the paper's appendix A.1), not gradients.

The codebook is stored as its two moving averages, params["codebook"]["counts"] [K] (assignments)
and ["sums"] [K, D] (sum of the assigned encodings): its vectors are sums / counts with Laplace
smoothing (`codebook`), so they need no parameter of their own and the training step updates them
with `ema_update` (objectives.VQVAEObjective.update_params). The optimizer sees zero gradients
for them: with Adam and no weight decay it leaves them unchanged.

Shape letters: B batch, N codes per image, D code size, K codebook size.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from vae_jax.models.composites import _Unconditional

LAPLACE = 1e-5  # Additive smoothing of the counts (as Sonnet's VectorQuantizerEMA).


def codebook(counts: jax.Array, sums: jax.Array) -> jax.Array:
  """The codebook vectors [K, D]: sums / counts, counts Laplace-smoothed so an unused code keeps
  a finite vector."""
  total = jnp.sum(counts)
  smoothed = (counts + LAPLACE) / (total + counts.shape[0] * LAPLACE) * total
  return sums / smoothed[:, None]


def quantize(z_BxNxD: jax.Array, codes_KxD: jax.Array):
  """(nearest codebook vectors [B, N, D], their indices int32 [B, N]), by squared distance."""
  d = (jnp.sum(jnp.square(z_BxNxD), -1, keepdims=True) - 2.0 * z_BxNxD @ codes_KxD.T
       + jnp.sum(jnp.square(codes_KxD), -1))
  idx = jnp.argmin(d, axis=-1).astype(jnp.int32)
  return codes_KxD[idx], idx


def ema_update(counts, sums, idx_BxN, z_BxNxD, decay):
  """The moving averages after one batch: counts <- decay * counts + (1 - decay) * n_k,
  sums <- decay * sums + (1 - decay) * (sum of the encodings assigned to k)."""
  one_hot = jax.nn.one_hot(idx_BxN, counts.shape[0], dtype=z_BxNxD.dtype)  # [B, N, K]
  n = jnp.sum(one_hot, axis=(0, 1))
  s = jnp.einsum("bnk,bnd->kd", one_hot, z_BxNxD)
  return decay * counts + (1.0 - decay) * n, decay * sums + (1.0 - decay) * s


class VQVAE(_Unconditional):
  """Encoder -> N codes of size D -> nearest codebook vectors -> decoder.

  Attributes:
    encoder: module x [B, H, W, C] -> [B, N * D] (an encoder with CODE_HEADS, latent_dim N * D).
    decoder: module [B, N * D] -> output [B, H, W, P].
    num_codes: K. code_dim: D.
  """
  num_codes: int = 512
  code_dim: int = 16

  def setup(self):
    self.counts = self.param("counts", nn.initializers.ones, (self.num_codes,))
    self.sums = self.param("sums", nn.initializers.variance_scaling(1.0, "fan_in", "uniform"),
                           (self.num_codes, self.code_dim))

  def codebook(self) -> jax.Array:
    """The codebook vectors [K, D] (module function `codebook`)."""
    return codebook(self.counts, self.sums)

  def encode(self, x: jax.Array, label: jax.Array | None = None) -> jax.Array:
    """x [B, H, W, C] -> encodings z_e [B, N, D] (before quantization); `label` is ignored."""
    del label
    z = self.encoder(x)
    return z.reshape(z.shape[0], -1, self.code_dim)

  def decode(self, z: jax.Array, label: jax.Array | None = None) -> jax.Array:
    """Quantized codes [B, N, D] or [B, N * D] -> decoder output [B, H, W, P]."""
    del label
    return self.decoder(z.reshape(z.shape[0], -1))

  def __call__(self, x: jax.Array, key: jax.Array | None = None,
               label: jax.Array | None = None):
    """(decoder output [B, H, W, P], z_e [B, N, D], z_q [B, N, D], indices [B, N]), the decoder
    fed z_e + stop_gradient(z_q - z_e) (the straight-through estimator); `key` is unused."""
    del key
    z_e = self.encode(x, label)
    z_q, idx = quantize(z_e, self.codebook())
    out = self.decode(z_e + jax.lax.stop_gradient(z_q - z_e))
    return out, z_e, z_q, idx
