"""Offline import of CIFAR-10 into TFDS from the official binary archive (`vae-jax data import
cifar10 --from SRC`; `importers.import_dataset` dispatches here).

SRC is ``cifar-10-binary.tar.gz``, its extracted ``cifar-10-batches-bin/`` folder, or a folder
holding either. Each of data_batch_1..5.bin and test_batch.bin holds 10000 records of 3073 bytes:
a label byte, then the 32x32 R, G and B planes (row-major); batches.meta.txt names the classes.
TFDS's own cifar10 builder then reads that folder, as it would after downloading the archive.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path

import numpy as np

from vae_jax.data import idx, specs
from vae_jax.errors import DataError, one_line


ARCHIVE = "cifar-10-binary.tar.gz"
FOLDER = "cifar-10-batches-bin"  # The archive's top folder; TFDS's builder reads files in it.
BATCHES = ("data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin",
           "data_batch_5.bin", "test_batch.bin")
META = "batches.meta.txt"
RECORD_BYTES = 1 + 3 * 32 * 32
_RECORDS_PER_FILE = 10000  # Tests patch it to write small archives.
_FIX = f"pass --from the official {ARCHIVE} or its extracted {FOLDER} folder"


def _extract(archive: Path, dest: Path) -> Path:
  """Extracts the batches and META of ``archive`` into ``dest/FOLDER`` (nothing else)."""
  fix = f"re-download {ARCHIVE} or pass --from its extracted {FOLDER} folder"
  out = dest / FOLDER
  out.mkdir()
  try:
    with tarfile.open(archive, "r:gz") as tar:
      members = {m.name.removeprefix("./"): m for m in tar.getmembers() if m.isfile()}
      for name in (*BATCHES, META):
        if f"{FOLDER}/{name}" not in members:
          raise DataError(f"{archive} holds no {FOLDER}/{name}; {fix}")
        with tar.extractfile(members[f"{FOLDER}/{name}"]) as f, open(out / name, "wb") as g:
          shutil.copyfileobj(f, g)
  except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
    raise DataError(f"{archive} is not a readable tar.gz archive ({one_line(e)}); "
                         f"{fix}") from None
  return out


def _check_batches(folder: Path) -> int:
  """Validates the six batch files and META in ``folder``; returns their total size in bytes.

  Raises:
    DataError: a missing file, a size that is not 10000 whole records, a label above 9, or a META
      that does not name 10 distinct classes.
  """
  missing = [name for name in (*BATCHES, META) if not (folder / name).is_file()]
  if missing:
    raise DataError(f"missing {', '.join(missing)} in {folder}; {_FIX}")
  for name in BATCHES:
    path = folder / name
    size = path.stat().st_size
    if size % RECORD_BYTES:
      raise DataError(f"{path} has {size} bytes, not a multiple of the {RECORD_BYTES}-byte "
                           "CIFAR-10 record; the file is truncated or corrupt, re-copy it")
    if size // RECORD_BYTES != _RECORDS_PER_FILE:
      raise DataError(f"{path} holds {size // RECORD_BYTES} records, expected "
                           f"{_RECORDS_PER_FILE}; use the full CIFAR-10 files ({_FIX})")
    labels = np.memmap(path, np.uint8, mode="r").reshape(-1, RECORD_BYTES)[:, 0]
    if labels.max() > 9:
      raise DataError(f"{path} holds label {labels.max()}, expected 0..9; it is not a "
                           f"CIFAR-10 batch ({_FIX})")
  names = [n for n in (folder / META).read_text(errors="replace").split("\n") if n]
  if len(names) != 10 or len(set(names)) != 10:
    raise DataError(f"{folder / META} names {len(names)} classes, expected 10 distinct ones "
                         f"(one a line); {_FIX}")
  return sum((folder / name).stat().st_size for name in (*BATCHES, META))


def import_cifar10(src: str, data_dir: str | None = None) -> str:
  """Prepares the standard TFDS dataset ``cifar10`` offline from the official binary files.

  Runs TFDS's own cifar10 builder (same version, features, splits and example order as upstream),
  its download of the archive served by the local, checked files.

  Args:
    src: ``cifar-10-binary.tar.gz``, its extracted ``cifar-10-batches-bin`` folder, or a folder
      holding either.
    data_dir: TFDS data dir; see `specs.default_data_dir`.

  Returns:
    The prepared dataset directory, e.g. ``<data_dir>/cifar10/3.0.2``. If it is already
    prepared, it is returned at once, without reading ``src``.

  Raises:
    DataError: ``src`` missing, unreadable or invalid (see `_check_batches`).
  """
  tfds = specs.tfds_module()
  builder = tfds.builder("cifar10", data_dir=specs.default_data_dir(data_dir))
  if builder.is_prepared():
    return os.fspath(builder.data_dir)
  src_path = Path(src).expanduser()
  with tempfile.TemporaryDirectory(prefix="vae_jax_cifar10_") as tmp:
    tmp = Path(tmp)
    if src_path.is_dir() and (src_path / FOLDER).is_dir():
      folder = src_path / FOLDER
    elif src_path.is_dir() and (src_path / ARCHIVE).is_file():
      folder = _extract(src_path / ARCHIVE, tmp)
    elif src_path.is_dir():
      folder = src_path
    elif src_path.is_file():
      folder = _extract(src_path, tmp)
    else:
      raise DataError(f"{src_path} does not exist; {_FIX}")
    size = _check_batches(folder)
    if folder.name != FOLDER:  # The builder reads <download>/cifar-10-batches-bin/.
      (tmp / FOLDER).symlink_to(folder.resolve(), target_is_directory=True)
      folder = tmp / FOLDER
    idx.prepare_from_local_files(tfds, builder, {ARCHIVE: folder.parent}, size)
  return os.fspath(builder.data_dir)
