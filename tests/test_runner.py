"""End to end on a real-MNIST subset: the run-directory contract, determinism, resume."""

import json
from pathlib import Path

import numpy as np
import pytest

from vae_jax import config as config_lib, runner

METRIC_KEYS = {"epoch", "train/loss", "eval/loss", "eval/recon", "eval/kl", "epoch_seconds"}
SUMMARY_KEYS = {"eval/loss", "eval/nll_iw", "eval/nll_iw_k", "param_count", "compile_seconds",
                "median_epoch_seconds", "images_per_second", "device", "versions", "seed",
                "best_epoch", "stopped_epoch", "runs_in_program", "phase_seconds"}


def _metrics(workdir):
  rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  return [{k: v for k, v in r.items() if k != "epoch_seconds"} for r in rows]


def test_one_epoch_run_writes_the_run_directory_contract(tiny, tmp_path):
  workdir = tmp_path / "run"
  summary = runner.train_and_evaluate(tiny(**{"model.latent_dim": 2, "eval.figures": True}),
                                      workdir, progress=False)
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
  """vae_jax/configs/mnist_mlp.py, seed 0: the test loss of epochs 1-3 is the one every
  version since the first has printed (tests/golden.json) on a host of the same vector
  instruction set, through the whole config path."""
  import os, subprocess, sys  # pylint: disable=g-import-not-at-top,multiple-imports
  from conftest import (  # pylint: disable=g-import-not-at-top
      FAST_COMPILE, golden_for_host, on_every_core)
  root = Path(__file__).resolve().parents[1]
  by_isa = json.loads((root / "tests" / "golden.json").read_text())["mnist_mlp_eval_loss"]
  golden = golden_for_host(by_isa, "mnist_mlp golden losses")
  # XLA's default optimization level, as users run it (conftest lowers it for the suite).
  env = os.environ | {"PYTHONPATH": str(root),
                      "XLA_FLAGS": os.environ.get("XLA_FLAGS", "").replace(FAST_COMPILE, "")}
  proc = subprocess.run(on_every_core(
      [sys.executable, "-m", "vae_jax.cli", "train", "--config",
       str(config_lib.CONFIG_DIR / "mnist_mlp.py"), "--workdir",
       str(tmp_path / "golden"), "--no-progress", f"--config.data.data_dir={mnist_data_dir}",
       "--config.train.epochs=3", "--config.eval.iw_samples=0", "--config.train.tensorboard=False",
       "--config.eval.figures=False"]), capture_output=True, text=True, timeout=600, env=env)
  assert proc.returncode == 0, proc.stderr[-2000:]
  losses = [r["eval/loss"] for r in _metrics(tmp_path / "golden")]
  np.testing.assert_allclose(losses, golden, rtol=1e-6)
