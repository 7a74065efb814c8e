"""Datasets for vae_jax: named TFDS variants, your own arrays, iterables and image folders.

  specs.py      DatasetSpec (pad, crop, resize, subset) of every named variant; TFDS, lazily
  loading.py    a variant's splits from TFDS -> uint8 arrays (mock data too; network download);
                from_tfds, from_folder; the validation split; a config's splits (load_data)
  sources.py    Source, from_arrays, from_iterable: what `vae_jax.fit` trains on
  idx.py        offline IDX import (MNIST, Fashion-MNIST) through TFDS's own builders
  cifar.py      offline CIFAR-10 import from the official binary archive
  cache.py      decoded splits on disk, shared by processes, where $VAE_JAX_DATA_CACHE is set
  importers.py  `vae-jax data import`: IDX or CIFAR-10 archive -> TFDS

A variant (a key of `DATASETS`, used in configs as ``data.name``) reads one TFDS dataset and
reshapes it: zero-pad, center-crop, area-resize, seeded subset. Loading works offline from a
prepared TFDS data dir, downloads with TFDS where there is network, and works under
``tfds.testing.mock_data``. TensorFlow / TFDS are imported lazily (so ``import vae_jax.data``
stays cheap) and are hidden from every GPU: JAX owns the accelerator.

The names below are the package's public surface; preprocessing (binarization) lives in
vae_jax.pixels, which the models' layer may import.
"""

from vae_jax.data.idx import import_idx
from vae_jax.data.loading import (
    from_folder, from_tfds, load_data, load_split, network_available, test_split, validate_config,
    validation_split)
from vae_jax.data.sources import Source, as_source, from_arrays, from_iterable
from vae_jax.data.specs import (
    DATASETS, IMPORT_SOURCES, DatasetSpec, check_importable, default_data_dir, image_shape,
    num_classes, tfds_module)
from vae_jax.errors import DataError, one_line
from vae_jax.pixels import PREPROCESS_MODES, preprocess

__all__ = [
    "DATASETS", "IMPORT_SOURCES", "PREPROCESS_MODES", "DataError", "DatasetSpec", "Source",
    "as_source", "check_importable", "default_data_dir", "from_arrays", "from_folder",
    "from_iterable", "from_tfds", "image_shape", "import_idx", "load_data", "load_split",
    "network_available", "num_classes", "one_line", "preprocess", "test_split", "tfds_module",
    "validate_config", "validation_split",
]
