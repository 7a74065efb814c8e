"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Real IDX datasets live beside the repo: <X>/main (this repo) and <X>/shared/datasets.
SHARED_DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"


@pytest.fixture(scope="session")
def mnist_data_dir(tmp_path_factory) -> str:
  """A TFDS data dir holding the standard `mnist` dataset, prepared offline once per session.

  Reuses $TFDS_DATA_DIR when mnist is already prepared there, else imports
  SHARED_DATASETS/mnist into a session tmp dir (~20 s).
  """
  from vae_jax import data  # pylint: disable=g-import-not-at-top

  env_dir = os.environ.get("TFDS_DATA_DIR")
  if env_dir:
    try:
      data.load_split("mnist", "test[:1]", env_dir)
      return env_dir
    except data.DataError:
      pass
  data_dir = str(tmp_path_factory.mktemp("tfds"))
  data.import_idx("mnist", str(SHARED_DATASETS / "mnist"), data_dir)
  return data_dir


def tiny_config(data_dir: str, **overrides):
  """A seconds-long config on a real-MNIST subset: 784-32-4 VAE, 1 epoch of 512 images."""
  from vae_jax import config as config_lib  # pylint: disable=g-import-not-at-top

  config = config_lib.base_config()
  config.data.data_dir = data_dir
  config.data.train_subset = 512
  config.model.latent_dim = 4
  config.model.encoder.widths = (32,)
  config.model.decoder.widths = (32,)
  config.train.epochs = 1
  config.train.batch_size = 64
  config.train.checkpoint_every = 1
  config.eval.iw_samples = 8
  config.eval.iw_chunk_size = 3
  config_lib.apply_overrides(config, [f"{k}={v}" for k, v in overrides.items()])
  return config


@pytest.fixture
def tiny(mnist_data_dir):
  """Factory: tiny(**{"train.epochs": 2}) -> ConfigDict."""
  return lambda **overrides: tiny_config(mnist_data_dir, **overrides)


@pytest.fixture(scope="session")
def tiny_vae():
  """(model, params) of a 12-pixel VAE with latent 3, initialised with a jitted init."""
  import jax  # pylint: disable=g-import-not-at-top
  from vae_jax import config as config_lib, models  # pylint: disable=g-import-not-at-top

  c = config_lib.base_config().model
  c.latent_dim, c.encoder.widths, c.decoder.widths = 3, (16,), (16,)
  model = models.build_model(c, (3, 4, 1))
  return model, models.init_params(model, jax.random.key(0), (3, 4, 1))
