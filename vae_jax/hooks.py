"""The hooks of the training loop (loop.py): each one part of what happens around the epochs, with
one small interface (`start`, `before_epoch`, `after_epoch`, `close`; see loop.Hook).

  Growth            encoder width surgery on params and optimizer state before an epoch
  MetricsLog        config.json, metrics.jsonl and TensorBoard events of every run directory
  NonFiniteGuard    fails a run after too many consecutive non-finite steps
  EarlyStopping     per-run early stopping and the state of each run's best epoch
  Checkpointer      orbax checkpoints of the latest and best epochs; resume from them
  Progress          a tqdm bar over the epochs

Write your own by subclassing loop.BaseHook; `vae_jax.fit(..., hooks=[...])` runs it after these.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
import json
from pathlib import Path
import shutil
import sys
import time

import jax
import numpy as np
import tqdm

from vae_jax import checkpointing, early_stopping, files, growth, parallel, run_log, train
from vae_jax.errors import RunError
from vae_jax.loop import BaseHook, EpochResult, Loop, LoopState, copy_state, select


class Growth(BaseHook):
  """Changes the encoder widths when `schedule[epoch]` differs from the state's: pads or narrows
  the param pytree and the optimizer state (growth.resize_encoder, one vmapped surgery for every
  run, each with its own key), then measures the test loss before any step
  ('eval/loss_at_growth': the jump growth itself causes).

  Args:
    schedule: {epoch: widths} for epochs 1..epochs (see runner.widths_by_epoch).
    outgoing_init, keep, optimizer: the config's growth section (growth.resize_encoder).
  """

  def __init__(self, schedule: dict, *, outgoing_init: str, keep: str, optimizer: str):
    self.schedule, self.outgoing_init, self.keep = schedule, outgoing_init, keep
    self.optimizer = optimizer

  def before_epoch(self, loop: Loop, state: LoopState, epoch: int) -> LoopState:
    widths = self.schedule[epoch]
    if widths == state.widths:
      return state

    def surgery(params, opt_state, key):
      return growth.resize_encoder(params, opt_state, widths, jax.random.fold_in(key, epoch),
                                   tx=loop.tx, outgoing_init=self.outgoing_init, keep=self.keep,
                                   optimizer=self.optimizer)
    surgery = jax.vmap(surgery) if loop.runs.axis else surgery
    params, opt_state = surgery(state.train.params, state.train.opt_state, loop.keys.init)
    if self.optimizer == "reset":
      opt_state = train.set_hparams(opt_state, loop.hparams)
    new = parallel.put(state.train.replace(params=params, opt_state=opt_state), loop.per_run)
    values = loop.programs(widths)[1]["eval"](train.eval_params(new.params, new.opt_state),
                                              loop.data["test"], loop.keys.eval, loop.hparams)
    return state.replace(train=new, widths=widths,
                         pending=dict(state.pending, **{"eval/loss_at_growth": values["loss"]}))


class MetricsLog(BaseHook):
  """The logs of every run directory (run_log.RunLog): config.json and the kept rows of
  metrics.jsonl at the start, one row per epoch after it (and TensorBoard scalars).

  Args:
    logs: one run_log.RunLog per run, owned by the caller, who writes the final summary through
      them after the loop and closes them. configs: what each run's `filename` holds (a
      ConfigDict, or a JSON-able dict for a fit's fit.json).
  """

  def __init__(self, logs: Sequence[run_log.RunLog], configs: Sequence,
               filename: str = "config.json"):
    self.logs, self.configs, self.filename = list(logs), list(configs), filename

  def start(self, loop: Loop, state: LoopState) -> LoopState:
    for log, config, rows in zip(self.logs, self.configs, state.history):
      log.start(config, list(rows), self.filename)
    return state

  def after_epoch(self, loop: Loop, state: LoopState, result: EpochResult) -> LoopState:
    for log, row in zip(self.logs, result.rows):
      if row is not None:
        log.epoch(row)
    return state


class NonFiniteGuard(BaseHook):
  """Counts each run's consecutive skipped (non-finite) steps; at `limit` (0 = no limit) the run
  fails: frozen from then on (state.failed says why). When every run has failed, RunError.

  Args:
    message: (run index, streak, epoch) -> the one-line reason stored in state.failed.
  """

  def __init__(self, limit: int, message: Callable[[int, int, int], str] | None = None):
    self.limit, self.message, self.streak = limit, message, None

  def start(self, loop: Loop, state: LoopState) -> LoopState:
    self.streak = [0] * loop.runs.n
    return state

  def after_epoch(self, loop: Loop, state: LoopState, result: EpochResult) -> LoopState:
    failed = list(state.failed)
    for i, row in enumerate(result.rows):
      if row is None:
        continue
      for skipped in result.nonfinite[i]:
        self.streak[i] = self.streak[i] + 1 if skipped else 0
        if self.limit and self.streak[i] >= self.limit and not failed[i]:
          failed[i] = (self.message(i, self.streak[i], result.epoch) if self.message else
                       f"run {i}: {self.streak[i]} consecutive training steps had a non-finite "
                       f"loss or gradient in epoch {result.epoch}; lower the learning rate")
      if failed[i] and all(failed):
        raise RunError(failed[i])
    return state.replace(failed=tuple(failed))


class EarlyStopping(BaseHook):
  """Per-run early stopping on `metric` (lower is better; early_stopping.update): a run stops
  `patience` epochs after its last improvement by more than `min_delta`; state.best holds each
  run's best-epoch train state (the state the run reports).

  Raises (after_epoch):
    RunError: `metric` is not a metric of the rows.
  """

  def __init__(self, patience: int, metric: str, min_delta: float = 0.0):
    self.patience, self.metric, self.min_delta = patience, metric, min_delta

  def replay(self, history) -> tuple[early_stopping.EarlyStopping, ...]:
    """The early-stopping state of each run after the rows of its history (resume)."""
    return tuple(early_stopping.replay([(r["epoch"], r[self.metric]) for r in rows],
                                       patience=self.patience, min_delta=self.min_delta)
                 for rows in history)

  def start(self, loop: Loop, state: LoopState) -> LoopState:
    if state.best is None:  # Fresh: the initial state is the best so far.
      state = state.replace(best=copy_state(loop.runs, state.train))
    return state

  def after_epoch(self, loop: Loop, state: LoopState, result: EpochResult) -> LoopState:
    stopping, improved = list(state.stopping), [False] * loop.runs.n
    for i, row in enumerate(result.rows):
      if row is None:
        continue
      if self.metric not in row:
        raise RunError(f"train.early_stopping.metric={self.metric} is not a metric of this run; "
                       f"use one of {', '.join(k for k in row if '/' in k)}")
      stopping[i], improved[i] = early_stopping.update(
          stopping[i], row[self.metric], result.epoch, patience=self.patience,
          min_delta=self.min_delta)
    best = state.best
    if any(improved):
      best = select(loop.runs.flags(improved), state.train, state.best)
    return state.replace(stopping=tuple(stopping), best=best)


class Checkpointer(BaseHook):
  """Orbax checkpoints of every run directory: <workdir>/ckpt/<epoch>/ (the newest `keep`, at
  least 2; None = all) every `every` epochs, at the last epoch, at a run's stop and when
  `minutes` have passed since the last one (0 = never by time); with early stopping also
  <workdir>/best/<epoch>/ (the newest 2), written with ckpt/ so that a resumed run always finds
  the best epoch of its metrics.

  An epoch's saves run in the background while the next epoch trains; they are committed
  (checkpointing.commit: every run's marker once all of the epoch's saves are complete) at the
  next save and at `close`. A kill at any instant leaves each run its last committed epoch, and
  at most the runs' markers of one epoch apart (resume_state rolls a program's runs back together).

  `start` on a fresh state (epoch 0) deletes a killed run's stale checkpoint directories and
  writes an epoch-0 marker; on a resumed state it deletes what lies beyond the resumed epochs.
  """

  def __init__(self, workdirs: Sequence[Path], *, keep: int | None = 2, every: int = 1,
               minutes: float = 0.0, stopping: EarlyStopping | None = None):
    self.workdirs, self.keep, self.every = [Path(w) for w in workdirs], keep, every
    self.minutes, self.stopping = minutes, stopping
    self.latest, self.best, self.saved_at, self.best_saved = [], [], 0.0, []
    self.started, self.pending = time.perf_counter(), {}

  def last_saved(self, i: int) -> int | None:
    """Epoch of run i's newest checkpoint written (or being written) by this process."""
    return self.latest[i].latest_step() if self.latest else None

  def start(self, loop: Loop, state: LoopState) -> LoopState:
    self.started = self.saved_at = time.perf_counter()
    self.best_saved = [es.best_epoch for es in state.stopping]
    best = [b if self.stopping else None for b in self.best_saved]
    if parallel.is_writer():
      for i, w in enumerate(self.workdirs):
        epoch = state.history[i][-1]["epoch"] if state.history[i] else 0
        if state.epoch == 0:  # A killed run's, never committed: never reuse them.
          for d in (checkpointing.LATEST, checkpointing.BEST):
            shutil.rmtree(w / d, ignore_errors=True)
        else:  # Saves newer than the epochs resumed from: they would be saved again.
          checkpointing.drop_uncommitted(w, epoch, best[i])
        checkpointing.commit(w, epoch, best[i])
    # The committed epoch must survive the next (uncommitted) save.
    self.latest = [checkpointing.manager(w, max_to_keep=self.keep and max(self.keep, 2))
                   for w in self.workdirs]
    if self.stopping:
      self.best = [checkpointing.manager(w, directory=checkpointing.BEST, max_to_keep=2)
                   for w in self.workdirs]
    return state

  def _commit(self) -> None:
    """Waits for the pending saves, then writes each saved run's commit marker."""
    if not self.pending:
      return
    for mngr in self.latest + self.best:
      mngr.wait_until_finished()
    if parallel.is_writer():
      for i, (epoch, best) in sorted(self.pending.items()):
        checkpointing.commit(self.workdirs[i], epoch, best)
    self.pending = {}

  def after_epoch(self, loop: Loop, state: LoopState, result: EpochResult) -> LoopState:
    epoch = result.epoch
    meta = {"epoch": epoch, "elapsed_seconds": state.elapsed + time.perf_counter() - self.started}
    if state.widths is not None:
      meta["encoder_widths"] = list(state.widths)
    due = (epoch % self.every == 0 or epoch == loop.epochs
           or time.perf_counter() - self.saved_at >= 60 * self.minutes > 0)
    saving = {}
    for i, row in enumerate(result.rows):
      if row is None or state.failed[i]:  # A failed run keeps its last good checkpoint.
        continue
      es = state.stopping[i]
      if due or es.stopped:
        if not saving:
          self._commit()  # The previous saves, before any new one may drop an older step.
        self.saved_at = time.perf_counter()
        checkpointing.save(self.latest[i], epoch, loop.runs.get(state.train, i), meta)
        files.fault_point("ckpt")
        if self.stopping and es.best_epoch > self.best_saved[i]:
          checkpointing.save(self.best[i], es.best_epoch, loop.runs.get(state.best, i),
                             dict(meta, epoch=es.best_epoch))
          files.fault_point("best")
          self.best_saved[i] = es.best_epoch
        saving[i] = (epoch, self.best_saved[i] if self.stopping else None)
    self.pending = saving or self.pending  # Committed only once every run's save is issued.
    return state

  def close(self) -> None:
    if self.latest:
      self._commit()
    for mngr in self.latest + self.best:
      mngr.close()  # Waits for its saves to finish.
    self.latest, self.best = [], []


def resume_state(loop: Loop, state: LoopState, workdirs: Sequence[Path],
                 stopping: EarlyStopping | None = None) -> LoopState:
  """`state` continued from the run directories: every run from its newest good committed
  checkpoint (each bad one named in a warning on stderr), its rows of metrics.jsonl up to that
  epoch, its early-stopping state (replayed by `stopping`) and its best state. The runs still
  training continue together: a kill between two runs' commit markers left some of them an epoch
  ahead, and those roll back to the epoch all of them completed.

  Raises:
    checkpointing.CheckpointError: no good checkpoint, an unreadable commit marker, or best/
      does not match metrics.jsonl.
    RunError: a metrics.jsonl line that is not a row.
  """
  workdirs = [Path(w) for w in workdirs]
  bounds = [None] * len(workdirs)
  while True:
    restored = [_newest_good(loop, w, state.widths, b) for w, b in zip(workdirs, bounds)]
    starts = [epoch for epoch, _, _ in restored]
    history = tuple(tuple(read_metrics(w / "metrics.jsonl", s)) for w, s in zip(workdirs, starts))
    replayed = stopping.replay(history) if stopping else state.stopping
    running = [i for i, es in enumerate(replayed) if not es.stopped]
    common = min((starts[i] for i in running), default=None)
    ahead = [i for i in running if starts[i] != common]
    if not ahead:
      break
    for i in ahead:
      bounds[i] = common
  meta = restored[0][1]
  widths = meta.get("encoder_widths")
  widths = state.widths if widths is None else tuple(widths)
  state = state.replace(
      epoch=max(starts) if common is None else common, widths=widths, history=history,
      stopping=replayed, elapsed=meta.get("elapsed_seconds", 0.0),
      train=parallel.put(loop.runs.stack([s for _, _, s in restored]), loop.per_run))
  if not stopping:
    return state
  abstract = loop.abstract_state(widths)
  best = []
  for w, es in zip(workdirs, replayed):
    if es.best_epoch not in checkpointing.all_epochs(w, checkpointing.BEST):
      raise checkpointing.CheckpointError(
          f"{w}/{checkpointing.BEST} does not hold the best epoch {es.best_epoch} of its "
          "metrics.jsonl; delete that run directory or train it into another --workdir")
    best.append(checkpointing.restore_state(
        w, es.best_epoch, abstract, directory=checkpointing.BEST,
        sharding=loop.layout.replicated, expected_digest=checkpointing.restore_meta(
            w, es.best_epoch, directory=checkpointing.BEST)[1].get("digest")))
  return state.replace(best=parallel.put(loop.runs.stack(best), loop.per_run))


def _newest_good(loop: Loop, workdir: Path, widths, upto: int | None = None):
  """(epoch, meta, state) of the newest committed checkpoint of workdir (up to epoch `upto`) that
  reads and matches its digest (the newest first); each one skipped is named in a one-line
  warning on stderr.

  Raises:
    checkpointing.CheckpointError: none is good.
  """
  skipped = []
  for epoch in checkpointing.all_epochs(workdir, upto=upto):
    try:
      _, meta = checkpointing.restore_meta(workdir, epoch)
      saved = meta.get("encoder_widths")
      abstract = loop.abstract_state(widths if saved is None else tuple(saved))
      state = checkpointing.restore_state(workdir, epoch, abstract,
                                          sharding=loop.layout.replicated,
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


def read_metrics(path: Path, upto_epoch: int) -> list[dict]:
  """The rows of a metrics.jsonl up to `upto_epoch` ([] when there is no file)."""
  if not path.exists():
    return []
  rows = []
  for n, line in enumerate(path.read_text().splitlines(), 1):
    try:
      row = json.loads(line) if line.strip() else None
      if row is not None and int(row["epoch"]) <= upto_epoch:
        rows.append(row)
    except (ValueError, KeyError, TypeError):
      raise RunError(f"{path} line {n} is not a metrics row; restore that file or delete its "
                     "run directory and train afresh") from None
  return rows


class Progress(BaseHook):
  """A tqdm bar over the epochs (train and test loss of the epoch, mean over the runs)."""

  def __init__(self, enabled: bool = True):
    self.enabled, self.bar = enabled, None

  def start(self, loop: Loop, state: LoopState) -> LoopState:
    self.bar = tqdm.tqdm(total=loop.epochs, initial=state.epoch, desc="train", unit="epoch",
                         disable=not self.enabled, dynamic_ncols=True)
    return state

  def after_epoch(self, loop: Loop, state: LoopState, result: EpochResult) -> LoopState:
    rows = [r for r in result.rows if r is not None]
    self.bar.set_postfix({name: f"{np.mean([r[key] for r in rows]):.2f}"
                          for name, key in (("train", "train/loss"), ("test", "eval/loss"))
                          if key in rows[0]}, refresh=False)
    self.bar.update(1)
    return state

  def close(self) -> None:
    if self.bar is not None:
      self.bar.close()
      self.bar = None
