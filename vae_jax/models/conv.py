"""Convolutional encoder and decoder: 4x4 stride-2 convs down, transposed convs up (the DCGAN
layout, Radford et al., 2016), with a dense projection to and from the latent.

Encoder: [B, H, W, C] -> conv/conv_0..conv_{n-1} (ReLU; H -> H / 2^n) -> flatten -> dense heads.
Decoder: [B, Z] -> `project` dense -> reshape [B, H / 2^n, W / 2^n, features[0]] (no activation by
default, as PyTorch reference VAE decoders; project_activation='relu' adds one) ->
deconv_0..deconv_{n-2} (x2 each, features[1:], ReLU) -> `out` (x2, C channels, no activation).
The x2 steps are PyTorch's ConvTranspose2d(k=4, stride=2, padding=1) (layers.ConvTranspose).
For features (32, 64, 128) / (128, 64, 32) on 32x32 images: 32 -> 16 -> 8 -> 4 -> 8 -> 16 -> 32.

Init: flax's conv defaults for 'lecun_normal', PyTorch's conv default for 'torch_uniform' (see
layers.py).

Shape letters: B batch, H/W/C image, Z latent size, K classes (one-hot condition).
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from vae_jax.kernels import col2im
from vae_jax.kernels.phase import PhaseConvTranspose, depth_to_space, phase_kernel  # noqa: F401
from vae_jax.models import layers
from vae_jax.models.mlp import POSTERIOR_HEADS

UPSAMPLE_MODES = ("transpose", "col2im", "phase", "subpixel", "auto")
PROJECT_ACTIVATIONS = ("none", "relu")  # After the decoder's dense projection.

# Output phase a of a 4x4 stride-2 transposed conv (pixel 2i + a) reads input pixels i - 1, i,
# i + 1 (3x3 tap u = 0, 1, 2) through these taps of the 4x4 kernel; 4 marks "no tap" (a zero
# appended to the kernel). From PyTorch's map (layers.ConvTranspose): input j reaches output
# 2j + t - 1 through tap t, so t = 2(i - j) + 1 + a. Tested against a NumPy reference.


def check_divisible(image_shape: Sequence[int], num_layers: int) -> None:
  """Raises ValueError unless H and W of `image_shape` are multiples of 2^num_layers."""
  h, w = image_shape[0], image_shape[1]
  step = 2 ** num_layers
  if h % step or w % step:
    raise ValueError(f"a conv decoder with {num_layers} stride-2 layers needs H and W divisible "
                     f"by {step}, got {h}x{w}; use fewer model.decoder.features or pad the images "
                     "(e.g. data.name=mnist_32)")


def resolve_batch_chunks(chunks: int, batch: int, backend: str | None = None) -> int:
  """model.conv_batch_chunks for a batch of `batch` examples: any value but 0 is kept; 0 (auto)
  is 1 unless JAX's default backend is the CPU, where it is the largest divisor of `batch` not
  above min(8, batch // 16), i.e. slices of about 16 examples: on 2 cores slices of 16 trained
  the fc_vs_conv conv VAE 1.0-1.07x faster than slices of 32 and 1.24-1.29x faster than whole
  batches of 64 and 128 (experiments/benchmarks/conv_vs_torch.py). `backend`: a JAX backend
  name ('cpu', 'gpu', 'tpu'; default jax.default_backend())."""
  if chunks:
    return chunks
  if (backend or jax.default_backend()) != "cpu":
    return 1
  top = max(1, min(8, batch // 16))
  return next(d for d in range(top, 0, -1) if batch % d == 0)


CONV_RUNS_MODES = ("auto", "loop", "vmap")


def resolve_loop_runs(mode: str, backend: str | None = None) -> bool:
  """model.conv_runs: under a vmapped runs axis, 'loop' computes each run's convs separately
  (runs_conv; first-order reverse-mode gradients only), 'vmap' lets jax.vmap batch them into
  grouped convs; 'auto' is 'loop' when JAX's default backend is the CPU (grouped convs measured
  4-12x slower there), else 'vmap'. `backend`: as resolve_batch_chunks."""
  if mode not in CONV_RUNS_MODES:
    raise ValueError(f"unknown conv_runs {mode!r}; choose one of {', '.join(CONV_RUNS_MODES)}")
  return mode == "loop" or (mode == "auto" and (backend or jax.default_backend()) == "cpu")


def resolve_upsample(mode: str, backend: str | None = None) -> str:
  """model.decoder.upsample: 'auto' is 'col2im' (GEMM + overlap-add) when JAX's default backend
  is the CPU, where XLA's transposed conv is slow, else 'transpose' (the backend's own
  conv_transpose); any other mode is kept. `backend`: as resolve_batch_chunks."""
  if mode != "auto":
    return mode
  return "col2im" if (backend or jax.default_backend()) == "cpu" else "transpose"


def over_chunks(fn, x: jax.Array, chunks: int) -> jax.Array:
  """fn(x) computed as fn on `chunks` equal slices of the batch axis, concatenated: the same
  per-example function (convs treat examples independently), so the same values and gradients
  up to float rounding. XLA:CPU runs the slices' independent conv chains on separate cores and
  keeps each slice's activations in cache (see resolve_batch_chunks, which turns 0 into the
  automatic count for this batch). A batch that `chunks` does not divide runs whole."""
  chunks = resolve_batch_chunks(chunks, x.shape[0])
  if chunks <= 1 or x.shape[0] % chunks:
    return fn(x)
  return jnp.concatenate([fn(c) for c in jnp.split(x, chunks)], axis=0)


class ConvEncoder(nn.Module):
  """Images [B, H, W, C] (+ optional condition [B, K]) -> one [B, Z] array per head.

  The condition, if given, is appended to the image as K constant channels: [B, H, W, C + K].
  Any H, W work (SAME padding rounds up); a matching ConvDecoder needs multiples of 2^n.

  Attributes:
    features: channels of the 4x4 stride-2 convs conv/conv_0.., e.g. (32, 64, 128).
    latent_dim: Z, the width of every head.
    dense_init: one of layers.DENSE_INITS, used for the convs and the heads.
    heads: head names, mlp.POSTERIOR_HEADS (mean, logvar) or mlp.CODE_HEADS (code).
    batch_chunks: the convs run on this many slices of the batch (over_chunks; 0 = auto,
      resolve_batch_chunks); params and outputs do not depend on it.
    conv_runs: how the convs batch under a vmapped runs axis (resolve_loop_runs).
  """

  features: Sequence[int]
  latent_dim: int
  dense_init: str = "lecun_normal"
  heads: Sequence[str] = POSTERIOR_HEADS
  batch_chunks: int = 1
  conv_runs: str = "vmap"

  @nn.compact
  def __call__(self, x: jax.Array, cond: jax.Array | None = None):
    """x [B, H, W, C] float, cond [B, K] float or None -> (mean, logvar) [B, Z] each, or the
    code [B, Z] when there is one head."""
    stack = layers.ConvStack(self.features, self.dense_init, name="conv",
                             loop_runs=resolve_loop_runs(self.conv_runs))
    h = over_chunks(stack, layers.append_channels(x, cond), self.batch_chunks)
    h = h.reshape((h.shape[0], -1))
    return layers.dense_heads(h, self.heads, self.latent_dim, self.dense_init)


class ConvDecoder(nn.Module):
  """Latents [B, Z] (+ optional condition [B, K], concatenated) -> pre-sigmoid outputs
  [B, H, W, C] (Bernoulli logits).

  Attributes:
    features: channels of the projected [H / 2^n, W / 2^n] map and of each upsampled map but
      the last, e.g. (128, 64, 32); n = len(features) stride-2 upsamplings in all.
    image_shape: (H, W, C) of the output; H and W must be multiples of 2^n.
    dense_init: one of layers.DENSE_INITS.
    upsample: how each x2 step is computed. 'transpose' (default): a 4x4 stride-2
      nn.ConvTranspose. 'col2im' and 'phase': the same layer (same params, inits and outputs up
      to rounding) computed as one GEMM + overlap-add (col2im.Col2imConvTranspose, the fastest
      to train on XLA:CPU) or as a 3x3 conv + depth_to_space (PhaseConvTranspose). 'subpixel':
      a free 3x3 conv to 4x the channels followed by depth_to_space (Shi et al., 2016): other
      params, 9/4 as many per layer. 'auto': 'col2im' when JAX's default backend is the CPU,
      else 'transpose' (the same params either way, so a checkpoint moves between CPU and
      accelerator).
    batch_chunks: the upsampling convs run on this many slices of the batch (see ConvEncoder).
    conv_runs: how the 'phase' / 'subpixel' convs batch under a runs axis (see ConvEncoder).
    project_activation: 'none' (default; the PyTorch reference decoders feed the projection to
      the first transposed conv as is) or 'relu' (vae_jax before 0.2: under the fc_vs_conv
      study's squared-error objective on MNIST it collapsed every run to an all-black decoder,
      experiments/fc_vs_conv/ABLATION.md).
    transpose_fan: the torch_uniform fan of the transposed convs, layers.TRANSPOSE_FANS: 'out'
      (PyTorch's, 16 * C_out) or 'in' (16 * C_in, vae_jax before 0.2).

  Raises:
    ValueError: on construction, when H or W is not a multiple of 2^n, features is empty or
      upsample, project_activation or transpose_fan is unknown.
  """

  features: Sequence[int]
  image_shape: Sequence[int]
  dense_init: str = "lecun_normal"
  upsample: str = "transpose"
  batch_chunks: int = 1
  conv_runs: str = "vmap"
  project_activation: str = "none"
  transpose_fan: str = "out"

  def __post_init__(self):
    if not self.features:
      raise ValueError("a conv decoder needs at least one entry in features, e.g. (128, 64, 32)")
    if self.upsample not in UPSAMPLE_MODES:
      raise ValueError(f"unknown upsample {self.upsample!r}; choose one of "
                       f"{', '.join(UPSAMPLE_MODES)}")
    if self.project_activation not in PROJECT_ACTIVATIONS:
      raise ValueError(f"unknown project_activation {self.project_activation!r}; choose one of "
                       f"{', '.join(PROJECT_ACTIVATIONS)}")
    if self.transpose_fan not in layers.TRANSPOSE_FANS:
      raise ValueError(f"unknown transpose_fan {self.transpose_fan!r}; choose one of "
                       f"{', '.join(layers.TRANSPOSE_FANS)}")
    check_divisible(self.image_shape, len(self.features))
    super().__post_init__()

  def _up(self, features: int, in_channels: int, name: str):
    """The x2 upsampling layer [B, h, w, in_channels] -> [B, 2h, 2w, features] (no activation),
    as a callable (one module, applied to every batch slice)."""
    mode = resolve_upsample(self.upsample)
    inits = layers.transpose_inits(self.dense_init, 4, in_channels, features, self.transpose_fan)
    if mode == "transpose":
      return layers.ConvTranspose(features, name=name, **inits)
    if mode == "col2im":
      return col2im.Col2imConvTranspose(features, name=name, **inits)
    loop_runs = resolve_loop_runs(self.conv_runs)
    if mode == "phase":
      return PhaseConvTranspose(features, name=name, loop_runs=loop_runs, **inits)
    layer = layers.conv(4 * features, in_channels, self.dense_init, name, kernel=3, stride=1,
                        loop_runs=loop_runs)
    return lambda x: depth_to_space(layer(x))

  @nn.compact
  def __call__(self, z: jax.Array, cond: jax.Array | None = None) -> jax.Array:
    """z [B, Z], cond [B, K] or None -> output [B, H, W, C]."""
    n = len(self.features)
    (h, w, c), f0 = self.image_shape, self.features[0]
    h0, w0 = h // 2 ** n, w // 2 ** n
    zc = layers.append_flat(z, cond)
    x = layers.dense(h0 * w0 * f0, zc.shape[-1], self.dense_init, "project")(zc)
    x = x.reshape((z.shape[0], h0, w0, f0))
    if self.project_activation == "relu":
      x = nn.relu(x)
    ups = [self._up(f, f_in, f"deconv_{i}") for i, (f_in, f) in enumerate(
        zip(self.features, self.features[1:]))] + [self._up(c, self.features[-1], "out")]

    def upsample(x):
      for up in ups[:-1]:
        x = nn.relu(up(x))
      return ups[-1](x)

    return over_chunks(upsample, x, self.batch_chunks)
