"""Datasets: named variants, offline import into TFDS (IDX, CIFAR-10), split loading, preprocessing.

A variant (a key of `DATASETS`, used in configs as ``data.name``) reads one
TFDS dataset and reshapes it: zero-pad, center-crop, area-resize, seeded subset.
Loading works offline from a prepared TFDS data dir, downloads with TFDS where
there is network, and works under ``tfds.testing.mock_data``.

TensorFlow / TFDS are imported lazily (so ``import vae_jax.data`` stays cheap)
and are hidden from every GPU: JAX owns the accelerator.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import os
import socket
import tempfile
import threading
import zlib
from pathlib import Path
from unittest import mock

import numpy as np


from vae_jax.errors import DataError  # noqa: F401  # Raised here; the public name stays.
from vae_jax.pixels import PREPROCESS_MODES, preprocess  # noqa: F401  # Public here too.
from vae_jax.sources import Source, as_source, from_arrays, from_iterable  # noqa: F401  # Public.


@dataclasses.dataclass(frozen=True, kw_only=True)
class DatasetSpec:
  """A named dataset variant: which TFDS dataset it reads and how it reshapes the images.

  Geometry is applied in this order: ``pad_to``, ``crop``, ``resize_to``; then
  ``subset_fraction`` keeps a seeded subset of every split.

  Attributes:
    tfds_name: TFDS builder name, e.g. "mnist" (several variants may share one).
    image_key: feature key of the uint8 image.
    label_key: feature key of the class label, or None (labels are then all -1).
    source_shape: (H, W, C) of the images as stored in TFDS.
    num_classes: number of classes of ``label_key``; 0 without labels.
    idx_import: its TFDS dataset can be prepared offline with `import_idx` (cifar10 has
      its own importer; every offline import is listed in `IMPORT_SOURCES`).
    pad_to: zero-pad H and W symmetrically (the odd pixel at the bottom / right)
      to this size, or None.
    crop: center-crop to ``crop x crop`` (after padding), or None.
    resize_to: resize to ``resize_to x resize_to`` (after cropping) with
      ``tf.image.resize(method="area")``, then round to uint8, or None. Area
      averages the source pixels each output pixel covers (an anti-aliased box
      filter), so only downscaling is allowed.
    subset_fraction: in (0, 1]; of the N examples of each (sliced) split, keep
      the first ``k = round(fraction * N)`` (at least 1) indices of
      ``np.random.default_rng(subset_seed).permutation(N)``, in TFDS order.
      1.0 keeps everything.
    subset_seed: seed of that subset.

  Raises:
    ValueError: (on construction) inconsistent geometry or fraction.
  """

  tfds_name: str
  image_key: str
  label_key: str | None
  source_shape: tuple[int, int, int]
  num_classes: int
  idx_import: bool = False
  pad_to: int | None = None
  crop: int | None = None
  resize_to: int | None = None
  subset_fraction: float = 1.0
  subset_seed: int = 0

  def __post_init__(self):
    h, w, _ = self.source_shape
    if self.pad_to is not None and self.pad_to < max(h, w):
      raise ValueError(f"pad_to={self.pad_to} is below the {h}x{w} source images")
    h, w = (self.pad_to, self.pad_to) if self.pad_to else (h, w)
    if self.crop is not None and not 0 < self.crop <= min(h, w):
      raise ValueError(f"crop={self.crop} must be in (0, {min(h, w)}] for {h}x{w} images")
    h, w = (self.crop, self.crop) if self.crop else (h, w)
    if self.resize_to is not None and not 0 < self.resize_to <= min(h, w):
      raise ValueError(f"resize_to={self.resize_to} must be in (0, {min(h, w)}] for {h}x{w} "
                       "images (area resizing only downscales)")
    if not 0 < self.subset_fraction <= 1:
      raise ValueError(f"subset_fraction must be in (0, 1], got {self.subset_fraction}")
    if (self.label_key is None) != (self.num_classes == 0):
      raise ValueError(f"label_key={self.label_key!r} and num_classes={self.num_classes} disagree")

  @property
  def image_shape(self) -> tuple[int, int, int]:
    """(H, W, C) of the images after the geometry, i.e. as `load_split` returns them."""
    h, w, c = self.source_shape
    size = self.resize_to or self.crop or self.pad_to
    return (size, size, c) if size else (h, w, c)


DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(tfds_name="mnist", image_key="image", label_key="label",
                         source_shape=(28, 28, 1), num_classes=10, idx_import=True),
    "fashion_mnist": DatasetSpec(tfds_name="fashion_mnist", image_key="image", label_key="label",
                                 source_shape=(28, 28, 1), num_classes=10, idx_import=True),
    "mnist_32": DatasetSpec(tfds_name="mnist", image_key="image", label_key="label",
                            source_shape=(28, 28, 1), num_classes=10, pad_to=32),
    "fashion_mnist_32": DatasetSpec(tfds_name="fashion_mnist", image_key="image",
                                    label_key="label", source_shape=(28, 28, 1), num_classes=10,
                                    pad_to=32),
    "cifar10": DatasetSpec(tfds_name="cifar10", image_key="image", label_key="label",
                           source_shape=(32, 32, 3), num_classes=10),
    # Splits train / validation / test; no class label (40 binary attributes are ignored).
    "celeb_a": DatasetSpec(tfds_name="celeb_a", image_key="image", label_key=None,
                           source_shape=(218, 178, 3), num_classes=0, crop=140, resize_to=32,
                           subset_fraction=0.3, subset_seed=0),
}

# Variants `importers.import_dataset` prepares offline -> what `vae-jax data import NAME --from` takes.
IMPORT_SOURCES = {
    "mnist": "a folder holding the four MNIST IDX files",
    "fashion_mnist": "a folder holding the four Fashion-MNIST IDX files",
    "cifar10": "the official cifar-10-binary.tar.gz or its extracted folder",
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


def image_shape(name: str) -> tuple[int, int, int]:
  """(H, W, C) of the images `load_split` returns for variant ``name``; loads no data.

  Raises:
    DataError: unknown ``name``.
  """
  return _spec(name).image_shape


def num_classes(name: str) -> int:
  """Number of classes of variant ``name``'s labels; 0 when it has none (labels all -1).

  Raises:
    DataError: unknown ``name``.
  """
  return _spec(name).num_classes


def _importer(spec: DatasetSpec, importable=tuple(IMPORT_SOURCES)) -> str | None:
  """The variant among ``importable`` that reads the same TFDS dataset as ``spec``, if any."""
  return next((k for k in importable if DATASETS[k].tfds_name == spec.tfds_name), None)


def check_importable(name: str, importable: list[str], how: str) -> DatasetSpec:
  """``name``'s spec if it is in ``importable``; else a DataError naming the variant to import."""
  if name not in DATASETS:
    raise DataError(f"unknown dataset {name!r}; importable: {', '.join(importable)}")
  spec = DATASETS[name]
  if name in importable:
    return spec
  if importer := _importer(spec, importable):
    raise DataError(f"dataset {name!r} reads the TFDS dataset {spec.tfds_name!r}; run: "
                    f"vae-jax data import {importer} --from DIR")
  raise DataError(f"dataset {name!r} cannot be imported {how}; importable: {', '.join(importable)}")


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
      raise RuntimeError(f"TFDS's builder asked for {basename}, which the import does not provide")
    return self._files[basename]


def _prepare_from_local_files(tfds, builder, files: dict[str, Path], size: int) -> None:
  """Runs TFDS's own ``builder.download_and_prepare`` (same name, version, features and splits as
  upstream), its downloads served from ``files`` (URL basename -> local path; ``size`` bytes)."""
  dl_manager = _LocalDownloadManager(files, downloaded_size=size)
  config = tfds.download.DownloadConfig(try_download_gcs=False)
  tfds.disable_progress_bar()  # One line from the CLI instead of TFDS's bars.
  with mock.patch.object(builder, "_make_download_manager", lambda *a, **k: dl_manager):
    builder.download_and_prepare(download_config=config)


def import_idx(name: str, src_dir: str, data_dir: str | None = None) -> str:
  """Prepares the standard TFDS dataset ``name`` offline from the IDX files in ``src_dir``.

  Runs TFDS's own builder (same name, version, features and splits as upstream)
  with its download manager replaced by one serving the local files, so that
  afterwards ``tfds.load(name, data_dir=...)`` works without network.

  Args:
    name: "mnist" or "fashion_mnist" (variants such as "mnist_32" read the
      dataset these prepare).
    src_dir: folder with train-images-idx3-ubyte(.gz), train-labels-idx1-ubyte(.gz),
      t10k-images-idx3-ubyte(.gz) and t10k-labels-idx1-ubyte(.gz).
    data_dir: TFDS data dir; see `default_data_dir`.

  Returns:
    The prepared dataset directory, e.g. ``<data_dir>/mnist/3.0.1``. If it is
    already prepared, it is returned at once, without reading ``src_dir``.

  Raises:
    DataError: unknown or non-importable ``name``, or missing / invalid IDX files.
  """
  spec = check_importable(name, [k for k, v in DATASETS.items() if v.idx_import],
                           "from IDX files")
  tfds = _tfds()
  builder = tfds.builder(spec.tfds_name, data_dir=default_data_dir(data_dir))
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
    _prepare_from_local_files(tfds, builder, files, size)
  return os.fspath(builder.data_dir)


_PROBE_ADDRESS = ("storage.googleapis.com", 443)  # TFDS's GCS mirror; also hosts MNIST.


def network_available(address: tuple[str, int] = _PROBE_ADDRESS, timeout: float = 3.0) -> bool:
  """Whether a TCP connection to ``address`` opens within ``timeout`` seconds (DNS included).

  One try, no retries; `load_split` calls it (as a module attribute, so tests can
  patch it) before letting TFDS download. A proxy-only network reads as no network.
  """
  opened = []

  def probe():
    try:
      socket.create_connection(address, timeout=timeout).close()
      opened.append(True)
    except OSError:
      pass

  thread = threading.Thread(target=probe, daemon=True)  # Bounds a slow DNS lookup too.
  thread.start()
  thread.join(timeout)
  return bool(opened)


def _tfds_mocked(tfds) -> bool:
  """True inside ``tfds.testing.mock_data``, which swaps ``DatasetBuilder.as_dataset`` for a
  function of ``tensorflow_datasets.testing.mocking`` (and points builders at a fake data dir)."""
  as_dataset = tfds.core.DatasetBuilder.as_dataset
  return getattr(as_dataset, "__module__", "").startswith("tensorflow_datasets.testing")


def _one_line(e: BaseException, limit: int = 300) -> str:
  text = " ".join(str(e).split()) or type(e).__name__
  return text if len(text) <= limit else text[:limit] + "..."


def _prepared_builder(tfds, name: str, spec: DatasetSpec, data_dir: str):
  """The builder of ``spec.tfds_name``, downloading and preparing it with TFDS if needed."""
  builder = tfds.builder(spec.tfds_name, data_dir=data_dir)
  if _tfds_mocked(tfds) or builder.is_prepared():
    return builder
  if importer := _importer(spec):
    fix = (f"run: vae-jax data import {importer} --from DIR --data-dir {data_dir}, DIR being "
           f"{IMPORT_SOURCES[importer]}")
  else:
    fix = (f"{spec.tfds_name} has no offline import, so it needs network or a TFDS data dir that "
           f"holds it: run where there is network, or prepare it with TFDS elsewhere and copy "
           f"{spec.tfds_name}/ into {data_dir}")
  reads = "" if name == spec.tfds_name else f" reads the TFDS dataset {spec.tfds_name!r}, which"
  missing = f"dataset {name!r}{reads} is not in the TFDS data dir {data_dir}"
  if not network_available():
    raise DataError(f"{missing}, and there is no network to download it; {fix}")
  try:
    builder.download_and_prepare()
  except Exception as e:  # pylint: disable=broad-except  # Any TFDS failure -> one line.
    raise DataError(f"{missing}, and TFDS failed to download and prepare it "
                    f"({_one_line(e)}); {fix}") from e
  builder = tfds.builder(spec.tfds_name, data_dir=data_dir)  # Re-reads the written info.
  if not builder.is_prepared():
    raise DataError(f"{missing}, and TFDS's download_and_prepare left it unprepared; {fix}")
  return builder


def _subset_indices(n: int, fraction: float, seed: int) -> np.ndarray:
  """Sorted indices of a seeded ``round(fraction * n)`` (>= 1 if n > 0) subset of ``range(n)``."""
  k = min(n, max(1, round(fraction * n)))
  return np.sort(np.random.default_rng(seed).permutation(n)[:k])


def _apply_geometry(spec: DatasetSpec, images: np.ndarray) -> np.ndarray:
  """uint8 ``[B, *spec.source_shape]`` -> uint8 ``[B, *spec.image_shape]``: pad, crop, resize."""
  if spec.pad_to:
    (h, w), p = images.shape[1:3], spec.pad_to
    pads = ((0, 0), ((p - h) // 2, p - h - (p - h) // 2), ((p - w) // 2, p - w - (p - w) // 2),
            (0, 0))
    images = np.pad(images, pads)
  if spec.crop:
    (h, w), c = images.shape[1:3], spec.crop
    top, left = (h - c) // 2, (w - c) // 2
    images = images[:, top:top + c, left:left + c]
  if spec.resize_to:
    _tfds()  # TF without GPUs.
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    size = (spec.resize_to, spec.resize_to)
    resized = tf.image.resize(images, size, method="area").numpy()
    images = np.clip(np.rint(resized), 0, 255).astype(np.uint8)
  return np.ascontiguousarray(images)


def load_split(name: str, split: str,
               data_dir: str | None = None) -> tuple[np.ndarray, np.ndarray]:
  """Loads a whole split of variant ``name`` into memory, reshaped and subset as its spec says.

  Reads the prepared TFDS dataset ``DATASETS[name].tfds_name`` from ``data_dir``.
  If it is not prepared there: with network (`network_available`), TFDS
  downloads and prepares it (``builder.download_and_prepare()``); without, a
  `DataError` names the fix at once. Inside ``tfds.testing.mock_data`` it loads
  TFDS's random mock examples (no prepared check, no download). Examples stream
  in batches: the subset is picked before decoding, pad / crop run in numpy and
  the resize in TF, so a large source (celeb_a) is never whole in memory.

  Args:
    name: a key of `DATASETS`.
    split: "train", "test" (celeb_a also "validation") or TFDS slicing such as
      "train[:1000]"; the subset is drawn from the sliced split.
    data_dir: TFDS data dir; see `default_data_dir`.

  Returns:
    ``(images, labels)``: uint8 ``[N, *image_shape(name)]`` and int32 ``[N]``
    (all -1 if the variant has no labels), in TFDS's order.

  Raises:
    DataError: unknown dataset, dataset not prepared and no network (or the
      download failed), bad split, or TFDS features that do not match the spec.
  """
  spec = _spec(name)
  tfds = _tfds()
  data_dir = default_data_dir(data_dir)
  if _tfds_mocked(tfds):
    return _load_split(tfds, name, spec, split, data_dir)
  return _load_split_cached(name, spec, split, data_dir)


def from_tfds(name: str, split: str = "train", data_dir: str | None = None) -> Source:
  """A Source of a named dataset variant (a key of `DATASETS`; see `load_split`).

  Raises:
    DataError: as `load_split`.
  """
  images, labels = load_split(name, split, data_dir)
  return Source(images, labels, num_classes(name))


def from_folder(root: str | Path, split: str = "train") -> Source:
  """A Source of an image folder ``root/<split>/<label>/<image>`` (PNG / JPEG), read by TFDS's
  own ``tfds.folder_dataset.ImageFolder`` builder; labels are the class folders' indices in the
  builder's (sorted) order.

  Returns:
    uint8 images [N, H, W, C] (every image must have one shape), int32 labels [N].
  Raises:
    DataError: no such folder or split, no images, or images of different shapes.
  """
  tfds = _tfds()
  root = Path(root)
  if not (root / split).is_dir():
    raise DataError(f"{root / split} is not a folder; arrange the images as "
                    f"{root}/{split}/<class>/<image>.png")
  builder = tfds.folder_dataset.ImageFolder(str(root))
  images, labels = [], []
  for example in tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False)):
    images.append(np.asarray(example["image"], np.uint8))
    labels.append(int(example["label"]))
  shapes = sorted({x.shape for x in images})
  if not images:
    raise DataError(f"no images in {root / split}; add PNG or JPEG files under its class folders")
  if len(shapes) > 1:
    raise DataError(f"the images in {root / split} differ in shape ({shapes[0]} and "
                    f"{shapes[-1]}); resize them to one shape first")
  return Source(np.stack(images), np.asarray(labels, np.int32),
                builder.info.features["label"].num_classes)


@functools.lru_cache(maxsize=4)
def _load_split_cached(name: str, spec: DatasetSpec, split: str, data_dir: str):
  """The split, decoded once per process (a sweep or a test session loads it many times);
  read-only arrays so that no caller can change the cached copy."""
  images, labels = _load_split(_tfds(), name, spec, split, data_dir)
  images.flags.writeable = labels.flags.writeable = False
  return images, labels


def _load_split(tfds, name, spec, split, data_dir):
  builder = _prepared_builder(tfds, name, spec, data_dir)
  features = builder.info.features
  image_feature = features[spec.image_key]
  if tuple(image_feature.shape) != spec.source_shape or (
      spec.label_key and features[spec.label_key].num_classes != spec.num_classes):
    raise DataError(f"TFDS {spec.tfds_name} in {data_dir} has {spec.image_key} "
                    f"{tuple(image_feature.shape)}, but variant {name!r} expects "
                    f"{spec.source_shape} and {spec.num_classes} classes; use the standard "
                    f"TFDS {spec.tfds_name}")
  batch_size = max(1, (64 << 20) // int(np.prod(spec.source_shape)))  # ~64 MiB of source pixels.
  subset = spec.subset_fraction < 1
  try:
    if subset:  # Images stay encoded until the subset is picked.
      ds = builder.as_dataset(split=split, decoders={spec.image_key: tfds.decode.SkipDecoding()})
    else:  # Decoded and batched by TFDS: no per-example tf.data op of ours (each costs CPU).
      ds = builder.as_dataset(split=split, batch_size=batch_size)
  except (ValueError, KeyError) as e:
    splits = ", ".join(builder.info.splits)
    raise DataError(f"bad split {split!r} for {name} ({_one_line(e)}); use one of {splits}, "
                    "optionally sliced like 'train[:1000]'") from None
  if subset:
    ds = _decoded_subset(ds, spec, image_feature, batch_size)
  images, labels = [], []
  for batch in tfds.as_numpy(ds):
    images.append(_apply_geometry(spec, np.asarray(batch[spec.image_key], np.uint8)))
    labels.append(np.asarray(batch[spec.label_key], np.int32) if spec.label_key
                  else np.full(len(images[-1]), -1, np.int32))
  if not images:
    return np.zeros((0, *spec.image_shape), np.uint8), np.zeros((0,), np.int32)
  if len(images) == 1:
    return images[0], labels[0]
  return np.concatenate(images), np.concatenate(labels)


def _decoded_subset(ds, spec: DatasetSpec, image_feature, batch_size: int):
  """Batches of ``{image_key: uint8, label_key: int}`` of `_subset_indices` of the examples of
  ``ds``, whose images are still encoded; only those are decoded."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top  # Already imported by _tfds.

  keys = [k for k in (spec.image_key, spec.label_key) if k]
  ds = ds.map(lambda ex: {k: ex[k] for k in keys})
  n = int(ds.cardinality())
  if n < 0:  # Unknown cardinality (TFDS normally knows it): count in one pass.
    n = int(ds.reduce(np.int64(0), lambda count, _: count + 1))
  mask = np.zeros(n, bool)
  mask[_subset_indices(n, spec.subset_fraction, spec.subset_seed)] = True
  mask = tf.constant(mask)

  def decode(_, ex):
    return ex | {spec.image_key: image_feature.decode_example(ex[spec.image_key])}

  ds = ds.enumerate().filter(lambda i, _: tf.gather(mask, i))
  ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE)
  return ds.batch(batch_size).prefetch(1)


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
