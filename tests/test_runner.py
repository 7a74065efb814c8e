"""End to end on a real-MNIST subset: the run-directory contract, determinism, resume."""

import json
from pathlib import Path

import numpy as np
import pytest

from vae_jax import checkpointing, config as config_lib, early_stopping, runner

METRIC_KEYS = {"epoch", "train/loss", "eval/loss", "eval/recon", "eval/kl", "epoch_seconds"}
SUMMARY_KEYS = {"eval/loss", "eval/nll_iw", "eval/nll_iw_k", "param_count", "compile_seconds",
                "median_epoch_seconds", "images_per_second", "device", "versions", "seed",
                "best_epoch", "stopped_epoch", "runs_in_program", "phase_seconds"}


def _metrics(workdir):
  rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  return [{k: v for k, v in r.items() if k != "epoch_seconds"} for r in rows]


def test_one_epoch_run_writes_the_run_directory_contract(tiny, tmp_path):
  workdir = tmp_path / "run"
  summary = runner.train_and_evaluate(tiny(**{"model.latent_dim": 2}), workdir, progress=False)
  assert json.loads((workdir / "config.json").read_text())["model"]["latent_dim"] == 2
  rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert len(rows) == 1 and METRIC_KEYS <= set(rows[0])
  on_disk = json.loads((workdir / "summary.json").read_text())
  assert SUMMARY_KEYS <= set(on_disk) and on_disk == json.loads(json.dumps(summary))
  assert on_disk["eval/nll_iw_k"] == 8 and on_disk["eval/nll_iw"] < on_disk["eval/loss"] + 5
  figures = {p.name for p in (workdir / "figures").iterdir()}
  assert figures == {"loss_curves.png", "reconstructions.png", "prior_samples.png",
                     "latent_scatter.png", "manifold.png"}
  for name in figures:
    assert (workdir / "figures" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  assert (workdir / "ckpt" / "1").is_dir()


def test_same_seed_identical_metrics(tiny, tmp_path):
  config = tiny(**{"train.epochs": 2, "eval.iw_samples": 0})
  runner.train_and_evaluate(config, tmp_path / "a", progress=False)
  runner.train_and_evaluate(config, tmp_path / "b", progress=False)
  runner.train_and_evaluate(tiny(**{"train.epochs": 2, "eval.iw_samples": 0, "seed": 1}),
                            tmp_path / "c", progress=False)
  assert _metrics(tmp_path / "a") == _metrics(tmp_path / "b")
  assert _metrics(tmp_path / "a") != _metrics(tmp_path / "c")


def test_resume_equals_uninterrupted(tiny, tmp_path, monkeypatch):
  full = runner.train_and_evaluate(tiny(**{"train.epochs": 3}), tmp_path / "full", progress=False)
  runner.train_and_evaluate(tiny(**{"train.epochs": 1}), tmp_path / "cut", progress=False)
  before = checkpointing.restore_meta(tmp_path / "cut")[1]["elapsed_seconds"]
  restore_meta = checkpointing.restore_meta
  def earlier_hours(*args, **kwargs):  # As if the first invocation had taken 1e6 s more.
    epoch, meta = restore_meta(*args, **kwargs)
    return epoch, dict(meta, elapsed_seconds=meta["elapsed_seconds"] + 1e6)
  monkeypatch.setattr(checkpointing, "restore_meta", earlier_hours)
  resumed = runner.train_and_evaluate(tiny(**{"train.epochs": 3}), tmp_path / "cut", resume=True,
                                      progress=False)
  assert _metrics(tmp_path / "full") == _metrics(tmp_path / "cut")
  assert len(_metrics(tmp_path / "cut")) == 3
  assert full["eval/nll_iw"] == resumed["eval/nll_iw"]
  # wall_seconds spans both invocations: the first one's time up to its checkpoint is carried.
  assert before > 0 and 1e6 + before < resumed["wall_seconds"] < 1e6 + before + 600


def test_validation_split_adds_val_metrics(tiny, tmp_path):
  runner.train_and_evaluate(tiny(**{"data.validation_size": 100, "eval.iw_samples": 0}),
                            tmp_path / "v", progress=False)
  row = json.loads((tmp_path / "v" / "metrics.jsonl").read_text().splitlines()[0])
  assert {"val/loss", "val/recon", "val/kl"} <= set(row)


def test_validation_fraction_holds_out_that_share_of_train(tiny):
  splits = runner.load_data(tiny(**{"data.validation_fraction": 0.1, "data.train_subset": 0}))
  assert len(splits["val"][0]) == 6000 and len(splits["train"][0]) == 54000


def test_existing_checkpoint_needs_resume(tiny, tmp_path):
  runner.train_and_evaluate(tiny(**{"eval.iw_samples": 0}), tmp_path / "r", progress=False)
  with pytest.raises(runner.RunError, match="--resume"):
    runner.train_and_evaluate(tiny(**{"eval.iw_samples": 0}), tmp_path / "r", progress=False)


def test_resume_a_run_written_before_new_config_fields(tiny, tmp_path):
  config = tiny(**{"eval.iw_samples": 0, "train.epochs": 2})
  runner.train_and_evaluate(tiny(**{"eval.iw_samples": 0}), tmp_path / "r", progress=False)
  saved = json.loads((tmp_path / "r" / "config.json").read_text())
  del saved["model"]["kind"], saved["train"]["early_stopping"]  # As an older version wrote it.
  (tmp_path / "r" / "config.json").write_text(json.dumps(saved))
  runner.train_and_evaluate(config, tmp_path / "r", resume=True, progress=False)
  with pytest.raises(runner.RunError, match="differs in model.kind"):
    runner.train_and_evaluate(tiny(**{"eval.iw_samples": 0, "model.kind": "ae",
                                      "model.likelihood": "mse"}), tmp_path / "r", resume=True)


def _es(tiny, **overrides):
  return tiny(**{"train.epochs": 4, "eval.iw_samples": 0, "data.validation_size": 100,
                 "train.early_stopping.patience": 1, "train.early_stopping.min_delta": 0.5,
                 "train.checkpoint_every": 3, **overrides})


def test_early_stopping_per_run_under_the_runs_axis_equals_alone_and_resumes(tiny, tmp_path,
                                                                           capsys):
  """Two runs (lr 3e-3 keeps improving by > min_delta; lr 1e-6 barely moves, so it stops after
  epoch 2) in one vmapped program equal each run alone: same metrics, best and stopped epochs,
  and the final evaluation of the best state. Cut at epoch 3 (run 1 stopped and checkpointed at
  2, run 0 checkpointed at 3), the group resumes from 3 with run 1 frozen and ends the same."""
  lrs = (3e-3, 1e-6)
  make = lambda **o: [_es(tiny, **{"optim.lr": lr, **o}) for lr in lrs]  # noqa: E731
  together = runner.train_and_evaluate_runs(make(), [tmp_path / f"v{i}" for i in range(2)],
                                            progress=False)
  assert [s["stopped_epoch"] for s in together] == [None, 2]
  err = capsys.readouterr().err  # The cap bound run 0, and says so; run 1 stopped.
  assert f"{tmp_path / 'v0'}: early stopping did not fire within train.epochs=4" in err
  assert f"{tmp_path / 'v1'}:" not in err
  for i, config in enumerate(make()):
    alone = runner.train_and_evaluate(config, tmp_path / f"a{i}", progress=False)
    assert together[i]["runs_in_program"] == 2
    rows_v = _metrics(tmp_path / f"v{i}")
    rows_a = _metrics(tmp_path / f"a{i}")
    assert [r["epoch"] for r in rows_v] == [r["epoch"] for r in rows_a]
    for a, b in zip(rows_v, rows_a):
      assert a["val/loss"] == pytest.approx(b["val/loss"], rel=1e-4)
    for key in ("best_epoch", "stopped_epoch", "epoch"):
      assert together[i][key] == alone[key], key
    assert together[i]["eval/loss"] == pytest.approx(alone["eval/loss"], rel=1e-4)
    expected = early_stopping.replay([(r["epoch"], r["val/loss"]) for r in rows_a], patience=1,
                                     min_delta=0.5)
    assert (alone["best_epoch"], alone["stopped_epoch"]) == (
        expected.best_epoch, expected.stopped_epoch or None)
    best = next(r for r in rows_a if r["epoch"] == alone["best_epoch"])
    assert alone["eval/loss"] == best["eval/loss"]  # Summary metrics are the best epoch's.
    assert (tmp_path / f"a{i}" / "best" / str(best["epoch"])).is_dir()
  cut = [tmp_path / f"c{i}" for i in range(2)]
  runner.train_and_evaluate_runs(make(**{"train.epochs": 3}), cut, progress=False)
  resumed = runner.train_and_evaluate_runs(make(), cut, resume=True, progress=False)
  for i in range(2):
    assert _metrics(tmp_path / f"v{i}") == _metrics(cut[i])
    for key in ("best_epoch", "stopped_epoch", "eval/loss"):
      assert together[i][key] == resumed[i][key], key


def test_exclude_classes_drops_them_from_train_and_validation_not_test(tiny):
  from vae_jax import config as config_lib  # pylint: disable=import-outside-toplevel
  config = tiny(**{"data.exclude_classes": "3,7", "data.validation_size": 1000,
                   "data.train_subset": 0})
  splits = runner.load_data(config)
  assert not set(np.unique(splits["train"][1])) & {3, 7}
  assert not set(np.unique(splits["val"][1])) & {3, 7}
  assert {3, 7} <= set(np.unique(splits["test"][1]))
  for bad in ("10", "0,1,2,3,4,5,6,7,8,9"):
    with pytest.raises(config_lib.ConfigError, match="data.exclude_classes"):
      config_lib.validate(tiny(**{"data.exclude_classes": bad}))


def test_mnist_mlp_reproduces_its_golden_numbers(mnist_data_dir, tmp_path):
  """experiments/configs/mnist_mlp.py, seed 0: the test loss of epochs 1-3 is the one every
  version since the first has printed (tests/golden.json), through the whole config path."""
  root = Path(__file__).resolve().parents[1]
  golden = json.loads((root / "tests" / "golden.json").read_text())["mnist_mlp_eval_loss"]
  config = config_lib.load_config(root / "experiments" / "configs" / "mnist_mlp.py")
  config_lib.apply_overrides(config, [f"data.data_dir={mnist_data_dir}", "train.epochs=3",
                                      "eval.iw_samples=0", "train.tensorboard=False"])
  runner.train_and_evaluate(config, tmp_path / "golden", progress=False)
  losses = [r["eval/loss"] for r in _metrics(tmp_path / "golden")]
  np.testing.assert_allclose(losses, golden, rtol=1e-6)
