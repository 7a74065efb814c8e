"""Shapes and parameter counts through jax.eval_shape (no compute)."""

import jax
import jax.numpy as jnp
import ml_collections
import pytest

from vae_jax import models


def _abstract_params(model, image_shape):
  x = jax.ShapeDtypeStruct((1, *image_shape), jnp.float32)
  return jax.eval_shape(lambda k, x: model.init(k, x, k)["params"], jax.random.key(0), x)


@pytest.mark.parametrize("enc,dec,latent,expected", [
    ((400,), (400,), 20, (784 * 400 + 400 + 2 * (400 * 20 + 20))
     + (20 * 400 + 400 + 400 * 784 + 784)),                     # mnist_mlp: 652,824
    ((400,), (400,), 2, (784 * 400 + 400 + 2 * (400 * 2 + 2))
     + (2 * 400 + 400 + 400 * 784 + 784)),                      # mnist_2d
    ((256, 128), (128, 256), 20, 784 * 256 + 256 + 256 * 128 + 128 + 2 * (128 * 20 + 20)
     + 20 * 128 + 128 + 128 * 256 + 256 + 256 * 784 + 784),    # growth study's fixed arm
])
def test_param_count(enc, dec, latent, expected):
  model = models.VAE(enc, dec, latent, (28, 28, 1))
  params = _abstract_params(model, (28, 28, 1))
  assert models.param_count(params) == expected


def test_layer_names_and_output_shapes():
  model = models.VAE((8, 4), (6,), 3, (5, 5, 1))
  params = _abstract_params(model, (5, 5, 1))
  assert set(params["encoder"]["mlp"]) == {"hidden_0", "hidden_1"}
  assert params["encoder"]["mlp"]["hidden_1"]["kernel"].shape == (8, 4)
  assert params["encoder"]["mean"]["kernel"].shape == (4, 3)
  x = jax.ShapeDtypeStruct((7, 5, 5, 1), jnp.float32)
  out, mean, logvar = jax.eval_shape(
      lambda p, x: model.apply({"params": p}, x, jax.random.key(0)), params, x)
  assert out.shape == (7, 5, 5, 1) and mean.shape == logvar.shape == (7, 3)


def test_build_model_rejects_non_positive_sizes():
  cfg = ml_collections.ConfigDict(dict(latent_dim=0, encoder_widths=(4,), decoder_widths=(4,)))
  with pytest.raises(ValueError, match="positive"):
    models.build_model(cfg, (28, 28, 1))
