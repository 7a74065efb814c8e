"""Whose a run directory is: `check_workdir` refuses a foreign directory or a run of another
config before anything is written, and says which epoch a --resume continues from."""

from __future__ import annotations

import json
from pathlib import Path
import sys

from vae_jax import checkpointing, config as config_lib, files
from vae_jax.errors import RunError

# Config fields that change how a run is computed or what it keeps, not its results (up to float
# rounding).
COMPUTE_ONLY = ("model.conv_batch_chunks", "model.conv_runs", "train.steps_per_call",
                "train.vmap_runs", "train.keep_checkpoints", "train.tensorboard",
                "parallel.data_devices", "parallel.runs_devices", "data.on_device",
                "data.device_budget_mb", "train.max_nonfinite_steps", "train.checkpoint_minutes",
                "eval.figures")
# Config fields that may change between a run and its resumption (or --reuse).
RESUMABLE_CHANGES = ("train.epochs", *COMPUTE_ONLY)


def check_workdir(config, workdir: Path, resume: bool) -> int | None:
  """Returns the epoch to resume from (None = fresh start).

  A workdir is this run's only if it does not exist, is empty, or holds a vae_jax run
  (config.json) of the same config; anything else is refused before anything is written.

  Raises:
    RunError: a workdir that is a file or holds something else, a run of another config, a
      checkpoint without resume, or resume without a checkpoint.
  """
  problem = files.not_ours(workdir, "config.json")
  if problem:
    raise RunError(f"--workdir {workdir}: {problem}; pass a new or empty directory you can "
                   "write to")
  saved = workdir / "config.json"
  if not saved.exists():
    entries = [p.name for p in workdir.iterdir()] if workdir.is_dir() else []
    if resume and not entries:
      raise RunError(f"--resume given but {workdir} has no checkpoint; drop --resume to start "
                     "fresh")
    if resume:  # A run killed before it wrote its config.
      print(f"vae-jax: notice: {workdir} holds no run yet (its process was killed before it "
            "wrote one); starting it afresh", file=sys.stderr)
    return None
  try:  # Fields added to the library after the run was written count as their defaults.
    old = json.loads(config_lib.to_json(config_lib.with_defaults(json.loads(saved.read_text()))))
  except (ValueError, TypeError, AttributeError):
    raise RunError(f"{saved} is not a vae_jax config (unreadable JSON); restore it, or use "
                   "another --workdir") from None
  changed = [k for k in config_diff(old, json.loads(config_lib.to_json(config)))
             if k not in RESUMABLE_CHANGES]
  latest = checkpointing.latest_epoch(workdir)
  if changed:
    raise RunError(f"{workdir} holds a run of another config (differs in {', '.join(changed)});"
                   " use another --workdir or delete that one")
  if latest is not None:
    if not resume:
      raise RunError(f"{workdir} already holds a checkpoint (epoch {latest}); pass --resume to "
                     "continue it or use another --workdir")
    return latest
  if resume:  # Killed before its first checkpoint: nothing to continue.
    print(f"vae-jax: notice: {workdir} holds no checkpoint (its run stopped before the first); "
          "starting it afresh", file=sys.stderr)
  return None


def config_diff(old: dict, new: dict, prefix: str = "") -> list[str]:
  """Dotted keys whose values differ between two config dicts (nested)."""
  keys = []
  for k in sorted(set(old) | set(new)):
    a, b = old.get(k), new.get(k)
    if isinstance(a, dict) and isinstance(b, dict):
      keys += config_diff(a, b, f"{prefix}{k}.")
    elif a != b:
      keys.append(f"{prefix}{k}")
  return keys
