"""End to end on a real-MNIST subset: the run-directory contract, determinism, resume."""

import json

import pytest

from vae_jax import runner

METRIC_KEYS = {"epoch", "train/loss", "eval/loss", "eval/recon", "eval/kl", "epoch_seconds"}
SUMMARY_KEYS = {"eval/loss", "eval/nll_iw", "eval/nll_iw_k", "param_count", "compile_seconds",
                "median_epoch_seconds", "images_per_second", "device", "versions", "seed"}


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


def test_resume_equals_uninterrupted(tiny, tmp_path):
  full = runner.train_and_evaluate(tiny(**{"train.epochs": 3}), tmp_path / "full", progress=False)
  runner.train_and_evaluate(tiny(**{"train.epochs": 1}), tmp_path / "cut", progress=False)
  resumed = runner.train_and_evaluate(tiny(**{"train.epochs": 3}), tmp_path / "cut", resume=True,
                                      progress=False)
  assert _metrics(tmp_path / "full") == _metrics(tmp_path / "cut")
  assert len(_metrics(tmp_path / "cut")) == 3
  assert full["eval/nll_iw"] == resumed["eval/nll_iw"]


def test_validation_split_adds_val_metrics(tiny, tmp_path):
  runner.train_and_evaluate(tiny(**{"data.validation_size": 100, "eval.iw_samples": 0}),
                            tmp_path / "v", progress=False)
  row = json.loads((tmp_path / "v" / "metrics.jsonl").read_text().splitlines()[0])
  assert {"val/loss", "val/recon", "val/kl"} <= set(row)


def test_existing_checkpoint_needs_resume(tiny, tmp_path):
  runner.train_and_evaluate(tiny(**{"eval.iw_samples": 0}), tmp_path / "r", progress=False)
  with pytest.raises(runner.RunError, match="--resume"):
    runner.train_and_evaluate(tiny(**{"eval.iw_samples": 0}), tmp_path / "r", progress=False)


def test_resume_a_run_written_before_new_config_fields(tiny, tmp_path):
  config = tiny(**{"eval.iw_samples": 0, "train.epochs": 2})
  runner.train_and_evaluate(tiny(**{"eval.iw_samples": 0}), tmp_path / "r", progress=False)
  saved = json.loads((tmp_path / "r" / "config.json").read_text())
  del saved["model"]["kind"], saved["data"]["validation_seed"]  # As written by an older version.
  (tmp_path / "r" / "config.json").write_text(json.dumps(saved))
  runner.train_and_evaluate(config, tmp_path / "r", resume=True, progress=False)
  with pytest.raises(runner.RunError, match="differs in model.kind"):
    runner.train_and_evaluate(tiny(**{"eval.iw_samples": 0, "model.kind": "ae",
                                      "model.likelihood": "mse"}), tmp_path / "r", resume=True)
