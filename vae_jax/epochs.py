"""The epoch driver of the host-driven epochs: train.train_epoch's steps (same batches, keys and
arithmetic per step) as calls of one compiled program of `steps_per_call` steps, the training set
on the device (the program gathers each batch's rows) or on the host (the host gathers each
chunk's rows and a background thread transfers them one chunk ahead of the device).

The whole epoch in one compiled `lax.scan` (train.train_epoch) is the third way and the default:
evaluate.make_programs picks it on the device without train.steps_per_call.
"""

from __future__ import annotations

import concurrent.futures
from typing import Callable, Iterator

import jax
import jax.numpy as jnp
import numpy as np

from vae_jax import parallel, train
from vae_jax.compiled import CompiledFn

STEPS_PER_CHUNK = 50  # Training steps per streamed chunk when steps_per_call does not say.


def prefetch(make: Callable, items, put: Callable) -> Iterator:
  """put(make(item)) for each item, computed one item ahead in a background thread (host
  gathering and the transfer overlap the device's work on the previous item)."""
  items = list(items)
  with concurrent.futures.ThreadPoolExecutor(1) as pool:
    job = lambda item: put(make(item))  # noqa: E731
    pending = pool.submit(job, items[0]) if items else None
    for i in range(len(items)):
      ready = pending.result()
      pending = pool.submit(job, items[i + 1]) if i + 1 < len(items) else None
      yield ready


class ChunkedEpoch:
  """train.train_epoch driven from the host, callable like the compiled epoch:
  (state, dataset, keys, epoch, hparams, active) -> (state, epoch means).

  Args:
    steps_per_call: steps per program call (0: STEPS_PER_CHUNK, for host data only); the
      program's loop is unrolled when given (XLA:CPU runs convolutions inside a while loop
      about 10x slower than alone).
    on_host: `dataset` is numpy in host memory: each run gathers its chunk's rows on the host
      (with runs_axis the chunk gains a leading runs axis); else it is device resident.
    runs_axis: every program is vmapped over the leading runs axis of state, keys, hparams and
      active; `layout` (parallel.Layout) shards batches and runs over devices.
  """

  def __init__(self, *, batch_size: int, steps_per_call: int, objective, tx,
               runs_axis: bool = False, layout=None, on_host: bool = False):
    if not (steps_per_call or on_host):
      raise ValueError("steps_per_call must be > 0 for device data (0 is train.train_epoch)")
    layout = layout or parallel.Layout(None)
    self.steps_per_call = steps_per_call or STEPS_PER_CHUNK
    self.runs_axis, self.layout, self.on_host = runs_axis, layout, on_host
    batches = lambda k, e, n: train.epoch_batches(k, e, n, batch_size)  # noqa: E731
    steps = lambda s, d, k, i, h, a: train.train_steps(  # noqa: E731
        s, d, k, i, h, a, objective=objective, tx=tx, unroll=steps_per_call > 0,
        batch_sharding=layout.batch)
    if runs_axis:
      batches = jax.vmap(batches, in_axes=(0, None, None))  # [R, S, B]
      steps = jax.vmap(steps, in_axes=(0, 0 if on_host else None, 0, 0, 0, 0),
                       spmd_axis_name=layout.spmd_axis_name)
    self._batches = jax.jit(batches, static_argnums=2)
    self._steps = CompiledFn(steps, donate_argnums=0)

  @property
  def compile_seconds(self) -> float:
    return self._steps.compile_seconds

  @property
  def compiles(self) -> int:
    return self._steps.compiles

  def __call__(self, state, dataset, keys, epoch, hparams, active):
    idx = self._batches(keys, epoch, len(dataset["image"]))  # [(R,) S, B]
    axis = 1 if self.runs_axis else 0
    num_steps = idx.shape[axis]
    starts = range(0, num_steps, self.steps_per_call)
    if self.on_host:
      chunks = prefetch(lambda start: self._gather(dataset, np.asarray(idx), start), starts,
                        lambda c: parallel.put(c, self.layout.state(self.runs_axis)))
    else:
      chunks = ((dataset, jax.lax.slice_in_dim(idx, s, min(s + self.steps_per_call, num_steps),
                                               axis=axis)) for s in starts)
    metrics = []
    for batch, chunk in chunks:
      state, m = self._steps(state, batch, keys, chunk, hparams, active)
      metrics.append(m)
    metrics = jax.tree.map(lambda *ms: jnp.concatenate(ms, axis=axis), *metrics)
    return state, train.epoch_means(metrics, axis)

  def _gather(self, dataset, idx, start):
    """(rows of the chunk's batches, their indices into those rows [(R,) k, B])."""
    axis = 1 if self.runs_axis else 0
    rows = np.take(idx, range(start, min(start + self.steps_per_call, idx.shape[axis])),
                   axis=axis)
    flat = rows.reshape(*rows.shape[:-2], -1)  # [(R,) k * B]
    local = np.arange(flat.shape[-1]).reshape(rows.shape[-2], rows.shape[-1])
    local = np.broadcast_to(local, rows.shape) if self.runs_axis else local
    return {k: v[flat] for k, v in dataset.items()}, local
