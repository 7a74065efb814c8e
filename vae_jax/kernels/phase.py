"""A 4x4 stride-2 transposed conv as one 3x3 stride-1 conv and a pixel shuffle (the phase /
sub-pixel decomposition; Shi et al., 2016): a fast backward pass on XLA:CPU."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vae_jax.kernels import runs_conv
from vae_jax.kernels.common import add_bias, flipped

_PHASE_TAPS = np.array([[3, 1, 4], [4, 2, 0]])  # [phase a, tap u] -> 4x4 kernel tap.


def depth_to_space(x_BxHxWx4C: jax.Array) -> jax.Array:
  """[B, H, W, 4 * C] -> [B, 2H, 2W, C]: channel block (i, j) becomes pixel (2h + i, 2w + j)
  (the pixel shuffle of Shi et al., 2016)."""
  b, h, w, c4 = x_BxHxWx4C.shape
  x = x_BxHxWx4C.reshape(b, h, w, 2, 2, c4 // 4).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, 2 * h, 2 * w, c4 // 4)


def phase_kernel(kernel_4x4xIxO: jax.Array) -> jax.Array:
  """The 4x4 kernel of a stride-2 transposed conv (models.layers.ConvTranspose) rearranged as a 3x3
  stride-1 kernel [3, 3, I, 4 * O] whose output, after depth_to_space, is the transposed conv's
  output (the phase / sub-pixel decomposition of a strided transposed conv; Shi et al., 2016)."""
  kp = jnp.pad(kernel_4x4xIxO, ((0, 1), (0, 1), (0, 0), (0, 0)))
  w = kp[_PHASE_TAPS[:, None, :, None], _PHASE_TAPS[None, :, None, :]]  # [a, b, u, v, I, O]
  i, o = kernel_4x4xIxO.shape[2:]
  return w.transpose(2, 3, 4, 0, 1, 5).reshape(3, 3, i, 4 * o)


class PhaseConvTranspose(nn.Module):
  """models.layers.ConvTranspose(features) (PyTorch's ConvTranspose2d(I, O, 4, 2, 1)) computed as
  one 3x3 stride-1 conv (phase_kernel) and depth_to_space: the same params (kernel [4, 4, I, O],
  bias [O]), the same initializers and the same outputs up to float rounding, but a fast backward
  pass on XLA:CPU, where the kernel gradient of a transposed conv (a conv with input dilation)
  takes a slow path (about 40x slower than the forward pass, measured on 2 cores).

  [B, h, w, I] -> [B, 2h, 2w, O].
  """

  features: int
  kernel_init: nn.initializers.Initializer = nn.linear.default_kernel_init
  bias_init: nn.initializers.Initializer = nn.initializers.zeros_init()
  loop_runs: bool = False  # The 3x3 conv as runs_conv.conv (fast under a vmapped runs axis).

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param("kernel", flipped(self.kernel_init),
                        (4, 4, x.shape[-1], self.features))
    bias = self.param("bias", self.bias_init, (self.features,))
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias)  # As flax's own layers do.
    y = runs_conv.conv(x, phase_kernel(kernel), loop_runs=self.loop_runs)
    return add_bias(depth_to_space(y), bias)
