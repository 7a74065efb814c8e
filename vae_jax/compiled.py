"""Ahead-of-time compiled functions that count and time their compilations, and the process's
shared programs (`shared`)."""

from __future__ import annotations

import collections
import time
from typing import Any, Callable, Hashable

import jax
import jax.numpy as jnp


class CompiledFn:
  """jax.jit + explicit ahead-of-time compilation per input signature, counting compilations.

  Calling it with arguments of a new shape/dtype/structure lowers and compiles once (timed);
  later calls with the same signature reuse the executable and can never retrace silently.
  """

  def __init__(self, fn: Callable, **jit_kwargs):
    self._jitted = jax.jit(fn, **jit_kwargs)
    self._executables: dict = {}
    self.compile_seconds = 0.0

  @property
  def compiles(self) -> int:
    return len(self._executables)

  def compile(self, *args):
    """The executable for these arguments' signature, compiled now if it is new (not run)."""
    leaves, treedef = jax.tree.flatten(args)
    signature = (treedef, tuple((jnp.shape(x), jnp.result_type(x)) for x in leaves))
    if signature not in self._executables:
      start = time.perf_counter()
      self._executables[signature] = self._jitted.lower(*args).compile()
      self.compile_seconds += time.perf_counter() - start
    return self._executables[signature]

  def memory(self, *args) -> dict:
    """XLA's memory analysis of the executable for these arguments, in bytes: 'arguments',
    'outputs', 'temporaries', 'generated_code' (compiled if new; {} where the backend reports
    none)."""
    stats = self.compile(*args).memory_analysis()
    if stats is None:
      return {}
    return {"arguments": stats.argument_size_in_bytes, "outputs": stats.output_size_in_bytes,
            "temporaries": stats.temp_size_in_bytes,
            "generated_code": stats.generated_code_size_in_bytes}

  def __call__(self, *args):
    return self.compile(*args)(*args)


# Programs built once per process: a run's jitted functions are closures over its objective and
# optimizer, so a new run would trace, lower and compile (or load from JAX's persistent cache) all
# of them again. Runs of equal objectives, optimizers and sizes share them instead: a resumed run,
# a sweep re-run in a notebook, the study runners' repeated groups. Least recently used first out.
SHARED_SIZE = 16
_SHARED: collections.OrderedDict = collections.OrderedDict()


def shared(build: Callable[[], Any], *key: Hashable) -> Any:
  """build() the first time `key` is seen in this process, the same object afterwards (an LRU of
  SHARED_SIZE entries). `key` must determine what build() makes (e.g. the objective, a flax
  struct dataclass equal by value, the optax optimizer, the batch sizes); a key that cannot be
  hashed (a user's module with a list attribute) builds afresh every time. What build() traces
  must not be patched in between (tests that patch a traced function call clear_shared)."""
  key = (jax.default_backend(), *key)
  try:
    hash(key)
  except TypeError:
    return build()
  if key in _SHARED:
    _SHARED.move_to_end(key)
    return _SHARED[key]
  value = _SHARED[key] = build()
  while len(_SHARED) > SHARED_SIZE:
    _SHARED.popitem(last=False)
  return value


def clear_shared() -> None:
  """Forgets every shared program (the next run of each key traces and compiles afresh)."""
  _SHARED.clear()
