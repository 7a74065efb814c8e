"""Layer factories shared by the encoders, decoders and the classifier: dense and conv layers
with a named initialization, the MLP and conv stacks, and conditioning helpers.

Inits (`DENSE_INITS`, one name for dense and conv layers alike):
  lecun_normal: flax's defaults, kernel N(0, 1/fan_in) (truncated), bias zero.
  torch_uniform: PyTorch's nn.Linear / nn.Conv2d / nn.ConvTranspose2d default,
    kaiming_uniform(a=sqrt(5)) for the kernel (He et al., 2015), which works out to
    U(+-1/sqrt(fan_in)), and U(+-1/sqrt(fan_in)) for the bias, with PyTorch's fan
    (torch.nn.init._calculate_fan_in_and_fan_out: weight.size(1) * kh * kw): `in` for dense,
    kh * kw * C_in for conv, and kh * kw * C_out for a transposed conv, whose PyTorch weight is
    [C_in, C_out, kh, kw] ('out', TRANSPOSE_FANS; 'in' takes kh * kw * C_in instead, as vae_jax
    did before 0.2, kept for the ablation in experiments/fc_vs_conv).

Transposed convs (ConvTranspose) compute PyTorch's ConvTranspose2d map, not flax's 'SAME' one:
input pixel i reaches output pixel stride * i + t - padding through kernel tap t.

Shape letters: B batch, H/W/C image, K classes (one-hot width).
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from vae_jax.kernels import runs_conv
from vae_jax.kernels.common import flipped  # noqa: F401  # Also models.layers.flipped.

DENSE_INITS = ("lecun_normal", "torch_uniform")
TRANSPOSE_FANS = ("out", "in")  # A transposed conv's torch_uniform fan: kh * kw * C_out | C_in.


def _torch_uniform_inits(fan_in: int, transposed: bool = False):
  """(kernel_init, bias_init), both U(+-1/sqrt(fan_in)) (PyTorch's Linear / Conv default).
  The kernel's fan is read off its shape (flax's variance_scaling): its input axis -2 ([.., I, O],
  dense and conv), or -1 when `transposed` (kh * kw * O, PyTorch's ConvTranspose2d fan); the
  bias bound uses `fan_in`, which must be the same number."""
  bound = fan_in ** -0.5
  axes = dict(in_axis=-1, out_axis=-2) if transposed else {}
  kernel_init = nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform", **axes)
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


def transpose_inits(init: str, kernel: int, in_channels: int, out_channels: int,
                    fan: str = "out") -> dict:
  """Keyword arguments (kernel_init, bias_init) of a `kernel` x `kernel` transposed conv
  [kernel, kernel, in_channels, out_channels]: flax's defaults for 'lecun_normal'; PyTorch's
  ConvTranspose2d default for 'torch_uniform', kernel and bias ~ U(+-1/sqrt(fan_in)) with
  fan_in = kernel^2 * out_channels (fan='out', PyTorch's) or kernel^2 * in_channels (fan='in').

  Raises:
    ValueError: `init` is not one of DENSE_INITS or `fan` not one of TRANSPOSE_FANS.
  """
  _check_init(init)
  if fan not in TRANSPOSE_FANS:
    raise ValueError(f"unknown transposed-conv fan {fan!r}; choose one of "
                     f"{', '.join(TRANSPOSE_FANS)}")
  if init == "lecun_normal":
    return {}
  channels = out_channels if fan == "out" else in_channels
  kernel_init, bias_init = _torch_uniform_inits(kernel * kernel * channels,
                                                transposed=fan == "out")
  return dict(kernel_init=kernel_init, bias_init=bias_init)


class ConvTranspose(nn.Module):
  """PyTorch's nn.ConvTranspose2d(I, O, kernel_size, stride, padding=(kernel_size - stride) // 2)
  in NHWC: [B, h, w, I] -> [B, stride * h, stride * w, O] for an even kernel_size - stride.

  Per spatial axis, input pixel i adds x[i] @ kernel[t] ([O]) to output pixel
  stride * i + t - padding for each tap t (PyTorch's documented map, with PyTorch's weight
  [I, O, kh, kw] stored as kernel [kh, kw, I, O]), plus the bias. For 4x4 stride-2 layers
  (padding 1) this is flax's nn.ConvTranspose(padding='SAME') with the kernel's taps reversed
  (flax's SAME puts tap t at 2i + 2 - t). Params: kernel [k, k, I, O] (drawn by `flipped`
  kernel_init), bias [O].
  """

  features: int
  kernel_size: int = 4
  stride: int = 2
  kernel_init: nn.initializers.Initializer = nn.linear.default_kernel_init
  bias_init: nn.initializers.Initializer = nn.initializers.zeros_init()

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    k, s = self.kernel_size, self.stride
    kernel = self.param("kernel", flipped(self.kernel_init), (k, k, x.shape[-1], self.features))
    bias = self.param("bias", self.bias_init, (self.features,))
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias)
    # Correlating the stride-dilated input, padded by k - 1 - padding, with the reversed kernel
    # puts tap t of input i at stride * i + t - padding.
    pad = k - 1 - (k - s) // 2
    y = jax.lax.conv_transpose(x, kernel[::-1, ::-1], (s, s), ((pad, pad), (pad, pad)),
                               dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return y + bias


def conv(features: int, in_channels: int, init: str, name: str, *, kernel: int = 4,
         stride: int = 2, loop_runs: bool = False):
  """A `kernel` x `kernel` SAME conv with `stride` and the named init (H -> ceil(H / s)).

  'lecun_normal' keeps flax's conv defaults; 'torch_uniform' is PyTorch's conv default with
  fan_in = kernel * kernel * in_channels (see the module docstring). A conv is runs_conv.Conv
  (nn.Conv's params and values; a bias gradient XLA:CPU computes faster), with a vmap rule that
  loops over a runs axis when loop_runs.

  Raises:
    ValueError: `init` is not one of DENSE_INITS.
  """
  return runs_conv.Conv(features, (kernel, kernel), strides=(stride, stride), padding="SAME",
                        name=name, loop_runs=loop_runs,
                        **conv_inits(init, kernel * kernel * in_channels))


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
