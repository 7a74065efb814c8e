"""MLP encoder and decoder (Kingma & Welling, 2014, app. C: one or more dense ReLU layers).

Param names are part of the interface: growth.py finds hidden layer i of the encoder at
params["encoder"]["mlp"][f"hidden_{i}"] and its heads at params["encoder"][name] for name in
("mean", "logvar") or ("code",); the decoder has mlp/hidden_i and `out`. Flax derives each
param's init RNG from its module path, so these names also fix the initial values.

Shape letters: B batch, H/W/C image, Z latent size, K classes (one-hot condition).
"""

from __future__ import annotations

from collections.abc import Sequence
import math

import flax.linen as nn
import jax

from vae_jax.models import layers

POSTERIOR_HEADS = ("mean", "logvar")  # VAE / CVAE encoders: q(z|x) = N(mean, diag(exp(logvar))).
CODE_HEADS = ("code",)  # Deterministic Autoencoder encoders.


class MLPEncoder(nn.Module):
  """Images [B, H, W, C] (+ optional condition [B, K]) -> one [B, Z] array per head.

  The pixels are flattened and the condition, if given, concatenated to them: [B, H*W*C + K].

  Attributes:
    widths: widths of the dense ReLU layers mlp/hidden_0.. (may be empty).
    latent_dim: Z, the width of every head.
    dense_init: one of layers.DENSE_INITS.
    heads: head names; POSTERIOR_HEADS gives (mean, logvar), CODE_HEADS gives the code alone.
  """

  widths: Sequence[int]
  latent_dim: int
  dense_init: str = "lecun_normal"
  heads: Sequence[str] = POSTERIOR_HEADS

  @nn.compact
  def __call__(self, x: jax.Array, cond: jax.Array | None = None):
    """x [B, H, W, C] float, cond [B, K] float or None -> (mean, logvar) [B, Z] each, or the
    code [B, Z] when there is one head."""
    h = layers.append_flat(x.reshape((x.shape[0], -1)), cond)
    h = layers.MLP(self.widths, self.dense_init, name="mlp")(h)
    return layers.dense_heads(h, self.heads, self.latent_dim, self.dense_init)


class MLPDecoder(nn.Module):
  """Latents [B, Z] (+ optional condition [B, K], concatenated) -> pre-sigmoid outputs
  [B, H, W, C] (Bernoulli logits; the 'mse' likelihood compares sigmoid(output) with x).

  Attributes:
    widths: widths of the dense ReLU layers mlp/hidden_0.. (may be empty).
    image_shape: (H, W, C) of the output.
    dense_init: one of layers.DENSE_INITS.
  """

  widths: Sequence[int]
  image_shape: Sequence[int]
  dense_init: str = "lecun_normal"

  @nn.compact
  def __call__(self, z: jax.Array, cond: jax.Array | None = None) -> jax.Array:
    """z [B, Z], cond [B, K] or None -> output [B, H, W, C]."""
    h = layers.MLP(self.widths, self.dense_init, name="mlp")(layers.append_flat(z, cond))
    out = layers.dense(math.prod(self.image_shape), h.shape[-1], self.dense_init, "out")(h)
    return out.reshape((z.shape[0], *self.image_shape))
