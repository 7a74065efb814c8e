"""The study runners end to end on seconds-long settings: they train, write README and figures.
They call the runner's main() in this process, as `python run.py ...` would, so their compiled
programs and imports are shared; one refusal runs the script as the script it is."""

import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from threadpoolctl import threadpool_limits

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def runner_main(monkeypatch, capsys, tmp_path):
  """Factory: runner_main(study, argv) runs experiments/<study>/run.py's main(argv) in this
  process from tmp_path, with the script's directory first on sys.path and sys.argv as the
  command line would set them, and one OpenMP / BLAS thread (scikit-learn's t-SNE of 100 points
  spin-waits on 2 busy cores: 33 s of CPU with 2 OpenMP threads, 1 s with one; the embedding
  is the same); returns SimpleNamespace(returncode, stdout, stderr)."""
  monkeypatch.chdir(tmp_path)

  def run(name, argv):
    here = REPO / "experiments" / name
    for module in ("run", "report", "ablation"):  # Another study's modules of the same name.
      sys.modules.pop(module, None)
    monkeypatch.syspath_prepend(str(here))
    monkeypatch.setattr(sys, "argv", [str(here / "run.py"), *argv])
    capsys.readouterr()
    try:
      with threadpool_limits(1):
        code = importlib.import_module("run").main(argv)
    except SystemExit as e:  # argparse's refusals.
      code = e.code
    finally:
      sys.path.remove(str(here))
    out, err = capsys.readouterr()
    return SimpleNamespace(returncode=code, stdout=out, stderr=err)

  yield run
  for module in ("run", "report", "ablation"):
    sys.modules.pop(module, None)


def test_ae_vs_vae_runner_writes_readme_and_figures(mnist_data_dir, tmp_path, runner_main):
  tiny = ["data.train_subset=2048", "model.encoder.widths=16", "model.decoder.widths=16",
          "train.checkpoint_every=1", f"data.data_dir={mnist_data_dir}", "data.test_subset=1000",
          "eval.figures=False", "train.tensorboard=False"]
  proc = runner_main("ae_vs_vae", ["--seeds", "0", "1", "--latents", "2", "--epochs", "2",
                                   "--runs", str(tmp_path / "runs"), "--out",
                                   str(tmp_path / "out"), "--override", *tiny])
  assert proc.returncode == 0, proc.stderr[-3000:]
  readme = (tmp_path / "out" / "README.md").read_text()
  # One latent size: the README over several is test_study_reports' (no training).
  assert "| 2 |" in readme and "Model selection" in readme
  assert "AE error falls with latent size" in readme and "Digits 1/7 easiest" in readme
  assert "--latents 2 --epochs 2" in readme
  summary = tmp_path / "runs" / "vae_z2" / "seed=0" / "summary.json"
  device = json.loads(summary.read_text())["device"]
  assert f"` on {device}." in readme and "shared/" not in readme  # From the data, in the repo.
  figures = {p.name for p in (tmp_path / "out").glob("*.png")}
  assert {"per_class_mse_ae.png", "per_class_mse_vae.png", "val_mse_ae.png", "val_mse_vae.png",
          "comparison.png", "reconstruction_grid.png", "manifold_vae_z2.png"} <= figures
  assert any(name.startswith("train_val_vae_z") for name in figures)
  assert (tmp_path / "runs" / "vae_z2" / "seed=1" / "summary.json").exists()


def test_fc_vs_conv_runner_writes_readme_figures_and_rerenders(mnist_data_dir, tmp_path,
                                                              runner_main):
  # The conv config unrolls its loops (train.steps_per_call): the 1000 test images in one
  # evaluation batch compile in about half the time of four.
  tiny = ["data.train_subset=256", "model.encoder.widths=16,8", "model.decoder.widths=8,16",
          "model.encoder.kind=mlp", "model.decoder.features=8,8,4", "model.conv_batch_chunks=1",
          "eval.batch_size=1000", f"data.data_dir={mnist_data_dir}", "data.test_subset=1000",
          "eval.figures=False", "train.tensorboard=False"]
  argv = ["--dataset", "mnist_32", "--seeds", "0", "--sets", "p2", "--max-epochs", "2",
          "--iw-k", "4", "--iw-images", "50", "--runs", str(tmp_path / "runs"),
          "--out", str(tmp_path / "out"), "--override", *tiny]
  # Trained with --train-only (no README), then rendered once with --reuse (no training).
  proc = runner_main("fc_vs_conv", [*argv, "--train-only"])
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "the 2-epoch cap bound for seed=0" in proc.stdout
  assert not (tmp_path / "out" / "README.md").exists()
  metrics = tmp_path / "runs" / "mnist_32" / "fc_p2" / "seed=0" / "metrics.jsonl"
  before = metrics.read_text()
  proc = runner_main("fc_vs_conv", [*argv, "--reuse"])
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert metrics.read_text() == before
  readme = (tmp_path / "out" / "README.md").read_text()
  assert "| FC-VAE | p2 |" in readme and "| conv VAE | p2 |" in readme
  assert "1 hit the 2-epoch cap" in readme and "Bernoulli IW-NLL K=4" in readme
  assert "The claim \"conv reaches lower loss" in readme and "shared/" not in readme
  figures = {p.name for p in (tmp_path / "out").glob("*.png")}
  assert {"mnist_32_samples.png", "mnist_32_reconstructions.png", "mnist_32_curves.png",
          "mnist_32_interpolation_0.png"} <= figures
  assert json.loads((tmp_path / "runs" / "mnist_32" / "conv_p2" / "seed=0" / "eval" /
                     "iw_nll.json").read_text())["result"]["k"] == 4
  assert "--reuse" in readme
  bad = runner_main("fc_vs_conv", ["--dataset", "no_such_data"])
  assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "data.name" in bad.stderr
  # The records beside the README re-render the tables in a checkout without the run dirs
  # (nothing is trained again; figures need checkpoints, so they name the rows left out).
  record = tmp_path / "out" / "runs" / "mnist_32" / "conv_p2" / "seed=0"
  assert {str(p.relative_to(record)) for p in record.rglob("*") if p.is_file()} == {
      "config.json", "summary.json", "metrics.jsonl", "eval/iw_nll.json"}
  table = [l for l in readme.splitlines() if l.startswith("| conv VAE | p2 |")]
  shutil.rmtree(tmp_path / "runs")
  proc = runner_main("fc_vs_conv", [*argv, "--reuse"])
  assert proc.returncode == 0, proc.stderr[-3000:]
  again = (tmp_path / "out" / "README.md").read_text()
  assert [l for l in again.splitlines() if l.startswith("| conv VAE | p2 |")] == table
  assert not (tmp_path / "runs" / "mnist_32" / "conv_p2").exists()
  assert "not run yet" not in again


def test_fc_vs_conv_ablation_trains_the_four_cells_and_rerenders_from_records(mnist_data_dir,
                                                                             tmp_path, runner_main):
  # An MLP encoder: the ablation varies the conv decoder only. Its loops are unrolled
  # (train.steps_per_call): 115 training images are one step of set p1's batch 64, the 250 test
  # images one evaluation batch.
  tiny = ["data.train_subset=128", "model.encoder.kind=mlp", "model.encoder.widths=16",
          "model.decoder.features=8,4", "model.conv_batch_chunks=1", "eval.batch_size=250",
          f"data.data_dir={mnist_data_dir}",
          "data.test_subset=250", "eval.figures=False", "train.tensorboard=False"]
  argv = ["--ablation", "--dataset", "mnist_32", "--seeds", "0", "--ablation-epochs", "1",
          "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "out"), "--override", *tiny]
  proc = runner_main("fc_vs_conv", argv)
  assert proc.returncode == 0, proc.stderr[-3000:]
  text = (tmp_path / "out" / "ABLATION.md").read_text()
  rows = [l for l in text.splitlines() if l.startswith(("| relu |", "| none |"))]
  assert [r.split(" | ")[:2] for r in rows] == [["| relu", "in"], ["| relu", "out"],
                                                ["| none", "in"], ["| none", "out"]]
  configs = {d.parent.name: json.loads((d / "config.json").read_text())["model"]["decoder"]
             for d in (tmp_path / "runs" / "mnist_32" / "ablation").glob("*/seed=0")}
  assert configs["project=relu,fan=in"]["project_activation"] == "relu"
  assert configs["project=none,fan=out"]["transpose_fan"] == "out"
  assert "| 1 | 4 / 1 | 3 / 2 | 2 / 3 | 1 / 4 |" in text  # Row 1 through taps 0..3.
  assert "reaches the same output rows" in text and "--ablation" in text
  assert "- By projection activation: `relu`: " in text and "of 2 runs collapsed" in text
  shutil.rmtree(tmp_path / "runs")
  proc = runner_main("fc_vs_conv", [*argv, "--reuse"])
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert [l for l in (tmp_path / "out" / "ABLATION.md").read_text().splitlines()
          if l.startswith(("| relu |", "| none |"))] == rows
  assert not (tmp_path / "runs").exists()  # Nothing trained again.


def test_beta_cvae_runner_one_program_readme_figures_and_rerender(mnist_data_dir, tmp_path,
                                                                  runner_main):
  tiny = ["data.train_subset=128", "model.encoder.kind=mlp", "model.decoder.kind=mlp",
          "model.encoder.widths=16", "model.decoder.widths=16", "eval.iw_samples=4",
          f"data.data_dir={mnist_data_dir}", "data.test_subset=1000", "eval.batch_size=1000",
          "eval.figures=False", "train.tensorboard=False"]
  # MLP halves: the runner's logic, compiled fast; the config unrolls its loops
  # (train.steps_per_call): one training step of batch 128 per epoch, one evaluation batch.
  argv = ["--seeds", "0", "--betas", "1", "4", "--latents", "2", "20", "--epochs", "2",
          "--tsne-points", "100", "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "out"),
          "--override", *tiny]
  # Trained with --train-only (no README), then rendered once with --reuse (no training); the
  # other runner tests train and render in one invocation.
  proc = runner_main("beta_cvae", [*argv, "--train-only"])
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert not (tmp_path / "out").exists()
  run = tmp_path / "runs" / "beta" / "objective.beta=4.0,seed=0"
  assert json.loads((run / "summary.json").read_text())["runs_in_program"] == 2  # Both β.
  assert sorted(p.name for p in (run / "ckpt").iterdir() if p.name.isdigit()) == ["1", "2"]
  metrics = run / "metrics.jsonl"
  before = metrics.read_text()
  proc = runner_main("beta_cvae", [*argv, "--reuse"])
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert metrics.read_text() == before
  readme = (tmp_path / "out" / "README.md").read_text()
  for row in ("| β = 1 | 1 |", "| β = 4 | 1 |", "| Z = 2 | 1 |", "| CVAE (β = 1, Z = 20) | 1 |"):
    assert row in readme
  assert "The β program trains 2 runs" in readme and "not run yet" not in readme
  assert "5 of 5 runs finished" in readme and "shared/" not in readme
  # Epoch times compared by fastest epochs; the cost line gives the range over runs.
  assert "By fastest epochs (other work on the machine only adds time), 2 runs" in readme
  assert "s per run, median" in readme and "include whatever else ran" in readme
  figures = {p.name for p in (tmp_path / "out").glob("*.png")}
  assert {"kl_per_dimension.png", "active_units.png", "rate_distortion.png", "latent_pca.png",
          "latent_tsne.png", "interpolation.png", "latent_arithmetic.png", "uncertainty.png",
          "samples_over_training.png", "cvae_style.png", "cvae_samples.png",
          "posterior_histograms.png", "gradient_flow.png", "parameter_evolution.png"} <= figures
  # Inside the core model: sentences from the run (MLP halves: no filters; no classifier here).
  assert "## Inside the core model" in readme and "the encoder has no conv layer" in readme
  assert "probe-batch gradient norm of each of the" in readme and "no classifier" in readme
  assert "![gradient_flow.png](gradient_flow.png)" in readme and "--reuse" in readme
  # The script as a script (its own process, its sys.path set up by itself) refuses in one line.
  bad = subprocess.run([sys.executable, str(REPO / "experiments" / "beta_cvae" / "run.py"),
                        "--betas", "2", "4"], capture_output=True, text=True, cwd=tmp_path,
                       timeout=600, env=os.environ | {"PYTHONPATH": str(REPO)})
  assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--betas" in bad.stderr


def test_anomaly_runner_scores_aurocs_and_rerenders_from_the_cache(mnist_data_dir, tmp_path,
                                                                   runner_main):
  from vae_jax import data  # pylint: disable=import-outside-toplevel
  try:  # CI's data dir holds Fashion-MNIST too; a session tmp dir gets it here.
    data.load_split("fashion_mnist", "test[:1]", mnist_data_dir)
  except data.DataError:
    data.import_idx("fashion_mnist", str(REPO.parent / "shared" / "datasets" / "fashion_mnist"),
                    mnist_data_dir)
  tiny = ["data.train_subset=512", "model.encoder.widths=16", "model.decoder.widths=16",
          f"data.data_dir={mnist_data_dir}", "data.test_subset=1000", "eval.figures=False",
          "train.tensorboard=False"]
  argv = ["--digits", "1", "--seeded-digits", "--seeds", "0", "--epochs", "1", "--iw-k", "4",
          "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "out"), "--override", *tiny]
  proc = runner_main("anomaly", argv)
  assert proc.returncode == 0, proc.stderr[-3000:]
  readme = (tmp_path / "out" / "README.md").read_text()
  assert "| 1 | 1 |" in readme and "| IW-NLL − PNG bits (Serrà) |" in readme
  assert "Nalisnick et al.'s finding is" in readme and "shared/" not in readme
  assert {p.name for p in (tmp_path / "out").glob("*.png")} == {"roc_heldout.png",
                                                               "roc_fashion_mnist.png"}
  cache = tmp_path / "runs" / "fashion" / "seed=0" / "eval" / "scores.npz"
  before = cache.stat().st_mtime_ns
  proc = runner_main("anomaly", [*argv, "--reuse"])  # Re-renders from the cached scores.
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert cache.stat().st_mtime_ns == before
  bad = runner_main("anomaly", ["--digits", "12"])
  assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--digits" in bad.stderr


def test_zoo_runner_writes_its_table_and_rerenders_from_records(mnist_data_dir, tmp_path,
                                                               runner_main):
  tiny = [f"data.data_dir={mnist_data_dir}", "data.train_subset=500", "data.test_subset=200",
          "model.encoder.widths=16", "model.decoder.widths=16", "model.latent_dim=4",
          "model.hvae.latent_dims=6,3", "model.hvae.widths=16,8", "eval.iw_samples=10",
          "eval.batch_size=100", "eval.figures=False", "train.tensorboard=False"]
  argv = ["--seeds", "0", "--epochs", "1", "--rows", "VAE, 1 layer", "Ladder VAE, 2 layers",
          "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "out"), "--override", *tiny]
  proc = runner_main("zoo", argv)
  assert proc.returncode == 0, proc.stderr[-3000:]
  readme = (tmp_path / "out" / "README.md").read_text()
  vae_row = next(l for l in readme.splitlines() if l.startswith("| VAE, 1 layer |"))
  assert "86.76 (Burda et al. 2016, Table 1)" in vae_row and "| 1 | 1 |" in vae_row
  assert "| Ladder VAE, 2 layers |" in readme and "(10)" in vae_row  # K from the runs.
  assert "Lowest IW-NLL here:" in readme and "shared/" not in readme
  shutil.rmtree(tmp_path / "runs")  # The records alone re-render the same table.
  proc = runner_main("zoo", [*argv, "--reuse"])
  assert proc.returncode == 0, proc.stderr[-3000:]
  again = (tmp_path / "out" / "README.md").read_text()
  assert vae_row in again.splitlines() and not (tmp_path / "runs").exists()


def test_zoo_readme_renders_the_bits_per_dim_table_from_summaries(runner_main, monkeypatch):
  here = REPO / "experiments" / "zoo"
  monkeypatch.syspath_prepend(str(here))
  monkeypatch.syspath_prepend(str(REPO / "experiments"))
  sys.modules.pop("run", None)
  zoo = importlib.import_module("run")
  del runner_main  # Only for its module cleanup.

  def run(nll, bpd, epoch=3):
    return SimpleNamespace(summary={
        "eval/nll_iw": nll, "eval/nll_iw_bits_per_dim": bpd, "eval/nll_iw_k": 5000,
        "eval/loss": nll + 5, "eval/kl": 20.0, "epoch": epoch, "param_count": 1000,
        "median_epoch_seconds": 2.0, "device": "cpu:cpu", "test_images": 10000})

  text = zoo.readme_text({
      "VAE, 1 layer": [run(90.0, 0.166)],
      "Fashion-MNIST, discretized Gaussian": [run(2000.0, 3.68), run(2010.0, 3.70)],
      "Fashion-MNIST, discretized logistic mixture (M=5)": []}, "python experiments/zoo/run.py")
  assert "| discretized Gaussian | 2 | 3 | 5000 | 3.690 ± 0.014 | 2005.00 ± 7.07 |" in text
  assert "| discretized logistic mixture" not in text  # No runs: no row.
  assert "| VAE, 1 layer | 1 | 3 | 90.00 (5000) |" in text and "+3.24 |" in text
