"""The two equivalences every run keeps, each one test parametrized over the features that could
break it (a real-MNIST subset, tiny models):

  R runs in one compiled program (a vmapped runs axis) equal each run trained alone;
  a run cut short and resumed equals the run trained in one go, bit for bit.
"""

import json

import numpy as np
import pytest
from conftest import SMALL_TEST_SET

from vae_jax import checkpointing, compiled, early_stopping, runner

GROWING = {"model.encoder.widths": "8,4", "growth.enabled": True, "growth.every_epochs": 1,
           "growth.increments": "4,2", "growth.final_widths": "16,8", "growth.narrow_to": "4,2",
           "eval.elbo_samples": 3}
EARLY_STOPPING = {"train.epochs": 4, "eval.iw_samples": 0, "data.validation_size": 100,
                  "train.early_stopping.patience": 1, "train.early_stopping.min_delta": 0.5,
                  "train.checkpoint_every": 3}
ADAMW = {"eval.iw_samples": 0, "train.epochs": 2, "data.validation_size": 100,
         "optim.name": "adamw", "optim.weight_decay": 0.01, "model.likelihood": "mse"}
# lr 3e-3 keeps improving by > min_delta; lr 1e-6 barely moves, so it stops after epoch 2.
STOPPING_LRS = [{"optim.lr": 3e-3}, {"optim.lr": 1e-6}]

# case -> (overrides of every run, per-run overrides, rtol of the metrics)
TOGETHER = {
    "ae_adamw": ({"model.kind": "ae", **ADAMW}, [{"seed": 3}, {"seed": 5}], 2e-5),
    "vae_adamw": ({"model.kind": "vae", **ADAMW}, [{"seed": 3}, {"seed": 5}], 2e-5),
    # One vmapped surgery per event: narrow by largest norm (8,4 -> 4,2), widen (-> 8,4), Adam
    # reset; two width configurations, so few programs to compile.
    "growth": ({**GROWING, "train.epochs": 3, "growth.narrow_at": 1,
                "growth.keep": "largest_norm", "growth.optimizer": "reset",
                "eval.iw_samples": 4}, [{"seed": 0}, {"seed": 1}],
               2e-5),
    "early_stopping": (EARLY_STOPPING, STOPPING_LRS, 1e-4),
}
# case -> (overrides, per-run overrides, epochs of the cut run, epochs in all)
RESUMED = {
    "plain": ({}, [{}], 1, 3),
    "growth": (GROWING, [{}], 2, 3),
    "seeds": ({"eval.iw_samples": 0}, [{"seed": 0}, {"seed": 1}], 1, 2),
    # Cut at 3: run 1 stopped (and was checkpointed) at 2, run 0 checkpointed at 3; the group
    # resumes from 3 with run 1 frozen.
    "early_stopping": (EARLY_STOPPING, STOPPING_LRS, 3, 4),
}
SUMMARY_KEYS = ("epoch", "best_epoch", "stopped_epoch", "encoder_widths")
SUMMARY_VALUES = ("eval/loss", "eval/nll_iw", "eval/loss_at_growth", "eval/per_class/loss")


def _rows(workdir):
  rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  return [{k: v for k, v in r.items() if k not in ("epoch_seconds", "runs_in_program")}
          for r in rows]


def _configs(tiny, shared, per_run, **more):
  return [tiny(**{**SMALL_TEST_SET, **shared, **o, **more}) for o in per_run]


@pytest.mark.parametrize("case", sorted(TOGETHER))
def test_runs_in_one_program_equal_each_run_alone(tiny, tmp_path, capsys, case):
  shared, per_run, rtol = TOGETHER[case]
  configs = _configs(tiny, shared, per_run)
  together = runner.train_and_evaluate_runs(configs, [tmp_path / f"v{i}" for i in
                                                      range(len(configs))], progress=False)
  for i, config in enumerate(configs):
    alone = runner.train_and_evaluate(config, tmp_path / f"a{i}", progress=False)
    assert together[i]["runs_in_program"] == len(configs) and alone["runs_in_program"] == 1
    assert together[i]["seed"] == config.seed
    rows_v, rows_a = _rows(tmp_path / f"v{i}"), _rows(tmp_path / f"a{i}")
    assert [r.keys() for r in rows_v] == [r.keys() for r in rows_a] and rows_a
    for r_v, r_a in zip(rows_v, rows_a):
      for key, value in r_a.items():
        np.testing.assert_allclose(r_v[key], value, rtol=rtol, atol=1e-4, err_msg=key)
    for key in SUMMARY_KEYS:
      assert together[i][key] == alone[key], key
    for key in (k for k in SUMMARY_VALUES if k in alone):
      np.testing.assert_allclose(together[i][key], alone[key], rtol=rtol, err_msg=key)
  assert _rows(tmp_path / "v0") != _rows(tmp_path / "v1")  # The runs really differ.
  if case == "early_stopping":
    assert [s["stopped_epoch"] for s in together] == [None, 2]
    err = capsys.readouterr().err  # The cap bound run 0, and says so; run 1 stopped.
    assert f"{tmp_path / 'v0'}: early stopping did not fire within train.epochs=4" in err
    assert f"{tmp_path / 'v1'}:" not in err
    for i in range(2):
      rows = _rows(tmp_path / f"a{i}")
      expected = early_stopping.replay([(r["epoch"], r["val/loss"]) for r in rows], patience=1,
                                       min_delta=0.5)
      best = next(r for r in rows if r["epoch"] == together[i]["best_epoch"])
      assert (together[i]["best_epoch"], together[i]["stopped_epoch"]) == (
          expected.best_epoch, expected.stopped_epoch or None)
      assert together[i]["eval/loss"] == pytest.approx(best["eval/loss"], rel=1e-4)
      assert (tmp_path / f"v{i}" / "best" / str(best["epoch"])).is_dir()
  if case in ("ae_adamw", "vae_adamw"):
    assert ("kl" in "".join(_rows(tmp_path / "v0")[0])) == (case == "vae_adamw")


@pytest.mark.parametrize("case", sorted(RESUMED))
def test_resume_equals_uninterrupted(tiny, tmp_path, monkeypatch, case):
  shared, per_run, cut_epochs, epochs = RESUMED[case]
  full_dirs = [tmp_path / f"full{i}" for i in range(len(per_run))]
  cut_dirs = [tmp_path / f"cut{i}" for i in range(len(per_run))]
  compiled.clear_shared()  # The compilations counted below are the run's own.
  full = runner.train_and_evaluate_runs(
      _configs(tiny, shared, per_run, **{"train.epochs": epochs}), full_dirs, progress=False)
  runner.train_and_evaluate_runs(_configs(tiny, shared, per_run, **{"train.epochs": cut_epochs}),
                                 cut_dirs, progress=False)
  before = checkpointing.restore_meta(cut_dirs[0])[1]["elapsed_seconds"]
  restore_meta = checkpointing.restore_meta

  def earlier_hours(*args, **kwargs):  # As if the first invocation had taken 1e6 s more.
    epoch, meta = restore_meta(*args, **kwargs)
    return epoch, dict(meta, elapsed_seconds=meta["elapsed_seconds"] + 1e6)

  monkeypatch.setattr(checkpointing, "restore_meta", earlier_hours)
  resumed = runner.train_and_evaluate_runs(
      _configs(tiny, shared, per_run, **{"train.epochs": epochs}), cut_dirs, resume=True,
      progress=False)
  for i in range(len(per_run)):
    assert _rows(full_dirs[i]) == _rows(cut_dirs[i])
    for key in (*SUMMARY_KEYS, *SUMMARY_VALUES):
      assert full[i].get(key) == resumed[i].get(key), key
  assert len(_rows(cut_dirs[0])) == epochs
  # wall_seconds spans both invocations: the first one's time up to its checkpoint is carried.
  assert before > 0 and 1e6 + before < resumed[0]["wall_seconds"] < 1e6 + before + 600
  if case == "growth":
    rows = _rows(full_dirs[0])
    assert [r["encoder_widths"] for r in rows] == [[8, 4], [12, 6], [16, 8]]
    assert rows[0]["param_count"] < rows[2]["param_count"] and "eval/elbo_l3" in rows[0]
    # 3 width configurations x (epoch + eval program) + final per-class eval + final IW-NLL.
    assert full[0]["compiles"] == 3 * 2 + 1 + 1 and full[0]["encoder_widths"] == [16, 8]
