"""Datasets: offline import of IDX files into TFDS, split loading, preprocessing.

TensorFlow / TFDS are imported lazily (so ``import vae_jax.data`` stays cheap)
and are hidden from every GPU: JAX owns the accelerator.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import os
import tempfile
import zlib
from pathlib import Path
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np


class DataError(Exception):
  """Bad data input the user can fix; ``str(e)`` is one line naming the problem and the fix."""


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  """How to read a TFDS dataset: feature keys and the image shape (H, W, C)."""

  image_key: str
  label_key: str | None
  image_shape: tuple[int, int, int]
  idx_import: bool = False  # Can be prepared offline with `import_idx`.


DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec("image", "label", (28, 28, 1), idx_import=True),
    "fashion_mnist": DatasetSpec("image", "label", (28, 28, 1), idx_import=True),
}

# role -> (IDX file name, magic number, number of examples).
_IDX_FILES = {
    "train_images": ("train-images-idx3-ubyte", 2051, 60000),
    "train_labels": ("train-labels-idx1-ubyte", 2049, 60000),
    "test_images": ("t10k-images-idx3-ubyte", 2051, 10000),
    "test_labels": ("t10k-labels-idx1-ubyte", 2049, 10000),
}
_IMAGE_HW = (28, 28)


@functools.cache
def _tfds():
  """Imports TFDS once, after hiding all GPUs from TensorFlow."""
  # TF only decodes data here: silence its start-up logs (oneDNN notice, absl info lines).
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  try:
    tf.config.set_visible_devices([], "GPU")
  except RuntimeError:  # TF devices already initialised by someone else.
    pass
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  return tfds


def _spec(name: str) -> DatasetSpec:
  if name not in DATASETS:
    raise DataError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
  return DATASETS[name]


def default_data_dir(data_dir: str | None = None) -> str:
  """``data_dir`` if given, else ``$TFDS_DATA_DIR`` if set, else ``~/tensorflow_datasets``."""
  data_dir = data_dir or os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets"
  return os.path.expanduser(os.fspath(data_dir))


def _read_idx(src: Path, role: str, sums: dict[str, list[str]]) -> tuple[Path, bytes]:
  """Returns the path and raw (decompressed) bytes of one IDX file after checking it."""
  stem, magic, _ = _IDX_FILES[role]
  path = next((p for p in (src / f"{stem}.gz", src / stem) if p.is_file()), None)
  fix = "pass --from a folder holding the four original IDX files"
  if path is None:
    raise DataError(f"missing {stem}.gz (or {stem}) in {src}; {fix}")
  blob = path.read_bytes()
  try:
    raw = gzip.decompress(blob) if path.suffix == ".gz" else blob
  except (OSError, EOFError, zlib.error) as e:
    raise DataError(f"{path} is not a valid gzip file ({e}); re-copy it") from None
  digests = {hashlib.sha256(blob).hexdigest(), hashlib.sha256(raw).hexdigest()}
  if path.name in sums and not digests & set(sums[path.name]):
    raise DataError(f"{path} does not match its sha256 in {src / 'SHA256SUMS'}; re-copy it")
  header = 16 if magic == 2051 else 8
  dims = np.frombuffer(raw[:header], ">u4") if len(raw) >= header else None
  if dims is None or dims[0] != magic:
    found = "a truncated header" if dims is None else f"magic number {dims[0]}"
    raise DataError(f"{path} has {found}, expected magic {magic}; {fix}")
  if magic == 2051 and tuple(dims[2:]) != _IMAGE_HW:
    raise DataError(f"{path} holds {dims[2]}x{dims[3]} images, expected 28x28; {fix}")
  expected_len = header + int(dims[1]) * (_IMAGE_HW[0] * _IMAGE_HW[1] if magic == 2051 else 1)
  if len(raw) != expected_len:
    raise DataError(f"{path} has {len(raw)} bytes, header implies {expected_len}; "
                    "the file is truncated or corrupt, re-copy it")
  return path, raw


def _read_sha256sums(src: Path) -> dict[str, list[str]]:
  """file name -> accepted sha256s, from lines `<sha256> [<sha256 of content>] <file name>`."""
  if not (src / "SHA256SUMS").is_file():
    return {}
  lines = [line.split() for line in (src / "SHA256SUMS").read_text().splitlines()]
  return {f[-1].lstrip("*"): f[:-1] for f in lines if len(f) >= 2}


def _check_idx(name: str, src: Path) -> dict[str, tuple[Path, bytes]]:
  """Validates the four IDX files in ``src``; returns role -> (path, raw bytes).

  Raises:
    DataError: missing files, bad checksum, header, length, counts or labels.
  """
  if not src.is_dir():
    raise DataError(f"{src} is not a directory; pass --from a folder holding the {name} IDX files")
  stems = [stem for stem, _, _ in _IDX_FILES.values()]
  if not any((src / s).is_file() or (src / f"{s}.gz").is_file() for s in stems):
    raise DataError(f"no IDX files in {src} (expected {', '.join(s + '.gz' for s in stems)}); "
                    f"pass --from a folder holding the {name} IDX files")
  sums = _read_sha256sums(src)
  files = {role: _read_idx(src, role, sums) for role in _IDX_FILES}
  for split in ("train", "test"):
    n_images = int(np.frombuffer(files[f"{split}_images"][1][4:8], ">u4")[0])
    labels = np.frombuffer(files[f"{split}_labels"][1], np.uint8, offset=8)
    expected = _IDX_FILES[f"{split}_images"][2]
    if n_images != len(labels):
      raise DataError(f"{split} IDX files in {src} hold {n_images} images but {len(labels)} "
                      "labels; use matching files")
    if n_images != expected:
      raise DataError(f"{split} IDX files in {src} hold {n_images} examples, expected "
                      f"{expected}; use the full {name} files")
    if labels.max() > 9:
      raise DataError(f"{split} labels in {src} reach {labels.max()}, expected 0..9; "
                      f"use the {name} label files")
  return files


class _LocalDownloadManager:
  """Stands in for ``tfds.download.DownloadManager``: serves URLs from local files by basename."""

  def __init__(self, files: dict[str, Path], downloaded_size: int):
    self._files = files
    self.downloaded_size = downloaded_size

  def download_and_extract(self, url_or_urls):
    if isinstance(url_or_urls, dict):
      return {k: self.download_and_extract(v) for k, v in url_or_urls.items()}
    if isinstance(url_or_urls, (list, tuple)):
      return type(url_or_urls)(self.download_and_extract(v) for v in url_or_urls)
    basename = os.path.basename(str(url_or_urls))
    if basename not in self._files:
      raise RuntimeError(f"TFDS's builder asked for {basename}, which import_idx does not provide")
    return self._files[basename]


def import_idx(name: str, src_dir: str, data_dir: str | None = None) -> str:
  """Prepares the standard TFDS dataset ``name`` offline from the IDX files in ``src_dir``.

  Runs TFDS's own builder (same name, version, features and splits as upstream)
  with its download manager replaced by one serving the local files, so that
  afterwards ``tfds.load(name, data_dir=...)`` works without network.

  Args:
    name: "mnist" or "fashion_mnist".
    src_dir: folder with train-images-idx3-ubyte(.gz), train-labels-idx1-ubyte(.gz),
      t10k-images-idx3-ubyte(.gz) and t10k-labels-idx1-ubyte(.gz).
    data_dir: TFDS data dir; see `default_data_dir`.

  Returns:
    The prepared dataset directory, e.g. ``<data_dir>/mnist/3.0.1``. If it is
    already prepared, it is returned at once, without reading ``src_dir``.

  Raises:
    DataError: unknown or non-importable ``name``, or missing / invalid IDX files.
  """
  if not _spec(name).idx_import:
    importable = ", ".join(k for k, v in DATASETS.items() if v.idx_import)
    raise DataError(f"dataset {name!r} cannot be imported from IDX files; importable: {importable}")
  tfds = _tfds()
  builder = tfds.builder(name, data_dir=default_data_dir(data_dir))
  if builder.is_prepared():
    return os.fspath(builder.data_dir)
  src = Path(src_dir).expanduser()
  checked = _check_idx(name, src)
  with tempfile.TemporaryDirectory(prefix="vae_jax_idx_") as tmp:
    files = {}
    for role, (_, data) in checked.items():
      stem = _IDX_FILES[role][0]
      (Path(tmp) / stem).write_bytes(data)
      files[f"{stem}.gz"] = files[stem] = Path(tmp) / stem
    size = sum(path.stat().st_size for path, _ in checked.values())
    dl_manager = _LocalDownloadManager(files, downloaded_size=size)
    config = tfds.download.DownloadConfig(try_download_gcs=False)
    tfds.disable_progress_bar()  # One line from the CLI instead of TFDS's bars.
    with mock.patch.object(builder, "_make_download_manager", lambda *a, **k: dl_manager):
      builder.download_and_prepare(download_config=config)
  return os.fspath(builder.data_dir)


def load_split(name: str, split: str,
               data_dir: str | None = None) -> tuple[np.ndarray, np.ndarray]:
  """Loads a whole TFDS split into memory; never downloads.

  Args:
    name: a key of `DATASETS`.
    split: "train", "test" or TFDS slicing such as "train[:1000]".
    data_dir: TFDS data dir; see `default_data_dir`.

  Returns:
    ``(images, labels)``: uint8 ``[N, H, W, C]`` and int32 ``[N]`` (all -1 if
    the dataset has no label key).

  Raises:
    DataError: unknown dataset, dataset not prepared in the data dir, or bad split.
  """
  spec = _spec(name)
  tfds = _tfds()
  data_dir = default_data_dir(data_dir)
  builder = tfds.builder(name, data_dir=data_dir)
  if not builder.is_prepared():
    if spec.idx_import:
      fix = f"run: vae-jax data import {name} --from DIR --data-dir {data_dir}"
    else:
      fix = f"prepare it with TFDS where there is network and copy {name}/ into {data_dir}"
    raise DataError(f"dataset {name!r} is not in the TFDS data dir {data_dir} "
                    f"(TFDS cannot download here); {fix}")
  try:
    batch = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1))
  except (ValueError, KeyError) as e:
    reason = " ".join(str(e).split())
    splits = ", ".join(builder.info.splits)
    raise DataError(f"bad split {split!r} for {name} ({reason}); use one of {splits}, "
                    "optionally sliced like 'train[:1000]'") from None
  images = np.asarray(batch[spec.image_key], np.uint8)
  if spec.label_key is None:
    return images, np.full(len(images), -1, np.int32)
  return images, np.asarray(batch[spec.label_key], np.int32)


def validation_split(images, labels, size: int, seed: int) -> tuple[tuple, tuple]:
  """Carves a seeded, deterministic validation set out of a training set.

  Args:
    images: array ``[N, ...]``.
    labels: array ``[N]``.
    size: number of validation examples, ``0 < size < N``.
    seed: seed of ``np.random.default_rng``; same seed, same split.

  Returns:
    ``((train_x, train_y), (val_x, val_y))``, disjoint, each kept in original order.

  Raises:
    ValueError: ``len(images) != len(labels)`` or ``size`` out of range.
  """
  n = len(images)
  if len(labels) != n:
    raise ValueError(f"images and labels differ in length: {n} vs {len(labels)}")
  if not 0 < size < n:
    raise ValueError(f"validation size must be in (0, {n}), got {size}")
  perm = np.random.default_rng(seed).permutation(n)
  val_idx, train_idx = np.sort(perm[:size]), np.sort(perm[size:])
  return (images[train_idx], labels[train_idx]), (images[val_idx], labels[val_idx])


PREPROCESS_MODES = ("grayscale", "binarize_dynamic", "binarize_threshold")


def preprocess(x_uint8: jax.Array, mode: str, key: jax.Array | None = None) -> jax.Array:
  """Maps uint8 images to float32 in [0, 1]; pure JAX, jit-safe (``mode`` is static).

  Args:
    x_uint8: uint8 ``[..., H, W, C]``.
    mode: "grayscale" (x / 255), "binarize_dynamic" (a fresh Bernoulli(x / 255)
      draw with ``key``; use a new key for every batch) or "binarize_threshold"
      (x / 255 > 0.5).
    key: PRNG key, required by "binarize_dynamic" only.

  Returns:
    float32 array with the shape of ``x_uint8``.

  Raises:
    ValueError: unknown ``mode``, or no ``key`` for "binarize_dynamic".
    TypeError: ``x_uint8`` is not uint8 (guards against normalising twice).
  """
  if mode not in PREPROCESS_MODES:
    raise ValueError(f"unknown preprocess mode {mode!r}; choose one of {PREPROCESS_MODES}")
  x_uint8 = jnp.asarray(x_uint8)
  if x_uint8.dtype != jnp.uint8:
    raise TypeError(f"preprocess expects uint8 images, got {x_uint8.dtype}")
  x = x_uint8.astype(jnp.float32) / 255.0
  if mode == "grayscale":
    return x
  if mode == "binarize_threshold":
    return (x > 0.5).astype(jnp.float32)
  if key is None:
    raise ValueError("preprocess mode 'binarize_dynamic' needs a PRNG key (a new one per batch)")
  return jax.random.bernoulli(key, x).astype(jnp.float32)
