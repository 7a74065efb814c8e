"""What the ae_vs_vae study rests on: the deterministic autoencoder, the MSE reconstruction term,
the fixed validation split, per-class evaluation and seeds vmapped in one program."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vae_jax import (cli, config as config_lib, data, distributions, evaluate, models,
                     objectives, runner, train)


H = train.Hparams.of(beta=1.0, lr=1e-3, weight_decay=0.0)


def _model(kind):
  c = config_lib.base_config().model
  c.kind, c.latent_dim, c.encoder.widths, c.decoder.widths = kind, 3, (16,), (16,)
  return models.build_model(c, (3, 4, 1))


@pytest.fixture(scope="module")
def tiny_ae():
  model = _model("ae")
  return model, models.init_params(model, jax.random.key(0), (3, 4, 1))


def _batch(n=6, seed=1):
  images = jax.random.randint(jax.random.key(seed), (n, 3, 4, 1), 0, 256).astype(jnp.uint8)
  return {"image": images, "label": jnp.zeros((n,), jnp.int32)}


def test_autoencoder_has_no_kl_and_is_deterministic(tiny_ae):
  model, params = tiny_ae
  assert set(params["encoder"]) == {"mlp", "code"}  # No posterior heads.
  objective = objectives.AutoencoderObjective(model=model, likelihood="mse")
  assert not objective.has_posterior
  batch = _batch()
  a = objective.terms(params, batch, jax.random.key(1), H)
  b = objective.terms(params, batch, jax.random.key(2), H)
  assert set(a) == {"loss", "recon"}
  np.testing.assert_array_equal(a["loss"], b["loss"])  # The key changes nothing.
  np.testing.assert_array_equal(a["loss"], a["recon"])
  x = data.preprocess(batch["image"], "grayscale")
  out1, z1 = model.apply({"params": params}, x, jax.random.key(3))
  out2, z2 = model.apply({"params": params}, x, jax.random.key(4))
  assert z1.shape == (6, 3) and out1.shape == (6, 3, 4, 1)
  np.testing.assert_array_equal(out1, out2)
  np.testing.assert_array_equal(z1, z2)


def test_vae_loss_depends_on_the_key_but_ae_shares_its_layers(tiny_ae):
  _, params = tiny_ae
  vae = _model("vae")
  vae_params = models.init_params(vae, jax.random.key(0), (3, 4, 1))
  assert jax.tree.structure(params["decoder"]) == jax.tree.structure(vae_params["decoder"])
  assert jax.tree.structure(params["encoder"]["mlp"]) == jax.tree.structure(
      vae_params["encoder"]["mlp"])
  objective = objectives.VAEObjective(model=vae, likelihood="mse")
  a = objective.terms(vae_params, _batch(), jax.random.key(1), H)
  b = objective.terms(vae_params, _batch(), jax.random.key(2), H)
  assert set(a) == {"loss", "recon", "kl"} and not np.allclose(a["recon"], b["recon"])


def test_mse_term_matches_numpy():
  rng = np.random.default_rng(0)
  out = rng.normal(size=(5, 3, 4, 1)).astype(np.float32) * 3
  x = rng.uniform(size=(5, 3, 4, 1)).astype(np.float32)
  expected = np.sum((x - 1 / (1 + np.exp(-out.astype(np.float64)))) ** 2, axis=(1, 2, 3))
  got = -np.asarray(distributions.mse_log_likelihood(jnp.asarray(out), jnp.asarray(x)))
  np.testing.assert_allclose(got, expected, rtol=1e-5)
  np.testing.assert_allclose(distributions.mean_from_output("mse", jnp.asarray(out)),
                             1 / (1 + np.exp(-out)), rtol=1e-5)


def test_reconstruction_mse_of_ae_equals_its_mse_loss(tiny_ae):
  model, params = tiny_ae
  objective = objectives.AutoencoderObjective(model=model, likelihood="mse")
  terms = evaluate.eval_per_example(objective)(params, _batch(), jax.random.key(0), H)
  np.testing.assert_allclose(terms["mse"], terms["recon"], rtol=1e-6)


def test_per_class_means_average_back_to_the_overall_mean(tiny_ae):
  model, params = tiny_ae
  objective = objectives.AutoencoderObjective(model=model, likelihood="mse")
  labels = jnp.asarray(np.random.default_rng(0).integers(0, 4, size=23), jnp.int32)
  batch = dict(_batch(n=23), label=labels)
  fn = evaluate.eval_per_example(objective)
  means, per_class = evaluate.evaluate_by_class(fn, params, batch, jax.random.key(0), H,
                                                batch_size=5, num_classes=5)
  counts = np.bincount(np.asarray(labels), minlength=5)
  assert np.isnan(per_class["mse"][4]) and counts[4] == 0  # Absent class.
  present = counts > 0
  weighted = np.sum(np.asarray(per_class["mse"])[present] * counts[present]) / counts.sum()
  np.testing.assert_allclose(weighted, means["mse"], rtol=1e-5)
  direct = np.asarray(fn(params, batch, jax.random.key(0), H)["mse"])
  for c in range(4):
    np.testing.assert_allclose(per_class["mse"][c], direct[np.asarray(labels) == c].mean(),
                               rtol=1e-5)
  overall = evaluate.evaluate_dataset(fn, params, batch, jax.random.key(0), H, batch_size=5)
  np.testing.assert_allclose(overall["mse"], means["mse"], rtol=1e-6)


def test_validation_split_is_fixed_across_run_seeds_and_disjoint(tiny):
  config = tiny(**{"data.validation_size": 600, "data.train_subset": 0})
  a = runner.load_data(config)
  config.seed = 7  # Another run seed: the same split (data.validation_seed decides it).
  b = runner.load_data(config)
  np.testing.assert_array_equal(a["val"][0], b["val"][0])
  np.testing.assert_array_equal(a["train"][1], b["train"][1])
  full_x, _ = data.load_split("mnist", "train", config.data.data_dir)
  (train_idx, _), (val_idx, _) = data.validation_split(np.arange(len(full_x)), np.arange(
      len(full_x)), 600, config.data.validation_seed)
  assert len(np.intersect1d(train_idx, val_idx)) == 0
  assert len(train_idx) + len(val_idx) == len(full_x) == 60000
  np.testing.assert_array_equal(a["val"][0], full_x[val_idx])
  np.testing.assert_array_equal(a["train"][0], full_x[train_idx])
  config.data.validation_seed = 1
  assert not np.array_equal(runner.load_data(config)["val"][1], a["val"][1])


def test_repeated_seeds_are_refused_before_anything_is_written(tiny, tmp_path):
  config = tiny(**{"eval.iw_samples": 0})
  with pytest.raises(runner.RunError, match="distinct"):
    runner.train_and_evaluate_seeds(config, [0, 0], [tmp_path / "x", tmp_path / "y"])
  assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("overrides,fragment", [
    ({"model.kind": "ae"}, "eval.iw_samples=8 needs a VAE"),
    ({"model.likelihood": "mse"}, "set --config.eval.iw_samples=0"),
    ({"model.kind": "gan"}, "unknown model.kind 'gan'"),
    ({"model.kind": "ae", "eval.iw_samples": 0, "eval.elbo_samples": 5}, "eval.elbo_samples"),
])
def test_config_rejects_impossible_model_settings(tiny, overrides, fragment):
  with pytest.raises(config_lib.ConfigError, match=fragment.replace(".", r"\.")):
    config_lib.validate(tiny(**overrides))


def test_cli_evaluates_an_ae_run_and_refuses_to_sample_it(tiny, tmp_path, capsys):
  workdir = tmp_path / "ae"
  runner.train_and_evaluate(tiny(**{"model.kind": "ae", "model.likelihood": "mse",
                                    "eval.iw_samples": 0, "eval.figures": True}), workdir,
                            progress=False)
  summary = json.loads((workdir / "summary.json").read_text())
  assert "eval/nll_iw" not in summary and len(summary["eval/per_class/mse"]) == 10
  assert {p.name for p in (workdir / "figures").iterdir()} == {
      "loss_curves.png", "reconstructions.png", "latent_scatter.png"}
  assert cli.main(["evaluate", "--workdir", str(workdir)]) == 0
  result = json.loads(capsys.readouterr().out)
  assert "eval/nll_iw" not in result
  np.testing.assert_allclose(result["eval/mse"], summary["eval/mse"], rtol=1e-5)
  assert cli.main(["sample", "--workdir", str(workdir), "--out", str(tmp_path / "s.png")]) == 2
  assert "without a prior" in capsys.readouterr().err
