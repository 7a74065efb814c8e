"""Loading datasets: a named variant's splits from TFDS (specs.DATASETS), sources for fit
(from_tfds, from_folder; sources.py for arrays), the validation split, a config's splits.

A variant (a key of `DATASETS`, used in configs as ``data.name``) reads one
TFDS dataset and reshapes it: zero-pad, center-crop, area-resize, seeded subset.
Loading works offline from a prepared TFDS data dir, downloads with TFDS where
there is network, and works under ``tfds.testing.mock_data``.

TensorFlow / TFDS are imported lazily (so ``import vae_jax.data`` stays cheap)
and are hidden from every GPU: JAX owns the accelerator.
"""

from __future__ import annotations

import functools
import socket
import sys
import threading
from pathlib import Path

import numpy as np

from vae_jax.data import cache, specs
from vae_jax.data.sources import Source
from vae_jax.data.specs import DATASETS, DatasetSpec, num_classes
from vae_jax.errors import ConfigError, DataError, one_line
from vae_jax.pixels import PREPROCESS_MODES


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


def _prepared_builder(tfds, name: str, spec: DatasetSpec, data_dir: str):
  """The builder of ``spec.tfds_name``, downloading and preparing it with TFDS if needed."""
  builder = tfds.builder(spec.tfds_name, data_dir=data_dir)
  if _tfds_mocked(tfds) or builder.is_prepared():
    return builder
  if importer := specs.importer_of(spec):
    fix = (f"run: vae-jax data import {importer} --from DIR --data-dir {data_dir}, DIR being "
           f"{specs.IMPORT_SOURCES[importer]}")
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
                    f"({one_line(e)}); {fix}") from e
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
    specs.tfds_module()  # TF without GPUs.
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
  the resize in TF, so a large source (celeb_a) is never whole in memory. Where
  ``$VAE_JAX_DATA_CACHE`` names a directory, a split one process decoded is read
  from there by the next (`vae_jax.data.cache`), without TensorFlow.

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
  spec = specs.dataset_spec(name)
  data_dir = specs.default_data_dir(data_dir)
  if "tensorflow_datasets" in sys.modules and _tfds_mocked(tfds := specs.tfds_module()):
    return _load_split(tfds, name, spec, split, data_dir)
  try:
    return _load_split_cached(name, spec, split, data_dir)
  except DataError:
    raise
  except Exception as e:  # noqa: BLE001 - TF's DataLossError, a damaged dataset_info.json, ...
    importer = specs.importer_of(spec)
    fix = (f"vae-jax data import {importer} --from DIR" if importer
           else "let TFDS prepare it again")
    raise DataError(f"the prepared TFDS {spec.tfds_name} in {data_dir} is damaged "
                    f"({type(e).__name__}: {one_line(e)}); delete {data_dir}/{spec.tfds_name} "
                    f"and {fix}") from None


def test_split(data_config, name: str | None = None) -> tuple[np.ndarray, np.ndarray]:
  """A run's test split: of its dataset (data_config.name) or of `name` (another dataset it is
  scored on), cut to the first data.test_subset images when that is set (quick checks).

  Returns:
    (uint8 images [N, H, W, C], int32 labels [N]).
  Raises:
    DataError: as load_split.
  """
  x, y = load_split(name or data_config.name, "test", data_config.data_dir or None)
  subset = data_config.get("test_subset", 0)
  return (x[:subset], y[:subset]) if subset else (x, y)


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
  tfds = specs.tfds_module()
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


@functools.lru_cache(maxsize=8)
def _load_split_cached(name: str, spec: DatasetSpec, split: str, data_dir: str):
  """The split, decoded once per process (a sweep or a test session loads it many times: 8
  splits hold MNIST's and Fashion-MNIST's at 28 and 32 pixels, about 0.5 GB), or read from
  $VAE_JAX_DATA_CACHE (cache.py) where another process decoded it; read-only arrays so that no
  caller can change the cached copy."""
  if base := _base_variant(spec):  # mnist_32: mnist's split (one decode for both), padded.
    try:
      images, labels = _load_split_cached(*base, split, data_dir)
    except DataError:  # Raised again below, naming this variant (not prepared, bad split, ...).
      pass
    else:
      images = _apply_geometry(spec, images)
      images.flags.writeable = False
      return images, labels
  images, labels = cache.load_or_decode(
      cache.entry(name, spec, split, data_dir),
      lambda: _load_split(specs.tfds_module(), name, spec, split, data_dir))
  images.flags.writeable = labels.flags.writeable = False
  return images, labels


def _base_variant(spec: DatasetSpec) -> tuple[str, DatasetSpec] | None:
  """(name, spec) of the variant in `DATASETS` of the same TFDS images without padding or
  cropping, where `spec` only pads or crops them (mnist for mnist_32), else None."""
  if not (spec.pad_to or spec.crop) or spec.resize_to or spec.subset_fraction < 1:
    return None
  same = (spec.tfds_name, spec.image_key, spec.label_key, spec.source_shape, spec.num_classes)
  return next(((n, s) for n, s in DATASETS.items()
               if (s.tfds_name, s.image_key, s.label_key, s.source_shape, s.num_classes) == same
               and not (s.pad_to or s.crop or s.resize_to) and s.subset_fraction == 1), None)


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
    raise DataError(f"bad split {split!r} for {name} ({one_line(e)}); use one of {splits}, "
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


def validate_config(config) -> None:
  """Checks the config's data section: the dataset, input and preprocessing names, the excluded
  classes and the validation fraction.

  Raises:
    ConfigError: naming the bad field and the fix.
  """
  for name, value, known in (("data.name", config.data.name, DATASETS),
                             ("data.on_device", config.data.on_device, ("auto", "always", "never")),
                             ("data.preprocess", config.data.preprocess, PREPROCESS_MODES)):
    if value not in known:
      raise ConfigError(f"unknown {name} {value!r}; choose one of {', '.join(sorted(known))}")
  excluded = tuple(config.data.get("exclude_classes", ()))
  if excluded:
    k = num_classes(config.data.name)
    if any(c < 0 or c >= k for c in excluded) or len(excluded) >= max(k, 1):
      raise ConfigError(f"data.exclude_classes={excluded} must name some but not all of the "
                        f"{k} classes of {config.data.name} (0..{k - 1}); fix "
                        "--config.data.exclude_classes")
  vf = config.data.validation_fraction
  if not 0 <= vf < 1 or (vf and config.data.validation_size):
    raise ConfigError(f"data.validation_fraction={vf} must be in [0, 1) and not set together "
                      f"with data.validation_size={config.data.validation_size}; set one of them")


def load_data(config) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """{'train', 'test'[, 'val']} -> (uint8 images [N, H, W, C], int32 labels [N]) on the host.

  Raises:
    DataError: dataset missing or bad sizes.
  """
  d = config.data
  train_x, train_y = load_split(d.name, "train", d.data_dir or None)
  splits = {}
  val_size = d.validation_size or round(d.get("validation_fraction", 0.0) * len(train_x))
  if d.validation_size and d.validation_size >= len(train_x):
    raise DataError(f"data.validation_size={d.validation_size} must be below the "
                         f"{len(train_x)} training images; lower --config.data.validation_size")
  if val_size:
    (train_x, train_y), splits["val"] = validation_split(train_x, train_y, val_size,
                                                              d.validation_seed)
  excluded = tuple(d.get("exclude_classes", ()))
  if excluded:  # Held-out classes: only the test set shows them.
    keep = ~np.isin(train_y, excluded)
    train_x, train_y = train_x[keep], train_y[keep]
    if "val" in splits:
      keep = ~np.isin(splits["val"][1], excluded)
      splits["val"] = (splits["val"][0][keep], splits["val"][1][keep])
  if d.train_subset:
    train_x, train_y = train_x[: d.train_subset], train_y[: d.train_subset]
  if len(train_x) < config.train.batch_size:
    raise DataError(f"train.batch_size={config.train.batch_size} exceeds the "
                         f"{len(train_x)} training images; lower --config.train.batch_size")
  splits["train"] = (train_x, train_y)
  splits["test"] = test_split(d)
  return splits
