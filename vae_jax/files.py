"""Crash-consistent writes of a run directory's files, and the named write points at which the
fault-injection tests kill the process.

Every JSON file a run writes (config.json, fit.json, metrics.jsonl, summary.json, sweep.json,
commit.json) goes through `write_atomic`: a reader, or the next process after a kill at any
instant, sees either the old file or the whole new one, never a torn one.

`fault_point(name)` marks a write point (or the start of a phase: data, epoch, iw_nll, figures).
With the environment variable VAE_JAX_FAULT=NAME[@N][:SIGNAL[+SECONDS]] the process sends itself
SIGNAL (default SIGKILL; after SECONDS from a timer thread, so that it lands inside whatever runs
then) at the N-th (default first) time it reaches point NAME: the tests' way to crash or interrupt
a run exactly there (tests/test_faults.py). Unset, it does nothing.
"""

from __future__ import annotations

import collections
import io
import json
import os
from pathlib import Path
import signal
import threading

import numpy as np

FAULT_ENV = "VAE_JAX_FAULT"
LOCK_FILE = ".lock"  # locking.py's lock file of a run directory.
_HITS: collections.Counter = collections.Counter()


def fault_point(name: str) -> None:
  """Signals this process if $VAE_JAX_FAULT names this point and this is its N-th hit."""
  spec = os.environ.get(FAULT_ENV)
  if not spec:
    return
  point, _, how = spec.partition(":")
  target, _, nth = point.partition("@")
  if target != name:
    return
  _HITS[name] += 1
  if _HITS[name] != int(nth or 1):
    return
  sig, _, delay = (how or "SIGKILL").partition("+")
  signum = getattr(signal, sig)
  if delay:
    threading.Timer(float(delay), os.kill, (os.getpid(), signum)).start()
  else:
    os.kill(os.getpid(), signum)


def is_leftover(name: str) -> bool:
  """Whether a directory entry is what a killed vae_jax process leaves behind before it wrote
  anything of its own: its lock file or a write_atomic temporary file."""
  return name == LOCK_FILE or (name.startswith(".") and name.endswith(".tmp"))


def not_ours(path: str | Path, marker: str) -> str | None:
  """Why vae_jax may not write into directory `path`, or None when it may.

  It may when `path` does not exist yet, is empty but for `is_leftover` entries, or holds
  `marker` (the file naming it a vae_jax directory: config.json, fit.json, sweep.json); and the
  nearest existing one of `path` and its parents is a directory this process can write into.

  Returns:
    None, or the problem as a clause: "<p> is a file", "<p> is not writable", "<path> is not
    empty and holds no vae_jax <kind> (no <marker>)"; callers add the fix.
  """
  path = Path(path)
  for p in (path, *path.absolute().parents):
    if p.exists():
      if not p.is_dir():
        return f"{p} is a file"
      if not os.access(p, os.W_OK | os.X_OK):
        return f"{p} is not writable"
      break
  if path.is_dir() and not (path / marker).exists() and not all(
      is_leftover(entry.name) for entry in path.iterdir()):
    kind = "sweep" if marker == "sweep.json" else "run"
    return f"{path} is not empty and holds no vae_jax {kind} (no {marker})"
  return None


def remove_leftovers(directory: str | Path) -> None:
  """Deletes the write_atomic temporary files a killed process left in `directory` (call with
  the directory's lock held)."""
  for entry in Path(directory).iterdir():
    if entry.name != LOCK_FILE and is_leftover(entry.name):
      entry.unlink(missing_ok=True)


def write_atomic(path: str | Path, text: str | bytes) -> None:
  """Replaces `path` by a file holding `text` (str or bytes), atomically: a temporary file beside
  it is written and fsynced, then renamed over `path`, then the directory is fsynced. Write point:
  the file's name, after the temporary file is complete and before the rename.

  Raises:
    OSError: the directory is not writable (the temporary file is removed).
  """
  path = Path(path)
  tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
  try:
    with tmp.open("wb" if isinstance(text, bytes) else "w") as f:
      f.write(text)
      f.flush()
      os.fsync(f.fileno())
    fault_point(path.name)
    os.replace(tmp, path)
  except BaseException:
    tmp.unlink(missing_ok=True)
    raise
  fd = os.open(path.parent, os.O_RDONLY)
  try:
    os.fsync(fd)
  finally:
    os.close(fd)


def write_json(path: str | Path, value, **dumps) -> None:
  """`write_atomic(path, json.dumps(value, **dumps))`."""
  write_atomic(path, json.dumps(value, **dumps))


def write_jsonl(path: str | Path, rows) -> None:
  """`rows` as JSON lines, atomically (write_atomic)."""
  write_atomic(path, "".join(json.dumps(r) + "\n" for r in rows))


def write_npz(path: str | Path, **arrays) -> None:
  """`arrays` as an uncompressed .npz (numpy.savez), atomically (write_atomic)."""
  buffer = io.BytesIO()
  np.savez(buffer, **arrays)
  write_atomic(path, buffer.getvalue())
