"""Seeing inside a VAE: first-layer filters and their evolution, feature maps
(vae_jax/conv_views.py), the parameter-evolution figure, and the dynamics hook's TensorBoard
histograms."""

import jax
import numpy as np
import pytest

from vae_jax import config as config_lib, conv_views, curves, figures, models, runner


@pytest.fixture(scope="module")
def conv_vae():
  c = config_lib.base_config().model
  c.latent_dim, c.encoder.kind, c.encoder.features, c.decoder.widths = 3, "conv", (4, 6), (8,)
  model = models.build_model(c, (8, 8, 1))
  return model, models.init_params(model, jax.random.key(0), (8, 8, 1))


def test_conv_kernels_in_layer_order_and_the_first_layer(conv_vae):
  _, params = conv_vae
  kernels = conv_views.conv_kernels(params)
  assert [k.shape for k in kernels.values()] == [(4, 4, 1, 4), (4, 4, 4, 6)]
  np.testing.assert_array_equal(conv_views.first_layer_filters(params),
                                params["encoder"]["conv"]["conv_0"]["kernel"])
  with pytest.raises(ValueError, match="no conv layer"):
    conv_views.first_layer_filters({"encoder": {"mean": {"kernel": np.zeros((4, 2))}}})


def test_feature_maps_are_the_conv_outputs_of_the_image(conv_vae):
  model, params = conv_vae
  x = np.random.default_rng(0).uniform(size=(8, 8, 1)).astype(np.float32)
  maps = conv_views.feature_maps(model, params, x)
  assert [(k, v.shape) for k, v in maps.items()] == [
      ("encoder/conv/conv_0", (4, 4, 4)), ("encoder/conv/conv_1", (2, 2, 6))]
  # The first map is the first conv (4x4, stride 2, PyTorch's padding 1) of x, before its ReLU.
  conv0 = params["encoder"]["conv"]["conv_0"]
  want = jax.lax.conv_general_dilated(x[None], conv0["kernel"], (2, 2), ((1, 1), (1, 1)),
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))[0] + conv0["bias"]
  np.testing.assert_allclose(maps["encoder/conv/conv_0"], want, atol=1e-5)
  assert (maps["encoder/conv/conv_0"] < 0).any()  # Before the activation.


def test_filter_and_feature_map_figures_grow_with_epochs_and_layers(conv_vae, tmp_path):
  model, params = conv_vae
  k = conv_views.first_layer_filters(params)
  one = curves.plt.imread(conv_views.filter_evolution({1: k}, tmp_path / "a.png"))
  three = curves.plt.imread(conv_views.filter_evolution({1: k, 2: 2 * k, 5: -k},
                                                        tmp_path / "b.png"))
  assert three.shape[0] > 2 * one.shape[0] * 0.9  # One row per epoch.
  with pytest.raises(ValueError, match="one shape"):
    conv_views.filter_evolution({1: k, 2: k[..., :2]}, tmp_path / "c.png")
  x = np.zeros((8, 8, 1), np.float32)
  image = curves.plt.imread(conv_views.feature_map_figure(
      x, conv_views.feature_maps(model, params, x), tmp_path / "d.png"))
  assert image.shape[0] > image.shape[1] * 0.2 and image.std() > 0
  with pytest.raises(ValueError, match="no conv layer"):
    conv_views.feature_map_figure(x, {}, tmp_path / "e.png")


def test_parameter_evolution_draws_each_layers_norm(tmp_path):
  rows = [{"epoch": e, "dynamics/grad_norm/a": 1.0, "dynamics/param_norm/a": 1.0 + e,
           "dynamics/param_norm/b": 2.0} for e in (1, 2, 3)]
  image = curves.plt.imread(curves.parameter_evolution(rows, tmp_path / "p.png"))
  assert image.shape[1] > image.shape[0] and image.std() > 0
  with pytest.raises(ValueError, match="train.dynamics=True"):
    curves.parameter_evolution([{"epoch": 1}], tmp_path / "q.png")


def test_a_conv_run_draws_filters_feature_maps_and_writes_histograms(tiny, tmp_path):
  """A tiny conv-encoder run with dynamics, two kept checkpoints: its figures, the evolution of its
  filters over both, and per-layer parameter and gradient histograms in TensorBoard per epoch."""
  from tensorboard.backend.event_processing import (  # pylint: disable=g-import-not-at-top
      event_accumulator)
  config = tiny(**{"model.encoder.kind": "conv", "model.encoder.features": "4,8",
                   "train.epochs": 2, "train.dynamics": True, "train.tensorboard": True,
                   "train.keep_checkpoints": 0, "eval.figures": True, "eval.iw_samples": 0})
  run = tmp_path / "run"
  runner.train_and_evaluate(config, run, progress=False)
  for name in ("filters", "feature_maps", "gradient_flow", "parameter_evolution"):
    assert (run / "figures" / f"{name}.png").is_file(), name
  evolution = curves.plt.imread(figures.filter_evolution(run, tmp_path / "evo.png"))
  single = curves.plt.imread(run / "figures" / "filters.png")
  assert evolution.shape[0] > single.shape[0]  # Two kept epochs: two rows.
  events = event_accumulator.EventAccumulator(str(run / "tensorboard"),
                                              size_guidance={"tensors": 0})
  events.Reload()
  tags = events.Tags()["tensors"]
  for tag in ("dynamics/params/encoder/conv/conv_0", "dynamics/grads/decoder/out"):
    assert tag in tags and [e.step for e in events.Tensors(tag)] == [1, 2], tag
  from tensorboard.util import tensor_util  # pylint: disable=g-import-not-at-top
  buckets = tensor_util.make_ndarray(events.Tensors("dynamics/params/encoder/conv/conv_0")[0]
                                     .tensor_proto)
  assert buckets.shape == (30, 3) and buckets[:, 2].sum() == 4 * 4 * 1 * 4 + 4  # Every value
  assert np.all(buckets[:, 0] < buckets[:, 1])  # of the layer's kernel and bias, in bins.
  assert events.SummaryMetadata("dynamics/params/encoder/conv/conv_0").plugin_data.plugin_name \
      == "histograms"
