"""The study runners' --jobs: steps run one after another or in spawned processes, each pinned to
a CPU core of its own. Imports nothing beyond the standard library, so a spawned worker starts
without importing JAX or vae_jax (a step imports what it needs when it is unpickled)."""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os


def _pin(cores) -> None:
  """Worker initializer: take a CPU core of its own before JAX starts its thread pools."""
  os.sched_setaffinity(0, {cores.get()})


def run_steps(steps, jobs: int = 1) -> list:
  """Calls the steps (picklable callables, e.g. functools.partial of a runner's module-level
  function) one after another, or with jobs > 1 in that many spawned processes, each pinned to a
  CPU core of its own (jobs beyond the cores share them).

  Returns:
    what the steps returned, in the order of `steps`.
  Raises:
    whatever a step raises (the first failure in completion order; the other steps finish).
  """
  if jobs <= 1 or len(steps) <= 1:
    return [step() for step in steps]
  ctx = multiprocessing.get_context("spawn")
  cores = ctx.Queue()
  available = sorted(os.sched_getaffinity(0))
  for i in range(jobs):
    cores.put(available[i % len(available)])
  with cf.ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_pin, initargs=(cores,)) as pool:
    futures = [pool.submit(step) for step in steps]
    for future in cf.as_completed(futures):
      future.result()
    return [f.result() for f in futures]
