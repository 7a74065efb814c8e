"""A multimodal VAE over (image, label) with a product-of-experts posterior (MVAE; Wu & Goodman,
2018, "Multimodal generative models for scalable weakly-supervised learning").

Each modality has a Gaussian expert q~(z | x), q~(z | y); the posterior given any subset of the
modalities is the product of their experts and the prior expert N(0, I) (eq. 5): a Gaussian
whose precision is the sum of the experts' precisions. The image decoder gives p(x | z), a label
decoder the categorical p(y | z).

Shape letters: B batch, Z latent, K classes, H/W/C image, P decoder output channels.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from vae_jax.models import layers


def product_of_experts(means, logvars):
  """The product of diagonal Gaussian experts and the prior expert N(0, I): (mean, logvar), each
  [B, Z], from lists of the experts' [B, Z] means and log-variances (Wu & Goodman, eq. 5)."""
  precision = 1.0 + sum(jnp.exp(-lv) for lv in logvars)  # The prior's precision is 1.
  weighted = sum(m * jnp.exp(-lv) for m, lv in zip(means, logvars))
  return weighted / precision, -jnp.log(precision)


class MultimodalVAE(nn.Module):
  """Image and label experts, image and label decoders, one latent.

  Attributes:
    encoder: module x [B, H, W, C] -> (mean [B, Z], logvar [B, Z]), the image expert.
    decoder: module z [B, Z] -> output [B, H, W, P], p(x | z).
    num_classes: K. hidden: width of the label expert's and label decoder's dense layer.
  """
  encoder: nn.Module
  decoder: nn.Module
  num_classes: int
  hidden: int = 64
  dense_init: str = "lecun_normal"

  @property
  def latent_dim(self) -> int:
    return self.encoder.latent_dim

  def setup(self):
    z, k, h, init = self.encoder.latent_dim, self.num_classes, self.hidden, self.dense_init
    self.label_hidden = layers.dense(h, k, init, "label_hidden")
    self.label_mean = layers.dense(z, h, init, "label_mean")
    self.label_logvar = layers.dense(z, h, init, "label_logvar")
    self.classify_hidden = layers.dense(h, z, init, "classify_hidden")
    self.classify_out = layers.dense(k, h, init, "classify_out")

  def label_expert(self, label: jax.Array):
    """int32 [B] -> (mean [B, Z], logvar [B, Z]) of q~(z | y)."""
    h = nn.relu(self.label_hidden(jax.nn.one_hot(label, self.num_classes)))
    return self.label_mean(h), self.label_logvar(h)

  def classify(self, z: jax.Array) -> jax.Array:
    """z [..., Z] -> logits [..., K] of p(y | z)."""
    return self.classify_out(nn.relu(self.classify_hidden(z)))

  def posterior(self, x: jax.Array | None = None, label: jax.Array | None = None):
    """(mean, logvar) [B, Z] of q(z | the modalities given): the product of their experts and
    N(0, I) (with neither: the prior)."""
    means, logvars = [], []
    if x is not None:
      m, lv = self.encoder(x)
      means.append(m)
      logvars.append(lv)
    if label is not None:
      m, lv = self.label_expert(label)
      means.append(m)
      logvars.append(lv)
    return product_of_experts(means, logvars)

  def encode(self, x: jax.Array, label: jax.Array | None = None):
    """(mean, logvar) [B, Z] of q(z | x): the image alone (what latent plots and the image's
    IW-NLL use); `label` is ignored."""
    del label
    return self.posterior(x)

  def decode(self, z: jax.Array, label: jax.Array | None = None) -> jax.Array:
    """z [B, Z] -> image decoder output [B, H, W, P]; `label` is ignored."""
    del label
    return self.decoder(z)

  def __call__(self, x: jax.Array, key: jax.Array, label: jax.Array | None = None):
    """At init: touches every expert and decoder. Returns (image output, label logits) of the
    joint posterior's mean."""
    del key
    mean, _ = self.posterior(x, label)
    return self.decode(mean), self.classify(mean)
