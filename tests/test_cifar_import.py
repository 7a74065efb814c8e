"""Tests for the offline CIFAR-10 import (`vae-jax data import cifar10 --from SRC`): checks of the
official binary files, TFDS preparation from an archive or a folder, pixel layout, labels, and the
messages that name the import."""

from __future__ import annotations

import tarfile

import numpy as np
import pytest

from vae_jax import cli, data
from vae_jax.data import cifar, importers

_N = 3  # Records per batch file in these synthetic archives (the official files hold 10000).
_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@pytest.fixture(scope="module", autouse=True)
def small_files():
  with pytest.MonkeyPatch.context() as m:
    m.setattr(cifar, "_RECORDS_PER_FILE", _N)
    yield


def _write_folder(folder, seed=0):
  """Writes the six batch files (``_N`` records each) and the META file into ``folder``.

  Returns:
    {"train", "test"} -> (uint8 images [n, 32, 32, 3], labels [n]) in record order. The first
    record is pure red: R plane 255, G and B 0.
  """
  rng = np.random.default_rng(seed)
  folder.mkdir(parents=True)
  images, labels = {"train": [], "test": []}, {"train": [], "test": []}
  for i, name in enumerate(cifar.BATCHES):
    planes = rng.integers(0, 256, (_N, 3, 32, 32), dtype=np.uint8)  # [n, RGB, row, column]
    y = rng.integers(0, 10, _N, dtype=np.uint8)
    if i == 0:
      planes[0] = 0
      planes[0, 0] = 255
    (folder / name).write_bytes(np.concatenate([y[:, None], planes.reshape(_N, -1)], 1).tobytes())
    split = "test" if name == "test_batch.bin" else "train"
    images[split].append(planes.transpose(0, 2, 3, 1))
    labels[split].append(y)
  (folder / cifar.META).write_text("\n".join(_NAMES) + "\n\n")  # As the official file.
  return {s: (np.concatenate(images[s]), np.concatenate(labels[s])) for s in images}


def _write_archive(folder, path):
  with tarfile.open(path, "w:gz") as tar:
    tar.add(folder, arcname=cifar.FOLDER)
  return path


def _by_content(images, labels):
  """label of each image, keyed by its bytes (TFDS stores the examples in its own order)."""
  return dict(zip((x.tobytes() for x in images), labels.tolist()))


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
  """(data_dir, expected splits) of a synthetic archive imported with `importers.import_dataset`."""
  tmp = tmp_path_factory.mktemp("cifar")
  expected = _write_folder(tmp / "src" / cifar.FOLDER)
  archive = _write_archive(tmp / "src" / cifar.FOLDER, tmp / cifar.ARCHIVE)
  path = importers.import_dataset("cifar10", str(archive), str(tmp / "tfds"))
  assert path == str(tmp / "tfds" / "cifar10" / "3.0.2")
  return str(tmp / "tfds"), expected


# Import and load ------------------------------------------------------------------------------


@pytest.mark.parametrize("split, n", [("train", 5 * _N), ("test", _N)])
def test_archive_import_loads(imported, split, n):
  data_dir, expected = imported
  x, y = data.load_split("cifar10", split, data_dir)
  assert x.shape == (n, 32, 32, 3) and x.dtype == np.uint8
  assert y.shape == (n,) and y.dtype == np.int32
  # Every record, planes transposed to HWC, with its label (in TFDS's order).
  assert _by_content(x, y) == _by_content(*expected[split])


def test_red_plane_loads_as_red(imported):
  x, _ = data.load_split("cifar10", "train", imported[0])
  red = (x[..., 0] == 255).all(axis=(1, 2)) & (x[..., 1:] == 0).all(axis=(1, 2, 3))
  assert red.sum() == 1


def test_standard_tfds_dataset(imported):
  tfds = data.tfds_module()
  builder = tfds.builder("cifar10", data_dir=imported[0])
  assert builder.is_prepared() and str(builder.version) == "3.0.2"
  assert builder.info.features["label"].names == _NAMES
  assert {k: v.num_examples for k, v in builder.info.splits.items()} == {"train": 5 * _N,
                                                                         "test": _N}


def test_import_is_idempotent(imported, tmp_path):
  # Already prepared: returns at once, without reading the (here missing) source.
  path = importers.import_dataset("cifar10", str(tmp_path / "nowhere"), imported[0])
  assert path.endswith("cifar10/3.0.2")


@pytest.mark.parametrize("layout", ["batches_folder", "parent_folder", "renamed_folder"])
def test_folder_import_via_cli_matches_archive(imported, tmp_path, capsys, layout):
  """The extracted cifar-10-batches-bin folder, the folder holding it, or the files under another
  folder name import to the same dataset as the archive."""
  folder = tmp_path / "src" / ("batches" if layout == "renamed_folder" else cifar.FOLDER)
  _write_folder(folder)
  src = folder.parent if layout == "parent_folder" else folder
  assert cli.main(["data", "import", "cifar10", "--from", str(src),
                   "--data-dir", str(tmp_path / "tfds")]) == 0
  assert "prepared cifar10 in " in capsys.readouterr().out
  for split in ("train", "test"):
    x, y = data.load_split("cifar10", split, str(tmp_path / "tfds"))
    x0, y0 = data.load_split("cifar10", split, imported[0])
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(y, y0)


# Bad sources ----------------------------------------------------------------------------------


def _truncate(folder):
  path = folder / "data_batch_3.bin"
  path.write_bytes(path.read_bytes()[:-100])


def _drop_record(folder):
  path = folder / "data_batch_2.bin"
  path.write_bytes(path.read_bytes()[:-cifar.RECORD_BYTES])


def _bad_label(folder):
  blob = bytearray((folder / "test_batch.bin").read_bytes())
  blob[cifar.RECORD_BYTES] = 10  # The label byte of the second record.
  (folder / "test_batch.bin").write_bytes(bytes(blob))


@pytest.mark.parametrize("corrupt, message", [
    (_truncate, "data_batch_3.bin has 9119 bytes, not a multiple of the 3073-byte"),
    (_drop_record, "data_batch_2.bin holds 2 records, expected 3; use the full CIFAR-10 files"),
    (_bad_label, "test_batch.bin holds label 10, expected 0..9"),
    (lambda f: (f / "test_batch.bin").unlink(), "missing test_batch.bin in "),
    (lambda f: (f / "batches.meta.txt").write_text("cat\ndog\n"), "names 2 classes, expected 10"),
])
@pytest.mark.parametrize("as_archive", [False, True])
def test_bad_source_raises_one_line(tmp_path, corrupt, message, as_archive):
  folder = tmp_path / "src" / cifar.FOLDER
  _write_folder(folder)
  corrupt(folder)
  src = _write_archive(folder, tmp_path / cifar.ARCHIVE) if as_archive else folder
  if as_archive and "missing" in message:
    message = "holds no cifar-10-batches-bin/test_batch.bin; re-download cifar-10-binary.tar.gz"
  with pytest.raises(data.DataError, match=message) as e:
    importers.import_dataset("cifar10", str(src), str(tmp_path / "tfds"))
  assert "\n" not in str(e.value)
  assert not (tmp_path / "tfds" / "cifar10" / "3.0.2" / "dataset_info.json").exists()


def test_truncated_archive_exits_2(tmp_path, capsys):
  folder = tmp_path / "src" / cifar.FOLDER
  _write_folder(folder)
  archive = _write_archive(folder, tmp_path / cifar.ARCHIVE)
  archive.write_bytes(archive.read_bytes()[:len(archive.read_bytes()) // 2])
  assert cli.main(["data", "import", "cifar10", "--from", str(archive),
                   "--data-dir", str(tmp_path / "tfds")]) == 2
  err = capsys.readouterr().err.strip()
  assert err.startswith("vae-jax: error: ") and "\n" not in err, err
  assert "is not a readable tar.gz archive" in err and "re-download cifar-10-binary.tar.gz" in err
  assert "Traceback" not in err


def test_missing_source_exits_2(tmp_path, capsys):
  assert cli.main(["data", "import", "cifar10", "--from", str(tmp_path / "nope.tar.gz"),
                   "--data-dir", str(tmp_path / "tfds")]) == 2
  err = capsys.readouterr().err.strip()
  assert "nope.tar.gz does not exist; pass --from the official cifar-10-binary.tar.gz" in err
  assert "\n" not in err


@pytest.mark.parametrize("name, message", [
    ("svhn", "unknown dataset 'svhn'; importable: mnist, fashion_mnist, cifar10"),
    ("celeb_a", "dataset 'celeb_a' cannot be imported offline (TFDS downloads it where there is "
                "network); importable: mnist, fashion_mnist, cifar10"),
    ("mnist_32", "dataset 'mnist_32' reads the TFDS dataset 'mnist'; run: vae-jax data import "
                 "mnist --from DIR"),
])
def test_cli_non_importable_names_exit_2(tmp_path, capsys, name, message):
  assert cli.main(["data", "import", name, "--from", str(tmp_path)]) == 2
  err = capsys.readouterr().err.strip()
  assert err == f"vae-jax: error: {message}"


# Messages of load_split when the dataset is not prepared ---------------------------------------


@pytest.mark.parametrize("name, fix", [
    ("cifar10", "run: vae-jax data import cifar10 --from DIR --data-dir {d}, DIR being the "
                "official cifar-10-binary.tar.gz or its extracted folder"),
    ("celeb_a", "celeb_a has no offline import, so it needs network or a TFDS data dir that holds "
                "it: run where there is network, or prepare it with TFDS elsewhere and copy "
                "celeb_a/ into {d}"),
])
def test_unprepared_without_network_names_the_fix(tmp_path, monkeypatch, name, fix):
  monkeypatch.setattr(data.loading, "network_available", lambda: False)
  with pytest.raises(data.DataError, match="no network to download it") as e:
    data.load_split(name, "train", str(tmp_path))
  assert str(e.value).endswith("; " + fix.format(d=tmp_path))
  assert list(tmp_path.iterdir()) == []
