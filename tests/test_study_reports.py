"""The study reports' text follows the data: device, K, L, thresholds, job layout and the runs'
preprocessing come from the summaries, configs and arguments, never from literals; the growth
runner hands the user's overrides to the ablations too."""

import functools
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import jax
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
H100 = "gpu:NVIDIA H100"


def _load(name, path):
  spec = importlib.util.spec_from_file_location(name, REPO / path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


growth_run = _load("growth_run", "experiments/growth/run.py")
ae_report = _load("ae_vs_vae_report", "experiments/ae_vs_vae/report.py")
mnist_run = _load("mnist_run", "experiments/mnist/run.py")


# --- growth: the ablation configs -------------------------------------------------------------

def test_ablations_get_the_user_overrides_after_their_defaults_before_their_own_setting():
  user = ["optim.lr=0.01", "eval.iw_samples=7"]
  alone = ["train.epochs=5", "train.vmap_runs=never"]
  assert growth_run.overrides("approach1_reset", 5, user) == [
      "eval.iw_samples=0", "optim.lr=0.01", "eval.iw_samples=7", "growth.optimizer=reset",
      *alone]
  assert growth_run.overrides("fixed", 5, user) == [*user, *alone]
  # Agreeing with the ablation's own setting is fine; contradicting it is refused.
  assert "growth.optimizer=reset" in growth_run.overrides("approach1_reset", 5,
                                                          ["growth.optimizer=reset"])
  with pytest.raises(ValueError, match="conflicts with run 'approach1_reset'"):
    growth_run.overrides("approach1_reset", 5, ["growth.optimizer=pad"])
  with pytest.raises(ValueError, match="conflicts with run 'approach1_zeros'"):
    growth_run.overrides("approach1_zeros", 5, ["growth.outgoing_init=he"])
  with pytest.raises(ValueError, match="--seeds"):
    growth_run.overrides("fixed", 5, ["seed=3"])
  with pytest.raises(ValueError, match="--epochs"):
    growth_run.overrides("approach1_zeros", 5, ["train.epochs=3"])


def test_build_config_of_an_ablation_keeps_user_overrides():
  reset = growth_run.build_config("approach1_reset", 2, 3, ["optim.lr=0.01"])
  assert reset.optim.lr == 0.01 and reset.growth.optimizer == "reset"
  assert reset.eval.iw_samples == 0 and reset.seed == 2 and reset.train.epochs == 3
  zeros = growth_run.build_config("approach1_zeros", 0, 3, ["optim.lr=0.01", "eval.iw_samples=7"])
  assert zeros.optim.lr == 0.01 and zeros.eval.iw_samples == 7
  assert zeros.growth.outgoing_init == "zeros" and zeros.growth.enabled
  fixed = growth_run.build_config("fixed", 0, 3, ["eval.iw_samples=7"])
  assert fixed.eval.iw_samples == 7 and not fixed.growth.enabled


def test_growth_runner_refuses_a_conflicting_override_before_training(tmp_path):
  proc = subprocess.run(
      [sys.executable, str(REPO / "experiments" / "growth" / "run.py"), "--epochs", "1",
       "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "out"),
       "--override", "growth.optimizer=pad"],
      capture_output=True, text=True, cwd=tmp_path, timeout=120,
      env=os.environ | {"PYTHONPATH": str(REPO)})
  assert proc.returncode == 2 and "conflicts with run 'approach1_reset'" in proc.stderr
  assert not (tmp_path / "runs").exists()


def test_growth_runner_refuses_jobs_0_and_writes_nothing(tmp_path, monkeypatch, capsys):
  for name in ("RUNS", "HERE"):  # main() sets them from --runs / --out.
    monkeypatch.setattr(growth_run, name, getattr(growth_run, name))
  assert growth_run.main(["--jobs", "0", "--runs", str(tmp_path / "runs"),
                          "--out", str(tmp_path / "out")]) == 2
  assert capsys.readouterr().err == "error: --jobs 0: give at least 1\n"
  assert not list(tmp_path.iterdir())  # No study.json (nor anything else) written.


def test_run_steps_gives_each_job_a_core_of_its_own_and_keeps_the_order():
  from common import study  # pylint: disable=import-outside-toplevel
  from jobs_probe import pid_and_cores  # pylint: disable=import-outside-toplevel
  cores = os.sched_getaffinity(0)
  steps = [functools.partial(pid_and_cores, i) for i in range(4)]
  assert study.run_steps(steps) == [(os.getpid(), cores)] * 4
  pinned = dict(study.run_steps(steps, jobs=2))  # Worker pid -> its cores.
  assert os.getpid() not in pinned and 1 <= len(pinned) <= 2
  assert all(len(c) == 1 and c <= cores for c in pinned.values())
  # Two workers, two cores (one where this test process has one, e.g. a pinned xdist worker).
  assert len(set().union(*pinned.values())) == min(len(pinned), len(cores))
  assert study.run_steps([functools.partial(int, "7"), functools.partial(int, "8")], 2) == [7, 8]
  with pytest.raises(ValueError, match="invalid literal"):
    study.run_steps([functools.partial(int, "x"), functools.partial(int, "8")], jobs=2)


# --- growth: README text ----------------------------------------------------------------------

def _fake_growth_runs(root, device, preprocess="binarize_dynamic", elbo_l=7, iw_k=100):
  rng = np.random.default_rng(0)
  epochs = 4
  for name, seeds in [(a, (0, 1)) for a in growth_run.ARMS] + [(a, (0,))
                                                               for a in growth_run.ABLATIONS]:
    for seed in seeds:
      d = root / name / f"seed={seed}"
      d.mkdir(parents=True)
      rows = []
      for e in range(1, epochs + 1):
        row = {"epoch": e, "eval/loss": 100 + 10 / e + rng.normal(),
               "train/loss": 101 + 10 / e + rng.normal(), f"eval/elbo_l{elbo_l}": -100.0,
               "param_count": 1000 + 10 * e}
        if name != "fixed" and e == 3:
          row["eval/loss_at_growth"] = row["eval/loss"] + 5
        rows.append(row)
      (d / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
      summary = {"epoch": epochs, "eval/loss": 100 + rng.normal(),
                 f"eval/elbo_l{elbo_l}": -100 + rng.normal(), "encoder_widths": [8, 4],
                 "param_count": 1040, "wall_seconds": 600 + 60 * rng.uniform(), "device": device}
      if name in growth_run.ARMS:
        summary |= {"eval/nll_iw": 95 + rng.normal(), "eval/nll_iw_k": iw_k}
      (d / "summary.json").write_text(json.dumps(summary))
      (d / "config.json").write_text(json.dumps({"data": {"preprocess": preprocess},
                                                 "model": {"likelihood": "bernoulli"}}))


def _growth_args(jobs=1):
  return SimpleNamespace(seeds=[0, 1], ablation_seeds=[0], epochs=4, jobs=jobs, override=[])


FAKE_SCORE = {"fid": 12.5, "is": 8.25, "n": 10000, "classifier_hash": "abc123",
              "classifier_test_accuracy": 0.9912, "fid_floor_train_vs_test": 0.75,
              "is_real_test": 9.8}


def test_growth_readme_follows_the_data_on_a_gpu(tmp_path, monkeypatch):
  _fake_growth_runs(tmp_path, H100)
  monkeypatch.setattr(growth_run, "RUNS", tmp_path)
  monkeypatch.setattr(growth_run, "score", lambda name, seed: FAKE_SCORE | {"fid": 10.0 + seed})
  text = growth_run.readme_text(_growth_args())
  assert "| 10.50 ± 0.71 | 8.25 ± 0.00 |" in text and "abc123" in text and "99.12%" in text
  assert "final test ELBO (L=7)" in text and "IW-NLL (K=100)" in text
  assert "L=20" not in text and "K=5000" not in text
  assert f"` on {H100}." in text and f"training and evaluation on {H100} (" in text
  assert "Bernoulli likelihood on dynamically binarized pixels" in text
  assert "grayscale" not in text
  assert "minutes (summed over runs)" in text and "one run at a time" in text
  assert "core-minutes" not in text and "GPU timing" not in text and "2-core" not in text
  assert "shared/" not in text and "unpublished" in text
  assert "batch 128, 4 epochs" in text and "× 4 epochs × 2 seeds" in text


def test_growth_readme_reads_the_recorded_job_layout_on_a_cpu(tmp_path, monkeypatch):
  _fake_growth_runs(tmp_path, "cpu:cpu", preprocess="grayscale")
  monkeypatch.setattr(growth_run, "RUNS", tmp_path)
  monkeypatch.setattr(growth_run, "score", lambda name, seed: None)
  text = growth_run.readme_text(_growth_args(jobs=2))  # No study.json: the invocation's --jobs.
  assert "core-minutes of training and evaluation on cpu:cpu (" in text
  assert "run as 2 single-core jobs at a time" in text and "CPU cores" not in text
  assert "No run of the study used a GPU, so there is no GPU timing." in text
  assert "Bernoulli likelihood on grayscale pixels" in text
  assert "no classifier in checkpoints/classifier_mnist" in text
  row = next(l for l in text.splitlines() if l.startswith("| approach2 − fixed |"))
  assert "–" not in row  # Two seeds that differ: p-values.
  for seed in (0, 1):  # An arm equal to fixed: no paired t-test (not 'nan').
    (tmp_path / "approach2" / f"seed={seed}" / "summary.json").write_text(
        (tmp_path / "fixed" / f"seed={seed}" / "summary.json").read_text())
  text = growth_run.readme_text(_growth_args(jobs=2))
  assert "| approach2 − fixed | 0.00 ± 0.00 | – | 0.00 ± 0.00 | – |" in text
  assert "nan" not in text and "it is zero for every seed." in text
  (tmp_path / "study.json").write_text(json.dumps({"jobs": 3, "cpu_cores": 16}))
  text = growth_run.readme_text(_growth_args(jobs=1))
  assert "on cpu:cpu with 16 CPU cores (" in text and "run as 3 single-core jobs" in text


def test_growth_benchmark_sentence_names_every_device():
  text = growth_run.benchmark_sentences(3, 200, 3, 600, 900, ["cpu:cpu", H100], 2)
  assert f"on cpu:cpu/{H100} (" in text and "GPU timing" not in text
  assert "run as 2 concurrent jobs" in text and "core-minutes" not in text


# --- ae_vs_vae: README text and the runs' preprocessing ---------------------------------------

def _fake_ae_vs_vae(device, vae_mse):
  latents = [2, 5, 10]
  ae_mse = [30.0, 20.0, 10.0]

  def summary(kind, latent, seed):
    i = latents.index(latent)
    mse = (vae_mse if kind == "vae" else ae_mse)[i] + 0.01 * seed
    return {"eval/mse": mse, "val/mse": mse + 0.5, "eval/kl": 5.0 + i, "eval/loss": mse + 9,
            "val/loss": mse + 9.5, "eval/per_class/mse": [mse + c for c in range(10)],
            "wall_seconds": 120.0, "median_epoch_seconds": 1.5, "images_per_second": 9000.0,
            "device": device, "epoch": 3}

  return summary, latents


def _ae_text(device, vae_mse, flat):
  summary, latents = _fake_ae_vs_vae(device, vae_mse)
  args = SimpleNamespace(seeds=[0, 1], latents=latents, epochs=3, override=[], flat=flat)
  text, chosen = ae_report.readme_text(args, summary, None, None,
                                       lambda z, s: FAKE_SCORE | {"fid": float(z + s)})
  return text, chosen


def test_ae_vs_vae_readme_follows_the_device_and_the_flatness_threshold():
  text, chosen = _ae_text(H100, [30.0, 20.0, 19.0], flat=0.1)
  assert chosen == {"ae": 10, "vae": 10}
  assert "| 5.50 ± 0.71 | 8.25 ± 0.00 |" in text and "only the VAE rows are scored" in text
  assert f"--epochs 3 --flat 0.1` on {H100}." in text and f"(figures excluded) on {H100};" in text
  assert "no larger size improves on it by more than 10%" in text and "5%" not in text
  assert "shared/" not in text and "unpublished" in text and "cpu:cpu" not in text
  text, _ = _ae_text("cpu:cpu", [30.0, 20.0, 10.0], flat=0.1)
  assert "keeps falling by more than 10% up to the largest size" in text
  text, _ = _ae_text("cpu:cpu", [30.0, 20.0, 19.5], flat=0.05)
  assert "--flat" not in text and "by more than 5%" in text


@pytest.mark.parametrize("mode", ["grayscale", "binarize_dynamic", "binarize_threshold"])
def test_ae_vs_vae_figure_inputs_use_the_runs_preprocessing(mode):
  images = np.random.default_rng(0).integers(0, 256, (4, 3, 4, 1), dtype=np.uint8)
  key = jax.random.key(3)
  x = np.asarray(ae_report.study_inputs(images, mode, key))
  if mode == "grayscale":
    np.testing.assert_allclose(x, images / 255.0, rtol=1e-6)
  else:
    assert set(np.unique(x)) <= {0.0, 1.0}
    np.testing.assert_array_equal(x, ae_report.study_inputs(images, mode, key))  # Deterministic.


# --- mnist: results.md ------------------------------------------------------------------------

def test_mnist_results_follow_the_summaries():
  run = {"epoch": 3, "eval/loss": 110.0, "eval/nll_iw": 105.0, "eval/nll_iw_k": 100,
         "eval/kl": 20.0, "param_count": 1234, "median_epoch_seconds": 0.5,
         "images_per_second": 100000.0, "device": H100}
  score = FAKE_SCORE
  text = mnist_run.results_text([0, 1], {"mnist_mlp": [run, run],
                                         "mnist_2d": [run | {"device": "cpu:cpu"}] * 2},
                                {"mnist_mlp": [score, score | {"fid": 14.5}],
                                 "mnist_2d": [None, None]})
  assert f"--seeds 0 1` on cpu:cpu, {H100};" in text  # Every config's device, not the last's.
  assert "105.00 ± 0.00 (100)" in text and "(5000)" not in text
  assert "| 13.50 ± 1.41 | 8.25 ± 0.00 |" in text  # FID / IS over the scored seeds.
  assert "| 20.00 ± 0.00 | – | – |" in text  # mnist_2d: not scored.
  assert "abc123" in text and "99.12%" in text and "0.75" in text and "9.80" in text
  unscored = mnist_run.results_text([0], {"mnist_2d": [run]}, {"mnist_2d": [None]})
  assert "no classifier in checkpoints/classifier_mnist" in unscored


# --- the committed reports point at nothing outside the repository ----------------------------

def test_committed_study_reports_do_not_point_outside_the_repository():
  reports = list((REPO / "experiments").glob("*/README.md"))
  reports += list((REPO / "experiments").glob("*/results.md"))
  assert len(reports) >= 3
  for path in reports:
    text = path.read_text()
    assert "shared/" not in text, path
    assert "2-core" not in text and "lent to this session" not in text, path
  for path in (REPO / "experiments").rglob("*.py"):
    assert "../shared" not in path.read_text(), path


def test_growth_runner_resume_continues_an_unfinished_run(mnist_data_dir, tmp_path):
  tiny = ["data.train_subset=256", "model.encoder.widths=16,8", "model.decoder.widths=8,16",
          "eval.iw_samples=0", "train.checkpoint_every=1", f"data.data_dir={mnist_data_dir}",
          "data.test_subset=1000"]

  def train(runs, epochs, resume):
    growth_run.train_group("fixed", [0], SimpleNamespace(
        epochs=epochs, runs=tmp_path / runs, override=tiny, resume=resume, reuse=False))
  train("cut", 1, False)
  run = tmp_path / "cut" / "fixed" / "seed=0"
  first = (run / "metrics.jsonl").read_text()
  with pytest.raises(Exception, match="--resume"):  # A run with a checkpoint is never deleted.
    train("cut", 2, False)
  assert (run / "metrics.jsonl").read_text() == first
  train("cut", 2, True)
  lines = (run / "metrics.jsonl").read_text()
  # Continued, not restarted (a rerun of epoch 1 would have measured its own epoch_seconds);
  # that a resumed run equals the uninterrupted one is test_equivalences' resume test.
  assert lines.startswith(first) and len(lines.splitlines()) == 2
