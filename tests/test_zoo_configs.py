"""The rows of the zoo study (experiments/zoo/run.py), each code path once, train two epochs on
CIFAR-10 under tfds.testing.mock_data: the same configs on 32x32x3 images, at test sizes."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from vae_jax import config as config_lib, runner

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("zoo_run", REPO / "experiments" / "zoo" / "run.py")
zoo = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(zoo)


# Each code path once: the 1-layer VAE, IWAE, 2-layer IWAE, ladder, VampPrior and schedules rows.
@pytest.mark.slow  # One compile per row.
@pytest.mark.parametrize("row", [r for r in zoo.ROWS
                                 if r not in ("VAE, 2 layers", "IWAE K=50, 1 layer")])
def test_zoo_row_trains_on_mock_cifar10(tfds, tmp_path, row):
  config = config_lib.load_config(str(zoo.CONFIG))
  config_lib.apply_overrides(config, [
      *zoo.ROWS[row][0], "data.name=cifar10", "model.encoder.widths=16",
      "model.decoder.widths=16", "model.latent_dim=4", "model.hvae.latent_dims=6,3",
      "model.hvae.widths=16,8", "model.pseudo_inputs=5", "train.epochs=2", "train.batch_size=8",
      "eval.iw_samples=4", "eval.iw_batch_size=8", "eval.batch_size=8",
      "train.tensorboard=False", "eval.figures=False"])
  with tfds.testing.mock_data(num_examples=16):
    summary = runner.train_and_evaluate(config, tmp_path / "run", progress=False)
  assert np.isfinite(summary["eval/nll_iw"]) and summary["epoch"] == 2
  assert summary["eval/nll_iw_bits_per_dim"] > 0
