"""Reliability: non-finite steps skipped and counted, runs that diverge fail alone."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vae_jax import checkpointing, evaluate, runner, train


class _Poisoned:
  """The objective with a NaN loss from optimizer step `start` on, for runs whose beta > 1."""

  def __init__(self, objective, state, hparams, start):
    self._objective, self._bad = objective, (state.step >= start) & (hparams["beta"] > 1.0)

  def __getattr__(self, name):
    return getattr(self._objective, name)

  def terms(self, params, batch, key, hparams):
    terms = self._objective.terms(params, batch, key, hparams)
    return terms | {"loss": jnp.where(self._bad, jnp.nan, terms["loss"])}


@pytest.fixture
def poison_from_step(monkeypatch):
  real = train.train_step

  def poisoned(start):
    def step(state, batch, key, hparams, *, objective, tx):
      return real(state, batch, key, hparams, tx=tx,
                  objective=_Poisoned(objective, state, hparams, start))
    monkeypatch.setattr(train, "train_step", step)
  return poisoned


def _rows(workdir):
  return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def test_nonfinite_steps_are_skipped_counted_and_stop_the_run(tiny, tmp_path, poison_from_step):
  """8 steps per epoch; NaN from step 12: 4 skipped in epoch 2, the 6th in a row in epoch 3."""
  poison_from_step(12)
  config = tiny(**{"train.epochs": 4, "objective.beta": 2.0, "train.max_nonfinite_steps": 6,
                   "eval.iw_samples": 0})
  with pytest.raises(runner.RunError, match=r"6 consecutive training steps had a non-finite "
                     r"loss or gradient in epoch 3 .* last good checkpoint is epoch 2; lower "
                     r"--config.optim.lr"):
    runner.train_and_evaluate(config, tmp_path / "r", progress=False)
  rows = _rows(tmp_path / "r")
  assert [r["train/nonfinite_steps"] for r in rows] == [0, 4, 8]
  assert checkpointing.latest_epoch(tmp_path / "r") == 2  # Epoch 3 (failed) was not saved.
  _, _, params, _, _ = evaluate.restore_run(tmp_path / "r")
  assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(params))


def test_a_diverging_run_fails_alone_under_the_runs_axis(tiny, tmp_path, poison_from_step):
  poison_from_step(12)
  make = lambda beta: tiny(**{"train.epochs": 3, "objective.beta": beta,  # noqa: E731
                              "train.max_nonfinite_steps": 6, "eval.iw_samples": 4})
  ok, bad = runner.train_and_evaluate_runs([make(1.0), make(2.0)],
                                           [tmp_path / "ok", tmp_path / "bad"], progress=False)
  assert ok["failed"] is None and ok["nonfinite_steps"] == 0 and ok["epoch"] == 3
  assert "epoch 3" in bad["failed"] and bad["nonfinite_steps"] == 4 + 8
  alone = runner.train_and_evaluate(make(1.0), tmp_path / "alone", progress=False)
  np.testing.assert_allclose(ok["eval/loss"], alone["eval/loss"], rtol=1e-5)
  assert np.isfinite(bad["eval/loss"]) and checkpointing.latest_epoch(tmp_path / "bad") == 2
  assert [r["epoch"] for r in _rows(tmp_path / "bad")] == [1, 2, 3]


def test_skipped_step_leaves_the_state_unchanged(tiny):
  from vae_jax import objectives  # pylint: disable=g-import-not-at-top
  config = tiny()
  objective = objectives.from_config(config, (28, 28, 1))
  tx = train.make_optimizer("adam")
  h = train.hparams_from_config(config)
  state = train.init_state(objective, tx, (28, 28, 1), jax.random.key(0), h)
  batch = {"image": jnp.zeros((4, 28, 28, 1), jnp.uint8), "label": jnp.zeros((4,), jnp.int32)}
  new, metrics = train.train_step(state, batch, jax.random.key(1), h | {"lr": jnp.float32(jnp.nan)},
                                  objective=objective, tx=tx)
  assert bool(metrics["nonfinite"])  # A NaN learning rate: finite grads, non-finite updates.
  assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), new, state))
