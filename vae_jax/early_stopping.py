"""Early stopping as a pure host-side state machine, one per run (each run of a vmapped program
stops on its own)."""

from __future__ import annotations

import dataclasses
import math

from vae_jax.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class EarlyStopping:
  """best: lowest metric value so far; best_epoch: its epoch (0 = none yet); bad_epochs: epochs
  since the last improvement; stopped_epoch: the epoch training stopped after (0 = running)."""
  best: float = math.inf
  best_epoch: int = 0
  bad_epochs: int = 0
  stopped_epoch: int = 0

  @property
  def stopped(self) -> bool:
    return self.stopped_epoch > 0


def update(state: EarlyStopping, value: float, epoch: int, *, patience: int,
           min_delta: float = 0.0) -> tuple[EarlyStopping, bool]:
  """Feeds the metric (lower is better) of `epoch`; returns (new state, improved).

  An epoch improves when value < best - min_delta (a NaN never does); after `patience` epochs in
  a row without improvement the run stops (patience 0: never stops, the best epoch is still
  tracked). Same rule as Keras / PyTorch Lightning's EarlyStopping with mode='min'.

  Raises:
    ValueError: feeding a stopped state.
  """
  if state.stopped:
    raise ValueError(f"run already stopped after epoch {state.stopped_epoch}")
  if value < state.best - min_delta:
    return dataclasses.replace(state, best=value, best_epoch=epoch, bad_epochs=0), True
  bad = state.bad_epochs + 1
  stopped = epoch if patience and bad >= patience else 0
  return dataclasses.replace(state, bad_epochs=bad, stopped_epoch=stopped), False


def replay(values: list[tuple[int, float]], *, patience: int,
           min_delta: float = 0.0) -> EarlyStopping:
  """The state after feeding (epoch, value) pairs in order (how a resumed run recovers it)."""
  state = EarlyStopping()
  for epoch, value in values:
    state, _ = update(state, value, epoch, patience=patience, min_delta=min_delta)
  return state


def validate_config(config) -> None:
  """Checks train.early_stopping: a lower-is-better metric, a validation split for a val/ metric,
  no growth (only with patience > 0).

  Raises:
    ConfigError: naming the bad field and the fix.
  """
  es = config.train.early_stopping
  if not es.patience:
    return
  if es.metric.split("/")[0] not in ("train", "val", "eval") or "elbo" in es.metric:
    raise ConfigError(f"train.early_stopping.metric={es.metric} must be a lower-is-better metric "
                      "such as val/loss, val/recon or eval/loss; set it to one of those")
  if es.metric.startswith("val/") and not (config.data.validation_size
                                           or config.data.validation_fraction):
    raise ConfigError(f"train.early_stopping.metric={es.metric} needs a validation split; set "
                      "--config.data.validation_size (e.g. 5000) or another metric")
  if config.growth.enabled:
    raise ConfigError("train.early_stopping with growth.enabled is not supported (the best state "
                      "may have other widths); set --config.train.early_stopping.patience=0")
