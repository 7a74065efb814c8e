"""The one training loop: an explicit, frozen `LoopState`, an epoch as a function of (loop, state,
epoch), and hooks for everything else (checkpoints, early stopping, the non-finite guard, logs,
growth, progress; hooks.py).

`Loop` holds what stays fixed while training (compiled programs, datasets, PRNG keys, traced
hyperparameters, the runs axis); `LoopState` what an epoch changes. `run` calls, for every epoch
from state.epoch + 1 to loop.epochs while a run is active, each hook's `before_epoch`, then
`run_epoch`, then each hook's `after_epoch` (hooks in order; clu's periodic actions are the
model). `vae_jax.fit` (api.py) and the config runner (runner.py) are the two adapters onto it.

R runs that differ only in seed and traced hyperparameters share one program: every array of the
state, keys and hparams then has a leading runs axis (R = 1: no axis).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
import dataclasses
import time
from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp
import numpy as np

from vae_jax import (compiled, early_stopping, evaluate, files, models, parallel, signals,
                     streaming, train)


class Runs:
  """Stacking and slicing along the runs axis (identity when there is none)."""

  def __init__(self, num_runs: int):
    self.n, self.axis = num_runs, num_runs > 1

  def stack(self, trees):
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees) if self.axis else trees[0]

  def get(self, tree, i: int):
    """Run i's slice of every leaf: host arrays indexed on the host, device arrays by one
    compiled program (one dispatch, not one per leaf). The tree itself without a runs axis."""
    if not self.axis:
      return tree
    if all(isinstance(a, np.ndarray) for a in jax.tree.leaves(tree)):
      return jax.tree.map(lambda a: a[i], tree)
    return _take(tree, i)

  def flags(self, values):
    """[R] bool array under the axis, else a bool scalar array."""
    return jnp.asarray(values) if self.axis else jnp.asarray(values[0])


@jax.jit
def _take(tree, i):
  return jax.tree.map(lambda a: a[i], tree)


@jax.jit
def select(mask, new, old):
  """Per run: `new` where mask else `old` (mask [R] or a scalar; leading runs axis)."""
  def pick(a, b):
    return jnp.where(mask.reshape(mask.shape + (1,) * (a.ndim - mask.ndim)), a, b)
  return jax.tree.map(pick, new, old)


def copy_state(runs: Runs, state):
  """A fresh copy of `state` (programs donate their input state)."""
  return select(runs.flags([True] * runs.n), state, state)


def _init_program(objective, tx, image_shape, runs_axis: bool):
  """keys.init, hparams -> fresh TrainState of every run, as one jitted program (vmapped over
  the runs axis): the optimizer's init and the hparams would otherwise run as eager operations,
  one dispatch (and, the first time, one small compilation) each."""
  init = lambda k, h: train.init_state(objective, tx, image_shape, k, h)  # noqa: E731
  return jax.jit(jax.vmap(init) if runs_axis else init)


class Programs:
  """The objective and compiled programs ('epoch', 'eval', 'eval_by_class') per encoder-width
  configuration, built on demand (growth changes the widths; without growth there is one) and
  shared with the earlier runs of this process that had equal objectives, optimizer and sizes
  (compiled.shared: no second trace or compilation).

  Args:
    make_objective: widths (tuple or None) -> objective.
    on_device: the datasets are device arrays (streaming.make_device_programs) or host arrays
      streamed in chunks (streaming.make_programs).
  """

  def __init__(self, make_objective: Callable, tx, *, batch_size: int, eval_batch_size: int,
               elbo_samples: int = 0, num_classes: int = 1, runs_axis: bool = False,
               steps_per_call: int = 0, layout=None, on_device: bool = True):
    self.make_objective, self.tx, self.cache, self.before = make_objective, tx, {}, {}
    self.kwargs = dict(batch_size=batch_size, eval_batch_size=eval_batch_size,
                       elbo_samples=elbo_samples, num_classes=max(num_classes, 1),
                       runs_axis=runs_axis, steps_per_call=steps_per_call, layout=layout)
    self.make = streaming.make_device_programs if on_device else streaming.make_programs

  def __call__(self, widths):
    if widths not in self.cache:
      objective = self.make_objective(widths)
      programs = compiled.shared(
          lambda: self.make(objective, self.tx, **self.kwargs), "programs", self.make, objective,
          self.tx, tuple(sorted(self.kwargs.items())))
      self.cache[widths] = (objective, programs)
      self.before.update({id(p): (p.compile_seconds, p.compiles) for p in programs.values()})
    return self.cache[widths]

  def totals(self) -> tuple[float, int]:
    """(compile seconds, compilations) this instance's runs caused (programs shared with an
    earlier run of this process count only what they compiled since)."""
    programs = [p for _, ps in self.cache.values() for p in ps.values()]
    return (sum(p.compile_seconds - self.before[id(p)][0] for p in programs),
            sum(p.compiles - self.before[id(p)][1] for p in programs))


@dataclasses.dataclass(frozen=True)
class Loop:
  """What stays fixed while the loop runs.

  Attributes:
    programs: a `Programs`. tx: the optax optimizer. keys: train.RunKeys, hparams: dict of
      float32 scalars (both [R] under a runs axis). runs: `Runs`. layout: parallel.Layout.
    data: {'train', optional 'val', optional 'test'} -> {"image": uint8 or float32
      [N, H, W, C], "label": int32 [N]}, on the device or on the host (see Programs).
    image_shape: (H, W, C). epochs: the last epoch to train.
  """
  programs: Programs
  tx: Any
  keys: Any
  hparams: Any
  runs: Runs
  layout: parallel.Layout
  data: Mapping[str, Any]
  image_shape: tuple[int, ...]
  epochs: int

  @property
  def per_run(self):
    """Sharding of per-run arrays (state, keys, hparams)."""
    return self.layout.state(self.runs.axis)

  def init_state(self, widths) -> train.TrainState:
    """Fresh train state of every run (params from keys.init), placed on the devices."""
    objective = self.programs(widths)[0]
    init = compiled.shared(lambda: _init_program(objective, self.tx, self.image_shape,
                                                 self.runs.axis),
                           "init", objective, self.tx, self.image_shape, self.runs.axis)
    return parallel.put(init(self.keys.init, self.hparams), self.per_run)

  def abstract_state(self, widths):
    """The restore target (jax.eval_shape) of one run's train state."""
    return evaluate.abstract_state(self.programs(widths)[0], self.tx, self.image_shape,
                                   self.runs.get(self.hparams, 0))


@dataclasses.dataclass(frozen=True)
class LoopState:
  """Everything an epoch changes; replaced, never mutated.

  Attributes:
    epoch: the last finished epoch (0 before training).
    train: train.TrainState (leading runs axis when R > 1).
    widths: encoder hidden widths the programs are built for (None: fixed model).
    history: per run, the rows of its finished epochs (metrics.jsonl's lines).
    stopping: per run, its early_stopping.EarlyStopping (never stops without early stopping).
    failed: per run, None or why it stopped on non-finite steps.
    best: the train state of each run's best epoch (early stopping), or None.
    pending: metrics measured before this epoch's steps (e.g. 'eval/loss_at_growth'), merged
      into its rows.
    seconds: {'train', 'eval'}: seconds spent in this invocation (compilation excluded).
    elapsed: wall seconds of earlier invocations of a resumed run.
  """
  epoch: int
  train: Any
  widths: tuple[int, ...] | None
  history: tuple[tuple[dict, ...], ...]
  stopping: tuple[early_stopping.EarlyStopping, ...]
  failed: tuple[str | None, ...]
  best: Any = None
  pending: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  seconds: Mapping[str, float] = dataclasses.field(
      default_factory=lambda: {"train": 0.0, "eval": 0.0})
  elapsed: float = 0.0

  @property
  def active(self) -> tuple[bool, ...]:
    """Per run: still training (neither stopped early nor failed)."""
    return tuple(not es.stopped and not f for es, f in zip(self.stopping, self.failed))

  def replace(self, **changes) -> "LoopState":
    return dataclasses.replace(self, **changes)


def initial_state(loop: Loop, widths=None, fresh: bool = True) -> LoopState:
  """A fresh LoopState: epoch 0, every run initialized from its keys (fresh=False: no train
  state yet, the skeleton hooks.resume_state fills from checkpoints)."""
  n = loop.runs.n
  return LoopState(epoch=0, train=loop.init_state(widths) if fresh else None, widths=widths,
                   history=((),) * n, stopping=(early_stopping.EarlyStopping(),) * n,
                   failed=(None,) * n)


def reported_epoch(history, stopping, early_stopping: bool) -> tuple[int, dict]:
  """(epoch, its row) a run reports: with early stopping its best epoch, else its last (0 and
  {} before any epoch)."""
  epoch = stopping.best_epoch if early_stopping else (history[-1]["epoch"] if history else 0)
  return epoch, next((r for r in history if r["epoch"] == epoch), {})


class EpochResult(NamedTuple):
  """What `run_epoch` measured.

  rows: per run, its metrics row (None for a run that did not train this epoch).
  nonfinite: bool [R, S]: the skipped (non-finite) steps of every run, in order.
  """
  epoch: int
  rows: tuple[dict | None, ...]
  nonfinite: np.ndarray


class Hook(Protocol):
  """One part of the loop. Each method returns the (possibly replaced) state."""

  def start(self, loop: Loop, state: LoopState) -> LoopState: ...
  def before_epoch(self, loop: Loop, state: LoopState, epoch: int) -> LoopState: ...
  def after_epoch(self, loop: Loop, state: LoopState, result: EpochResult) -> LoopState: ...
  def close(self) -> None: ...


class BaseHook:
  """A hook that does nothing; subclasses override what they need."""

  def start(self, loop: Loop, state: LoopState) -> LoopState:
    del loop
    return state

  def before_epoch(self, loop: Loop, state: LoopState, epoch: int) -> LoopState:
    del loop, epoch
    return state

  def after_epoch(self, loop: Loop, state: LoopState, result: EpochResult) -> LoopState:
    del loop, result
    return state

  def close(self) -> None:
    pass


def evaluate_splits(loop: Loop, params, widths) -> dict:
  """{'val/<metric>', 'eval/<metric>'}: exact means over the 'val' and 'test' datasets (those
  present), [R] arrays under a runs axis."""
  row = {}
  program = loop.programs(widths)[1]["eval"]
  for split, prefix in (("val", "val"), ("test", "eval")):
    if split in loop.data:
      values = jax.device_get(program(params, loop.data[split], loop.keys.eval, loop.hparams))
      row |= {f"{prefix}/{k}": v for k, v in values.items()}
  return row


def run_epoch(loop: Loop, state: LoopState, epoch: int) -> tuple[LoopState, EpochResult]:
  """Epoch `epoch` of every active run: its steps (one program call), then its evaluation; the
  rows are appended to state.history. Pure but for the clock."""
  active = state.active
  program = loop.programs(state.widths)[1]["epoch"]
  compiled_before = program.compile_seconds
  start = time.perf_counter()
  files.fault_point("epoch")
  train_state, metrics = program(state.train, loop.data["train"], loop.keys, jnp.int32(epoch),
                                 loop.hparams, loop.runs.flags(active))
  metrics = jax.device_get(metrics)
  nonfinite = np.asarray(metrics.pop("nonfinite"), bool)  # [(R,) S]: skipped steps.
  epoch_seconds = time.perf_counter() - start - (program.compile_seconds - compiled_before)
  row = dict(state.pending) | {"train/nonfinite_steps": nonfinite.sum(-1)}
  row |= {f"train/{k}": v for k, v in metrics.items()}
  start = time.perf_counter()
  row |= evaluate_splits(loop, train.eval_params(train_state.params, train_state.opt_state),
                         state.widths)
  eval_seconds = time.perf_counter() - start
  runs, row = loop.runs, jax.device_get(row)
  param_count = models.param_count(train_state.params) // runs.n  # Per run.
  rows = []
  for i in range(runs.n):
    if not active[i]:
      rows.append(None)
      continue
    r = {"epoch": epoch, **{k: float(runs.get(v, i)) for k, v in row.items()}}
    if state.widths is not None:
      r["encoder_widths"] = list(state.widths)
    rows.append(r | {"param_count": param_count, "epoch_seconds": epoch_seconds,
                     "runs_in_program": runs.n})
  history = tuple(h + (r,) if r is not None else h for h, r in zip(state.history, rows))
  seconds = {"train": state.seconds["train"] + epoch_seconds,
             "eval": state.seconds["eval"] + eval_seconds}
  state = state.replace(epoch=epoch, train=train_state, history=history, pending={},
                        seconds=seconds)
  return state, EpochResult(epoch, tuple(rows), nonfinite.reshape(runs.n, -1))


def run(loop: Loop, state: LoopState, hooks: Sequence[Hook]) -> LoopState:
  """The loop: hooks' `start`, then epochs state.epoch + 1 .. loop.epochs until no run is
  active, each between the hooks' `before_epoch` and `after_epoch`; then every hook's `close`
  (also when this raises).

  Returns:
    the final state.
  """
  try:
    for hook in hooks:
      state = hook.start(loop, state)
    for epoch in range(state.epoch + 1, loop.epochs + 1):
      signals.check()  # A Ctrl-C a C callback swallowed stops here.
      if not any(state.active):
        break
      for hook in hooks:
        state = hook.before_epoch(loop, state, epoch)
      state, result = run_epoch(loop, state, epoch)
      for hook in hooks:
        state = hook.after_epoch(loop, state, result)
    return state
  finally:
    for hook in hooks:
      hook.close()
