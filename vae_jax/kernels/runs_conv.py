"""Convolutions that stay fast under the runs axis on XLA:CPU.

`jax.vmap` over a batch of conv *kernels* (R runs of a sweep in one program) turns each conv into
one grouped conv, which XLA:CPU computes far slower than R separate convs (measured 4-12x on 2
cores). `conv` here has a vmap rule (jax.custom_batching.custom_vmap) that loops over the runs
axis instead, for the forward pass and for both halves of its VJP (jax.custom_vjp), so
`vmap(grad(loss))` runs R ordinary convs. Values equal lax.conv_general_dilated; reverse-mode
gradients are exact (first order only: no forward mode and no gradient of a gradient through it).

`Conv` is nn.Conv on this op: same params (kernel [kh, kw, I, O], bias [O]), same initializers
and init values; its bias gradient is a matrix-vector product (common.add_bias).
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import custom_batching

from vae_jax.kernels.common import add_bias

_DIMS = ("NHWC", "HWIO", "NHWC")


def _loop_over_runs(fn):
  """fn(a, b) whose vmap rule calls fn once per run (unrolled) and stacks the results."""
  f = custom_batching.custom_vmap(fn)

  @f.def_vmap
  def rule(axis_size, in_batched, a, b):
    a_runs, b_runs = in_batched
    outs = [fn(a[i] if a_runs else a, b[i] if b_runs else b) for i in range(axis_size)]
    return jnp.stack(outs), True

  return f


@functools.lru_cache(maxsize=None)
def _conv_op(strides: tuple[int, int], padding):
  """The conv with these strides and padding ('SAME' or ((lo, hi), (lo, hi))), as a custom_vjp
  function whose forward and backward convs loop over a vmapped runs axis."""
  def plain(x, kernel):
    return jax.lax.conv_general_dilated(x, kernel, strides, padding, dimension_numbers=_DIMS)

  forward = _loop_over_runs(plain)

  def input_grad(ct, kernel, x_like):
    return jax.linear_transpose(lambda x: plain(x, kernel), x_like)(ct)[0]

  def kernel_grad(x, ct, k_like):
    return jax.linear_transpose(lambda k: plain(x, k), k_like)(ct)[0]

  @jax.custom_vjp
  def op(x, kernel):
    return forward(x, kernel)

  def fwd(x, kernel):
    return forward(x, kernel), (x, kernel)

  def bwd(res, ct):
    x, kernel = res
    x_like = jax.ShapeDtypeStruct(x.shape, x.dtype)
    k_like = jax.ShapeDtypeStruct(kernel.shape, kernel.dtype)
    dx = _loop_over_runs(lambda c, k: input_grad(c, k, x_like))(ct, kernel)
    dk = _loop_over_runs(lambda a, c: kernel_grad(a, c, k_like))(x, ct)
    return dx, dk

  op.defvjp(fwd, bwd)
  return op


def conv(x: jax.Array, kernel: jax.Array, strides=(1, 1), padding="SAME", *,
         loop_runs: bool = True) -> jax.Array:
  """lax.conv_general_dilated(x [B, H, W, I], kernel [kh, kw, I, O]) in NHWC / HWIO, with the
  run-looping vmap rule (module docstring) when loop_runs, else plain (jax.vmap batches it).
  padding: 'SAME', 'VALID' or ((lo, hi), (lo, hi))."""
  if not loop_runs:
    return jax.lax.conv_general_dilated(x, kernel, strides, padding, dimension_numbers=_DIMS)
  if not isinstance(padding, str):
    padding = tuple(tuple(p) for p in padding)
  return _conv_op(tuple(strides), padding)(x, kernel)


class Conv(nn.Module):
  """nn.Conv(features, kernel_size, strides, padding) computed with `conv`: the same params,
  initializers and init values as nn.Conv."""

  features: int
  kernel_size: tuple[int, int]
  strides: tuple[int, int] = (1, 1)
  padding: str = "SAME"
  kernel_init: nn.initializers.Initializer = nn.linear.default_kernel_init
  bias_init: nn.initializers.Initializer = nn.initializers.zeros_init()
  loop_runs: bool = True

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param("kernel", self.kernel_init, (*self.kernel_size, x.shape[-1],
                                                     self.features))
    bias = self.param("bias", self.bias_init, (self.features,))
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias)
    return add_bias(conv(x, kernel, self.strides, self.padding, loop_runs=self.loop_runs), bias)
