"""Layer-by-layer parity of the conv VAE with PyTorch, without importing torch.

Under dense_init='torch_uniform' every layer draws PyTorch's default init (kernel and bias
~ U(+-1/sqrt(fan_in)), fan_in as torch.nn.init._calculate_fan_in_and_fan_out computes it), and
every decoder upsampling path computes nn.ConvTranspose2d(I, O, 4, stride=2, padding=1): checked
against a NumPy scatter of each input pixel's taps, PyTorch's documented formula
(out[s * i + t - p] += x[i] * w[t]). The pre-0.2 decoder (flax's SAME transposed conv, a ReLU after
the projection, fan from C_in) stays reachable bit for bit.
"""

import importlib.util
import json
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vae_jax import models
from vae_jax.models import conv, layers

_SPEC = importlib.util.spec_from_file_location(
    "fc_vs_conv_ablation", Path(__file__).resolve().parents[1] / "experiments" / "fc_vs_conv"
    / "ablation.py")
fc_vs_conv_ablation = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(fc_vs_conv_ablation)


def torch_conv_transpose(x, kernel, bias, stride=2, padding=1):
  """NumPy reference of PyTorch's ConvTranspose2d in NHWC: x [B, h, w, I], kernel [k, k, I, O]
  (PyTorch's weight[i, o, ky, kx] = kernel[ky, kx, i, o]), bias [O] -> [B, H, W, O] with
  H = (h - 1) * stride - 2 * padding + k. Each input pixel (i, j) adds x[i, j] @ kernel[ky, kx]
  to output pixel (stride * i + ky - padding, stride * j + kx - padding)."""
  x, kernel = np.asarray(x, np.float64), np.asarray(kernel, np.float64)
  b, h, w, _ = x.shape
  k, out = kernel.shape[0], kernel.shape[3]
  full = np.zeros((b, (h - 1) * stride + k, (w - 1) * stride + k, out))
  for i in range(h):
    for j in range(w):
      for ky in range(k):
        for kx in range(k):
          full[:, stride * i + ky, stride * j + kx] += x[:, i, j] @ kernel[ky, kx]
  height, width = (h - 1) * stride - 2 * padding + k, (w - 1) * stride - 2 * padding + k
  return full[:, padding:padding + height, padding:padding + width] + np.asarray(bias)


def _layer(mode, features):
  """The upsampling layer of ConvDecoder(upsample=mode) for `features` output channels."""
  return {"transpose": layers.ConvTranspose(features),
          "col2im": models.Col2imConvTranspose(features),
          "phase": models.PhaseConvTranspose(features)}[mode]


@pytest.mark.parametrize("mode", ["transpose", "col2im", "phase"])
@pytest.mark.parametrize("size", [(4, 4), (3, 5)])
def test_upsampling_is_pytorchs_conv_transpose(mode, size):
  """Same output pixel for each input pixel and tap as PyTorch's padding=1 transposed conv."""
  x = jax.random.normal(jax.random.key(2), (2, *size, 3))
  params = {"kernel": jax.random.normal(jax.random.key(3), (4, 4, 3, 5)),
            "bias": jax.random.normal(jax.random.key(4), (5,))}
  out = jax.jit(_layer(mode, 5).apply)({"params": params}, x)
  np.testing.assert_allclose(out, torch_conv_transpose(x, params["kernel"], params["bias"]),
                             rtol=1e-5, atol=1e-5)


def test_subpixel_with_the_phase_kernel_is_pytorchs_conv_transpose():
  """'subpixel' (a free 3x3 conv + depth_to_space) holding phase_kernel(W) and the bias tiled
  over the 4 phases is the transposed conv with kernel W: one decoder, two parametrizations."""
  shape, z = (8, 8, 2), jax.random.normal(jax.random.key(1), (3, 5))
  ref = models.ConvDecoder((4,), shape, upsample="transpose")
  sub = models.ConvDecoder((4,), shape, upsample="subpixel")
  p_ref = jax.jit(ref.init)(jax.random.key(0), z)["params"]
  p_sub = {"project": p_ref["project"],
           "out": {"kernel": conv.phase_kernel(p_ref["out"]["kernel"]),
                   "bias": jnp.tile(p_ref["out"]["bias"], 4)}}
  want = torch_conv_transpose(
      np.asarray(z @ p_ref["project"]["kernel"] + p_ref["project"]["bias"]).reshape(3, 4, 4, 4),
      p_ref["out"]["kernel"], p_ref["out"]["bias"])
  for model, params in ((ref, p_ref), (sub, p_sub)):
    np.testing.assert_allclose(jax.jit(model.apply)({"params": params}, z), want,
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ["col2im", "phase"])
def test_fast_upsampling_gradients_equal_the_transposed_conv(mode):
  """col2im and phase have their own backward passes: equal gradients w.r.t. params and input."""
  x = jax.random.normal(jax.random.key(2), (2, 3, 5, 3))
  w = jax.random.normal(jax.random.key(3), (2, 6, 10, 5))
  ref = layers.ConvTranspose(5)
  params = ref.init(jax.random.key(0), x)["params"]
  loss = lambda layer: lambda p, x: jnp.sum(layer.apply({"params": p}, x) * w)  # noqa: E731
  grads = [jax.jit(jax.grad(loss(m), argnums=(0, 1)))(params, x) for m in (ref, _layer(mode, 5))]
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4), *grads)


def test_where_each_input_pixel_lands_flax_same_vs_pytorch():
  """A one-hot input row i through a one-hot kernel tap t (the study's ablation table, which runs
  both layers): flax's SAME transposed conv writes output row 2i + 2 - t, PyTorch's padding=1
  (layers.ConvTranspose) 2i + t - 1, None outside the 8 output rows."""
  inside = lambda r: r if 0 <= r < 8 else None  # noqa: E731
  landed = fc_vs_conv_ablation.landing(4)
  assert len(landed) == 16
  for (i, t), (flax_at, torch_at) in landed.items():
    assert flax_at == inside(2 * i + 2 - t)
    assert torch_at == inside(2 * i + t - 1)


def _bound_checks(leaf, bound):
  a = np.abs(np.asarray(leaf))
  assert a.max() <= bound * (1 + 1e-6)
  if a.size >= 64:  # Uses the range: a uniform, not N(0, 1/fan_in) or a narrower uniform.
    assert a.max() > 0.9 * bound
    np.testing.assert_allclose(np.std(np.asarray(leaf)), bound / np.sqrt(3), rtol=0.2)


@pytest.mark.parametrize("fan", ["out", "in"])
def test_torch_uniform_bounds_per_layer_kind(fan):
  """Freshly initialized conv VAE under torch_uniform: dense U(+-1/sqrt(in)), conv
  U(+-1/sqrt(16 C_in)), transposed conv U(+-1/sqrt(16 C_out)) (PyTorch's ConvTranspose2d fan,
  fan='out') or U(+-1/sqrt(16 C_in)) (fan='in'); kernels and biases alike."""
  model = models.VAE(models.ConvEncoder((16, 32), 6, "torch_uniform"),
                     models.ConvDecoder((32, 16), (16, 16, 1), "torch_uniform",
                                        transpose_fan=fan))
  params = models.init_params(model, jax.random.key(0), (16, 16, 1))
  enc, dec = params["encoder"], params["decoder"]
  expected = {  # layer: (params, fan_in)
      "conv_0": (enc["conv"]["conv_0"], 16 * 1), "conv_1": (enc["conv"]["conv_1"], 16 * 16),
      "mean": (enc["mean"], 4 * 4 * 32), "logvar": (enc["logvar"], 4 * 4 * 32),
      "project": (dec["project"], 6),
      "deconv_0": (dec["deconv_0"], 16 * (16 if fan == "out" else 32)),
      "out": (dec["out"], 16 * (1 if fan == "out" else 16)),
  }
  for name, (p, fan_in) in expected.items():
    for leaf in (p["kernel"], p["bias"]):
      _bound_checks(leaf, fan_in ** -0.5)
  assert expected["out"][1] ** -0.5 == (0.25 if fan == "out" else 0.0625)


@pytest.mark.parametrize("mode", ["transpose", "col2im", "phase"])
def test_pre_0_2_decoder_is_reachable_bit_for_bit(mode):
  """Every upsampling layer stores flip(K) where flax's nn.ConvTranspose draws K from the same
  key, and computes with it what nn.ConvTranspose(padding='SAME') computed with K: a seed trains
  what it trained before the tap order changed (with project_activation='relu' and, under
  torch_uniform, transpose_fan='in')."""
  x = jax.random.normal(jax.random.key(2), (2, 4, 4, 3))
  old = nn.ConvTranspose(5, (4, 4), strides=(2, 2), padding="SAME")
  p_old = jax.jit(old.init)(jax.random.key(0), x)["params"]
  p_new = jax.jit(_layer(mode, 5).init)(jax.random.key(0), x)["params"]
  np.testing.assert_array_equal(p_new["kernel"], p_old["kernel"][::-1, ::-1])
  np.testing.assert_array_equal(p_new["bias"], p_old["bias"])
  got, want = (jax.jit(m.apply)({"params": p}, x)
               for m, p in ((_layer(mode, 5), p_new), (old, p_old)))
  if mode == "transpose":
    np.testing.assert_array_equal(got, want)
  else:
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("activation", ["none", "relu"])
def test_projection_activation(activation):
  """'none' hands the projection to the first transposed conv as is (negative values pass);
  'relu' clips it. Seen through a decoder whose only layer is the output transposed conv."""
  dec = models.ConvDecoder((2,), (4, 4, 1), project_activation=activation, upsample="transpose")
  z = jnp.ones((1, 1))
  params = jax.jit(dec.init)(jax.random.key(0), z)["params"]
  params["project"] = {"kernel": -jnp.ones((1, 8)), "bias": jnp.zeros((8,))}
  out = dec.apply({"params": params}, z)
  projected = -np.ones((1, 2, 2, 2)) if activation == "none" else np.zeros((1, 2, 2, 2))
  np.testing.assert_allclose(
      out, torch_conv_transpose(projected, params["out"]["kernel"], params["out"]["bias"]),
      rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match="project_activation"):
    models.ConvDecoder((2,), (4, 4, 1), project_activation="tanh")
  with pytest.raises(ValueError, match="transpose_fan"):
    models.ConvDecoder((2,), (4, 4, 1), transpose_fan="both")


def test_pre_0_2_conv_run_directories_are_refused_in_one_line():
  """A conv-decoder config.json without model.decoder.project_activation was written by 0.1,
  whose kernels are in flax's tap order: restoring it would compute another function."""
  from vae_jax import config as config_lib  # pylint: disable=import-outside-toplevel
  saved = json.loads(config_lib.to_json(config_lib.base_config()))
  saved["model"]["decoder"]["kind"] = "conv"
  assert config_lib.with_defaults(saved).model.decoder.project_activation == "none"
  del saved["model"]["decoder"]["project_activation"]
  with pytest.raises(config_lib.ConfigError, match="before vae_jax 0.2") as e:
    config_lib.with_defaults(saved)
  assert "\n" not in str(e.value)
  saved["model"]["decoder"]["kind"] = "mlp"  # MLP runs are unchanged: still read.
  assert config_lib.with_defaults(saved).model.decoder.kind == "mlp"
