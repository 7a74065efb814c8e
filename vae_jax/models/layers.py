"""Layer factories shared by the encoders, decoders and the classifier: dense and conv layers
with a named initialization, the MLP and conv stacks, and conditioning helpers.

Inits (`DENSE_INITS`, one name for dense and conv layers alike):
  lecun_normal: flax's defaults, kernel N(0, 1/fan_in) (truncated), bias zero.
  torch_uniform: PyTorch's nn.Linear / nn.Conv2d default, kaiming_uniform(a=sqrt(5)) for the
    kernel (He et al., 2015), which works out to U(+-1/sqrt(fan_in)), and U(+-1/sqrt(fan_in)) for
    the bias. fan_in is the layer's real input size: `in` for dense, kh * kw * C_in for conv and
    transposed conv (PyTorch's ConvTranspose2d derives its fan from the *output* channels of its
    transposed weight layout; that quirk is not copied).

Shape letters: B batch, H/W/C image, K classes (one-hot width).
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from vae_jax.models import runs_conv

DENSE_INITS = ("lecun_normal", "torch_uniform")


def _torch_uniform_inits(fan_in: int):
  """(kernel_init, bias_init), both U(+-1/sqrt(fan_in)) (PyTorch's Linear / Conv default)."""
  bound = fan_in ** -0.5
  kernel_init = nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform")
  bias_init = lambda key, shape, dtype=jnp.float32: jax.random.uniform(  # noqa: E731
      key, shape, dtype, -bound, bound)
  return kernel_init, bias_init


def _check_init(init: str) -> None:
  if init not in DENSE_INITS:
    raise ValueError(f"unknown dense init {init!r}; choose one of {', '.join(DENSE_INITS)}")


def dense(features: int, fan_in: int, init: str, name: str) -> nn.Dense:
  """nn.Dense with flax's default init ('lecun_normal': N(0, 1/fan_in) kernel, zero bias) or
  PyTorch's nn.Linear default ('torch_uniform': kernel and bias ~ U(+-1/sqrt(fan_in))).

  Raises:
    ValueError: `init` is not one of DENSE_INITS.
  """
  _check_init(init)
  if init == "lecun_normal":
    return nn.Dense(features, name=name)
  kernel_init, bias_init = _torch_uniform_inits(fan_in)
  return nn.Dense(features, name=name, kernel_init=kernel_init, bias_init=bias_init)


def conv_inits(init: str, fan_in: int) -> dict:
  """Keyword arguments (kernel_init, bias_init) of a conv layer for the named init: empty for
  'lecun_normal' (flax's defaults), U(+-1/sqrt(fan_in)) for both under 'torch_uniform'.

  Raises:
    ValueError: `init` is not one of DENSE_INITS.
  """
  _check_init(init)
  if init == "lecun_normal":
    return {}
  kernel_init, bias_init = _torch_uniform_inits(fan_in)
  return dict(kernel_init=kernel_init, bias_init=bias_init)


def conv(features: int, in_channels: int, init: str, name: str, *, kernel: int = 4,
         stride: int = 2, transpose: bool = False, loop_runs: bool = False):
  """A `kernel` x `kernel` SAME conv (or transposed conv) with `stride` and the named init.

  With SAME padding a stride-s conv maps H -> ceil(H / s) and a transposed conv H -> H * s.
  'lecun_normal' keeps flax's conv defaults; 'torch_uniform' is PyTorch's conv default with
  fan_in = kernel * kernel * in_channels (see the module docstring). A conv is runs_conv.Conv
  (nn.Conv's params and values; a bias gradient XLA:CPU computes faster), with a vmap rule that
  loops over a runs axis when loop_runs.

  Raises:
    ValueError: `init` is not one of DENSE_INITS.
  """
  kwargs = dict(strides=(stride, stride), padding="SAME", name=name,
                **conv_inits(init, kernel * kernel * in_channels))
  if transpose:
    return nn.ConvTranspose(features, (kernel, kernel), **kwargs)
  return runs_conv.Conv(features, (kernel, kernel), loop_runs=loop_runs, **kwargs)


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


class ConvStack(nn.Module):
  """4x4 stride-2 SAME convs + ReLU named conv_0..conv_{n-1}: [B, H, W, C] ->
  [B, H / 2^n, W / 2^n, features[-1]] (ceil division when H or W is not a multiple of 2^n)."""

  features: Sequence[int]
  dense_init: str = "lecun_normal"
  loop_runs: bool = False  # runs_conv.Conv layers (see conv).

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    for i, f in enumerate(self.features):
      x = nn.relu(conv(f, x.shape[-1], self.dense_init, f"conv_{i}", loop_runs=self.loop_runs)(x))
    return x


def append_flat(h_BxD: jax.Array, cond_BxK: jax.Array | None) -> jax.Array:
  """Concatenates the condition to features: [B, D], [B, K] -> [B, D + K] (None: unchanged)."""
  if cond_BxK is None:
    return h_BxD
  return jnp.concatenate([h_BxD, cond_BxK.astype(h_BxD.dtype)], axis=-1)


def append_channels(x_BxHxWxC: jax.Array, cond_BxK: jax.Array | None) -> jax.Array:
  """Appends the condition as K constant channels: [B, H, W, C], [B, K] -> [B, H, W, C + K]."""
  if cond_BxK is None:
    return x_BxHxWxC
  b, h, w, _ = x_BxHxWxC.shape
  planes = jnp.broadcast_to(cond_BxK.astype(x_BxHxWxC.dtype)[:, None, None, :],
                            (b, h, w, cond_BxK.shape[-1]))
  return jnp.concatenate([x_BxHxWxC, planes], axis=-1)


def dense_heads(h_BxD: jax.Array, names: Sequence[str], latent_dim: int, init: str):
  """One dense head of width `latent_dim` per name, created in order; a tuple of [B, Z] arrays,
  or the one array when there is a single head."""
  outs = tuple(dense(latent_dim, h_BxD.shape[-1], init, n)(h_BxD) for n in names)
  return outs if len(outs) > 1 else outs[0]
