"""An optional on-disk cache of decoded TFDS splits, shared by processes: ``$VAE_JAX_DATA_CACHE``.

Loading a split through TFDS imports TensorFlow and decodes every image (MNIST's train split:
about 10 s on a 2-core CPU); a process that finds the split here reads one ``.npz`` instead
(milliseconds) and imports no TensorFlow. Off unless ``$VAE_JAX_DATA_CACHE`` names a directory
(as ``$JAX_COMPILATION_CACHE_DIR`` does for compiled programs); the test suite and CI set one.

An entry is keyed by the variant's name, its `DatasetSpec` (geometry, subset), the split string,
the data dir and a fingerprint of the files of the TFDS dataset there (paths, sizes and
modification times): a dataset imported or prepared again makes a new key, so an entry never
outlives the files it was decoded from. Entries are written atomically (`files.write_npz`);
an unreadable entry is ignored (and decoded and written again). One process decodes a missing
entry while the others that need it wait for it (`filling`: an exclusive `fcntl.flock` on
``<entry>.lock``), so processes started together (pytest-xdist workers, a study's --jobs, the
processes of a multi-process run) decode a split once, not once each.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from pathlib import Path
import re
import zipfile

import numpy as np

from vae_jax import files
from vae_jax.data.specs import DatasetSpec

ENV = "VAE_JAX_DATA_CACHE"


def _fingerprint(data_dir: str, tfds_name: str) -> str | None:
  """A digest of the paths, sizes and mtimes of the files under data_dir/tfds_name (None: none)."""
  root = Path(data_dir) / tfds_name
  try:
    entries = sorted((str(p.relative_to(root)), p.stat()) for p in root.rglob("*") if p.is_file())
  except OSError:
    return None
  if not entries:
    return None
  h = hashlib.sha256()
  for rel, st in entries:
    h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
  return h.hexdigest()


def entry(name: str, spec: DatasetSpec, split: str, data_dir: str) -> Path | None:
  """The cache file of this split, or None when the cache is off or the dataset has no files."""
  cache = os.environ.get(ENV)
  fingerprint = cache and _fingerprint(data_dir, spec.tfds_name)
  if not fingerprint:
    return None
  key = hashlib.sha256(repr((name, spec, split, os.path.abspath(data_dir),
                             fingerprint)).encode()).hexdigest()[:20]
  return Path(cache) / f"{name}-{re.sub(r'[^A-Za-z0-9]+', '_', split)}-{key}.npz"


def load(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
  """(uint8 images [N, H, W, C], int32 labels [N]) from a cache file, or None if it is missing
  or unreadable."""
  try:
    with np.load(path, allow_pickle=False) as z:
      images, labels = z["images"], z["labels"]
  except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
    return None
  if images.dtype != np.uint8 or labels.dtype != np.int32 or len(images) != len(labels):
    return None
  return images, labels


def store(path: Path, images: np.ndarray, labels: np.ndarray) -> None:
  """Writes a cache file atomically; a cache directory that cannot be written is skipped."""
  try:
    path.parent.mkdir(parents=True, exist_ok=True)
    files.write_npz(path, images=images, labels=labels)
  except OSError:
    pass


def load_or_decode(path: Path | None, decode) -> tuple[np.ndarray, np.ndarray]:
  """The entry at `path`, else `decode()` (uint8 images [N, H, W, C], int32 labels [N]) stored
  there: decoded once across processes (`filling`: a process that finds the entry missing takes
  its lock, looks again and decodes only if it is still missing). `path` None: the cache is off,
  `decode()` alone."""
  if path is None:
    return decode()
  arrays = load(path)
  if arrays is None:
    with filling(path):  # Another process decoding this split: wait for its entry.
      arrays = load(path)
      if arrays is None:
        arrays = decode()
        store(path, *arrays)
  return arrays


@contextlib.contextmanager
def filling(path: Path | None):
  """Holds the exclusive lock of entry `path` (a ``<path>.lock`` file beside it) for the `with`
  body: the caller loads the entry again, and decodes and stores it if it is still missing, while
  other processes that need the same entry wait. The kernel drops the lock when its process
  dies, so a killed decoder leaves none behind. No lock (and no wait) when `path` is None or its
  directory cannot be written."""
  handle = None
  if path is not None:
    try:
      path.parent.mkdir(parents=True, exist_ok=True)
      handle = open(path.with_name(path.name + ".lock"), "a")  # noqa: SIM115
      fcntl.flock(handle, fcntl.LOCK_EX)
    except OSError:
      if handle is not None:
        handle.close()
      handle = None
  try:
    yield
  finally:
    if handle is not None:
      handle.close()  # Releases the lock.
