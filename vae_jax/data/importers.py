"""`vae-jax data import NAME --from SRC`: prepares a dataset's standard TFDS dataset offline from
its original files (idx.import_idx for the IDX datasets, cifar.py for CIFAR-10). Above both,
so that neither imports the other."""

from __future__ import annotations

from vae_jax.data import cifar, idx, specs


def import_dataset(name: str, src: str, data_dir: str | None = None) -> str:
  """Prepares variant ``name``'s standard TFDS dataset offline from its original files, as
  `vae-jax data import` does: `idx.import_idx` (mnist, fashion_mnist) or
  `cifar.import_cifar10` (cifar10).

  Returns:
    The prepared dataset directory, e.g. ``<data_dir>/cifar10/3.0.2``.

  Raises:
    DataError: unknown or non-importable ``name``, or missing / invalid source files.
  """
  specs.check_importable(name, list(specs.IMPORT_SOURCES), "offline (TFDS downloads it where "
                        "there is network)")
  if name == "cifar10":
    return cifar.import_cifar10(src, data_dir)
  return idx.import_idx(name, src, data_dir)
