"""Offline import of the IDX datasets (MNIST, Fashion-MNIST) into TFDS: the four IDX files are
checked (sizes, magic numbers, counts, labels, SHA256SUMS) and served to TFDS's own builder by a
local download manager, so the prepared dataset is TFDS's standard one. `prepare_from_local_files`
serves cifar.py too."""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
import zlib
from pathlib import Path
from unittest import mock

import numpy as np

from vae_jax.data import specs
from vae_jax.errors import DataError


# role -> (IDX file name, magic number, number of examples).
_IDX_FILES = {
    "train_images": ("train-images-idx3-ubyte", 2051, 60000),
    "train_labels": ("train-labels-idx1-ubyte", 2049, 60000),
    "test_images": ("t10k-images-idx3-ubyte", 2051, 10000),
    "test_labels": ("t10k-labels-idx1-ubyte", 2049, 10000),
}
_IMAGE_HW = (28, 28)


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


def prepare_from_local_files(tfds, builder, files: dict[str, Path], size: int) -> None:
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
    data_dir: TFDS data dir; see `specs.default_data_dir`.

  Returns:
    The prepared dataset directory, e.g. ``<data_dir>/mnist/3.0.1``. If it is
    already prepared, it is returned at once, without reading ``src_dir``.

  Raises:
    DataError: unknown or non-importable ``name``, or missing / invalid IDX files.
  """
  spec = specs.check_importable(name, [k for k, v in specs.DATASETS.items() if v.idx_import],
                           "from IDX files")
  tfds = specs.tfds_module()
  builder = tfds.builder(spec.tfds_name, data_dir=specs.default_data_dir(data_dir))
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
    prepare_from_local_files(tfds, builder, files, size)
  return os.fspath(builder.data_dir)
