"""A small CNN classifier: its penultimate features feed classifier-based sample metrics
(e.g. a FID computed in this feature space, Heusel et al., 2017).

Params: conv/conv_0..conv_{n-1} (4x4 stride-2 SAME convs + ReLU, as in the conv encoder),
`hidden` (dense + ReLU, the features) and `logits`.

Shape letters: B batch, H/W/C image, N classes.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax

from vae_jax.models import layers


class Classifier(nn.Module):
  """Images [B, H, W, C] -> class logits [B, num_classes].

  Attributes:
    channels: channels of the 4x4 stride-2 convs (28x28 -> 14 -> 7 for two layers; any H, W).
    hidden: width of the penultimate dense ReLU layer, the size of `features(x)`.
    num_classes: N >= 2.
    dense_init: one of layers.DENSE_INITS (convs and dense layers).
  """

  channels: Sequence[int] = (32, 64)
  hidden: int = 128
  num_classes: int = 10
  dense_init: str = "lecun_normal"

  def features(self, x: jax.Array) -> jax.Array:
    """x [B, H, W, C] float in [0, 1] -> penultimate features [B, hidden] (after the ReLU)."""
    return self(x, features_only=True)

  @nn.compact
  def __call__(self, x: jax.Array, key: jax.Array | None = None,
               label: jax.Array | None = None, *, features_only: bool = False) -> jax.Array:
    """x [B, H, W, C] -> logits [B, num_classes] (or the features [B, hidden] when
    features_only); `key` and `label` are ignored (kept so that every model kind has one calling
    convention)."""
    del key, label
    h = layers.ConvStack(self.channels, self.dense_init, name="conv")(x)
    h = h.reshape((h.shape[0], -1))
    h = nn.relu(layers.dense(self.hidden, h.shape[-1], self.dense_init, "hidden")(h))
    if features_only:
      return h
    return layers.dense(self.num_classes, h.shape[-1], self.dense_init, "logits")(h)
