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
import jax.numpy as jnp
import numpy as np
import tqdm

from vae_jax import (checkpointing, config as config_lib, data, early_stopping, evaluate, figures,
                     growth, locking, models, objectives, parallel, run_log, streaming, train)

# Config fields that change how a run is computed or what it keeps, not its results (up to float
# rounding).
COMPUTE_ONLY = ("model.conv_batch_chunks", "model.conv_runs", "train.steps_per_call",
                "train.vmap_runs", "train.keep_checkpoints", "train.tensorboard",
                "parallel.data_devices", "parallel.runs_devices", "data.on_device",
                "data.device_budget_mb", "train.max_nonfinite_steps", "train.checkpoint_minutes")
# Config fields that may change between a run and its resumption (or --reuse).
RESUMABLE_CHANGES = ("train.epochs", *COMPUTE_ONLY)


class RunError(RuntimeError):
  """A run cannot start; str(e) is one line naming the problem and the fix."""


def load_data(config) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """{'train', 'test'[, 'val']} -> (uint8 images [N, H, W, C], int32 labels [N]) on the host.

  Raises:
    data.DataError: dataset missing or bad sizes.
  """
  d = config.data
  train_x, train_y = data.load_split(d.name, "train", d.data_dir or None)
  splits = {}
  val_size = d.validation_size or round(d.get("validation_fraction", 0.0) * len(train_x))
  if d.validation_size and d.validation_size >= len(train_x):
    raise data.DataError(f"data.validation_size={d.validation_size} must be below the "
                         f"{len(train_x)} training images; lower --config.data.validation_size")
  if val_size:
    (train_x, train_y), splits["val"] = data.validation_split(train_x, train_y, val_size,
                                                              d.validation_seed)
  excluded = tuple(d.get("exclude_classes", ()))
  if excluded:  # Held-out classes: only the test set shows them.
    keep = ~np.isin(train_y, excluded)
    train_x, train_y = train_x[keep], train_y[keep]
    if "val" in splits:
      keep = ~np.isin(splits["val"][1], excluded)
      splits["val"] = (splits["val"][0][keep], splits["val"][1][keep])
  if d.train_subset:
    train_x, train_y = train_x[: d.train_subset], train_y[: d.train_subset]
  if len(train_x) < config.train.batch_size:
    raise data.DataError(f"train.batch_size={config.train.batch_size} exceeds the "
                         f"{len(train_x)} training images; lower --config.train.batch_size")
  splits["train"] = (train_x, train_y)
  splits["test"] = data.load_split(d.name, "test", d.data_dir or None)
  return splits


def _check_workdir(config, workdir: Path, resume: bool) -> int | None:
  """Returns the epoch to resume from (None = fresh start). Raises RunError on conflicts."""
  saved = workdir / "config.json"
  latest = checkpointing.latest_epoch(workdir)
  if saved.exists() and latest is not None:
    # Fields added to the library after the run was written count as their defaults.
    old = json.loads(config_lib.to_json(config_lib.with_defaults(json.loads(saved.read_text()))))
    new = json.loads(config_lib.to_json(config))
    changed = [k for k in config_diff(old, new) if k not in RESUMABLE_CHANGES]
    if changed:
      raise RunError(f"{workdir} holds a checkpoint of another config (differs in "
                     f"{', '.join(changed)}); use another --workdir or delete that one")
    if not resume:
      raise RunError(f"{workdir} already holds a checkpoint (epoch {latest}); pass --resume to "
                     "continue it or use another --workdir")
    return latest
  if resume and saved.exists():  # Killed before its first checkpoint: nothing to continue.
    print(f"vae-jax: notice: {workdir} holds no checkpoint (its run stopped before the first); "
          "starting it afresh", file=sys.stderr)
  elif resume:
    raise RunError(f"--resume given but {workdir} has no checkpoint; drop --resume to start fresh")
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


def _versions() -> dict[str, str]:
  names = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "tensorflow-datasets", "numpy")
  return {n: metadata.version(n) for n in names} | {"python": platform.python_version()}


def _read_metrics(path: Path, upto_epoch: int) -> list[dict]:
  if not path.exists():
    return []
  rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
  return [r for r in rows if r["epoch"] <= upto_epoch]




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


def vmaps_runs(config) -> bool:
  """Whether runs of this config that differ only in traced fields share one vmapped program:
  train.vmap_runs 'always' / 'never', or 'auto': yes (growth too: their schedules are equal, the
  surgery is vmapped), except for conv models on the CPU whose convs vmap into grouped convs
  (model.conv_runs=vmap: measured 4-12x slower per run than the runs one after another)."""
  mode = config.train.get("vmap_runs", "auto")
  if mode == "never":
    return False
  conv = "conv" in (config.model.encoder.kind, config.model.decoder.kind)
  grouped = conv and not models.resolve_loop_runs(config.model.get("conv_runs", "auto"))
  return mode == "always" or not (grouped and jax.default_backend() == "cpu")


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
  starts = [_check_workdir(c, w, resume) for c, w in zip(configs, workdirs)]
  if len({s is None for s in starts}) > 1:
    raise RunError("some run directories hold checkpoints and others do not; resume the former "
                   "and start the latter separately")
  layout = parallel.layout_from_config(configs[0], len(configs))
  start = time.perf_counter()
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


def widths_by_epoch(config) -> dict[int, tuple[int, ...]]:
  """Encoder hidden widths used in each epoch 1..train.epochs (constant unless growth.enabled)."""
  start = tuple(config.model.encoder.widths)
  g = config.growth
  if not g.enabled:
    return {e: start for e in range(1, config.train.epochs + 1)}
  return growth.schedule(start, config.train.epochs, every_epochs=g.every_epochs,
                         increments=g.increments, final=g.final_widths, narrow_at=g.narrow_at,
                         narrow_to=g.narrow_to)


class _Programs:
  """Objective and compiled programs per encoder-width configuration (built on demand)."""

  def __init__(self, config, image_shape, tx, num_classes, runs_axis, layout, on_device=True):
    self.config, self.image_shape, self.tx, self.cache = config, image_shape, tx, {}
    self.num_classes, self.runs_axis, self.layout = num_classes, runs_axis, layout
    self.make = evaluate.make_programs if on_device else streaming.make_programs

  def __call__(self, widths):
    if widths not in self.cache:
      c = self.config
      objective = objectives.from_config(c, self.image_shape, widths)
      programs = self.make(objective, self.tx, batch_size=c.train.batch_size,
                           eval_batch_size=c.eval.batch_size, elbo_samples=c.eval.elbo_samples,
                           num_classes=self.num_classes, runs_axis=self.runs_axis,
                           steps_per_call=c.train.steps_per_call, layout=self.layout)
      self.cache[widths] = (objective, programs)
    return self.cache[widths]

  def totals(self):
    programs = [p for _, ps in self.cache.values() for p in ps.values()]
    return sum(p.compile_seconds for p in programs), sum(p.compiles for p in programs)


class _Runs:
  """Stacking and slicing along the runs axis (identity when there is none)."""

  def __init__(self, num_runs: int):
    self.n, self.axis = num_runs, num_runs > 1

  def stack(self, trees):
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees) if self.axis else trees[0]

  def get(self, tree, i: int):
    return jax.tree.map(lambda a: a[i], tree) if self.axis else tree

  def flags(self, values):
    """[R] bool array under the axis, else a bool scalar array."""
    return jnp.asarray(values) if self.axis else jnp.asarray(values[0])


@jax.jit
def _select(mask, new, old):
  """Per run: `new` where mask else `old` (mask [R] or a scalar; leading runs axis)."""
  def pick(a, b):
    return jnp.where(mask.reshape(mask.shape + (1,) * (a.ndim - mask.ndim)), a, b)
  return jax.tree.map(pick, new, old)


def _run(configs, workdirs, splits, starts, progress, data_seconds, layout) -> list[dict]:
  """The training loop of every study: R = len(configs) runs in one program."""
  loop = _Loop(configs, workdirs, splits, progress, layout)
  loop.data_seconds = data_seconds
  try:
    loop.restore(starts)
    loop.train()
    return loop.finish(loop.run_start)
  finally:
    for log in getattr(loop, "logs", ()):
      log.close()


class _Loop:
  """State of the one training loop; `restore`, `train` and `finish` read separately."""

  def __init__(self, configs, workdirs, splits, progress, layout):
    self.configs, self.workdirs, self.progress = configs, workdirs, progress
    self.config = c = configs[0]  # The runs differ only in traced fields.
    self.runs = _Runs(len(configs))
    self.layout, self.per_run = layout, layout.state(self.runs.axis)
    self.keys = parallel.put(self.runs.stack([train.RunKeys.from_seed(x.seed) for x in configs]),
                             self.per_run)
    self.hparams = parallel.put(self.runs.stack([train.hparams_from_config(x) for x in configs]),
                                self.per_run)
    self.tx = train.make_optimizer(c.optim.name)
    self.image_shape = splits["train"][0].shape[1:]
    self.host = {name: {"image": x, "label": y} for name, (x, y) in splits.items()}
    self.on_device = streaming.keeps_on_device(c.data.get("on_device", "auto"), self.host,
                                               c.data.get("device_budget_mb", 0))
    # The datasets the programs read: device arrays, or the host arrays they stream from.
    self.device = parallel.put(self.host, layout.replicated) if self.on_device else self.host
    self.num_classes = data.num_classes(c.data.name)
    self.schedule = widths_by_epoch(c)
    self.build = _Programs(c, self.image_shape, self.tx, max(self.num_classes, 1), self.runs.axis,
                           layout, self.on_device)
    es = c.train.early_stopping
    self.patience, self.metric, self.min_delta = es.patience, es.metric, es.min_delta
    self.seconds = {"data": 0.0, "train": 0.0, "eval": 0.0}
    self.streak = [0] * len(configs)  # Consecutive skipped (non-finite) steps per run.
    self.saved_at = time.perf_counter()  # Of the last checkpoint (train.checkpoint_minutes).
    self.failed = [None] * len(configs)  # Per run: why it stopped on non-finite steps.
    # Wall time of earlier invocations up to the checkpoint this one resumed from (0 if fresh):
    # summary.json's wall_seconds covers the whole run, not only its last invocation.
    self.run_start = time.perf_counter()

  # -- start: fresh or from checkpoints ------------------------------------------------------
  def restore(self, starts):
    """Initial state, history and early-stopping state of every run."""
    runs = self.runs
    self.widths = self.schedule[1]
    self.es = [early_stopping.EarlyStopping() for _ in self.workdirs]
    if all(s is None for s in starts):
      self.epoch, self.history = 0, [[] for _ in self.workdirs]
      objective = self.build(self.widths)[0]
      init = lambda k, h: train.init_state(objective, self.tx, self.image_shape, k,  # noqa: E731
                                           h)
      self.state = parallel.put(jax.vmap(init)(self.keys.init, self.hparams) if runs.axis
                                else init(self.keys.init, self.hparams), self.per_run)
      self.best = self._copy(self.state) if self.patience else None
      self.best_saved = [0] * runs.n
      for w in self.workdirs if parallel.is_writer() else ():
        for d in (checkpointing.LATEST, checkpointing.BEST):  # A killed run's: never reuse them.
          shutil.rmtree(w / d, ignore_errors=True)
    else:
      self._restore_checkpoints(starts)
    self.param_count = models.param_count(self.state.params) // runs.n  # Per run (shapes only).
    tensorboard = self.config.train.get("tensorboard", True)
    self.logs = [run_log.RunLog(w, tensorboard) for w in self.workdirs]
    for ci, log, rows in zip(self.configs, self.logs, self.history):
      log.start(ci, rows)

  def _restore_checkpoints(self, starts):
    restored = [self._newest_good(w, s) for w, s in zip(self.workdirs, starts)]
    starts = [epoch for epoch, _, _ in restored]
    self.history = [_read_metrics(w / "metrics.jsonl", s) for w, s in zip(self.workdirs, starts)]
    if self.patience:
      self.es = [early_stopping.replay([(r["epoch"], r[self.metric]) for r in rows],
                                       patience=self.patience, min_delta=self.min_delta)
                 for rows in self.history]
    # Runs still training resume together; a stopped run keeps its (frozen) later checkpoint.
    running = {s for s, es in zip(starts, self.es) if not es.stopped}
    if len(running) > 1:
      raise RunError(f"the run directories hold checkpoints of different epochs "
                     f"({sorted(running)}); resume them one at a time or delete them")
    self.epoch = running.pop() if running else max(starts)
    meta = restored[0][1]
    self.run_start -= meta.get("elapsed_seconds", 0.0)
    self.widths = tuple(meta.get("encoder_widths", self.widths))
    abstract = self._abstract(self.widths)
    self.state = parallel.put(self.runs.stack([state for _, _, state in restored]), self.per_run)
    self.best = None
    if self.patience:
      for w, es in zip(self.workdirs, self.es):
        if checkpointing.latest_epoch(w, checkpointing.BEST) != es.best_epoch:
          raise checkpointing.CheckpointError(
              f"{w}/{checkpointing.BEST} does not hold the best epoch {es.best_epoch} of its "
              "metrics.jsonl; delete that run directory or train it into another --workdir")
      self.best = parallel.put(self.runs.stack([checkpointing.restore_state(
          w, es.best_epoch, abstract, directory=checkpointing.BEST,
          sharding=self.layout.replicated, expected_digest=checkpointing.restore_meta(
              w, es.best_epoch, directory=checkpointing.BEST)[1].get("digest"))
          for w, es in zip(self.workdirs, self.es)]), self.per_run)
    self.best_saved = [es.best_epoch for es in self.es]

  def _abstract(self, widths):
    objective = self.build(widths)[0]
    return evaluate.abstract_state(objective, self.tx, self.image_shape,
                                   self.runs.get(self.hparams, 0))

  def _newest_good(self, workdir, latest):
    """(epoch, meta, state) of the newest checkpoint of workdir up to `latest` that reads and
    matches its digest; each one skipped is named in a one-line warning on stderr.

    Raises:
      checkpointing.CheckpointError: none is good.
    """
    skipped = []
    for epoch in (e for e in checkpointing.all_epochs(workdir) if e <= latest):
      try:
        _, meta = checkpointing.restore_meta(workdir, epoch)
        abstract = self._abstract(tuple(meta.get("encoder_widths", self.schedule[1])))
        state = checkpointing.restore_state(workdir, epoch, abstract,
                                            sharding=self.layout.replicated,
                                            expected_digest=meta.get("digest"))
      except checkpointing.CheckpointError as e:
        skipped.append(epoch)
        print(f"vae-jax: warning: skipping a bad checkpoint: {e}", file=sys.stderr)
        continue
      if skipped:
        print(f"vae-jax: warning: {workdir} resumes from epoch {epoch}, the newest good "
              f"checkpoint (skipped {', '.join(map(str, skipped))})", file=sys.stderr)
      return epoch, meta, state
    raise checkpointing.CheckpointError(
        f"no good checkpoint in {workdir}/{checkpointing.LATEST} (tried epochs "
        f"{', '.join(map(str, skipped)) or 'none'}); delete {workdir} and train afresh")

  def _copy(self, state):
    return _select(self.runs.flags([True] * self.runs.n), state, state)

  # -- the epochs ----------------------------------------------------------------------------
  def train(self):
    """Epochs epoch+1 .. train.epochs, until every run has stopped."""
    keep = self.config.train.keep_checkpoints or None  # 0: keep every checkpoint.
    latest = [checkpointing.manager(w, max_to_keep=keep) for w in self.workdirs]
    best = [checkpointing.manager(w, directory=checkpointing.BEST, max_to_keep=1)
            for w in self.workdirs] if self.patience else []
    try:
      self._epochs(latest, best)
    finally:
      for mngr in latest + best:
        mngr.wait_until_finished()
        mngr.close()

  def _epochs(self, latest, best):
    c, runs = self.config, self.runs
    bar = tqdm.tqdm(range(self.epoch + 1, c.train.epochs + 1), desc="train", unit="epoch",
                    disable=not self.progress, dynamic_ncols=True)
    for epoch in bar:
      active = [not es.stopped and not failed for es, failed in zip(self.es, self.failed)]
      if not any(active):
        break
      row = self._epoch(epoch, active)
      self.epoch = epoch
      improved = [False] * runs.n
      for i, log in enumerate(self.logs):
        if not active[i]:
          continue
        row_i = {"epoch": epoch, **{k: float(runs.get(v, i)) for k, v in row.items()},
                 "encoder_widths": list(self.widths), "param_count": self.param_count,
                 "epoch_seconds": self.epoch_seconds, "runs_in_program": runs.n}
        self.history[i].append(row_i)
        log.epoch(row_i)
        self._check_finite(i, epoch, latest[i])
        if self.patience:
          if self.metric not in row_i:
            raise RunError(f"train.early_stopping.metric={self.metric} is not a metric of this "
                           f"run; use one of {', '.join(k for k in row_i if '/' in k)}")
          self.es[i], improved[i] = early_stopping.update(
              self.es[i], row_i[self.metric], epoch, patience=self.patience,
              min_delta=self.min_delta)
      if any(improved):
        self.best = _select(runs.flags(improved), self.state, self.best)
      meta = {"epoch": epoch, "encoder_widths": list(self.widths),
              "elapsed_seconds": time.perf_counter() - self.run_start}
      # By epoch count, at the end, at a stop, or when train.checkpoint_minutes have passed.
      due = (epoch % c.train.checkpoint_every == 0 or epoch == c.train.epochs
             or time.perf_counter() - self.saved_at >= 60 * c.train.get("checkpoint_minutes", 0)
             > 0)
      for i in range(runs.n):
        if self.failed[i]:  # Keep its last good checkpoint as the one to resume from.
          continue
        if active[i] and (due or self.es[i].stopped):
          self.saved_at = time.perf_counter()
          checkpointing.save(latest[i], epoch, runs.get(self.state, i), meta)
          # best/ is written with latest/, so a resumed run always finds the best epoch of the
          # metrics it resumes from.
          if self.patience and self.es[i].best_epoch > self.best_saved[i]:
            checkpointing.save(best[i], self.es[i].best_epoch, runs.get(self.best, i),
                               dict(meta, epoch=self.es[i].best_epoch))
            self.best_saved[i] = self.es[i].best_epoch
      bar.set_postfix(train=f"{np.mean(row['train/loss']):.2f}",
                      test=f"{np.mean(row['eval/loss']):.2f}")

  def _check_finite(self, i, epoch, mngr):
    """Counts run i's consecutive skipped steps (train.max_nonfinite_steps, 0 = no limit);
    at the limit the run fails: frozen from then on, its last good checkpoint kept. With one run
    (or when every run has failed) the program stops with a RunError."""
    limit = self.config.train.get("max_nonfinite_steps", 100)
    for skipped in (self.nonfinite[i] if self.runs.axis else self.nonfinite):
      self.streak[i] = self.streak[i] + 1 if skipped else 0
      if limit and self.streak[i] >= limit and not self.failed[i]:
        lr = self.configs[i].optim.lr
        self.failed[i] = (
            f"{self.workdirs[i]}: {self.streak[i]} consecutive training steps had a non-finite "
            f"loss or gradient in epoch {epoch} (skipped, params unchanged); the last good "
            f"checkpoint is epoch {mngr.latest_step()}; lower --config.optim.lr (now {lr}) and "
            "train again or resume")
    if self.failed[i] and all(self.failed):
      raise RunError(self.failed[i])

  def _epoch(self, epoch, active) -> dict:
    """One epoch of every active run and its evaluation; returns {metric: [R] or scalar}."""
    row = {}
    if self.schedule[epoch] != self.widths:  # Growth: pytree surgery on params and optimizer.
      self.widths = self.schedule[epoch]
      g = self.config.growth

      def surgery(params, opt_state, key):
        return growth.resize_encoder(params, opt_state, self.widths, jax.random.fold_in(key, epoch),
                                     tx=self.tx, outgoing_init=g.outgoing_init, keep=g.keep,
                                     optimizer=g.optimizer)
      # Runs of one program share the schedule: one vmapped surgery, each run with its own key.
      surgery = jax.vmap(surgery) if self.runs.axis else surgery
      params, opt_state = surgery(self.state.params, self.state.opt_state, self.keys.init)
      if g.optimizer == "reset":
        opt_state = train.set_hparams(opt_state, self.hparams)
      self.state = parallel.put(self.state.replace(params=params, opt_state=opt_state),
                                self.per_run)
      # Test loss right after the surgery, before any step: the jump growth itself causes.
      values = self.build(self.widths)[1]["eval"](self.state.params, self.device["test"],
                                                  self.keys.eval, self.hparams)
      row["eval/loss_at_growth"] = values["loss"]
    _, programs = self.build(self.widths)
    compiled_before = programs["epoch"].compile_seconds
    start = time.perf_counter()
    self.state, metrics = programs["epoch"](self.state, self.device["train"], self.keys,
                                            jnp.int32(epoch), self.hparams,
                                            self.runs.flags(active))
    metrics = jax.device_get(metrics)
    self.nonfinite = np.asarray(metrics.pop("nonfinite"), bool)  # [(R,) S]: skipped steps.
    row["train/nonfinite_steps"] = self.nonfinite.sum(-1)
    self.epoch_seconds = (time.perf_counter() - start
                          - (programs["epoch"].compile_seconds - compiled_before))
    self.seconds["train"] += self.epoch_seconds
    row |= {f"train/{k}": v for k, v in metrics.items()}
    start = time.perf_counter()
    for split in ("val", "test") if "val" in self.device else ("test",):
      values = jax.device_get(programs["eval"](self.state.params, self.device[split],
                                               self.keys.eval, self.hparams))
      row |= {f"{'eval' if split == 'test' else split}/{k}": v for k, v in values.items()}
    self.seconds["eval"] += time.perf_counter() - start
    self.param_count = models.param_count(self.state.params) // self.runs.n  # Per run.
    return row

  # -- the end: final evaluation, summaries, figures -----------------------------------------
  def finish(self, run_start) -> list[dict]:
    """Per-class test metrics, IW-NLL, summary.json and figures of every run, on the best state
    when early stopping is on, else the last."""
    c, runs = self.config, self.runs
    objective, programs = self.build(self.widths)
    state = self.best if self.patience else self.state
    start = time.perf_counter()
    per_class = {}
    if self.num_classes:
      per_class = jax.device_get(programs["eval_by_class"](
          state.params, self.device["test"], self.keys.eval, self.hparams)[1])
    self.seconds["eval"] += time.perf_counter() - start
    num_batches = len(self.host["train"]["image"]) // c.train.batch_size
    summaries = []
    for i, (ci, w) in enumerate(zip(self.configs, self.workdirs)):
      params, keys_i = runs.get(state.params, i), runs.get(self.keys, i)
      final = evaluate.final_metrics(ci, objective, params, self.device["test"], keys_i,
                                     progress=self.progress, batch_sharding=self.layout.batch)
      start = time.perf_counter()
      written = []
      if parallel.is_writer():  # On host copies: a local computation, not one over the mesh.
        written = figures.write_figures(objective, jax.device_get(params), self.host["test"],
                                        self.history[i], w / "figures", jax.device_get(keys_i.eval))
      figure_seconds = time.perf_counter() - start
      summary = self._summary(i, final, per_class, num_batches, figure_seconds, run_start)
      summary["figures"] = written
      if self.patience and not summary["stopped_epoch"] and parallel.is_writer():
        tqdm.tqdm.write(f"{w}: early stopping did not fire within train.epochs={c.train.epochs}; "
                        "the cap bound (summary stopped_epoch is null), raise --config.train."
                        "epochs to train to the stop", file=sys.stderr)
      self.logs[i].finish(summary, w / "figures", written)
      summaries.append(summary)
    return summaries

  def _summary(self, i, final, per_class, num_batches, figure_seconds, run_start) -> dict:
    c, runs, history, es = self.config, self.runs, self.history[i], self.es[i]
    best_epoch = es.best_epoch if self.patience else (history[-1]["epoch"] if history else 0)
    reported = next((r for r in history if r["epoch"] == best_epoch), {})
    compile_seconds, compiles = self.build.totals()
    median_epoch = statistics.median(r["epoch_seconds"] for r in history)
    return {
        "epoch": history[-1]["epoch"] if history else 0,
        "best_epoch": best_epoch,
        "stopped_epoch": es.stopped_epoch or None,
        **{k: v for k, v in reported.items() if "/" in k},
        **{f"eval/per_class/{k}": np.asarray(runs.get(v, i)).tolist()
           for k, v in per_class.items()},
        "encoder_widths": list(self.widths),
        **{k: v for k, v in final.items() if k not in ("compile_seconds", "compiles")},
        "param_count": self.param_count,
        "compile_seconds": compile_seconds + final["compile_seconds"],
        "compiles": compiles + final["compiles"],
        "median_epoch_seconds": median_epoch,
        "images_per_second": runs.n * num_batches * c.train.batch_size / median_epoch,
        "runs_in_program": runs.n,
        "phase_seconds": {"data": self.data_seconds, "compile": compile_seconds,
                          "train": self.seconds["train"], "eval": self.seconds["eval"],
                          "iw_nll": final.get("eval/nll_iw_seconds", 0.0),
                          "figures": figure_seconds},
        "device": f"{jax.devices()[0].platform}:{jax.devices()[0].device_kind}",
        "parallel": self.layout.describe(),
        "data_on_device": self.on_device,
        "versions": _versions(),
        "seed": self.configs[i].seed,
        "nonfinite_steps": int(sum(r.get("train/nonfinite_steps", 0) for r in history)),
        "failed": self.failed[i],
        "wall_seconds": time.perf_counter() - run_start,  # Every invocation, figures included.
    }
