"""A user's own flax encoder and decoder, named in configs as "user_models:Encoder" and
"user_models:Decoder" (tests/test_user_modules.py)."""

import flax.linen as nn
import numpy as np


class Encoder(nn.Module):
  """images [B, H, W, C] -> (mean [B, Z], logvar [B, Z]) through one hidden layer."""
  latent_dim: int
  hidden: int = 16

  @nn.compact
  def __call__(self, x):
    h = nn.tanh(nn.Dense(self.hidden)(x.reshape(x.shape[0], -1)))
    return nn.Dense(self.latent_dim)(h), nn.Dense(self.latent_dim)(h)


class Decoder(nn.Module):
  """z [B, Z] -> Bernoulli logits [B, H, W, C]."""
  image_shape: tuple
  hidden: int = 16

  @nn.compact
  def __call__(self, z):
    h = nn.tanh(nn.Dense(self.hidden)(z))
    return nn.Dense(int(np.prod(self.image_shape)))(h).reshape(-1, *self.image_shape)


NOT_A_MODULE = 3
