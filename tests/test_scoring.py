"""`vae-jax score`: classifier-FID / IS of a run with its references, and the runs it refuses."""

import json

from matplotlib import pyplot as plt
import numpy as np
import pytest

from conftest import tiny_config
from vae_jax import cli, metrics, runner
from test_cli import _fails


@pytest.fixture(scope="module")
def trained(mnist_data_dir, tmp_path_factory):
  """Run dirs of a tiny VAE (3 epochs, every checkpoint kept; also 'vae'), a tiny AE, a VQ-VAE
  and tiny classifiers on a real-MNIST subset."""
  root = tmp_path_factory.mktemp("scoring")
  runs = {}
  for name, overrides in (
      ("ae", {"model.kind": "ae", "model.likelihood": "mse"}),
      ("vae_3", {"train.epochs": 3, "train.keep_checkpoints": 0}),
      ("vqvae", {"model.kind": "vqvae", "model.vq.num_codes": 16, "model.vq.code_dim": 2}),
      ("classifier", {"model.kind": "classifier", "model.encoder.kind": "conv",
                      "model.encoder.features": "4,8", "model.classifier_hidden": 16}),
      ("classifier_32", {"model.kind": "classifier", "model.encoder.kind": "conv",
                         "model.encoder.features": "4,8", "model.classifier_hidden": 16,
                         "data.name": "mnist_32"})):
    config = tiny_config(mnist_data_dir, **{"eval.iw_samples": 0, **overrides})
    runner.train_and_evaluate(config, root / name, progress=False)
    runs[name] = str(root / name)
  runs["vae"] = runs["vae_3"]  # One training less: any VAE run serves the other tests.
  return runs


def test_score_prints_fid_is_floor_and_hash(capsys, trained):
  assert cli.main(["score", "--workdir", trained["vae"], "--n", "200",
                   "--classifier", trained["classifier"]]) == 0
  out = json.loads(capsys.readouterr().out)
  assert out["fid"] > 0 and out["fid_floor_train_vs_test"] >= 0
  assert 1.0 <= out["is"] <= 10.0 and 1.0 <= out["is_real_test"] <= 10.0
  assert len(out["classifier_hash"]) == 12 and 0.0 <= out["classifier_test_accuracy"] <= 1.0
  assert out["n"] == 200 and "classifier-FID" in out["metric"]
  assert cli.main(["score", "--workdir", trained["vae"], "--n", "200",
                   "--classifier", trained["classifier"]]) == 0
  again = json.loads(capsys.readouterr().out)
  assert again["fid"] == out["fid"] and again["classifier_hash"] == out["classifier_hash"]


def test_score_over_training_scores_every_kept_checkpoint_and_draws_the_curves(capsys, trained):
  assert cli.main(["score", "--workdir", trained["vae_3"], "--n", "200", "--over-training",
                   "--classifier", trained["classifier"]]) == 0
  captured = capsys.readouterr()
  scores = [json.loads(line) for line in captured.out.splitlines()]
  assert [s["epoch"] for s in scores] == [1, 2, 3]
  assert len({s["fid"] for s in scores}) == 3  # Each epoch its own params.
  for s in scores:
    assert s["diversity"] > 0 and s["diversity_test"] > 0 and sum(s["label_histogram"]) == 200
    assert len(s["label_histogram"]) == 10
  assert len({s["diversity_test"] for s in scores}) == 1  # One reference for every epoch.
  figure = captured.err.strip().splitlines()[-1]
  assert figure.endswith("scores_over_training.png")
  image = plt.imread(figure)
  assert image.shape[1] > 3 * image.shape[0] and image.std() > 0  # Four panels side by side.


def test_mean_pairwise_distance_and_label_histogram():
  x = np.array([[0.0, 0.0], [3.0, 4.0], [0.0, 0.0]])
  assert metrics.mean_pairwise_distance(x) == pytest.approx((5 + 0 + 5) / 3)
  assert metrics.mean_pairwise_distance(np.repeat(x, 1000, 0), max_points=500) > 0
  with pytest.raises(ValueError, match="N >= 2"):
    metrics.mean_pairwise_distance(x[:1])
  assert metrics.label_histogram(np.eye(3)[[0, 2, 2]]) == [1, 0, 2]


def test_score_of_reconstructions_serves_runs_without_a_prior(capsys, trained):
  for name in ("vqvae", "ae", "vae"):
    assert cli.main(["score", "--workdir", trained[name], "--n", "200", "--of",
                     "reconstructions", "--classifier", trained["classifier"]]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["of"] == "reconstructions" and out["fid"] > 0 and 1.0 <= out["is"] <= 10.0


def test_score_refuses_runs_it_cannot_score(capsys, trained, tmp_path):
  _fails(capsys, ["score", "--workdir", trained["ae"], "--classifier", trained["classifier"]],
         "no prior", "--of reconstructions")
  _fails(capsys, ["score", "--workdir", trained["classifier"], "--of", "reconstructions",
                  "--classifier", trained["classifier"]], "decodes nothing")
  _fails(capsys, ["score", "--workdir", trained["vae"], "--classifier", str(tmp_path / "none")],
         "no trained classifier", "classifier_<dataset>.py")
  _fails(capsys, ["score", "--workdir", trained["vae"], "--classifier", trained["vae"]],
         "not a classifier")
  _fails(capsys, ["score", "--workdir", trained["vae"], "--classifier",
                  trained["classifier_32"]], "(32, 32, 1)", "--config.data.name=mnist")
  _fails(capsys, ["score", "--workdir", trained["vae"], "--n", "1",
                  "--classifier", trained["classifier"]], "--n must be >= 2")
  _fails(capsys, ["score", "--workdir", trained["vae"], "--n", "20000",
                  "--classifier", trained["classifier"]], "--n 20000 exceeds the 10000 test images")
  (tmp_path / "grid.png").mkdir()
  _fails(capsys, ["sample", "--workdir", trained["vae"], "--n", "4", "--out",
                  str(tmp_path / "grid.png")], "--out must be a file")


def test_cached_score_reuses_its_eval_cache_while_the_classifier_is_the_same(trained):
  from vae_jax import evaluators  # pylint: disable=import-outside-toplevel
  first = evaluators.cached_score(trained["vae"], 100, trained["classifier"])
  path = evaluators.cache_path(trained["vae"], "fid_is")
  stamp = path.stat().st_mtime_ns
  assert evaluators.cached_score(trained["vae"], 100, trained["classifier"]) == first
  assert path.stat().st_mtime_ns == stamp
  assert evaluators.cached_score(trained["vae"], 120, trained["classifier"])["n"] == 120
  over = evaluators.cached_scores_over_training(trained["vae_3"], 100, trained["classifier"])
  assert [s["epoch"] for s in over] == [1, 2, 3] and over[-1]["n"] == 100
  path = evaluators.cache_path(trained["vae_3"], "fid_is_over_training")
  stamp = path.stat().st_mtime_ns
  assert evaluators.cached_scores_over_training(trained["vae_3"], 100,
                                                trained["classifier"]) == over
  assert path.stat().st_mtime_ns == stamp
