"""Evaluation: exact masked dataset means (overall and per class), the compiled programs a run
evaluates with, the IW-NLL in chunks under a progress bar, and restoring a run directory.

A per-example function has the signature (params, batch, key, hparams) -> dict of [B] arrays,
where batch = {"image": uint8 [B, H, W, C], "label": int32 [B]}; batch b of a dataset uses the key
fold_in(key, b), so every split of the work (one program, chunks, runs axis) sees the same noise.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import tqdm

from vae_jax import (checkpointing, compiled, config as config_lib, data, epochs, files,
                     objectives, parallel, signals, train)
from vae_jax.compiled import CompiledFn


def class_totals(per_example_fn: Callable, params, dataset, key, hparams, *, batch_size: int,
                 num_classes: int, first_batch=0, unroll: bool = False, batch_sharding=None):
  """Sums of per-example values over a dataset, per class, padding to a multiple of
  `batch_size` and masking the padding (and rows whose optional "valid" field is False).

  Args:
    dataset: {"image": uint8 [N, H, W, C], "label": int32 [N], optionally "valid": bool [N]}; with
      num_classes > 1 the labels (in [0, num_classes)) pick the class, with 1 every row counts.
    first_batch: int32 scalar; batch b uses fold_in(key, first_batch + b).
    batch_sharding: parallel.Layout.batch; each batch is sharded over the data-parallel devices
      (the sums stay exact up to float summation order).
  Returns:
    (totals: dict of [num_classes] sums, counts: [num_classes] examples per class).
  """
  images, labels = dataset["image"], dataset["label"]
  n = images.shape[0]
  num_batches = -(-n // batch_size)
  pad = num_batches * batch_size - n
  x = jnp.pad(images, [(0, pad)] + [(0, 0)] * (images.ndim - 1))
  x = x.reshape(num_batches, batch_size, *images.shape[1:])
  valid = jnp.arange(num_batches * batch_size) < n
  if "valid" in dataset:
    valid &= jnp.pad(dataset["valid"], (0, pad))
  y = jnp.pad(labels, (0, pad)).reshape(num_batches, batch_size)
  groups = labels if num_classes > 1 else jnp.zeros_like(labels)  # One class: every row counts.
  onehot = jax.nn.one_hot(jnp.pad(groups, (0, pad)), num_classes) * valid[:, None]
  onehot = onehot.reshape(num_batches, batch_size, num_classes)

  def body(totals, inputs):
    b, x_B, y_B, onehot_BxC = inputs
    x_B, y_B, onehot_BxC = parallel.constrain((x_B, y_B, onehot_BxC), batch_sharding)
    values = per_example_fn(params, {"image": x_B, "label": y_B},
                            jax.random.fold_in(key, first_batch + b), hparams)
    # where() and not a multiply: padded rows may hold inf/NaN (e.g. log of an all-zero image).
    masked = jax.tree.map(lambda v: jnp.where(onehot_BxC > 0, v[:, None], 0.0), values)
    return jax.tree.map(lambda t, v: t + jnp.sum(v, axis=0), totals, masked), None

  shapes = jax.eval_shape(per_example_fn, params, {"image": x[0], "label": y[0]}, key, hparams)
  zeros = jax.tree.map(lambda s: jnp.zeros((num_classes,), s.dtype), shapes)
  totals, _ = jax.lax.scan(body, zeros, (jnp.arange(num_batches), x, y, onehot), unroll=unroll)
  return totals, jnp.sum(onehot, axis=(0, 1))


def padded_chunk(dataset, start: int, rows: int) -> dict:
  """Rows start .. start + rows - 1 of `dataset` ({"image": [N, ...], "label": [N]}; numpy or
  device arrays), the last row repeated past the end, with "valid": bool [rows] marking the real
  rows: the host side of every exact evaluation in pieces (class_totals masks "valid")."""
  n = len(dataset["image"])
  idx = np.minimum(np.arange(start, start + rows), n - 1)
  return {"image": dataset["image"][idx], "label": dataset["label"][idx],
          "valid": np.arange(start, start + rows) < n}


def evaluate_by_class(per_example_fn: Callable, params, dataset, key, hparams, *,
                      batch_size: int, num_classes: int, unroll: bool = False,
                      batch_sharding=None):
  """Exact per-example means over a whole dataset, overall and per class: sum over examples / N
  (not an average of batch averages); the overall mean is the count-weighted class average.

  Returns:
    (means, per_class): dicts of scalars and of [num_classes] arrays (NaN for an absent class).
  """
  totals, counts = class_totals(per_example_fn, params, dataset, key, hparams,
                                batch_size=batch_size, num_classes=num_classes, unroll=unroll,
                                batch_sharding=batch_sharding)
  n = dataset["image"].shape[0]
  means = jax.tree.map(lambda t: jnp.sum(t) / n, totals)
  per_class = jax.tree.map(lambda t: jnp.where(counts > 0, t / jnp.maximum(counts, 1), jnp.nan),
                           totals)
  return means, per_class


def evaluate_dataset(per_example_fn: Callable, params, dataset, key, hparams, *,
                     batch_size: int, unroll: bool = False, batch_sharding=None):
  """Exact per-example means over a whole dataset, labels ignored (see `evaluate_by_class`).

  Returns:
    dict of scalars (means over the N examples).
  """
  return evaluate_by_class(per_example_fn, params, dataset, key, hparams,
                           batch_size=batch_size, num_classes=1, unroll=unroll,
                           batch_sharding=batch_sharding)[0]


def eval_per_example(objective, elbo_samples: int = 0) -> Callable:
  """per_example_fn of objective.eval_terms (its terms, 'mse' and, with elbo_samples = L > 0,
  'elbo_l{L}')."""
  def fn(params, batch, key, hparams):
    if not objective.conditional:
      batch = dict(batch, label=jnp.zeros_like(batch["label"]))  # Unused; keeps -1 out of one_hot.
    return objective.eval_terms(params, batch, key, hparams, elbo_samples)
  return fn


def make_programs(objective, tx, *, batch_size: int, eval_batch_size: int, elbo_samples: int = 0,
                  num_classes: int = 10, runs_axis: bool = False,
                  steps_per_call: int = 0, layout=None) -> dict[str, CompiledFn]:
  """The compiled programs a run uses: 'epoch' (state donated; train.train_epoch, or with
  steps_per_call > 0 an epochs.ChunkedEpoch of that many steps per program), 'eval' (dataset
  means of eval_per_example) and 'eval_by_class' (overall and per-class means); with
  steps_per_call > 0 the evaluation loops are unrolled too.

  With runs_axis=True every program is `jax.vmap`ped over a leading runs axis of the state /
  params, the RunKeys, the hparams and the `active` flags (dataset and epoch shared): R runs that
  differ only in seed and traced hyperparameters train in one program. `layout`
  (parallel.Layout) shards every batch over its data devices and the runs axis over its runs
  devices.
  """
  layout = layout or parallel.Layout(None)
  shard = layout.batch
  epoch_fn = lambda state, ds, keys, epoch, hparams, active: train.train_epoch(  # noqa: E731
      state, ds, keys, epoch, hparams, active, batch_size=batch_size, objective=objective, tx=tx,
      batch_sharding=shard)
  per_example = eval_per_example(objective, elbo_samples)
  unroll = steps_per_call > 0
  eval_fn = lambda params, ds, key, hparams: evaluate_dataset(  # noqa: E731
      per_example, params, ds, key, hparams, batch_size=eval_batch_size, unroll=unroll,
      batch_sharding=shard)
  by_class_fn = lambda params, ds, key, hparams: evaluate_by_class(  # noqa: E731
      per_example, params, ds, key, hparams, batch_size=eval_batch_size, num_classes=num_classes,
      unroll=unroll, batch_sharding=shard)
  if runs_axis:
    spmd = layout.spmd_axis_name
    epoch_fn = jax.vmap(epoch_fn, in_axes=(0, None, 0, None, 0, 0), spmd_axis_name=spmd)
    eval_fn = jax.vmap(eval_fn, in_axes=(0, None, 0, 0), spmd_axis_name=spmd)
    by_class_fn = jax.vmap(by_class_fn, in_axes=(0, None, 0, 0), spmd_axis_name=spmd)
  epoch = CompiledFn(epoch_fn, donate_argnums=0)
  if steps_per_call:
    epoch = epochs.ChunkedEpoch(batch_size=batch_size, steps_per_call=steps_per_call,
                                objective=objective, tx=tx, runs_axis=runs_axis, layout=layout)
  return {"epoch": epoch, "eval": CompiledFn(eval_fn), "eval_by_class": CompiledFn(by_class_fn)}


def iw_nll(objective, params, dataset, key, *, num_samples: int, batch_size: int,
           chunk_size: int, progress: bool = False, chunks: int = 20,
           unroll: bool = False, batch_sharding=None) -> tuple[float, float]:
  """IW-NLL estimate -IWAE_K (Burda et al., 2016) over a whole dataset, in nats per image
  (-log p(x | y) bound for a conditional model).

  The dataset is evaluated in about `chunks` pieces of whole batches, one compiled program reused
  for each (the last piece is padded and masked), under a tqdm bar with an ETA when `progress`;
  `unroll` unrolls its loops over batches and sample chunks and `batch_sharding` shards each
  batch over the data-parallel devices (see class_totals).

  Returns:
    (nll, compile_seconds): 0 compile seconds where this process compiled the same program
    before (compiled.shared).
  """
  hparams = train.Hparams.of()  # Unused by the bound.

  def per_example(p, batch, k, h):
    del h
    return {"nll_iw": -objective.iw_bound(p, batch, k, num_samples, chunk_size, unroll)}

  def build():
    return CompiledFn(lambda p, ds, k, first: class_totals(
        per_example, p, ds, k, hparams, batch_size=batch_size, num_classes=1, first_batch=first,
        unroll=unroll, batch_sharding=batch_sharding))
  fn = compiled.shared(build, "iw_nll", objective, num_samples, batch_size, chunk_size, unroll,
                       batch_sharding)
  compiled_before = fn.compile_seconds
  n = dataset["image"].shape[0]
  num_batches = -(-n // batch_size)
  per_chunk = -(-num_batches // chunks)
  rows = per_chunk * batch_size
  if not objective.conditional:
    dataset = dict(dataset, label=jnp.zeros((n,), jnp.int32))
  total = 0.0
  starts = range(0, n, rows)
  files.fault_point("iw_nll")
  for start in tqdm.tqdm(starts, desc=f"IW-NLL K={num_samples}", unit="chunk",
                         disable=not progress, dynamic_ncols=True, leave=False):
    signals.check()
    chunk = padded_chunk(dataset, start, rows)
    sums, _ = fn(params, chunk, key, jnp.int32(start // batch_size))
    total += float(sums["nll_iw"][0])
  return total / n, fn.compile_seconds - compiled_before


def per_example_scores(objective, params, images, labels, key, *, iw_samples: int = 0,
                       batch_size: int = 500, chunk_size: int = 100) -> dict[str, np.ndarray]:
  """Per-image scores of a VAE / CVAE, higher where the model finds the image less likely (the
  scores of likelihood-based anomaly detection).

  Args:
    images: uint8 [N, H, W, C]; labels: int32 [N] (read by a CVAE only).
    iw_samples: K > 0 also scores by the IW-NLL.
  Returns:
    float64 [N] arrays: 'neg_elbo' (recon + KL with one reparameterized z, nats), 'recon', 'kl',
    and with K > 0 'nll_iw' (-IWAE bound with K samples, Burda et al., 2016). Batch b draws its
    noise from fold_in(key, b).
  """
  hparams = train.Hparams.of()  # beta = 1: the scores are of the ELBO.

  @jax.jit
  def scores(p, batch, k):
    if not objective.conditional:
      batch = dict(batch, label=jnp.zeros_like(batch["label"]))
    terms = objective.terms(p, batch, k, hparams)
    out = {"neg_elbo": terms["recon"] + terms["kl"], "recon": terms["recon"], "kl": terms["kl"]}
    if iw_samples:
      out["nll_iw"] = -objective.iw_bound(p, batch, jax.random.fold_in(k, 1), iw_samples,
                                          chunk_size)
    return out

  parts = []
  for b, start in enumerate(range(0, len(images), batch_size)):
    chunk = padded_chunk({"image": images, "label": labels}, start, batch_size)
    valid = chunk.pop("valid")
    out = scores(params, jax.device_put(chunk), jax.random.fold_in(key, b))
    parts.append({k: np.asarray(v, np.float64)[valid] for k, v in out.items()})
  return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def final_metrics(config, objective, params, test, keys, progress: bool = False,
                  layout=None) -> dict:
  """IW-NLL with K = config.eval.iw_samples (skipped if 0), also in bits/dim, with timings;
  batches of eval.iw_batch_size rounded up to the layout's data devices and sharded over them
  (parallel.Layout; see iw_nll). On CPU devices of one process (parallel.shares_cores) the bound
  is computed on the first device alone: those devices share the host's cores."""
  layout = layout or parallel.Layout(None)
  k = config.eval.iw_samples
  if not k:
    return {"compile_seconds": 0.0, "compiles": 0}
  key = jax.random.fold_in(keys.eval, 1)
  if parallel.shares_cores(layout):
    layout = parallel.Layout(None)
    params, test, key = jax.device_put((params, test, key), jax.devices()[0])
  start = time.perf_counter()
  nll, compile_seconds = iw_nll(objective, params, test, key, num_samples=k,
                                batch_size=parallel.round_up(config.eval.iw_batch_size, layout),
                                chunk_size=config.eval.iw_chunk_size, progress=progress,
                                unroll=config.train.steps_per_call > 0,
                                batch_sharding=layout.batch)
  pixels = math.prod(test["image"].shape[1:])
  return {"eval/nll_iw": nll, "eval/nll_iw_k": k,
          "eval/nll_iw_bits_per_dim": nll / (pixels * math.log(2.0)),
          "eval/nll_iw_seconds": time.perf_counter() - start - compile_seconds,
          "compile_seconds": compile_seconds, "compiles": int(compile_seconds > 0)}


def abstract_state(objective, tx, image_shape, hparams):
  """jax.eval_shape of a fresh TrainState: the restore target of a checkpoint."""
  return jax.eval_shape(lambda: train.init_state(objective, tx, image_shape, jax.random.key(0),
                                                 hparams))


class RestoredRun(NamedTuple):
  """A trained run read back: its config (ConfigDict; a fit's fit.json dict), objective, params
  (pytree), train.RunKeys and the epoch of the checkpoint read."""
  config: Any
  objective: Any
  params: Any
  keys: train.RunKeys
  epoch: int


def run_config(workdir: str | Path):
  """The config (ConfigDict, defaults filled in) of a run directory made from a config.

  Raises:
    checkpointing.CheckpointError: no config.json, or an unreadable one.
  """
  workdir = Path(workdir)
  if not (workdir / "config.json").is_file():
    raise checkpointing.CheckpointError(f"{workdir} is not a run directory (no config.json); pass "
                                        "--workdir of a run made by vae-jax train")
  try:
    return config_lib.with_defaults(json.loads((workdir / "config.json").read_text()))
  except (ValueError, TypeError, AttributeError, KeyError) as e:
    raise checkpointing.CheckpointError(f"{workdir}/config.json is unreadable ({e}); "
                                        "retrain into a fresh --workdir") from None


def restore_run(workdir: str | Path, epoch: int | None = None) -> RestoredRun:
  """The RestoredRun of a run directory made from a config: the checkpoint of `epoch` when given
  (one of checkpointing.all_epochs(workdir): the kept ones), else its best checkpoint when the run
  used early stopping (the state its summary reports), else its latest.

  Raises:
    checkpointing.CheckpointError: no run directory, no checkpoint (of that epoch), or an
      unreadable one.
  """
  workdir = Path(workdir)
  config = run_config(workdir)
  best = epoch is None and checkpointing.latest_epoch(workdir, checkpointing.BEST) is not None
  directory = checkpointing.BEST if best else checkpointing.LATEST
  epoch, meta = checkpointing.restore_meta(workdir, epoch, directory=directory)
  image_shape = data.image_shape(config.data.name)
  objective = objectives.from_config(config, image_shape, meta.get("encoder_widths"),
                                    num_classes=data.num_classes(config.data.name))
  tx = train.optimizer_from_config(config)
  hparams = train.hparams_from_config(config)
  state = checkpointing.restore_state(workdir, epoch, abstract_state(objective, tx, image_shape,
                                                                     hparams), directory=directory,
                                     expected_digest=meta.get("digest"))
  return RestoredRun(config, objective, train.eval_params(state.params, state.opt_state),
                     train.RunKeys.from_seed(config.seed), epoch)
