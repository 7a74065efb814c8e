"""Tests for vae_jax.data: IDX validation, offline TFDS import, loading, splits, preprocessing."""

from __future__ import annotations

import gzip
import hashlib
import shutil
import threading
import time
from pathlib import Path
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import SHARED_DATASETS

from vae_jax import data

_MNIST = SHARED_DATASETS / "mnist"
_TEST_LABEL_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def _idx_bytes(magic: int, dims: tuple[int, ...], payload: bytes) -> bytes:
  return np.array([magic, *dims], ">u4").tobytes() + payload


def _write_fake_idx(folder, n=2, train_images_magic=2051, gz=True):
  """Writes four tiny IDX files (n examples each) into `folder`."""
  images = bytes(n * 28 * 28)
  labels = bytes(range(n))
  for prefix in ("train", "t10k"):
    magic = train_images_magic if prefix == "train" else 2051
    files = {f"{prefix}-images-idx3-ubyte": _idx_bytes(magic, (n, 28, 28), images),
             f"{prefix}-labels-idx1-ubyte": _idx_bytes(2049, (n,), labels)}
    for name, blob in files.items():
      if gz:
        (folder / f"{name}.gz").write_bytes(gzip.compress(blob))
      else:
        (folder / name).write_bytes(blob)


def _read_idx_labels(path) -> np.ndarray:
  return np.frombuffer(gzip.decompress(path.read_bytes()), np.uint8, offset=8)


def _read_idx_images(path) -> np.ndarray:
  raw = gzip.decompress(path.read_bytes())
  return np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 28, 28, 1)


# IDX validation -------------------------------------------------------------------------------


def test_import_missing_dir_raises(tmp_path):
  with pytest.raises(data.DataError, match="is not a directory; pass --from") as e:
    data.import_idx("mnist", str(tmp_path / "nowhere"), str(tmp_path / "tfds"))
  assert "\n" not in str(e.value)


def test_import_empty_existing_dir_raises(tmp_path):
  src = tmp_path / "src"
  src.mkdir()
  with pytest.raises(data.DataError, match="no IDX files in .*pass --from"):
    data.import_idx("mnist", str(src), str(tmp_path / "tfds"))
  assert not (tmp_path / "tfds" / "mnist").exists()


@pytest.mark.parametrize("gz", [True, False])
def test_import_wrong_magic_raises(tmp_path, gz):
  _write_fake_idx(tmp_path, train_images_magic=1234, gz=gz)
  with pytest.raises(data.DataError, match="magic number 1234, expected magic 2051") as e:
    data.import_idx("mnist", str(tmp_path), str(tmp_path / "tfds"))
  assert "\n" not in str(e.value)


def test_import_wrong_count_raises(tmp_path):
  _write_fake_idx(tmp_path)  # Valid files, but 2 examples instead of 60000 / 10000.
  with pytest.raises(data.DataError, match="expected 60000"):
    data.import_idx("mnist", str(tmp_path), str(tmp_path / "tfds"))


def test_import_truncated_raises(tmp_path):
  _write_fake_idx(tmp_path)
  blob = gzip.decompress((tmp_path / "t10k-images-idx3-ubyte.gz").read_bytes())
  (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(blob[:-5]))
  with pytest.raises(data.DataError, match="truncated or corrupt"):
    data.import_idx("mnist", str(tmp_path), str(tmp_path / "tfds"))


def test_import_unknown_dataset_raises(tmp_path):
  with pytest.raises(data.DataError, match="mnist, fashion_mnist"):
    data.import_idx("nope", str(tmp_path), str(tmp_path))


# Offline import of real MNIST and loading -----------------------------------------------------


def test_load_real_mnist(mnist_data_dir):
  test_x, test_y = data.load_split("mnist", "test", mnist_data_dir)
  assert test_x.shape == (10000, 28, 28, 1) and test_x.dtype == np.uint8
  assert test_y.shape == (10000,) and test_y.dtype == np.int32
  idx_test_y = _read_idx_labels(_MNIST / "t10k-labels-idx1-ubyte.gz")
  assert np.bincount(test_y).tolist() == np.bincount(idx_test_y).tolist() == _TEST_LABEL_COUNTS

  # Same (image, label) pairs as the IDX files, up to TFDS's shuffling.
  def fingerprints(x, y):
    return sorted(hashlib.sha1(img.tobytes() + bytes([lbl])).digest() for img, lbl in zip(x, y))

  idx_test_x = _read_idx_images(_MNIST / "t10k-images-idx3-ubyte.gz")
  assert fingerprints(test_x, test_y) == fingerprints(idx_test_x, idx_test_y)

  train_x, train_y = data.load_split("mnist", "train", mnist_data_dir)
  assert train_x.shape == (60000, 28, 28, 1) and train_x.dtype == np.uint8
  idx_train_y = _read_idx_labels(_MNIST / "train-labels-idx1-ubyte.gz")
  assert np.bincount(train_y).tolist() == np.bincount(idx_train_y).tolist()

  sliced_x, sliced_y = data.load_split("mnist", "train[:1000]", mnist_data_dir)
  assert sliced_x.shape == (1000, 28, 28, 1) and sliced_y.shape == (1000,)


def test_standard_tfds_dataset(mnist_data_dir):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  builder = tfds.builder("mnist", data_dir=mnist_data_dir)
  assert builder.is_prepared()
  assert builder.info.splits["train"].num_examples == 60000
  assert builder.info.splits["test"].num_examples == 10000
  example = next(iter(tfds.as_numpy(builder.as_dataset(split="test"))))
  assert example["image"].shape == (28, 28, 1) and example["image"].dtype == np.uint8
  ds = tfds.load("mnist", split="test[:10]", data_dir=mnist_data_dir, download=False)
  assert len(list(ds)) == 10


def test_import_is_idempotent(mnist_data_dir, tmp_path):
  # Already prepared: returns at once, without even reading the (here empty) source folder.
  assert data.import_idx("mnist", str(tmp_path), mnist_data_dir).endswith("3.0.1")


@pytest.mark.parametrize("name, fix", [
    ("mnist", "run: vae-jax data import mnist --from DIR --data-dir "),
    ("mnist_32", "run: vae-jax data import mnist --from DIR --data-dir "),
    ("fashion_mnist_32", "run: vae-jax data import fashion_mnist --from DIR --data-dir "),
    ("cifar10", "run: vae-jax data import cifar10 --from DIR --data-dir "),
    ("celeb_a", "prepare it with TFDS elsewhere and copy celeb_a/ into "),
])
def test_load_unprepared_without_network_raises(tmp_path, monkeypatch, name, fix):
  monkeypatch.setattr(data.loading, "network_available", lambda: False)
  with pytest.raises(data.DataError, match="no network to download it") as e:
    data.load_split(name, "train", str(tmp_path))
  assert fix + str(tmp_path) in str(e.value) and "\n" not in str(e.value)
  assert str(e.value).startswith(f"dataset {name!r}")  # The variant asked for (mnist_32 too).
  assert list(tmp_path.iterdir()) == []  # Nothing downloaded or created.


def test_network_probe_is_quick():
  start = time.monotonic()
  assert isinstance(data.network_available(), bool)  # The real probe, once.
  assert time.monotonic() - start < 5
  start = time.monotonic()  # A TEST-NET-1 address: refused or silent, never a connection.
  assert data.network_available(("192.0.2.1", 443), timeout=0.5) is False
  assert time.monotonic() - start < 2


def test_load_unprepared_raises(tmp_path, monkeypatch):
  # Same path anywhere.
  monkeypatch.setattr(data.loading, "network_available", lambda *a, **k: False)
  start = time.monotonic()
  with pytest.raises(data.DataError, match="vae-jax data import mnist") as e:
    data.load_split("mnist", "train", str(tmp_path))
  assert time.monotonic() - start < 30
  assert str(tmp_path) in str(e.value) and "\n" not in str(e.value)
  assert list(tmp_path.iterdir()) == []  # Nothing downloaded or created.


def test_load_unprepared_with_network_downloads(tmp_path, monkeypatch, mnist_data_dir):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  def fake_download_and_prepare(builder, *args, **kwargs):  # "Downloads" the prepared copy.
    del args, kwargs
    shutil.copytree(Path(mnist_data_dir) / builder.name, tmp_path / builder.name)

  monkeypatch.setattr(data.loading, "network_available", lambda: True)
  with mock.patch.object(tfds.core.DatasetBuilder, "download_and_prepare", autospec=True,
                         side_effect=fake_download_and_prepare) as download:
    x, y = data.load_split("mnist_32", "test[:100]", str(tmp_path))
  download.assert_called_once()
  assert download.call_args.args[0].name == "mnist"
  assert x.shape == (100, 32, 32, 1) and x.dtype == np.uint8 and y.dtype == np.int32


@pytest.mark.parametrize("effect, message", [
    (RuntimeError("boom\nsecond line"), r"failed to download and prepare it \(boom second line\)"),
    (None, "download_and_prepare left it unprepared"),
])
def test_load_download_failure_raises(tmp_path, monkeypatch, effect, message):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  monkeypatch.setattr(data.loading, "network_available", lambda: True)
  with mock.patch.object(tfds.core.DatasetBuilder, "download_and_prepare", autospec=True,
                         side_effect=effect):
    with pytest.raises(data.DataError, match=message) as e:
      data.load_split("celeb_a", "train", str(tmp_path))
  assert "copy celeb_a/ into" in str(e.value) and "\n" not in str(e.value)


def test_import_variant_names_its_source(tmp_path):
  with pytest.raises(data.DataError, match="reads the TFDS dataset 'mnist'; run: vae-jax data "
                     "import mnist --from DIR"):
    data.import_idx("mnist_32", str(tmp_path), str(tmp_path))
  with pytest.raises(data.DataError, match="cannot be imported from IDX files"):
    data.import_idx("cifar10", str(tmp_path), str(tmp_path))


def test_load_unknown_dataset_raises(tmp_path):
  with pytest.raises(data.DataError, match="choose one of: mnist, fashion_mnist"):
    data.load_split("nope", "train", str(tmp_path))


def test_load_bad_split_raises(mnist_data_dir):
  with pytest.raises(data.DataError, match="bad split 'validation'"):
    data.load_split("mnist", "validation", mnist_data_dir)


def test_default_data_dir(monkeypatch):
  monkeypatch.setenv("TFDS_DATA_DIR", "/from/env")
  assert data.default_data_dir("/given") == "/given"
  assert data.default_data_dir() == "/from/env"
  monkeypatch.delenv("TFDS_DATA_DIR")
  assert data.default_data_dir().endswith("tensorflow_datasets")


# validation_split -----------------------------------------------------------------------------


def test_validation_split():
  x = np.arange(100 * 4, dtype=np.uint8).reshape(100, 2, 2, 1)
  y = np.arange(100, dtype=np.int32)
  (tx, ty), (vx, vy) = data.validation_split(x, y, 10, seed=0)
  assert tx.shape == (90, 2, 2, 1) and ty.shape == (90,)
  assert vx.shape == (10, 2, 2, 1) and vy.shape == (10,)
  assert not set(ty) & set(vy) and set(ty) | set(vy) == set(y)
  np.testing.assert_array_equal(tx[:, 0, 0, 0], x[ty, 0, 0, 0])  # Images stay paired with labels.
  (_, ty2), (_, vy2) = data.validation_split(x, y, 10, seed=0)
  np.testing.assert_array_equal(vy, vy2)
  np.testing.assert_array_equal(ty, ty2)
  (_, _), (_, vy3) = data.validation_split(x, y, 10, seed=1)
  assert not np.array_equal(vy, vy3)
  for bad in (0, 100, -1):
    with pytest.raises(ValueError):
      data.validation_split(x, y, bad, seed=0)


# preprocess -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def images():
  return jax.random.randint(jax.random.key(0), (64, 28, 28, 1), 0, 256).astype(jnp.uint8)


def test_preprocess_grayscale(images):
  out = data.preprocess(images, "grayscale")
  assert out.dtype == jnp.float32 and out.shape == images.shape
  assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0
  np.testing.assert_allclose(out, np.asarray(images) / 255.0, rtol=1e-6)


def test_preprocess_threshold(images):
  out = data.preprocess(images, "binarize_threshold")
  assert out.dtype == jnp.float32 and set(np.unique(out).tolist()) == {0.0, 1.0}
  np.testing.assert_array_equal(out, (np.asarray(images) / 255.0 > 0.5).astype(np.float32))


def test_preprocess_dynamic(images):
  fn = jax.jit(data.preprocess, static_argnames="mode")
  a = fn(images, "binarize_dynamic", jax.random.key(1))
  b = fn(images, "binarize_dynamic", jax.random.key(2))
  assert a.dtype == jnp.float32 and set(np.unique(a).tolist()) == {0.0, 1.0}
  assert abs(float(a.mean()) - float(images.mean()) / 255.0) < 0.01  # ~50k pixels.
  assert not np.array_equal(a, b)
  np.testing.assert_array_equal(a, fn(images, "binarize_dynamic", jax.random.key(1)))


def test_preprocess_errors(images):
  with pytest.raises(ValueError, match="unknown preprocess mode"):
    data.preprocess(images, "sepia")
  with pytest.raises(ValueError, match="PRNG key"):
    data.preprocess(images, "binarize_dynamic")
  with pytest.raises(TypeError, match="uint8 or float32"):
    data.preprocess(images.astype(jnp.int32), "grayscale")


def test_preprocess_keeps_float_images(images):
  """Float images are taken as already in [0, 1] (from_arrays keeps them): the same floats as
  their uint8 originals give, and the same binarization draws."""
  x = images.astype(jnp.float32) / 255.0
  np.testing.assert_array_equal(data.preprocess(x, "grayscale"),
                                data.preprocess(images, "grayscale"))
  key = jax.random.key(3)
  np.testing.assert_array_equal(data.preprocess(x, "binarize_dynamic", key),
                                data.preprocess(images, "binarize_dynamic", key))


# The decoded-split cache ($VAE_JAX_DATA_CACHE) ------------------------------------------------


def test_cache_entries_are_keyed_by_the_dataset_files_and_unreadable_ones_ignored(tmp_path,
                                                                                monkeypatch):
  from vae_jax.data import cache, specs  # pylint: disable=g-import-not-at-top

  spec, version = specs.dataset_spec("mnist"), tmp_path / "tfds" / "mnist" / "3.0.1"
  version.mkdir(parents=True)
  (version / "mnist-test.tfrecord").write_bytes(b"x" * 10)
  monkeypatch.delenv(cache.ENV, raising=False)
  assert cache.entry("mnist", spec, "test", str(tmp_path / "tfds")) is None  # Off.
  monkeypatch.setenv(cache.ENV, str(tmp_path / "cache"))
  assert cache.entry("mnist", spec, "test", str(tmp_path / "nowhere")) is None  # No files.
  first = cache.entry("mnist", spec, "test", str(tmp_path / "tfds"))
  assert first.parent == tmp_path / "cache" and first.name.startswith("mnist-test-")
  assert cache.entry("mnist", spec, "test[:10]", str(tmp_path / "tfds")) != first
  assert cache.entry("mnist_32", specs.dataset_spec("mnist_32"), "test",
                     str(tmp_path / "tfds")) != first
  (version / "mnist-test.tfrecord").write_bytes(b"y" * 11)  # Imported again: a new key.
  assert cache.entry("mnist", spec, "test", str(tmp_path / "tfds")) != first
  images, labels = np.arange(24, dtype=np.uint8).reshape(2, 3, 4, 1), np.array([3, 1], np.int32)
  assert cache.load(first) is None  # Missing.
  cache.store(first, images, labels)
  loaded = cache.load(first)
  np.testing.assert_array_equal(loaded[0], images)
  np.testing.assert_array_equal(loaded[1], labels)
  assert [p.name for p in first.parent.iterdir()] == [first.name]  # No temporary file left.
  first.write_bytes(b"not an npz")
  assert cache.load(first) is None


def test_a_process_missing_an_entry_waits_for_the_one_decoding_it(tmp_path, monkeypatch):
  """While one process decodes a split (cache.filling holds its lock), another that needs it
  waits and then reads the entry written, decoding nothing."""
  from vae_jax.data import cache, loading, specs  # pylint: disable=g-import-not-at-top

  version = tmp_path / "tfds" / "mnist" / "3.0.1"
  version.mkdir(parents=True)
  (version / "mnist-test.tfrecord").write_bytes(b"x")
  monkeypatch.setenv(cache.ENV, str(tmp_path / "cache"))
  entry = cache.entry("mnist", specs.dataset_spec("mnist"), "test", str(tmp_path / "tfds"))
  images, labels = np.full((2, 28, 28, 1), 7, np.uint8), np.array([4, 2], np.int32)
  loading._load_split_cached.cache_clear()  # pylint: disable=protected-access
  got = []
  with mock.patch.object(loading, "_load_split", side_effect=AssertionError("decoded again")):
    with cache.filling(entry):  # The decoding process (a lock of its own file description).
      waiter = threading.Thread(target=lambda: got.append(
          data.load_split("mnist", "test", str(tmp_path / "tfds"))))
      waiter.start()
      waiter.join(0.5)
      assert waiter.is_alive() and not got  # Waiting for the lock, not decoding.
      cache.store(entry, images, labels)
    waiter.join(10)
  loading._load_split_cached.cache_clear()  # pylint: disable=protected-access
  assert len(got) == 1
  np.testing.assert_array_equal(got[0][0], images)
  np.testing.assert_array_equal(got[0][1], labels)
  with cache.filling(None):  # Cache off: no lock, no wait.
    pass


def test_load_split_reads_the_cache_instead_of_decoding(mnist_data_dir, tmp_path, monkeypatch):
  from vae_jax.data import cache, loading  # pylint: disable=g-import-not-at-top

  monkeypatch.setenv(cache.ENV, str(tmp_path / "cache"))
  loading._load_split_cached.cache_clear()  # pylint: disable=protected-access
  decoded = data.load_split("mnist", "test[:300]", mnist_data_dir)
  [entry] = (tmp_path / "cache").glob("*.npz")
  loading._load_split_cached.cache_clear()  # pylint: disable=protected-access
  with mock.patch.object(loading, "_load_split", side_effect=AssertionError("decoded again")):
    cached = data.load_split("mnist", "test[:300]", mnist_data_dir)
  for a, b in zip(decoded, cached):
    np.testing.assert_array_equal(a, b)
    assert a.dtype == b.dtype and not b.flags.writeable
  entry.write_bytes(b"damaged")  # Ignored: decoded and written again.
  loading._load_split_cached.cache_clear()  # pylint: disable=protected-access
  again = data.load_split("mnist", "test[:300]", mnist_data_dir)
  np.testing.assert_array_equal(again[0], decoded[0])
  assert cache.load(entry) is not None
  # mnist_32 is mnist padded: it reads mnist's entry, decodes nothing and adds no entry.
  loading._load_split_cached.cache_clear()  # pylint: disable=protected-access
  with mock.patch.object(loading, "_load_split", side_effect=AssertionError("decoded again")):
    padded, labels = data.load_split("mnist_32", "test[:300]", mnist_data_dir)
  assert [p.name for p in (tmp_path / "cache").glob("*.npz")] == [entry.name]
  assert padded.shape == (300, 32, 32, 1) and not padded.flags.writeable
  np.testing.assert_array_equal(padded[:, 2:30, 2:30], decoded[0])
  assert not padded[:, :2].any() and not padded[:, 30:].any() and not padded[:, :, :2].any()
  np.testing.assert_array_equal(labels, decoded[1])
  loading._load_split_cached.cache_clear()  # pylint: disable=protected-access
