"""Training dynamics (vae_jax/dynamics.py): per-layer norms, the hook's rows under the runs axis,
the gradient-flow figure; live images in TensorBoard at every epoch (vae_jax/live.py)."""

import json

import jax.numpy as jnp
import numpy as np
import pytest

from vae_jax import curves, dynamics, runner, sweep


def test_layer_norms_group_a_module_kernel_and_bias():
  tree = {"encoder": {"mlp": {"hidden_0": {"kernel": jnp.full((2, 2), 1.0),
                                            "bias": jnp.array([2.0, 0.0])}}},
          "decoder": {"out": {"kernel": jnp.array([[3.0, 4.0]])}}}
  norms = dynamics.layer_norms(tree)
  assert set(norms) == {"encoder/mlp/hidden_0", "decoder/out"}
  np.testing.assert_allclose(norms["encoder/mlp/hidden_0"], np.sqrt(4 + 4), rtol=1e-6)
  np.testing.assert_allclose(norms["decoder/out"], 5.0, rtol=1e-6)


def test_the_dynamics_hook_fills_every_runs_rows_and_draws_the_gradient_flow(tiny, tmp_path):
  settings = {"train.dynamics": True, "train.epochs": 3, "eval.iw_samples": 0}
  config = tiny(**settings, **{"eval.figures": True})
  results = sweep.run_sweep(config, ["seed=0,1"], tmp_path / "sw", progress=False)
  assert {r["summary"]["runs_in_program"] for r in results} == {2}
  rows = {r["name"]: [json.loads(l) for l in (tmp_path / "sw" / r["name"] / "metrics.jsonl")
                      .read_text().splitlines()] for r in results}
  layers = {"encoder/mlp/hidden_0", "encoder/mean", "encoder/logvar", "decoder/mlp/hidden_0",
            "decoder/out"}
  for name, run_rows in rows.items():
    for row in run_rows:
      for kind in ("grad_norm", "param_norm", "update_ratio"):
        assert {k.split("/", 2)[2] for k in row if k.startswith(f"dynamics/{kind}/")} == layers
      assert all(0 < row[f"dynamics/update_ratio/{l}"] < 1 for l in layers)
  # Each run its own numbers (different seeds), equal to the run alone.
  assert rows["seed=0"][0]["dynamics/grad_norm/decoder/out"] != rows["seed=1"][0][
      "dynamics/grad_norm/decoder/out"]
  for name in rows:  # Each run of the program draws its own figures.
    assert (tmp_path / "sw" / name / "figures" / "gradient_flow.png").is_file()
  alone = tmp_path / "alone"  # No figures: they change no metric (eval.figures is compute-only).
  runner.train_and_evaluate(tiny(**settings), alone, progress=False)
  first = json.loads((alone / "metrics.jsonl").read_text().splitlines()[0])
  assert first["dynamics/grad_norm/decoder/out"] == pytest.approx(
      rows["seed=0"][0]["dynamics/grad_norm/decoder/out"], rel=1e-4)
  assert curves.has_dynamics(rows["seed=0"])
  with pytest.raises(ValueError, match="train.dynamics=True"):
    curves.gradient_flow([{"epoch": 1, "train/loss": 1.0}], tmp_path / "x.png")


def test_live_images_reach_tensorboard_every_epoch_and_change(tiny, tmp_path):
  # pylint: disable-next=g-import-not-at-top
  from tensorboard.backend.event_processing import event_accumulator
  config = tiny(**{"train.live_images": True, "train.epochs": 2, "eval.iw_samples": 0,
                   "train.tensorboard": True})
  runner.train_and_evaluate(config, tmp_path / "run", progress=False)
  from tensorboard.util import tensor_util  # pylint: disable=g-import-not-at-top
  events = event_accumulator.EventAccumulator(  # flax writes images as tf.summary tensors.
      str(tmp_path / "run" / "tensorboard"), size_guidance={"tensors": 0})
  events.Reload()
  for tag in ("live/reconstructions", "live/samples"):
    images = events.Tensors(tag)
    assert [i.step for i in images] == [1, 2], tag
    png = [tensor_util.make_ndarray(i.tensor_proto)[-1] for i in images]  # [w, h, PNG bytes]
    assert png[0].startswith(b"\x89PNG") and png[0] != png[1]  # They changed over training.


def test_posterior_histograms_draw_one_column_per_dimension(tmp_path):
  rng = np.random.default_rng(0)
  mean, logvar = rng.normal(size=(500, 6)), rng.normal(-2, 0.1, size=(500, 6))
  wide = curves.plt.imread(curves.posterior_histograms(mean, logvar, tmp_path / "a.png"))
  narrow = curves.plt.imread(curves.posterior_histograms(mean[:, :2], logvar[:, :2],
                                                         tmp_path / "b.png"))
  assert wide.shape[1] > 2 * narrow.shape[1]  # Six dimensions drawn side by side, not two.
  with pytest.raises(ValueError, match="one shape"):
    curves.posterior_histograms(mean, logvar[:, :2], tmp_path / "c.png")
  chosen = curves.plt.imread(curves.posterior_histograms(mean, logvar, tmp_path / "d.png",
                                                         dims=[5, 0]))
  assert chosen.shape == narrow.shape  # Two chosen dimensions: two columns.
  with pytest.raises(ValueError, match="latent dimensions in 0..5"):
    curves.posterior_histograms(mean, logvar, tmp_path / "e.png", dims=[6])
