"""Configs name a user's own flax modules ("package.module:Class"): built with the config's
fields they declare, trained by the one loop, refused in one line when they cannot be."""

import jax
import pytest

from vae_jax import config as config_lib, models, objectives, runner


def _config(**overrides):
  config = config_lib.base_config()
  config_lib.apply_overrides(config, [f"{k}={v}" for k, v in {
      "model.encoder.kind": "user_models:Encoder", "model.decoder.kind": "user_models:Decoder",
      "model.latent_dim": 3, **overrides}.items()])
  return config


def test_config_builds_the_named_modules_with_their_fields():
  config = config_lib.validate(_config())
  model = models.build_model(config.model, (4, 4, 1))
  assert type(model.encoder).__name__ == "Encoder" and model.encoder.latent_dim == 3
  assert model.decoder.image_shape == (4, 4, 1)
  objective = objectives.from_config(config, (4, 4, 1))
  params = objective.init_params(jax.random.key(0), (4, 4, 1))
  assert set(params) == {"encoder", "decoder"}


@pytest.mark.parametrize("kind, fragment", [
    ("no_such_module:Encoder", "cannot import 'no_such_module:Encoder'"),
    ("user_models:Missing", "cannot import 'user_models:Missing'"),
    ("user_models:NOT_A_MODULE", "is not a flax.linen.Module class"),
])
def test_bad_module_names_are_refused_in_one_line(kind, fragment):
  with pytest.raises(ValueError, match=fragment) as e:
    models.build_model(_config(**{"model.encoder.kind": kind}).model, (4, 4, 1))
  assert "\n" not in str(e.value)
  with pytest.raises(config_lib.ConfigError, match="unknown model.decoder.kind 'gru'"):
    config_lib.validate(_config(**{"model.decoder.kind": "gru"}))


def test_a_config_with_user_modules_trains_and_resumes(tiny, tmp_path):
  overrides = {"model.encoder.kind": "user_models:Encoder",
               "model.decoder.kind": "user_models:Decoder", "eval.iw_samples": 4}
  summary = runner.train_and_evaluate(tiny(**overrides), tmp_path / "u", progress=False)
  assert summary["epoch"] == 1 and summary["eval/nll_iw"] > 0
  again = runner.train_and_evaluate(tiny(**overrides, **{"train.epochs": 2}), tmp_path / "u",
                                    resume=True, progress=False)
  assert again["epoch"] == 2
