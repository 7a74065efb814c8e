"""`vae-jax data import NAME --from SRC`: prepares a dataset's standard TFDS dataset offline from
its original files (idx_import.import_idx for the IDX datasets, cifar_import for CIFAR-10). Above both,
so that neither imports the other."""

from __future__ import annotations

from vae_jax import cifar_import, datasets, idx_import


def import_dataset(name: str, src: str, data_dir: str | None = None) -> str:
  """Prepares variant ``name``'s standard TFDS dataset offline from its original files, as
  `vae-jax data import` does: `idx_import.import_idx` (mnist, fashion_mnist) or
  `cifar_import.import_cifar10` (cifar10).

  Returns:
    The prepared dataset directory, e.g. ``<data_dir>/cifar10/3.0.2``.

  Raises:
    DataError: unknown or non-importable ``name``, or missing / invalid source files.
  """
  datasets.check_importable(name, list(datasets.IMPORT_SOURCES), "offline (TFDS downloads it where "
                        "there is network)")
  if name == "cifar10":
    return cifar_import.import_cifar10(src, data_dir)
  return idx_import.import_idx(name, src, data_dir)
