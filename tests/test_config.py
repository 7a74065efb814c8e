"""Config files, typed overrides and validation."""


import pytest

from vae_jax import config as config_lib

CONFIGS = sorted(p for p in config_lib.CONFIG_DIR.glob("*.py") if p.stem != "__init__")


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_every_experiment_config_loads_and_validates(path):
  config = config_lib.validate(config_lib.load_config(path))
  assert config.train.epochs > 0 and config.model.latent_dim > 0


def test_overrides_are_typed():
  config = config_lib.base_config()
  config_lib.apply_overrides(config, ["optim.lr=3e-4", "model.encoder.widths=512,256",
                                     "train.epochs=3", "data.name=fashion_mnist",
                                     "growth.enabled=True", "model.decoder.widths=64"])
  assert config.optim.lr == 3e-4 and config.model.encoder.widths == (512, 256)
  assert config.train.epochs == 3 and config.data.name == "fashion_mnist"
  assert config.growth.enabled is True and config.model.decoder.widths == (64,)


@pytest.mark.parametrize("override", ["optim.lr=1e-3x", "train.epochs=True", "growth.enabled=1",
                                      "model.encoder.widths=a,b", "nope=1", "optim=1", "=3"])
def test_bad_overrides_raise(override):
  with pytest.raises(config_lib.ConfigError):
    config_lib.apply_overrides(config_lib.base_config(), [override])


def test_growth_section_is_validated():
  config = config_lib.base_config()
  config.growth.enabled = True
  config.model.encoder.widths = (32, 16)
  config_lib.validate(config)
  config.growth.increments = (32,)
  with pytest.raises(config_lib.ConfigError, match="growth.increments"):
    config_lib.validate(config)


@pytest.mark.parametrize("overrides", [
    ["data.validation_fraction=1.0"], ["data.validation_fraction=-0.1"],
    ["data.validation_fraction=0.1", "data.validation_size=100"]])
def test_bad_validation_fraction_is_refused(overrides):
  config = config_lib.apply_overrides(config_lib.base_config(), overrides)
  with pytest.raises(config_lib.ConfigError, match="validation_fraction"):
    config_lib.validate(config)
