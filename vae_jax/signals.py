"""Ctrl-C (SIGINT) and SIGTERM while `vae-jax` works: the run stops, says what `--resume`
continues from, and exits 130 / 143.

Inside `handled()` either signal raises `Interrupted` (a KeyboardInterrupt) in the main thread.
A signal that lands in a callback Python runs for a C library (JAX's garbage-collection callback)
has its exception dropped (Python would print it as "Exception ignored ..." with a traceback;
`handled()` keeps that quiet for Interrupted); `check()`, called between epochs and evaluation
chunks, raises it again. A second signal exits at once (os._exit): every file a
run writes is crash-consistent (files.py, checkpointing.py), so stopping anywhere is safe.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys

HANDLED = (signal.SIGINT, signal.SIGTERM)
_received: list[int] = []


class Interrupted(KeyboardInterrupt):
  """SIGINT or SIGTERM arrived. `exit_status`: 128 + the signal number (130, 143)."""

  def __init__(self, signum: int):
    super().__init__(signal.Signals(signum).name)
    self.signum, self.exit_status = signum, 128 + signum


def _handler(signum, frame):
  del frame
  if _received:  # The second one: stop now.
    os._exit(128 + signum)
  _received.append(signum)
  raise Interrupted(signum)


@contextlib.contextmanager
def handled():
  """SIGINT and SIGTERM raise Interrupted within the body (main thread only; elsewhere the
  body runs with the handlers as they are)."""
  try:
    old = {s: signal.signal(s, _handler) for s in HANDLED}
  except ValueError:  # Not the main thread.
    yield
    return
  _received.clear()
  default_hook = sys.unraisablehook

  def quiet_interrupts(unraisable):  # Dropped inside a C callback; check() raises it again.
    if not isinstance(unraisable.exc_value, Interrupted):
      default_hook(unraisable)

  sys.unraisablehook = quiet_interrupts
  try:
    yield
  finally:
    sys.unraisablehook = default_hook
    for s, h in old.items():
      signal.signal(s, h)


def check() -> None:
  """Raises Interrupted if a signal arrived whose exception a C callback swallowed."""
  if _received:
    raise Interrupted(_received[0])
