"""`train_and_evaluate(config, workdir)`: the run directory contract shared by every study.

<workdir>/config.json     resolved config, written first
<workdir>/metrics.jsonl   one line per epoch (nats per image; epoch_seconds in seconds)
<workdir>/summary.json    final metrics, IW-NLL and its K, sizes, timings, device, versions, seed
<workdir>/figures/*.png   loss curves, reconstructions, prior samples, latent scatter, manifold
<workdir>/ckpt/<epoch>/   orbax checkpoints (params, optimizer state, epoch): the latest two
<workdir>/best/<epoch>/   with early stopping: the checkpoint of the best epoch so far
<workdir>/tensorboard/    TensorBoard event files (run_log.py)

One loop serves every study: `train_and_evaluate_runs` trains R runs whose configs differ only in
seed and traced hyperparameters (train.TRACED_KEYS) in one compiled program, vmapped over a leading
runs axis (R = 1: no axis), each run stopping early on its own. Batches are sharded over the
devices of a parallel.Layout (one device: the plain programs); the datasets live on the device or
stream from the host (streaming.py); only process 0 of a multi-host launch writes the files.
"""

from __future__ import annotations

import contextlib
import json
import platform
import shutil
import statistics
import sys
import time
from importlib import metadata
from pathlib import Path

import jax
import numpy as np
import tqdm

from vae_jax import (checkpointing, config as config_lib, data, dynamics, evaluate, figures, files,
                     growth, hooks, live, locking, loop as loop_lib, models, objectives,
                     parallel, run_log, rundir, signals, streaming, train)
from vae_jax.data import load_data  # noqa: F401  # Public here (tests replace runner.load_data).
from vae_jax.errors import RunError  # noqa: F401  # Raised here; the public name stays.
from vae_jax.rundir import COMPUTE_ONLY, RESUMABLE_CHANGES, config_diff  # noqa: F401  # Public.


def _versions() -> dict[str, str]:
  names = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "tensorflow-datasets", "numpy")
  return {n: metadata.version(n) for n in names} | {"python": platform.python_version()}


def train_and_evaluate(config, workdir: str | Path, *, resume: bool = False,
                       progress: bool = True) -> dict:
  """Trains and evaluates one run; returns the summary dict (also written to summary.json).

  Everything the user can get wrong is checked before the run directory is created.

  Raises:
    config_lib.ConfigError, data.DataError, RunError, checkpointing.CheckpointError,
    locking.LockedError (see train_and_evaluate_runs).
  """
  return train_and_evaluate_runs([config], [workdir], resume=resume, progress=progress)[0]


def train_and_evaluate_seeds(config, seeds, workdirs, *, resume: bool = False,
                             progress: bool = True) -> list[dict]:
  """One run per seed of `config` (config.seed is ignored), all in ONE compiled program; see
  `train_and_evaluate_runs`.

  Raises:
    as train_and_evaluate_runs; RunError also for repeated seeds.
  """
  seeds = [int(s) for s in seeds]
  if len(set(seeds)) != len(seeds):
    raise RunError(f"seeds must be distinct, got {seeds}; pass each seed once")
  configs = []
  for seed in seeds:
    c = config.copy_and_resolve_references()
    c.seed = seed
    configs.append(c)
  return train_and_evaluate_runs(configs, workdirs, resume=resume, progress=progress)


def program_key(config) -> str:
  """The config without the traced fields (train.TRACED_KEYS): runs with equal keys can share
  one compiled program."""
  c = json.loads(config_lib.to_json(config))
  for key in train.TRACED_KEYS:
    *parents, leaf = key.split(".")
    node = c
    for part in parents:
      node = node[part]
    node.pop(leaf)
  return json.dumps(c, sort_keys=True)


def vmaps_runs(config, backend: str | None = None) -> bool:
  """Whether runs of this config that differ only in traced fields share one vmapped program:
  train.vmap_runs 'always' / 'never', or 'auto': yes (growth too: their schedules are equal, the
  surgery is vmapped), except for conv models on the CPU whose convs vmap into grouped convs
  (model.conv_runs=vmap: measured 4-12x slower per run than the runs one after another)."""
  mode = config.train.get("vmap_runs", "auto")
  if mode == "never":
    return False
  conv = "conv" in (config.model.encoder.kind, config.model.decoder.kind)
  backend = backend or jax.default_backend()
  grouped = conv and not models.resolve_loop_runs(config.model.get("conv_runs", "auto"), backend)
  return mode == "always" or not (grouped and backend == "cpu")


def train_and_evaluate_runs(configs, workdirs, *, resume: bool = False,
                            progress: bool = True) -> list[dict]:
  """Trains R runs in ONE compiled program, `jax.vmap`ped over a leading runs axis of params,
  optimizer state, PRNG keys and hparams (the device-resident data is shared); R = 1 uses no axis.

  The configs may differ only in seed and the traced hyperparameters (objective.beta, optim.lr,
  optim.weight_decay). Each run gets its own run directory with the full contract (config.json,
  metrics.jsonl, summary.json, figures, checkpoints), so `vae-jax evaluate` / `sample` / resume
  work on each, and results equal training each run alone up to float rounding. With early
  stopping each run stops on its own: its state is frozen from then on and the program ends when
  every run has stopped. epoch_seconds is the time of the whole program's epoch (all runs).
  With growth.enabled the runs share one schedule, so every growth event is one vmapped surgery
  on all of them. A run whose steps stay non-finite (train.max_nonfinite_steps) fails alone: its
  summary's 'failed' says why.

  Returns:
    the summaries, in the order of `configs`.
  Raises:
    config_lib.ConfigError (also: batch sizes that do not divide over the devices),
    data.DataError, checkpointing.CheckpointError (no good checkpoint to resume from);
    locking.LockedError: another live process holds a run directory; RunError for configs
    that differ in untraced fields, repeated or missing workdirs, checkpoints that cannot
    resume together, or every run failing on non-finite steps.
  """
  workdirs = [Path(w) for w in workdirs]
  if not configs or len(configs) != len(workdirs) or len(
      {w.absolute() for w in workdirs}) != len(workdirs):
    raise RunError(f"need one distinct workdir per run, got {len(configs)} configs and "
                   f"{len(workdirs)} workdirs; pass as many distinct workdirs as runs")
  for c in configs:
    config_lib.validate(c)
  if len({program_key(c) for c in configs}) > 1:
    raise RunError("runs in one program may differ only in " + ", ".join(train.TRACED_KEYS)
                   + "; train the others as separate programs (vae-jax train --sweep does)")
  writer = parallel.is_writer()
  for w in workdirs if writer else ():  # Another live run there: refuse before anything else.
    locking.check_free(w)
  starts = [rundir.check_workdir(c, w, resume) for c, w in zip(configs, workdirs)]
  if len({s is None for s in starts}) > 1 and all(
      checkpointing.committed(w) is not None for w, s in zip(workdirs, starts) if s is None):
    starts = [None] * len(starts)  # Killed between the first epoch's commit markers: afresh.
  if len({s is None for s in starts}) > 1:
    raise RunError("some run directories hold checkpoints and others do not; resume the former "
                   "and start the latter separately")
  layout = parallel.layout_from_config(configs[0], len(configs))
  start = time.perf_counter()
  files.fault_point("data")
  splits = load_data(configs[0])
  data_seconds = time.perf_counter() - start
  created = [not w.exists() for w in workdirs]
  for w in workdirs if writer else ():
    w.mkdir(parents=True, exist_ok=True)
  try:
    with locking.hold(workdirs) if writer else contextlib.nullcontext():
      return _run(configs, workdirs, splits, starts, progress, data_seconds, layout)
  except BaseException:
    for w, new in zip(workdirs, created):
      if new and writer and checkpointing.latest_epoch(w) is None:
        shutil.rmtree(w, ignore_errors=True)  # Nothing worth keeping: no half-written run.
    raise


def widths_by_epoch(config) -> growth.Schedule:
  """Encoder hidden widths used in each epoch 1..train.epochs (constant unless growth.enabled),
  a Mapping whose memory does not depend on train.epochs."""
  start = tuple(config.model.encoder.widths)
  g = config.growth
  if not g.enabled:
    return growth.Schedule(start, config.train.epochs)
  return growth.schedule(start, config.train.epochs, every_epochs=g.every_epochs,
                         increments=g.increments, final=g.final_widths, narrow_at=g.narrow_at,
                         narrow_to=g.narrow_to)


def _run(configs, workdirs, splits, starts, progress, data_seconds, layout) -> list[dict]:
  """The config adapter onto the one loop (loop.run): R = len(configs) runs in one program,
  their hooks built from the config; then the final evaluation, summaries and figures."""
  run_start = time.perf_counter()
  c = configs[0]  # The runs differ only in traced fields.
  runs = loop_lib.Runs(len(configs))
  per_run = layout.state(runs.axis)
  host = {name: {"image": x, "label": y} for name, (x, y) in splits.items()}
  on_device = streaming.keeps_on_device(c.data.get("on_device", "auto"), host,
                                        c.data.get("device_budget_mb", 0))
  tx = train.optimizer_from_config(c)
  image_shape = splits["train"][0].shape[1:]
  num_classes = data.num_classes(c.data.name)
  programs = loop_lib.Programs(
      lambda widths: objectives.from_config(c, image_shape, widths, num_classes=num_classes), tx,
      batch_size=c.train.batch_size, eval_batch_size=parallel.round_up(c.eval.batch_size, layout),
      elbo_samples=c.eval.elbo_samples, num_classes=num_classes, runs_axis=runs.axis,
      steps_per_call=c.train.steps_per_call, layout=layout, on_device=on_device)
  loop = loop_lib.Loop(
      programs=programs, tx=tx, runs=runs, layout=layout, image_shape=image_shape,
      keys=parallel.put(runs.stack([train.RunKeys.from_seed(x.seed) for x in configs]), per_run),
      hparams=parallel.put(runs.stack([train.hparams_from_config(
          x, steps_per_epoch=len(splits["train"][0]) // c.train.batch_size) for x in configs]),
          per_run),
      # The datasets the programs read: device arrays, or the host arrays they stream from.
      data=parallel.put(host, layout.replicated) if on_device else host,
      epochs=c.train.epochs)
  schedule = widths_by_epoch(c)
  es = c.train.early_stopping
  stopping = hooks.EarlyStopping(es.patience, es.metric, es.min_delta) if es.patience else None
  resumed = any(s is not None for s in starts)
  state = loop_lib.initial_state(loop, schedule[1], fresh=not resumed)
  if resumed:
    state = hooks.resume_state(loop, state, workdirs, stopping)
  checkpointer = hooks.Checkpointer(
      workdirs, keep=c.train.keep_checkpoints or None, every=c.train.checkpoint_every,
      minutes=c.train.get("checkpoint_minutes", 0), stopping=stopping)

  def nonfinite(i, streak, epoch):
    return (f"{workdirs[i]}: {streak} consecutive training steps had a non-finite loss or "
            f"gradient in epoch {epoch} (skipped, params unchanged); the last good checkpoint is "
            f"epoch {checkpointer.last_saved(i)}; lower --config.optim.lr (now "
            f"{configs[i].optim.lr}) and train again or resume")

  logs = [run_log.RunLog(w, c.train.get("tensorboard", True)) for w in workdirs]
  parts = [hooks.Growth(schedule, outgoing_init=c.growth.outgoing_init, keep=c.growth.keep,
                        optimizer=c.growth.optimizer)] if c.growth.enabled else []
  if c.train.get("dynamics", False):
    parts.append(dynamics.Dynamics(logs=logs))
  if c.train.get("live_images", False):
    parts.append(live.LiveImages(logs))
  parts += [hooks.MetricsLog(logs, configs),
            hooks.NonFiniteGuard(c.train.get("max_nonfinite_steps", 100), nonfinite),
            *([stopping] if stopping else []), checkpointer, hooks.Progress(progress)]
  try:
    state = loop_lib.run(loop, state, parts)
    return _finish(configs, workdirs, loop, state, host, logs, progress,
                   dict(data=data_seconds, run_start=run_start - state.elapsed,
                        on_device=on_device, patience=es.patience))
  finally:
    for log in logs:  # After the final summary and figures went to TensorBoard too.
      log.close()


def _finish(configs, workdirs, loop, state, host, logs, progress, info) -> list[dict]:
  """Per-class test metrics, IW-NLL, summary.json and figures of every run, on the best state
  when early stopping is on, else the last."""
  c, runs = configs[0], loop.runs
  objective, programs = loop.programs(state.widths)
  final_state = state.best if info["patience"] else state.train
  eval_params = train.eval_params(final_state.params, final_state.opt_state)  # EMA if tracked.
  start = time.perf_counter()
  per_class = {}
  if data.num_classes(c.data.name):
    per_class = jax.device_get(programs["eval_by_class"](
        eval_params, loop.data["test"], loop.keys.eval, loop.hparams)[1])
  eval_seconds = state.seconds["eval"] + time.perf_counter() - start
  num_batches = len(host["train"]["image"]) // c.train.batch_size
  summaries = []
  for i, (ci, w) in enumerate(zip(configs, workdirs)):
    signals.check()
    params, keys_i = runs.get(eval_params, i), runs.get(loop.keys, i)
    final = evaluate.final_metrics(ci, objective, params, loop.data["test"], keys_i,
                                   progress=progress, layout=loop.layout)
    start = time.perf_counter()
    written = []
    if parallel.is_writer() and c.eval.get("figures", True):  # On host copies: a local
      # computation, not one over the mesh.
      files.fault_point("figures")
      written = figures.write_figures(objective, jax.device_get(params), host["test"],
                                      list(state.history[i]), w / "figures",
                                      jax.device_get(keys_i.eval))
    figure_seconds = time.perf_counter() - start
    history, es = state.history[i], state.stopping[i]
    best_epoch, reported = loop_lib.reported_epoch(history, es, bool(info["patience"]))
    compile_seconds, compiles = loop.programs.totals()
    median_epoch = statistics.median(r["epoch_seconds"] for r in history)
    param_count = models.param_count(final_state.params) // runs.n
    summary = {
        "epoch": history[-1]["epoch"] if history else 0,
        "best_epoch": best_epoch,
        "stopped_epoch": es.stopped_epoch or None,
        **{k: v for k, v in reported.items() if "/" in k},
        **{f"eval/per_class/{k}": np.asarray(runs.get(v, i)).tolist()
           for k, v in per_class.items()},
        "encoder_widths": list(state.widths),
        **{k: v for k, v in final.items() if k not in ("compile_seconds", "compiles")},
        "param_count": param_count,
        "compile_seconds": compile_seconds + final["compile_seconds"],
        "compiles": compiles + final["compiles"],
        "median_epoch_seconds": median_epoch,
        "images_per_second": runs.n * num_batches * c.train.batch_size / median_epoch,
        "runs_in_program": runs.n,
        "test_images": int(len(host["test"]["image"])),
        "phase_seconds": {"data": info["data"], "compile": compile_seconds,
                          "train": state.seconds["train"], "eval": eval_seconds,
                          "iw_nll": final.get("eval/nll_iw_seconds", 0.0),
                          "figures": figure_seconds},
        "device": f"{jax.devices()[0].platform}:{jax.devices()[0].device_kind}",
        "parallel": loop.layout.describe(),
        "data_on_device": info["on_device"],
        "versions": _versions(),
        "seed": ci.seed,
        "nonfinite_steps": int(sum(r.get("train/nonfinite_steps", 0) for r in history)),
        "failed": state.failed[i],
        "wall_seconds": time.perf_counter() - info["run_start"],  # Every invocation.
        "figures": written,
    }
    if info["patience"] and not summary["stopped_epoch"] and parallel.is_writer():
      tqdm.tqdm.write(f"{w}: early stopping did not fire within train.epochs={c.train.epochs}; "
                      "the cap bound (summary stopped_epoch is null), raise --config.train."
                      "epochs to train to the stop", file=sys.stderr)
    signals.check()  # A signal a C callback swallowed during evaluation or figures: no summary.
    logs[i].finish(summary, w / "figures", written)
    summaries.append(summary)
  return summaries
