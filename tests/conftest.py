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
