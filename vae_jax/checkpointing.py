"""orbax CheckpointManager wrappers: save the train state and JSON metadata, restore into an
abstract (jax.eval_shape) target so shapes and pytree structure come from the code, not the files.

A run's checkpoints count from its commit marker, <workdir>/commit.json = {"epoch": N,
"best_epoch": B}: written (atomically) only once every checkpoint of epoch N, and best/B with
early stopping, is complete. Steps newer than the marker are a killed save's leftovers: every
reader here ignores them, and a resumed run deletes them (hooks.Checkpointer). A run directory
without a marker (written before markers existed) counts every complete step.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
import shutil

import jax
import numpy as np
import orbax.checkpoint as ocp

from vae_jax import files
from vae_jax.errors import CheckpointError  # noqa: F401  # Raised here; the public name stays.

LATEST = "ckpt"  # The newest checkpoints of a run (resume from here).
BEST = "best"  # With early stopping: the state of the best epoch so far.
COMMIT = "commit.json"  # The newest epoch whose checkpoints are all complete.


def commit(workdir: str | Path, epoch: int, best_epoch: int | None = None) -> None:
  """Marks epoch `epoch` of ckpt/ (and `best_epoch` of best/) as complete: call only after their
  saves finished (CheckpointManager.wait_until_finished). Epoch 0: nothing is committed yet."""
  files.write_json(Path(workdir) / COMMIT, {"epoch": int(epoch), "best_epoch": best_epoch})


def committed(workdir: str | Path) -> dict | None:
  """The commit marker {"epoch": N, "best_epoch": B or None}; None when there is none.

  Raises:
    CheckpointError: the marker is unreadable.
  """
  path = Path(workdir) / COMMIT
  if not path.is_file():
    return None
  try:
    marker = json.loads(path.read_text())
    return {"epoch": int(marker["epoch"]),
            "best_epoch": None if marker.get("best_epoch") is None else int(marker["best_epoch"])}
  except (ValueError, KeyError, TypeError, AttributeError):
    raise CheckpointError(f"{path} is unreadable (not a commit marker); delete {workdir} and "
                          "train afresh, or use another --workdir") from None


def manager(workdir: str | Path, *, directory: str = LATEST,
            max_to_keep: int | None = 2) -> ocp.CheckpointManager:
  """CheckpointManager over `<workdir>/<directory>` (created on first save), steps = epochs;
  max_to_keep=None keeps every checkpoint."""
  return ocp.CheckpointManager(
      Path(workdir).absolute() / directory,
      options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True),
      item_names=("state", "meta"))


def latest_epoch(workdir: str | Path, directory: str = LATEST) -> int | None:
  """Epoch of the newest committed checkpoint in workdir/directory, or None."""
  epochs = all_epochs(workdir, directory)
  return epochs[0] if epochs else None


def digest(state) -> str:
  """SHA-256 (hex) of every array of `state` in pytree order: shapes, dtypes and bytes."""
  h = hashlib.sha256()
  for leaf in jax.tree.leaves(state):
    array = np.ascontiguousarray(jax.device_get(leaf))
    h.update(f"{array.shape}{array.dtype}".encode())
    h.update(array.tobytes())
  return h.hexdigest()


def save(mngr: ocp.CheckpointManager, epoch: int, state, meta: dict) -> None:
  """Saves `state` (any pytree of arrays) and JSON `meta` plus the state's `digest` as step
  `epoch`. Asynchronous and atomic (orbax writes a temporary directory and renames it when
  complete), so a process killed mid-save leaves the previous checkpoints as they were."""
  meta = dict(meta, digest=digest(state))
  mngr.save(epoch, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                           meta=ocp.args.JsonSave(meta)))


def all_epochs(workdir: str | Path, directory: str = LATEST, *,
               upto: int | None = None) -> list[int]:
  """Epochs of the committed checkpoints in workdir/directory (up to `upto` if given), newest
  first.

  Raises:
    CheckpointError: an unreadable commit marker.
  """
  if not (Path(workdir) / directory).is_dir():
    return []
  with manager(workdir, directory=directory) as mngr:
    epochs = sorted(mngr.all_steps(), reverse=True)
  marker = committed(workdir)
  if marker is not None:
    bound = marker["epoch"] if directory == LATEST else marker["best_epoch"] or 0
    upto = bound if upto is None else min(upto, bound)
  return [e for e in epochs if upto is None or e <= upto]


def drop_uncommitted(workdir: str | Path, epoch: int, best_epoch: int | None) -> None:
  """Deletes what a killed save left beyond `epoch` in ckpt/ and `best_epoch` in best/: newer
  steps and orbax's temporary directories (nothing else of the run directory is touched)."""
  for directory, bound in ((LATEST, epoch), (BEST, best_epoch or 0)):
    root = Path(workdir) / directory
    for entry in root.iterdir() if root.is_dir() else ():
      if entry.is_dir() and (not entry.name.isdigit() or int(entry.name) > bound):
        shutil.rmtree(entry, ignore_errors=True)


def restore_meta(workdir: str | Path, epoch: int | None = None, *,
                 directory: str = LATEST) -> tuple[int, dict]:
  """(epoch, meta) of checkpoint `epoch` (default latest) without reading arrays.

  Raises:
    CheckpointError: no checkpoint, or unreadable metadata.
  """
  epoch = latest_epoch(workdir, directory) if epoch is None else epoch
  with manager(workdir, directory=directory) as mngr:
    if epoch is None:
      raise CheckpointError(f"no checkpoint in {workdir}; train first with "
                            f"vae-jax train --config FILE --workdir {workdir}")
    try:
      meta = mngr.restore(epoch, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
    except Exception as e:  # noqa: BLE001
      raise CheckpointError(f"checkpoint {workdir}/{directory}/{epoch} is unreadable "
                            f"({type(e).__name__});"
                            " delete it or use another --workdir") from None
  return epoch, meta


def _saved_shapes(path: Path) -> list[tuple[int, ...]] | None:
  """The sorted shapes of the arrays saved at `path` (from orbax's metadata, no array read);
  None when the metadata cannot be read (the restore then reports it)."""
  absl = logging.getLogger("absl")
  level = absl.level
  absl.setLevel(logging.ERROR)  # orbax warns of a per-item metadata file it does not need.
  try:
    tree = ocp.StandardCheckpointer().metadata(path)
    tree = getattr(tree, "item_metadata", tree)
    leaves = jax.tree.leaves(tree, is_leaf=lambda x: hasattr(x, "shape"))
    return sorted(tuple(m.shape) for m in leaves)
  except Exception:  # noqa: BLE001 - unreadable metadata: left to the restore's own error.
    return None
  finally:
    absl.setLevel(level)


def restore_state(workdir: str | Path, epoch: int, abstract_state, *, directory: str = LATEST,
                  sharding=None, expected_digest: str | None = None):
  """Restores step `epoch` into the structure/shapes of `abstract_state` (from jax.eval_shape),
  every array placed with `sharding` (e.g. replicated over a mesh; None: the first local
  device), so a checkpoint written on any device count restores on any other. With
  `expected_digest` (the meta's 'digest'; checkpoints written before digests have none) the
  restored arrays must hash to it.

  Raises:
    CheckpointError: missing or corrupt files, shapes that do not match the config, or arrays
      that do not match their digest.
  """
  sharding = sharding or jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  target = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sharding),
                        abstract_state)
  saved = _saved_shapes(Path(workdir).absolute() / directory / str(epoch) / "state")
  wanted = sorted(tuple(a.shape) for a in jax.tree.leaves(target))
  if saved is not None and saved != wanted:  # Refused before a restore that would fail mid-read.
    raise CheckpointError(f"checkpoint {workdir}/{directory}/{epoch} is unreadable or holds "
                          "arrays of other shapes than this config's model (another latent size "
                          "or widths?); use the config that wrote it (its config.json), or "
                          "delete it if its files are damaged")
  with manager(workdir, directory=directory) as mngr:
    try:
      state = mngr.restore(epoch, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(target)))["state"]
    except Exception as e:  # noqa: BLE001
      raise CheckpointError(f"checkpoint {workdir}/{directory}/{epoch} is unreadable or does not "
                            f"match the config ({type(e).__name__}); use the config that wrote it "
                            "(its config.json), or delete it if its files are damaged") from None
  if expected_digest and digest(state) != expected_digest:
    raise CheckpointError(f"checkpoint {workdir}/{directory}/{epoch} does not match its digest "
                          "(corrupt files); delete it or use another --workdir")
  return state
