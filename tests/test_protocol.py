"""The one objective protocol for the four model kinds, the CVAE's conditional bounds, config
validation of the new sections, and a conv config trained on mock CIFAR-10."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vae_jax import config as config_lib, evaluate, models, objectives, runner, train

SHAPE = (8, 8, 1)
H = train.Hparams.of(beta=1.0, lr=1e-3, weight_decay=0.0)


def _objective(kind, encoder="mlp", decoder="mlp"):
  c = config_lib.base_config()
  c.model.kind, c.model.latent_dim = kind, 3
  c.model.encoder.kind, c.model.decoder.kind = encoder, decoder
  c.model.encoder.widths = c.model.decoder.widths = (16,)
  c.model.encoder.features, c.model.decoder.features = (4, 8), (8, 4)
  c.model.classifier_hidden = 6
  objective = objectives.OBJECTIVES[kind](
      model=models.build_model(c.model, SHAPE, 4 if kind in ("cvae", "classifier") else 0))
  params = models.init_params(objective.model, jax.random.key(0), SHAPE,
                              getattr(objective.model, "num_classes", 0))
  return objective, params


def _batch(n=5):
  images = jax.random.randint(jax.random.key(1), (n, *SHAPE), 0, 256).astype(jnp.uint8)
  return {"image": images, "label": jnp.arange(n, dtype=jnp.int32) % 4}


@pytest.mark.parametrize("kind, encoder, decoder, term_keys", [
    ("vae", "conv", "conv", {"loss", "recon", "kl"}),
    ("ae", "mlp", "conv", {"loss", "recon"}),
    ("cvae", "conv", "mlp", {"loss", "recon", "kl"}),
    ("classifier", "conv", "mlp", {"loss", "error"}),
])
def test_protocol_for_every_kind(kind, encoder, decoder, term_keys):
  objective, params = _objective(kind, encoder, decoder)
  batch, key = _batch(), jax.random.key(2)

  @jax.jit
  def everything(p):
    terms = objective.terms(p, batch, key, H)
    grads = jax.grad(lambda q: jnp.mean(objective.terms(q, batch, key, H)["loss"]))(p)
    latent = objective.latent(p, batch)
    evals = objective.eval_terms(p, batch, key, H, 2 if objective.has_posterior else 0)
    return terms, grads, latent, evals

  terms, grads, latent, evals = everything(params)
  assert set(terms) == term_keys and all(v.shape == (5,) for v in terms.values())
  assert all(np.all(np.isfinite(v)) for v in terms.values())
  assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
  assert latent.shape == (5, 6 if kind == "classifier" else 3)
  assert term_keys <= set(evals)
  assert objective.has_posterior == (kind in ("vae", "cvae"))
  assert objective.can_decode == (kind != "classifier")
  if objective.can_decode:
    mean = objective.decode_mean(params, latent, batch["label"])
    assert mean.shape == (5, *SHAPE) and 0 <= float(mean.min()) <= float(mean.max()) <= 1
    np.testing.assert_allclose(evals["mse"], np.sum((np.asarray(mean) - np.asarray(
        objective.images(batch, key))) ** 2, axis=(1, 2, 3)), rtol=1e-5)
  else:
    with pytest.raises(NotImplementedError):
      objective.decode_mean(params, latent)
  if objective.has_posterior:
    np.testing.assert_allclose(terms["loss"], terms["recon"] + terms["kl"], rtol=1e-5)
    beta4 = objective.terms(params, batch, key, H._replace(beta=jnp.float32(4.0)))
    np.testing.assert_allclose(beta4["loss"], terms["recon"] + 4 * terms["kl"], rtol=1e-5)
    assert "elbo_l2" in evals
    bound = jax.jit(lambda p: objective.iw_bound(p, batch, key, 20, 7))(params)
    assert bound.shape == (5,) and np.all(np.isfinite(bound))


def test_cvae_bounds_are_conditional_on_the_label():
  """IW-NLL of a CVAE is -log p(x | y): changing the labels changes every bound."""
  objective, params = _objective("cvae", "mlp", "mlp")
  batch, key = _batch(), jax.random.key(3)
  other = dict(batch, label=(batch["label"] + 1) % 4)
  for fn in (lambda b: objective.iw_bound(params, b, key, 10, 5),
             lambda b: objective.terms(params, b, key, H)["loss"],
             lambda b: objective.latent(params, b)):
    assert not np.allclose(fn(batch), fn(other))
  k_bounds = [float(jnp.mean(jax.vmap(lambda k, n=n: objective.iw_bound(params, batch, k, n, 5))(
      jax.random.split(key, 64)))) for n in (1, 20)]
  assert k_bounds[0] < k_bounds[1]


@pytest.mark.parametrize("overrides, fragment", [
    ({"growth.enabled": True, "model.encoder.kind": "conv"},
     "growth.enabled needs model.encoder.kind=mlp"),
    ({"model.kind": "cvae", "data.name": "celeb_a", "eval.iw_samples": 0}, "needs class labels"),
    ({"train.early_stopping.patience": 3}, "needs a validation split"),
    ({"model.encoder.kind": "cnn"}, "unknown model.encoder.kind 'cnn'"),
    ({"model.decoder.upsample": "nearest"}, "unknown model.decoder.upsample"),
    ({"model.decoder.project_activation": "tanh"}, "unknown model.decoder.project_activation"),
    ({"model.decoder.transpose_fan": "both"}, "unknown model.decoder.transpose_fan"),
    ({"model.encoder.kind": "conv", "model.encoder.features": "32,0"},
     "model.encoder.features[1] must be positive"),
    ({"model.kind": "classifier"}, "eval.iw_samples=5000 needs a VAE"),
    ({"model.decoder.kind": "conv"}, "needs H and W divisible"),
    ({"train.early_stopping.patience": 2, "train.early_stopping.metric": "val/elbo_l20",
      "data.validation_size": 100}, "lower-is-better"),
    ({"train.early_stopping.patience": 2, "data.validation_size": 100, "growth.enabled": True,
      "model.encoder.widths": "8,4"}, "not supported"),
])
def test_validate_new_sections_one_line(overrides, fragment):
  config = config_lib.base_config()
  config_lib.apply_overrides(config, [f"{k}={v}" for k, v in overrides.items()])
  with pytest.raises(config_lib.ConfigError) as e:
    config_lib.validate(config)
  assert fragment in str(e.value) and "\n" not in str(e.value)


def test_conv_config_trains_one_epoch_on_mock_cifar10(tmp_path, monkeypatch):
  """A cifar10-shaped conv VAE (32x32x3, MSE term, tiny widths) for one epoch on TFDS mock data:
  the run-directory contract, per-class metrics for the 10 labels, RGB figures."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from vae_jax import data  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(data.loading, "network_available", lambda *a, **k: False)
  config = config_lib.base_config()
  config_lib.apply_overrides(config, [
      "data.name=cifar10", "model.encoder.kind=conv", "model.decoder.kind=conv",
      "model.encoder.features=4,8", "model.decoder.features=8,4", "model.latent_dim=4",
      "model.likelihood=mse", "model.decoder.upsample=phase", "train.epochs=1",
      "train.batch_size=16", "eval.iw_samples=0", "train.steps_per_call=2"])
  with tfds.testing.mock_data(num_examples=64):
    summary = runner.train_and_evaluate(config, tmp_path / "c", progress=False)
  assert np.isfinite(summary["eval/loss"]) and len(summary["eval/per_class/loss"]) == 10
  assert summary["param_count"] == models.param_count(evaluate.restore_run(tmp_path / "c")[2])
  assert set(summary["figures"]) == {"loss_curves.png", "reconstructions.png",
                                     "prior_samples.png", "latent_scatter.png",
                                     "filters.png", "feature_maps.png"}  # A conv encoder's.
  assert json.loads((tmp_path / "c" / "config.json").read_text())["data"]["name"] == "cifar10"
