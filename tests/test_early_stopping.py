"""Early stopping on scripted metric sequences."""

import pytest

from vae_jax import early_stopping as es


def _feed(values, patience, min_delta=0.0):
  state, improved = es.EarlyStopping(), []
  for epoch, v in enumerate(values, 1):
    if state.stopped:
      break
    state, up = es.update(state, v, epoch, patience=patience, min_delta=min_delta)
    improved.append(up)
  return state, improved


def test_picks_the_best_epoch_and_stops_after_patience():
  state, improved = _feed([5.0, 4.0, 3.0, 3.2, 2.9, 3.0, 3.1, 3.5, 1.0], patience=3)
  assert state.best_epoch == 5 and state.best == 2.9
  assert state.stopped_epoch == 8  # Epochs 6, 7, 8 without improvement.
  assert improved == [True, True, True, False, True, False, False, False]


def test_min_delta_ignores_small_improvements():
  state, _ = _feed([10.0, 9.8, 9.7, 9.6, 9.0], patience=2, min_delta=0.5)
  assert state.best_epoch == 1 and state.stopped_epoch == 3


def test_nan_never_improves_and_patience_zero_never_stops():
  state, _ = _feed([3.0, float("nan"), 2.0] + [4.0] * 20, patience=0)
  assert state.best_epoch == 3 and not state.stopped


def test_replay_recovers_the_state_and_stopped_state_refuses_updates():
  values = [(1, 5.0), (2, 6.0), (3, 7.0)]
  state = es.replay(values, patience=2)
  assert state.stopped_epoch == 3 and state.best_epoch == 1
  with pytest.raises(ValueError, match="already stopped"):
    es.update(state, 1.0, 4, patience=2)
