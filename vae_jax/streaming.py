"""Streaming input (data.on_device = never, or auto over budget): the splits stay in host memory
(numpy, as TFDS delivered them) and the compiled programs receive chunks of whole batches,
prepared and transferred by a background thread one chunk ahead of the device.

The batch order is the on-device order (train.epoch_batches of the same (seed, epoch) keys) and
every step, batch and key is the one of the on-device epoch, so results equal the on-device mode
up to float summation order in the evaluation sums.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from vae_jax import evaluate, parallel
from vae_jax.compiled import CompiledFn
from vae_jax.epochs import ChunkedEpoch, prefetch

DEFAULT_BUDGET_MB = 2048  # auto's budget where the device does not report its memory (CPU).
EVAL_BATCHES_PER_CHUNK = 10


def device_budget_bytes(budget_mb: int = 0) -> int:
  """`budget_mb` MB, or 0 = half the first device's memory (bytes_limit of memory_stats(); the
  CPU reports none: DEFAULT_BUDGET_MB)."""
  if budget_mb:
    return budget_mb * 2**20
  stats = jax.local_devices()[0].memory_stats() or {}
  return stats["bytes_limit"] // 2 if "bytes_limit" in stats else DEFAULT_BUDGET_MB * 2**20


def keeps_on_device(mode: str, host: dict, budget_mb: int = 0) -> bool:
  """Whether the splits go to device memory: mode 'always' / 'never', or 'auto': when the bytes
  of every split's arrays fit in device_budget_bytes(budget_mb).

  Args:
    host: {split: {"image": uint8 [N, H, W, C], "label": int32 [N]}} numpy arrays.
  """
  if mode != "auto":
    return mode == "always"
  size = sum(a.nbytes for split in host.values() for a in split.values())
  return size <= device_budget_bytes(budget_mb)


class StreamedEval:
  """evaluate.evaluate_by_class (by_class=True) or evaluate_dataset over a host-resident dataset
  (or device arrays), in chunks of `batches_per_call` whole batches (the last padded and
  masked), batch b keyed fold_in(key, b) as on the device: callable (params, dataset, key,
  hparams) like those programs.
  """

  def __init__(self, per_example, *, batch_size: int, num_classes: int, by_class: bool,
               runs_axis: bool = False, layout=None, unroll: bool = False,
               batches_per_call: int = EVAL_BATCHES_PER_CHUNK):
    layout = layout or parallel.Layout(None)
    self.batch_size, self.num_classes, self.by_class = batch_size, num_classes, by_class
    self.batches_per_call = batches_per_call
    self.layout = layout
    fn = lambda p, ds, k, h, first: evaluate.class_totals(  # noqa: E731
        per_example, p, ds, k, h, batch_size=batch_size, num_classes=num_classes,
        first_batch=first, unroll=unroll, batch_sharding=layout.batch)
    if runs_axis:
      fn = jax.vmap(fn, in_axes=(0, None, 0, 0, None), spmd_axis_name=layout.spmd_axis_name)
    self._fn = CompiledFn(fn)

  @property
  def compile_seconds(self) -> float:
    return self._fn.compile_seconds

  @property
  def compiles(self) -> int:
    return self._fn.compiles

  def __call__(self, params, dataset, key, hparams):
    n = len(dataset["image"])
    rows = self.batches_per_call * self.batch_size

    totals = counts = None
    starts = range(0, n, rows)
    for c, start in zip(prefetch(lambda s: evaluate.padded_chunk(dataset, s, rows), starts,
                                 lambda c: parallel.put(c, self.layout.replicated)), starts):
      t, k = self._fn(params, c, key, hparams, jnp.int32(start // self.batch_size))
      totals = t if totals is None else jax.tree.map(jnp.add, totals, t)
      counts = k if counts is None else counts + k
    means = jax.tree.map(lambda t: jnp.sum(t, axis=-1) / n, totals)
    if not self.by_class:
      return means
    per_class = jax.tree.map(lambda t: jnp.where(counts > 0, t / jnp.maximum(counts, 1), jnp.nan),
                             totals)
    return means, per_class


def make_programs(objective, tx, *, batch_size: int, eval_batch_size: int, elbo_samples: int = 0,
                  num_classes: int = 10, runs_axis: bool = False, steps_per_call: int = 0,
                  layout=None) -> dict:
  """evaluate.make_programs' 'epoch', 'eval' and 'eval_by_class' for host-resident datasets
  (same call signatures, numpy datasets)."""
  per_example = evaluate.eval_per_example(objective, elbo_samples)
  kwargs = dict(batch_size=eval_batch_size, runs_axis=runs_axis, layout=layout,
                unroll=steps_per_call > 0)
  return {"epoch": ChunkedEpoch(batch_size=batch_size, objective=objective, tx=tx,
                                runs_axis=runs_axis, layout=layout,
                                steps_per_call=steps_per_call, on_host=True),
          "eval": StreamedEval(per_example, num_classes=1, by_class=False, **kwargs),
          "eval_by_class": StreamedEval(per_example, num_classes=num_classes, by_class=True,
                                        **kwargs)}


def make_device_programs(objective, tx, *, steps_per_call: int = 0, **kwargs) -> dict:
  """evaluate.make_programs (device-resident datasets), except that with steps_per_call > 0
  (unrolled loops) 'eval' and 'eval_by_class' run in calls of steps_per_call batches
  (StreamedEval over the device arrays). Unrolled over a whole test set, XLA:CPU keeps every
  batch's temporaries at once: the compiled temp memory of beta_cvae's evaluation grows by about
  100 MiB per 1,000 test images and run, and its 18-run program peaked at 22 GB on the 10k MNIST
  test images (measured, 2 cores, 24 GB). Sums per call, then across calls: the means equal the
  one-program ones up to float summation order."""
  programs = evaluate.make_programs(objective, tx, steps_per_call=steps_per_call, **kwargs)
  if steps_per_call > 0:
    per_example = evaluate.eval_per_example(objective, kwargs.get("elbo_samples", 0))
    common = dict(batch_size=kwargs["eval_batch_size"], runs_axis=kwargs.get("runs_axis", False),
                  layout=kwargs.get("layout"), unroll=True, batches_per_call=steps_per_call)
    programs["eval"] = StreamedEval(per_example, num_classes=1, by_class=False, **common)
    programs["eval_by_class"] = StreamedEval(
        per_example, num_classes=kwargs.get("num_classes", 10), by_class=True, **common)
  return programs
