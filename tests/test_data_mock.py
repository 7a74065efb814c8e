"""Tests for vae_jax.data variants: geometry, subsets, loading under tfds.testing.mock_data."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest

from vae_jax import data

_SHAPES = {"mnist": (28, 28, 1), "fashion_mnist": (28, 28, 1), "mnist_32": (32, 32, 1),
           "fashion_mnist_32": (32, 32, 1), "cifar10": (32, 32, 3), "celeb_a": (32, 32, 3)}


@pytest.fixture
def no_network_probe(monkeypatch):
  """Fails the test if load_split probes the network (it must not under the mock)."""
  def probe():
    raise AssertionError("network_available called")
  monkeypatch.setattr(data.loading, "network_available", probe)


# Variant metadata, without loading data -------------------------------------------------------


def test_image_shape_and_num_classes():
  assert set(data.DATASETS) == set(_SHAPES)
  for name, shape in _SHAPES.items():
    assert data.image_shape(name) == shape == data.DATASETS[name].image_shape
    assert data.num_classes(name) == (0 if name == "celeb_a" else 10)
  assert data.DATASETS["mnist_32"].tfds_name == "mnist"
  assert data.DATASETS["celeb_a"].tfds_name == "celeb_a"
  for fn in (data.image_shape, data.num_classes):
    with pytest.raises(data.DataError, match="unknown dataset 'svhn'; choose one of: mnist"):
      fn("svhn")


def test_import_stays_cheap():
  code = ("import sys; from vae_jax import data; "
          "shapes = [data.image_shape(n) for n in data.DATASETS]; "
          "print(any(m.split('.')[0] in ('tensorflow', 'tensorflow_datasets') "
          "for m in sys.modules))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  assert out.stdout.strip() == "False"


@pytest.mark.parametrize("kwargs, message", [
    ({"pad_to": 20}, "pad_to=20 is below"),
    ({"crop": 30}, "crop=30 must be in"),
    ({"pad_to": 32, "crop": 30, "resize_to": 31}, "resize_to=31 must be in .*only downscales"),
    ({"subset_fraction": 0.0}, "subset_fraction must be in"),
    ({"subset_fraction": 1.5}, "subset_fraction must be in"),
    ({"num_classes": 0}, "disagree"),
])
def test_spec_validation(kwargs, message):
  with pytest.raises(ValueError, match=message):
    dataclasses.replace(data.DATASETS["mnist"], **kwargs)


# Geometry -------------------------------------------------------------------------------------


def _spec(**kwargs):
  return dataclasses.replace(data.DATASETS["mnist"], idx_import=False, **kwargs)


def test_pad_is_symmetric_zero_padding():
  x = np.random.default_rng(0).integers(1, 256, (3, 28, 28, 1), dtype=np.uint8)
  out = data.loading._apply_geometry(_spec(pad_to=32), x)  # pylint: disable=protected-access
  np.testing.assert_array_equal(out, np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0))))
  odd = data.loading._apply_geometry(_spec(pad_to=31), x)  # pylint: disable=protected-access
  assert odd.shape == (3, 31, 31, 1)
  np.testing.assert_array_equal(odd[:, 1:29, 1:29], x)  # Odd pixel at the bottom / right.


def test_crop_is_centered_and_resize_is_area():
  spec = data.DATASETS["celeb_a"]
  x = np.full((2, 218, 178, 3), 255, np.uint8)
  x[:, 39:179, 19:159] = 7  # The center 140x140 window: (218 - 140) / 2 = 39, (178 - 140) / 2 = 19.
  out = data.loading._apply_geometry(spec, x)  # pylint: disable=protected-access
  assert out.shape == (2, 32, 32, 3) and out.dtype == np.uint8
  np.testing.assert_array_equal(out, 7)  # No border pixel leaks in.

  # Area = the mean of the covered block (here exact 2x2 blocks), rounded to uint8.
  x = np.random.default_rng(1).integers(0, 256, (4, 28, 28, 1), dtype=np.uint8)
  # pylint: disable-next=protected-access
  out = data.loading._apply_geometry(_spec(crop=28, resize_to=14), x)
  blocks = x.reshape(4, 14, 2, 14, 2, 1).astype(np.float64).mean(axis=(2, 4))
  assert out.dtype == np.uint8
  assert np.abs(out.astype(np.float64) - blocks).max() <= 0.5 + 1e-4


# Under tfds.testing.mock_data -----------------------------------------------------------------


def test_mock_detection(tfds):
  assert not data.loading._tfds_mocked(tfds)  # pylint: disable=protected-access
  with tfds.testing.mock_data(num_examples=2):
    assert data.loading._tfds_mocked(tfds)  # pylint: disable=protected-access
  assert not data.loading._tfds_mocked(tfds)  # pylint: disable=protected-access


def test_mock_cifar10(tfds, no_network_probe, tmp_path):
  del no_network_probe
  with tfds.testing.mock_data(num_examples=12):
    x, y = data.load_split("cifar10", "train", str(tmp_path))
    # (batch_size=-1 under the mock batches by sys.maxsize and aborts the process.)
    raw = next(iter(tfds.as_numpy(tfds.load("cifar10", split="train", batch_size=100))))
  assert x.shape == (12, 32, 32, 3) and x.dtype == np.uint8
  assert y.shape == (12,) and y.dtype == np.int32 and ((0 <= y) & (y < 10)).all()
  np.testing.assert_array_equal(x, raw["image"])  # No geometry for cifar10.
  np.testing.assert_array_equal(y, raw["label"])
  assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("num_examples", [20, 7])
def test_mock_celeb_a(tfds, no_network_probe, num_examples):
  del no_network_probe
  expected_n = round(0.3 * num_examples)  # The seeded 30% subset.
  with tfds.testing.mock_data(num_examples=num_examples):
    x, y = data.load_split("celeb_a", "train")
    x2, y2 = data.load_split("celeb_a", "train")
    for split in ("validation", "test"):
      assert data.load_split("celeb_a", split)[0].shape == (expected_n, 32, 32, 3)
  assert x.shape == (expected_n, 32, 32, 3) and x.dtype == np.uint8
  assert y.dtype == np.int32 and (y == -1).all()
  assert x.std() > 10  # Random mock pixels survive crop + resize (not padding or zeros).
  np.testing.assert_array_equal(x, x2)  # Deterministic across calls.
  np.testing.assert_array_equal(y, y2)


def test_mock_subset_seed_changes_selection(tfds, monkeypatch):
  monkeypatch.setitem(data.DATASETS, "celeb_a_seed1",
                      dataclasses.replace(data.DATASETS["celeb_a"], subset_seed=1))
  with tfds.testing.mock_data(num_examples=20):
    x0, _ = data.load_split("celeb_a", "train")
    x1, _ = data.load_split("celeb_a_seed1", "train")
  assert x0.shape == x1.shape and not np.array_equal(x0, x1)


# Real MNIST -----------------------------------------------------------------------------------


def test_mnist_32_is_padded_mnist(mnist_data_dir):
  x, y = data.load_split("mnist", "test", mnist_data_dir)
  x32, y32 = data.load_split("mnist_32", "test", mnist_data_dir)
  assert x32.shape == (10000, 32, 32, 1) and x32.dtype == np.uint8
  np.testing.assert_array_equal(x32, np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0))))
  np.testing.assert_array_equal(y32, y)


def test_fashion_mnist_32_is_padded_fashion_mnist(fashion_mnist_data_dir):
  x, y = data.load_split("fashion_mnist", "test[:2000]", fashion_mnist_data_dir)
  x32, y32 = data.load_split("fashion_mnist_32", "test[:2000]", fashion_mnist_data_dir)
  np.testing.assert_array_equal(x32, np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0))))
  np.testing.assert_array_equal(y32, y)


def test_subset_picks_seeded_examples(mnist_data_dir, monkeypatch):
  spec = dataclasses.replace(data.DATASETS["mnist"], idx_import=False, subset_fraction=0.25,
                             subset_seed=3)
  monkeypatch.setitem(data.DATASETS, "mnist_quarter", spec)
  x, y = data.load_split("mnist", "test[:2000]", mnist_data_dir)
  xs, ys = data.load_split("mnist_quarter", "test[:2000]", mnist_data_dir)
  assert xs.shape == (500, 28, 28, 1) and ys.shape == (500,)
  idx = np.sort(np.random.default_rng(3).permutation(2000)[:500])  # As documented in DatasetSpec.
  np.testing.assert_array_equal(xs, x[idx])  # Filtered before decoding, still paired, in order.
  np.testing.assert_array_equal(ys, y[idx])
