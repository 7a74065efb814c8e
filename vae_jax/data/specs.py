"""Named dataset variants (`DATASETS`, used in configs as ``data.name``): which TFDS dataset each
reads and how it reshapes the images; the TFDS module (imported lazily, hidden from every GPU);
the TFDS data dir; what can be imported offline. No loading here (data.py) and no import
(idx.py, cifar.py)."""

from __future__ import annotations

import dataclasses
import functools
import os

from vae_jax.errors import DataError


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
    idx_import: its TFDS dataset can be prepared offline with `idx.import_idx` (cifar10 has
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

# Variants `importers.import_dataset` prepares offline -> what `vae-jax data import NAME --from`
# takes.
IMPORT_SOURCES = {
    "mnist": "a folder holding the four MNIST IDX files",
    "fashion_mnist": "a folder holding the four Fashion-MNIST IDX files",
    "cifar10": "the official cifar-10-binary.tar.gz or its extracted folder",
}

@functools.cache
def tfds_module():
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


def dataset_spec(name: str) -> DatasetSpec:
  if name not in DATASETS:
    raise DataError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
  return DATASETS[name]


def image_shape(name: str) -> tuple[int, int, int]:
  """(H, W, C) of the images `load_split` returns for variant ``name``; loads no data.

  Raises:
    DataError: unknown ``name``.
  """
  return dataset_spec(name).image_shape


def num_classes(name: str) -> int:
  """Number of classes of variant ``name``'s labels; 0 when it has none (labels all -1).

  Raises:
    DataError: unknown ``name``.
  """
  return dataset_spec(name).num_classes


def importer_of(spec: DatasetSpec, importable=tuple(IMPORT_SOURCES)) -> str | None:
  """The variant among ``importable`` that reads the same TFDS dataset as ``spec``, if any."""
  return next((k for k in importable if DATASETS[k].tfds_name == spec.tfds_name), None)


def check_importable(name: str, importable: list[str], how: str) -> DatasetSpec:
  """``name``'s spec if it is in ``importable``; else a DataError naming the variant to import."""
  if name not in DATASETS:
    raise DataError(f"unknown dataset {name!r}; importable: {', '.join(importable)}")
  spec = DATASETS[name]
  if name in importable:
    return spec
  if importer := importer_of(spec, importable):
    raise DataError(f"dataset {name!r} reads the TFDS dataset {spec.tfds_name!r}; run: "
                    f"vae-jax data import {importer} --from DIR")
  raise DataError(f"dataset {name!r} cannot be imported {how}; importable: {', '.join(importable)}")


def default_data_dir(data_dir: str | None = None) -> str:
  """``data_dir`` if given, else ``$TFDS_DATA_DIR`` if set, else ``~/tensorflow_datasets``."""
  data_dir = data_dir or os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets"
  return os.path.expanduser(os.fspath(data_dir))
