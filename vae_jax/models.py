"""Linen encoders, decoders, the VAE and the deterministic Autoencoder. No losses here (see
objectives.py).

Parameters are explicit pytrees: `params = VAE(...).init(...)["params"]`, used only through
`model.apply({"params": params}, ...)`. Hidden layers are named `hidden_0`, `hidden_1`, ... so that
growth.py can find layer i and its successor by name.

Shape letters: B batch, H/W/C image, Z latent size.
"""

from __future__ import annotations

from collections.abc import Sequence
import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from vae_jax import distributions


DENSE_INITS = ("lecun_normal", "torch_uniform")


def dense(features: int, fan_in: int, init: str, name: str) -> nn.Dense:
  """nn.Dense with flax's default init ('lecun_normal': N(0, 1/fan_in) kernel, zero bias) or
  PyTorch's nn.Linear default ('torch_uniform': kernel and bias ~ U(+-1/sqrt(fan_in)))."""
  if init == "lecun_normal":
    return nn.Dense(features, name=name)
  if init == "torch_uniform":
    bound = fan_in ** -0.5
    return nn.Dense(features, name=name,
                    kernel_init=nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform"),
                    bias_init=lambda key, shape, dtype=jnp.float32: jax.random.uniform(
                        key, shape, dtype, -bound, bound))
  raise ValueError(f"unknown dense init {init!r}; choose one of {', '.join(DENSE_INITS)}")


class MLP(nn.Module):
  """Dense + ReLU layers named hidden_0..hidden_{n-1}; input is flattened to [B, -1]."""

  widths: Sequence[int]
  dense_init: str = "lecun_normal"

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = x.reshape((x.shape[0], -1))
    for i, width in enumerate(self.widths):
      x = nn.relu(dense(width, x.shape[-1], self.dense_init, f"hidden_{i}")(x))
    return x


class MLPEncoder(nn.Module):
  """Images [B, H, W, C] -> posterior parameters (mean [B, Z], logvar [B, Z])."""

  hidden_widths: Sequence[int]
  latent_dim: int
  dense_init: str = "lecun_normal"

  @nn.compact
  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    h = MLP(self.hidden_widths, self.dense_init, name="mlp")(x)
    mean = dense(self.latent_dim, h.shape[-1], self.dense_init, "mean")(h)
    logvar = dense(self.latent_dim, h.shape[-1], self.dense_init, "logvar")(h)
    return mean, logvar


class MLPDecoder(nn.Module):
  """Latents [B, Z] -> pre-sigmoid outputs [B, H, W, C] (Bernoulli logits; the 'mse' likelihood
  compares sigmoid(output) with x)."""

  hidden_widths: Sequence[int]
  image_shape: Sequence[int]
  dense_init: str = "lecun_normal"

  @nn.compact
  def __call__(self, z: jax.Array) -> jax.Array:
    h = MLP(self.hidden_widths, self.dense_init, name="mlp")(z)
    out = dense(math.prod(self.image_shape), h.shape[-1], self.dense_init, "out")(h)
    return out.reshape((z.shape[0], *self.image_shape))


class VAE(nn.Module):
  """Variational autoencoder q(z|x) = N(mean, diag(exp(logvar))), p(z) = N(0, I).

  `__call__(x, key)` encodes, draws one reparameterized z with the explicit `key` and decodes.
  Use `method=VAE.encode` / `method=VAE.decode` to run either half alone.
  """

  encoder_widths: Sequence[int]
  decoder_widths: Sequence[int]
  latent_dim: int
  image_shape: Sequence[int]
  dense_init: str = "lecun_normal"  # See DENSE_INITS.

  def setup(self):
    self.encoder = MLPEncoder(self.encoder_widths, self.latent_dim, self.dense_init)
    self.decoder = MLPDecoder(self.decoder_widths, self.image_shape, self.dense_init)

  def encode(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """x [B, H, W, C] float in [0, 1] -> (mean [B, Z], logvar [B, Z])."""
    return self.encoder(x)

  def decode(self, z: jax.Array) -> jax.Array:
    """z [B, Z] -> decoder output [B, H, W, C] (Bernoulli logits)."""
    return self.decoder(z)

  def __call__(self, x: jax.Array, key: jax.Array):
    """Returns (output [B, H, W, C], mean [B, Z], logvar [B, Z])."""
    mean, logvar = self.encode(x)
    z = distributions.reparameterize(key, mean, logvar)
    return self.decode(z), mean, logvar


class MLPCodeEncoder(nn.Module):
  """Images [B, H, W, C] -> deterministic codes [B, Z] (one linear head, 'code')."""

  hidden_widths: Sequence[int]
  latent_dim: int
  dense_init: str = "lecun_normal"

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    h = MLP(self.hidden_widths, self.dense_init, name="mlp")(x)
    return dense(self.latent_dim, h.shape[-1], self.dense_init, "code")(h)


class Autoencoder(nn.Module):
  """Vanilla deterministic autoencoder (the baseline of the ae_vs_vae study): z = encode(x), no
  sampling, no posterior, no KL. Same MLP hidden layers and decoder as `VAE`.

  `encode(x)` gives codes [B, Z]; `__call__(x, key)` ignores `key` (kept so that both model kinds
  have one calling convention) and returns (output [B, H, W, C], z [B, Z]).
  """

  encoder_widths: Sequence[int]
  decoder_widths: Sequence[int]
  latent_dim: int
  image_shape: Sequence[int]
  dense_init: str = "lecun_normal"

  def setup(self):
    self.encoder = MLPCodeEncoder(self.encoder_widths, self.latent_dim, self.dense_init)
    self.decoder = MLPDecoder(self.decoder_widths, self.image_shape, self.dense_init)

  def encode(self, x: jax.Array) -> jax.Array:
    """x [B, H, W, C] float in [0, 1] -> codes z [B, Z]."""
    return self.encoder(x)

  def decode(self, z: jax.Array) -> jax.Array:
    """z [B, Z] -> decoder output [B, H, W, C] (pre-sigmoid)."""
    return self.decoder(z)

  def __call__(self, x: jax.Array, key: jax.Array | None = None):
    del key  # Deterministic.
    z = self.encode(x)
    return self.decode(z), z


MODEL_KINDS = {"vae": VAE, "ae": Autoencoder}


def latent_mean(model, params, x: jax.Array) -> jax.Array:
  """x [B, H, W, C] -> the point a reconstruction decodes: posterior mean [B, Z] of a VAE, the
  code [B, Z] of an Autoencoder."""
  out = model.apply({"params": params}, x, method=model.encode)
  return out[0] if isinstance(model, VAE) else out


def build_model(model_config, image_shape: Sequence[int],
                encoder_widths: Sequence[int] | None = None) -> VAE | Autoencoder:
  """Model from a config section with kind (vae | ae), latent_dim, encoder_widths,
  decoder_widths, dense_init; `encoder_widths` overrides the config's (growth changes them).

  Raises:
    ValueError: for non-positive sizes or an unknown kind.
  """
  kind = model_config.get("kind", "vae")
  if kind not in MODEL_KINDS:
    raise ValueError(f"unknown model kind {kind!r}; choose one of {', '.join(MODEL_KINDS)}")
  if encoder_widths is None:
    encoder_widths = model_config.encoder_widths
  widths = (*encoder_widths, *model_config.decoder_widths, model_config.latent_dim)
  if any(int(w) <= 0 for w in widths):
    raise ValueError(f"model sizes must be positive, got latent_dim={model_config.latent_dim}, "
                     f"encoder_widths={tuple(encoder_widths)}, "
                     f"decoder_widths={tuple(model_config.decoder_widths)}")
  return MODEL_KINDS[kind](encoder_widths=tuple(int(w) for w in encoder_widths),
             decoder_widths=tuple(int(w) for w in model_config.decoder_widths),
             latent_dim=int(model_config.latent_dim),
             image_shape=tuple(image_shape),
             dense_init=model_config.get("dense_init", "lecun_normal"))


def init_params(model: VAE | Autoencoder, key: jax.Array, image_shape: Sequence[int]):
  """Jitted initialization; returns the param pytree (no 'params' wrapper)."""
  x = jnp.zeros((1, *image_shape), jnp.float32)
  init = jax.jit(lambda k: model.init(k, x, k)["params"])
  return init(key)


def param_count(params) -> int:
  """Number of scalars in a param pytree (works on ShapeDtypeStructs from jax.eval_shape)."""
  return sum(math.prod(p.shape) for p in jax.tree.leaves(params))
