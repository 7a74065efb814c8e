"""Models: shapes and parameter counts through jax.eval_shape (no compute), conditioning, the
factory's errors, and bit-identity of MLP models with the single-file models.py of 13fc5f4
(digests in tests/golden.json)."""

import json
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from vae_jax import checkpointing, models

GOLDEN = Path(__file__).resolve().parent / "golden.json"


def _config(kind="vae", encoder="mlp", decoder="mlp", **top):
  """A `model` config section in the layout build_model reads."""
  c = dict(kind=kind, latent_dim=20, dense_init="lecun_normal", classifier_hidden=128,
           encoder=dict(kind=encoder, widths=(400,), features=(32, 64, 128)),
           decoder=dict(kind=decoder, widths=(400,), features=(128, 64, 32)))
  for key, value in top.items():  # encoder__widths=(8,) sets encoder.widths.
    *parents, leaf = key.split("__")
    d = c
    for p in parents:
      d = d[p]
    d[leaf] = value
  return ml_collections.ConfigDict(c)


def _abstract_params(model, image_shape, num_classes=0):
  return jax.eval_shape(lambda k: models.init_params(model, k, image_shape, num_classes),
                        jax.random.key(0))


def _conv(k, cin, cout):
  return k * k * cin * cout + cout


def _dense(fan_in, out):
  return fan_in * out + out


# -- MLP ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("enc,dec,latent,expected", [
    ((400,), (400,), 20, 652_824),                                 # mnist_mlp
    ((400,), (400,), 2, _dense(784, 400) + 2 * _dense(400, 2)
     + _dense(2, 400) + _dense(400, 784)),                         # mnist_2d
    ((256, 128), (128, 256), 20, _dense(784, 256) + _dense(256, 128) + 2 * _dense(128, 20)
     + _dense(20, 128) + _dense(128, 256) + _dense(256, 784)),    # growth study's fixed arm
])
def test_mlp_vae_param_count(enc, dec, latent, expected):
  assert expected == (_dense(784, enc[0]) + sum(_dense(a, b) for a, b in zip(enc, enc[1:]))
                      + 2 * _dense(enc[-1], latent) + _dense(latent, dec[0])
                      + sum(_dense(a, b) for a, b in zip(dec, dec[1:])) + _dense(dec[-1], 784))
  model = models.build_model(_config(latent_dim=latent, encoder__widths=enc, decoder__widths=dec),
                             (28, 28, 1))
  assert models.param_count(_abstract_params(model, (28, 28, 1))) == expected


def test_mlp_layer_names_and_output_shapes():
  model = models.mlp_model("vae", (8, 4), (6,), 3, (5, 5, 1))
  params = _abstract_params(model, (5, 5, 1))
  assert set(params["encoder"]["mlp"]) == {"hidden_0", "hidden_1"}
  assert set(params["encoder"]) == {"mlp", "mean", "logvar"}
  assert set(params["decoder"]) == {"mlp", "out"}
  assert params["encoder"]["mlp"]["hidden_1"]["kernel"].shape == (8, 4)
  assert params["encoder"]["mean"]["kernel"].shape == (4, 3)
  x = jax.ShapeDtypeStruct((7, 5, 5, 1), jnp.float32)
  out, mean, logvar = jax.eval_shape(
      lambda p, x: model.apply({"params": p}, x, jax.random.key(0)), params, x)
  assert out.shape == (7, 5, 5, 1) and mean.shape == logvar.shape == (7, 3)
  with pytest.raises(ValueError, match="build_model"):  # The zoo's models need their config.
    models.mlp_model("vqvae", (8,), (8,), 3, (5, 5, 1))
  assert model.latent_dim == 3 and model.num_classes == 0


def test_autoencoder_interface():
  model = models.build_model(_config("ae", latent_dim=3, encoder__widths=(8,),
                                     decoder__widths=(6,)), (5, 5, 1))
  params = models.init_params(model, jax.random.key(0), (5, 5, 1))
  assert set(params["encoder"]) == {"mlp", "code"}
  x = jax.random.uniform(jax.random.key(1), (2, 5, 5, 1))

  @jax.jit
  def run(params):
    out, z = model.apply({"params": params}, x, None)
    return (out, z, model.apply({"params": params}, x, method=model.encode),
            model.apply({"params": params}, z, method=model.decode))

  out, z, z_encode, out_decode = run(params)
  np.testing.assert_array_equal(z, z_encode)
  np.testing.assert_array_equal(out, out_decode)
  assert out.shape == (2, 5, 5, 1) and model.latent_dim == 3 and model.num_classes == 0


# -- Conv ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("channels", [1, 3])
def test_conv_encoder_decoder_shapes(channels):
  shape = (32, 32, channels)
  enc = models.ConvEncoder((32, 64, 128), 20)
  x = jax.ShapeDtypeStruct((5, *shape), jnp.float32)
  p_enc = jax.eval_shape(lambda k, x: enc.init(k, x)["params"], jax.random.key(0), x)
  assert p_enc["conv"]["conv_2"]["kernel"].shape == (4, 4, 64, 128)
  assert p_enc["mean"]["kernel"].shape == (4 * 4 * 128, 20)  # 32 -> 16 -> 8 -> 4.
  mean, logvar = jax.eval_shape(lambda p, x: enc.apply({"params": p}, x), p_enc, x)
  assert mean.shape == logvar.shape == (5, 20)
  dec = models.ConvDecoder((128, 64, 32), shape)
  z = jax.ShapeDtypeStruct((5, 20), jnp.float32)
  p_dec = jax.eval_shape(lambda k, z: dec.init(k, z)["params"], jax.random.key(0), z)
  assert set(p_dec) == {"project", "deconv_0", "deconv_1", "out"}
  assert jax.eval_shape(lambda p, z: dec.apply({"params": p}, z), p_dec, z).shape == (5, *shape)


@pytest.mark.parametrize("channels,upsample", [(1, "transpose"), (3, "transpose"), (1, "phase"),
                                              (1, "col2im")])
def test_conv_vae_param_count(channels, upsample):
  c = channels
  encoder = _conv(4, c, 32) + _conv(4, 32, 64) + _conv(4, 64, 128) + 2 * _dense(4 * 4 * 128, 20)
  decoder = _dense(20, 4 * 4 * 128) + _conv(4, 128, 64) + _conv(4, 64, 32) + _conv(4, 32, c)
  model = models.build_model(_config(encoder="conv", decoder="conv", decoder__upsample=upsample),
                             (32, 32, c))
  assert model.decoder.upsample == upsample
  params = _abstract_params(model, (32, 32, c))
  assert models.param_count(params) == encoder + decoder == {1: 453_993, 3: 456_043}[c]


def test_mixed_conv_encoder_mlp_decoder_and_conv_autoencoder():
  mixed = models.build_model(_config(encoder="conv", decoder="mlp"), (32, 32, 1))
  out, _, _ = jax.eval_shape(lambda p, x: mixed.apply({"params": p}, x, jax.random.key(0)),
                             _abstract_params(mixed, (32, 32, 1)),
                             jax.ShapeDtypeStruct((2, 32, 32, 1), jnp.float32))
  assert out.shape == (2, 32, 32, 1)
  ae = models.build_model(_config("ae", "conv", "conv"), (32, 32, 1))
  assert set(_abstract_params(ae, (32, 32, 1))["encoder"]) == {"conv", "code"}


@pytest.mark.parametrize("features,shape", [((8,) * 6, (32, 32, 1)), ((128, 64, 32), (28, 28, 1))])
def test_conv_decoder_rejects_sizes_not_divisible(features, shape):
  with pytest.raises(ValueError, match="divisible"):
    models.ConvDecoder(features, shape)
  with pytest.raises(ValueError, match="divisible"):
    models.build_model(_config(decoder="conv", decoder__features=features), shape)


@pytest.mark.parametrize("upsample", ["phase", "col2im"])
def test_fast_upsampling_equals_conv_transpose(upsample):
  """'phase' and 'col2im' have the same params (names, shapes, init values) and outputs as
  'transpose'."""
  shape, z = (16, 16, 2), jax.random.normal(jax.random.key(1), (3, 4))

  @jax.jit
  def init_and_apply(z):
    results = []
    for init in models.DENSE_INITS:
      for upsample_ in ("transpose", upsample):
        dec = models.ConvDecoder((8, 4), shape, init, upsample=upsample_)
        params = dec.init(jax.random.key(0), z)["params"]
        results.append((params, dec.apply({"params": params}, z)))
    return results

  results = init_and_apply(z)  # (transpose, phase) per init.
  for (p_ref, out_ref), (p_phase, out_phase) in zip(results[::2], results[1::2]):
    jax.tree.map(np.testing.assert_array_equal, p_ref, p_phase)
    np.testing.assert_allclose(out_phase, out_ref, rtol=1e-5, atol=1e-5)
    assert out_phase.shape == (3, *shape)


def test_subpixel_upsampling_shapes():
  dec = models.ConvDecoder((8, 4), (16, 16, 3), upsample="subpixel")
  params = jax.eval_shape(lambda k: dec.init(k, jnp.zeros((1, 5)))["params"], jax.random.key(0))
  assert params["deconv_0"]["kernel"].shape == (3, 3, 8, 16)  # 4 x 4 output channels.
  assert params["out"]["kernel"].shape == (3, 3, 4, 12)
  assert jax.eval_shape(lambda p: dec.apply({"params": p}, jnp.zeros((2, 5))),
                        params).shape == (2, 16, 16, 3)


def test_torch_uniform_conv_init_bounds():
  """Conv kernels and biases ~ U(+-1/sqrt(kh * kw * C_in)), PyTorch's conv default."""
  enc = models.ConvEncoder((64,), 2, "torch_uniform")
  params = jax.jit(enc.init)(jax.random.key(0), jnp.zeros((1, 8, 8, 3)))["params"]["conv"]["conv_0"]
  bound = (4 * 4 * 3) ** -0.5
  for leaf in (params["kernel"], params["bias"]):
    assert float(jnp.max(jnp.abs(leaf))) <= bound
    assert float(jnp.max(jnp.abs(leaf))) > 0.8 * bound  # Uses the range: not N(0, 1/fan_in).


# -- Conditional and classifier -------------------------------------------------------------------
@pytest.mark.parametrize("encoder,decoder,shape", [("mlp", "mlp", (6, 6, 1)),
                                                   ("conv", "conv", (8, 8, 2))])
def test_cvae_encode_and_decode_depend_on_the_label(encoder, decoder, shape):
  cfg = _config("cvae", encoder, decoder, latent_dim=3, encoder__widths=(8,),
                decoder__widths=(8,), encoder__features=(4, 8), decoder__features=(8, 4))
  model = models.build_model(cfg, shape, num_classes=5)
  assert model.num_classes == 5 and model.latent_dim == 3
  params = models.init_params(model, jax.random.key(0), shape, 5)
  x = jax.random.uniform(jax.random.key(1), (2, *shape))
  z = jax.random.normal(jax.random.key(2), (2, 3))
  label_a, label_b = jnp.array([0, 1], jnp.int32), jnp.array([3, 4], jnp.int32)

  @jax.jit
  def run(params):
    apply = lambda *a, **kw: model.apply({"params": params}, *a, **kw)  # noqa: E731
    return ([apply(z, lab, method=model.decode) for lab in (label_a, label_b)],
            [apply(x, lab, method=model.encode)[0] for lab in (label_a, label_b)],
            apply(x, jax.random.key(3), label_a))

  (out_a, out_b), (mean_a, mean_b), (out, mean, logvar) = run(params)
  assert out_a.shape == (2, *shape) and not np.allclose(out_a, out_b)
  assert mean_a.shape == (2, 3) and not np.allclose(mean_a, mean_b)
  np.testing.assert_array_equal(mean, mean_a)
  assert out.shape == (2, *shape) and logvar.shape == (2, 3)
  with pytest.raises(ValueError, match="label"):
    jax.eval_shape(lambda p: model.apply({"params": p}, z, method=model.decode), params)


def test_cvae_condition_widens_the_first_layers():
  model = models.build_model(_config("cvae", "conv", "conv"), (32, 32, 1), num_classes=10)
  params = _abstract_params(model, (32, 32, 1), 10)
  assert params["encoder"]["conv"]["conv_0"]["kernel"].shape == (4, 4, 1 + 10, 32)
  assert params["decoder"]["project"]["kernel"].shape == (20 + 10, 4 * 4 * 128)
  mlp = models.build_model(_config("cvae"), (28, 28, 1), num_classes=10)
  params = _abstract_params(mlp, (28, 28, 1), 10)
  assert params["encoder"]["mlp"]["hidden_0"]["kernel"].shape == (784 + 10, 400)
  assert params["decoder"]["mlp"]["hidden_0"]["kernel"].shape == (20 + 10, 400)


def test_classifier_shapes():
  model = models.build_model(_config("classifier", encoder__features=(32, 64),
                                     classifier_hidden=128), (28, 28, 1), num_classes=10)
  assert model.num_classes == 10
  params = _abstract_params(model, (28, 28, 1), 10)
  assert models.param_count(params) == (_conv(4, 1, 32) + _conv(4, 32, 64)
                                        + _dense(7 * 7 * 64, 128) + _dense(128, 10))
  x = jax.ShapeDtypeStruct((4, 28, 28, 1), jnp.float32)
  logits = jax.eval_shape(lambda p, x: model.apply({"params": p}, x), params, x)
  features = jax.eval_shape(lambda p, x: model.apply({"params": p}, x, method=model.features),
                            params, x)
  assert logits.shape == (4, 10) and features.shape == (4, 128)


# -- Factory errors -------------------------------------------------------------------------------
@pytest.mark.parametrize("cfg,num_classes,match", [
    (_config(latent_dim=0), 0, "latent_dim"),
    (_config(encoder__widths=(4, -1)), 0, "encoder.widths"),
    (_config(decoder="conv", decoder__features=()), 0, "decoder.features"),
    (_config("classifier", classifier_hidden=0), 10, "classifier_hidden"),
    (_config("gan"), 0, "unknown model.kind"),
    (_config(encoder="resnet"), 0, "unknown model.encoder.kind"),
    (_config(dense_init="zeros"), 0, "unknown model.dense_init"),
    (_config(decoder="conv", decoder__upsample="nearest"), 0, "unknown model.decoder.upsample"),
    (_config(decoder="conv", decoder__project_activation="elu"), 0,
     "unknown model.decoder.project_activation"),
    (_config("cvae"), 0, "num_classes=0"),
    (_config("classifier"), 1, "num_classes=1"),
])
def test_build_model_errors(cfg, num_classes, match):
  with pytest.raises(ValueError, match=match) as info:
    models.build_model(cfg, (32, 32, 1), num_classes)
  assert "\n" not in str(info.value)


def test_build_model_encoder_widths_override():
  model = models.build_model(_config(), (28, 28, 1), encoder_widths=(12, 7))
  assert model.encoder.widths == (12, 7) and model.decoder.widths == (400,)


# -- Bit-identity with 13fc5f4 --------------------------------------------------------------------
MLP_CASES = [f"{kind}/{init}" for kind in ("vae", "ae")
             for init in ("torch_uniform", "lecun_normal")]


def _mlp_digests(case: str) -> dict:
  """Digests of the params and outputs of an MLP model (kind/dense_init) at fixed keys."""
  kind, dense_init = case.split("/")
  shape, enc, dec, latent = (28, 28, 1), (64, 32), (48,), 5
  new = models.build_model(_config(kind, latent_dim=latent, dense_init=dense_init,
                                   encoder__widths=enc, decoder__widths=dec), shape)
  params = models.init_params(new, jax.random.key(7), shape)
  x = jax.random.uniform(jax.random.key(1), (3, *shape))
  outputs = jax.jit(lambda p: new.apply({"params": p}, x, jax.random.key(2)))(params)
  return {"params": checkpointing.digest(params), "outputs": checkpointing.digest(outputs)}


@pytest.fixture(scope="module")
def default_level_digests():
  """_mlp_digests of every case, computed in a process at XLA's default optimization level (the
  golden digests' level; conftest lowers it for the suite)."""
  import os, subprocess, sys  # pylint: disable=g-import-not-at-top,multiple-imports
  from conftest import FAST_COMPILE  # pylint: disable=g-import-not-at-top
  here = Path(__file__).resolve().parent
  code = (f"import json, sys; sys.path[:0] = [{str(here)!r}, {str(here.parent)!r}]\n"
          "import test_models\n"
          f"print(json.dumps({{c: test_models._mlp_digests(c) for c in {MLP_CASES!r}}}))")
  proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                        env=os.environ | {"XLA_FLAGS": os.environ.get("XLA_FLAGS", "").replace(
                            FAST_COMPILE, "")})
  assert proc.returncode == 0, proc.stderr[-2000:]
  return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("case", MLP_CASES)
def test_mlp_models_bit_identical_to_single_file_models(case, default_level_digests):
  """Params and outputs equal, bit for bit, those of the single-file models.py of 13fc5f4, whose
  digests tests/golden.json keeps (the outputs' per host vector instruction set)."""
  from conftest import golden_for_host  # pylint: disable=g-import-not-at-top
  golden = json.loads(GOLDEN.read_text())["mlp_models"][case]
  assert default_level_digests[case]["params"] == golden["params"]
  assert default_level_digests[case]["outputs"] == golden_for_host(golden["outputs"],
                                                                   f"{case} output digest")


def test_col2im_gradients_under_a_runs_axis():
  """vmap over a runs axis of params (as a sweep program does) keeps col2im's gradients equal
  to the transposed conv's (layers.ConvTranspose), run by run."""
  x = jax.random.normal(jax.random.key(2), (3, 2, 4, 4, 3))  # [R, B, h, w, I]
  ref = models.ConvTranspose(5)
  params = jax.vmap(lambda k: ref.init(k, x[0])["params"])(jax.random.split(jax.random.key(0), 3))
  loss = lambda layer: lambda p, x: jnp.sum(jnp.sin(layer.apply({"params": p}, x)))  # noqa: E731
  grads = [jax.jit(jax.vmap(jax.grad(loss(layer), argnums=(0, 1))))(params, x)
           for layer in (ref, models.Col2imConvTranspose(5))]
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4), *grads)


def test_auto_upsampling_is_col2im_on_the_cpu():
  z = jnp.ones((1, 3))
  outs = [models.ConvDecoder((8, 4), (8, 8, 1), upsample=u).init_with_output(jax.random.key(0), z)
          for u in ("auto", "col2im")]
  jax.tree.map(np.testing.assert_array_equal, outs[0], outs[1])


def test_conv_batch_chunks_change_the_computation_not_the_model():
  """Slices of the batch through the same conv layers: same params, outputs and gradients; a
  batch the chunk count does not divide runs whole."""
  def cfg(chunks):
    return _config(encoder="conv", decoder="conv", encoder__features=(4, 8),
                   decoder__features=(8, 4), conv_batch_chunks=chunks)
  shape = (8, 8, 1)
  x = jax.random.uniform(jax.random.key(1), (6, *shape))
  results = []
  for chunks in (1, 2, 4, 0):
    model = models.build_model(cfg(chunks), shape)
    params = models.init_params(model, jax.random.key(0), shape)
    loss = lambda p: jnp.sum(model.apply({"params": p}, x, jax.random.key(2))[0] ** 2)  # noqa: E731
    results.append((params, *jax.jit(jax.value_and_grad(loss))(params)))
  for params, value, grads in results[1:]:
    jax.tree.map(np.testing.assert_array_equal, params, results[0][0])
    np.testing.assert_allclose(value, results[0][1], rtol=1e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5), grads,
                 results[0][2])


def test_conv_runs_loop_equals_vmapped_grouped_convs():
  """Two runs (own params and images) in one vmapped value-and-grad: the run-looping convs give
  the values and gradients of jax.vmap's grouped convs."""
  shape = (8, 8, 1)
  x = jax.random.uniform(jax.random.key(1), (2, 4, *shape))
  out = []
  for mode in ("vmap", "loop"):
    model = models.build_model(_config(encoder="conv", decoder="conv", encoder__features=(4, 8),
                                       decoder__features=(8, 4), decoder__upsample="phase",
                                       conv_runs=mode), shape)
    params = jax.vmap(lambda k: models.init_params(model, k, shape))(
        jax.random.split(jax.random.key(0), 2))
    def loss(p, x):
      return jnp.sum(model.apply({"params": p}, x, jax.random.key(2))[0] ** 2)
    out.append(jax.jit(jax.vmap(jax.value_and_grad(loss)))(params, x))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4), *out)


@pytest.mark.parametrize("loop_runs", [False, True])
def test_conv_layer_equals_nn_conv(loop_runs):
  """layers.conv's runs_conv.Conv (matrix-vector bias gradient) has nn.Conv's params, outputs and
  gradients."""
  x = jax.random.normal(jax.random.key(2), (2, 8, 8, 3))
  ref = nn.Conv(5, (4, 4), strides=(2, 2), padding="SAME",
                **models.layers.conv_inits("torch_uniform", 48))
  layer = models.layers.conv(5, 3, "torch_uniform", "conv", loop_runs=loop_runs)
  params = [m.init(jax.random.key(0), x)["params"] for m in (ref, layer)]
  jax.tree.map(np.testing.assert_array_equal, *params)
  loss = lambda m: lambda p, x: jnp.sum(jnp.sin(m.apply({"params": p}, x)))  # noqa: E731
  grads = [jax.jit(jax.grad(loss(m), argnums=(0, 1)))(params[0], x) for m in (ref, layer)]
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5), *grads)
