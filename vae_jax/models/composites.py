"""Models composed from an encoder and a decoder (mlp.py, conv.py): the VAE, the deterministic
Autoencoder and the label-conditioned CVAE. No losses here (see objectives.py).

Every model has the same interface, which is all the objectives call:
  encode(x, label=None): VAE / CVAE -> (mean [B, Z], logvar [B, Z]); Autoencoder -> code [B, Z].
  decode(z, label=None) -> output [B, H, W, C], pre-sigmoid (Bernoulli logits).
  __call__(x, key, label=None): VAE / CVAE -> (output, mean, logvar) with one reparameterized z
    drawn from the explicit `key`; Autoencoder -> (output, z), key ignored.
and the attributes latent_dim (Z) and num_classes (K; 0 for the unconditional models, whose
`label` arguments are accepted and ignored).

The encoder and decoder are attributes, so their params live under params["encoder"] and
params["decoder"]. Use `model.apply({"params": params}, ..., method=model.encode)` to run either
half alone.

Shape letters: B batch, H/W/C image, Z latent size, K classes.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from vae_jax import distributions


class _Unconditional(nn.Module):
  """encoder + decoder that ignore labels: the parts VAE and Autoencoder share."""

  encoder: nn.Module
  decoder: nn.Module

  @property
  def latent_dim(self) -> int:
    return self.encoder.latent_dim

  @property
  def num_classes(self) -> int:
    return 0

  def encode(self, x: jax.Array, label: jax.Array | None = None):
    """x [B, H, W, C] float in [0, 1] -> the encoder's output: (mean [B, Z], logvar [B, Z]) of a
    VAE, codes [B, Z] of an Autoencoder; `label` is ignored."""
    del label
    return self.encoder(x)

  def decode(self, z: jax.Array, label: jax.Array | None = None) -> jax.Array:
    """z [B, Z] -> decoder output [B, H, W, C] (pre-sigmoid: Bernoulli logits); `label` is
    ignored."""
    del label
    return self.decoder(z)


class VAE(_Unconditional):
  """Variational autoencoder q(z|x) = N(mean, diag(exp(logvar))), p(z) = N(0, I), p(x|z) given by
  the decoder's logits (Kingma & Welling, 2014).

  Attributes:
    encoder: module x [B, H, W, C] -> (mean [B, Z], logvar [B, Z]) (heads POSTERIOR_HEADS).
    decoder: module z [B, Z] -> output [B, H, W, C].
  """

  def __call__(self, x: jax.Array, key: jax.Array, label: jax.Array | None = None):
    """Returns (output [B, H, W, C], mean [B, Z], logvar [B, Z]) for one z ~ q(z|x) drawn with
    `key` (distributions.reparameterize)."""
    mean, logvar = self.encode(x, label)
    z = distributions.reparameterize(key, mean, logvar)
    return self.decode(z, label), mean, logvar


class Autoencoder(_Unconditional):
  """Vanilla deterministic autoencoder (the baseline of the ae_vs_vae study): z = encode(x), no
  sampling, no posterior, no KL.

  Attributes:
    encoder: module x [B, H, W, C] -> code [B, Z] (heads CODE_HEADS).
    decoder: module z [B, Z] -> output [B, H, W, C].
  """

  def __call__(self, x: jax.Array, key: jax.Array | None = None,
               label: jax.Array | None = None):
    """Returns (output [B, H, W, C], z [B, Z]); `key` is ignored (kept so that every model kind
    has one calling convention)."""
    del key  # Deterministic.
    z = self.encode(x, label)
    return self.decode(z, label), z


class CVAE(nn.Module):
  """Conditional VAE (Sohn et al., 2015): q(z|x, y) = N(mean, diag(exp(logvar))), p(z) = N(0, I)
  (the prior does not depend on y), p(x|z, y) given by the decoder's logits.

  The int32 label y [B] is one-hot encoded to [B, K] and passed to both halves as `cond` (the MLP
  encoder concatenates it to the pixels, the conv encoder appends K constant channels, decoders
  concatenate it to z). A label outside 0..K-1 (e.g. -1 for "no label") gives an all-zero vector.

  Attributes:
    encoder: module (x [B, H, W, C], cond [B, K]) -> (mean [B, Z], logvar [B, Z]).
    decoder: module (z [B, Z], cond [B, K]) -> output [B, H, W, C].
    num_classes: K >= 2.
  """

  encoder: nn.Module
  decoder: nn.Module
  num_classes: int

  @property
  def latent_dim(self) -> int:
    return self.encoder.latent_dim

  def _one_hot(self, label: jax.Array | None) -> jax.Array:
    if label is None:
      raise ValueError("a CVAE needs int32 labels [B]; pass label= (objectives do when "
                       "model.num_classes > 0)")
    return jax.nn.one_hot(label, self.num_classes, dtype=jnp.float32)

  def encode(self, x: jax.Array, label: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """x [B, H, W, C] float in [0, 1], label int32 [B] -> (mean [B, Z], logvar [B, Z]).

    Raises:
      ValueError: label is None.
    """
    return self.encoder(x, self._one_hot(label))

  def decode(self, z: jax.Array, label: jax.Array | None = None) -> jax.Array:
    """z [B, Z], label int32 [B] -> decoder output [B, H, W, C] (Bernoulli logits).

    Raises:
      ValueError: label is None.
    """
    return self.decoder(z, self._one_hot(label))

  def __call__(self, x: jax.Array, key: jax.Array, label: jax.Array | None = None):
    """Returns (output [B, H, W, C], mean [B, Z], logvar [B, Z]) for one z ~ q(z|x, y) drawn
    with `key`.

    Raises:
      ValueError: label is None.
    """
    mean, logvar = self.encode(x, label)
    z = distributions.reparameterize(key, mean, logvar)
    return self.decode(z, label), mean, logvar
