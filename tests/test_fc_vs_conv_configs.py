"""The fc_vs_conv study configs train one epoch on TFDS mock cifar10 and celeb_a (32x32x3) through
`runner.train_and_evaluate`, with tiny widths but their own model kinds, MSE objective, validation
split and early-stopping settings."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from vae_jax import config as config_lib, data, evaluate, runner

CONFIGS = config_lib.CONFIG_DIR
# Kept from the configs; everything else is shrunk for a seconds-long CPU run.
_TINY = {
    "fc_vs_conv_fc": ["model.encoder.widths=32,16", "model.decoder.widths=16,32"],
    "fc_vs_conv_conv": ["model.encoder.features=4,8,8", "model.decoder.features=8,8,4",
                        "model.conv_batch_chunks=1"],  # One slice: a smaller program to compile.
}


@pytest.mark.parametrize("dataset", ["cifar10", "celeb_a"])
@pytest.mark.parametrize("name, kind", [("fc_vs_conv_fc", "mlp"), ("fc_vs_conv_conv", "conv")])
def test_config_trains_one_epoch_on_mock_data(tfds, tmp_path, monkeypatch, name, kind, dataset):
  # Never download here.
  monkeypatch.setattr(data.loading, "network_available", lambda *a, **k: False)
  config = config_lib.load_config(CONFIGS / f"{name}.py")
  config_lib.apply_overrides(config, [
      f"data.name={dataset}", "data.train_subset=8", "model.latent_dim=8", "train.epochs=1",
      "train.batch_size=8", "eval.batch_size=40", "eval.figures=False", *_TINY[name]])
  workdir = tmp_path / "run"
  # 40 mock examples per split: cifar10 trains on 8 of its 36 (4 held out for validation),
  # celeb_a on 8 of the 11 of its 30% subset of 12 (1 held out): one batch of 8 each, so both
  # datasets run the same compiled programs. No figures: test_protocol draws a conv VAE's RGB
  # figures on mock cifar10.
  with tfds.testing.mock_data(num_examples=40):
    summary = runner.train_and_evaluate(config, workdir, progress=False)

  saved = json.loads((workdir / "config.json").read_text())
  assert saved["model"]["encoder"]["kind"] == saved["model"]["decoder"]["kind"] == kind
  assert saved["model"]["likelihood"] == "mse" and saved["data"]["validation_fraction"] == 0.1
  assert saved["train"]["early_stopping"] == {"patience": 5, "metric": "val/loss",
                                              "min_delta": 0.5}
  assert json.loads((workdir / "summary.json").read_text()) == json.loads(json.dumps(summary))
  assert np.isfinite(summary["eval/loss"]) and np.isfinite(summary["val/loss"])
  assert summary["best_epoch"] == 1 and summary["stopped_epoch"] is None  # The 1-epoch cap bound.

  assert data.image_shape(dataset) == (32, 32, 3)
  _, objective, params, _, _ = evaluate.restore_run(workdir)  # The trained model decodes RGB 32x32.
  z = jax.ShapeDtypeStruct((2, 8), jax.numpy.float32)
  decoded = jax.eval_shape(lambda p, z: objective.decode_mean(p, z, objective.prior_labels(2)),
                           params, z)
  assert decoded.shape == (2, 32, 32, 3)
