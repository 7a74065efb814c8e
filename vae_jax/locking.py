"""One writer per run directory: an exclusive `fcntl.flock` on <workdir>/.lock held for the run's
life. The kernel drops the lock when its process dies (even by SIGKILL), so a killed run leaves
no stale lock: the next process simply takes it. POSIX only; on a network filesystem flock must
be supported (NFSv4 and Lustre do)."""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

import jax

from vae_jax import files
from vae_jax.errors import LockedError  # noqa: F401  # Raised here; the public name stays.

LOCK = files.LOCK_FILE


def _refusal(workdir: Path, handle) -> LockedError:
  handle.seek(0)
  pid = handle.read().strip() or "unknown"
  return LockedError(f"{workdir} is in use by another vae-jax process (pid {pid}); wait for it "
                     f"to finish, stop it, or use another --workdir")


def check_free(workdir: str | Path) -> None:
  """Raises LockedError if a live process holds workdir's lock (nothing is created)."""
  path = Path(workdir) / LOCK
  if not path.exists():
    return
  with path.open("r") as handle:
    try:
      fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      raise _refusal(Path(workdir), handle) from None
    fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def hold(workdirs, *, wait: bool = False):
  """Holds the locks of every (existing) workdir for the `with` body; writes this pid into each.
  wait=True waits for another process's lock instead of refusing (short critical sections such
  as a sweep.json update).

  Raises:
    LockedError: one of them is held by another live process (the ones taken are released).
  """
  with contextlib.ExitStack() as stack:
    for workdir in workdirs:
      handle = stack.enter_context(open(Path(workdir) / LOCK, "a+"))  # noqa: SIM115
      try:
        fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
      except BlockingIOError:
        raise _refusal(Path(workdir), handle) from None
      handle.truncate(0)
      handle.write(str(os.getpid()))
      handle.flush()
    yield


def is_writer() -> bool:
  """Whether this process writes the run directory (process 0; the only one on one host).
  Checkpoints are written by orbax on every process, which coordinates the multi-host save."""
  return jax.process_index() == 0
