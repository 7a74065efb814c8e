"""VQ-VAE: nearest-code quantization, the codebook's moving averages, the straight-through
gradient, training through fit (the runs axis: test_zoo_runs_axis.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

import vae_jax
from vae_jax import train
from vae_jax.models import vqvae


def test_quantize_picks_the_nearest_code_and_the_codebook_is_the_smoothed_mean():
  codes = jnp.array([[0.0, 0.0], [1.0, 1.0], [-2.0, 0.5]])
  z = jnp.array([[[0.9, 0.8], [-1.5, 0.0], [0.1, -0.2]]])
  z_q, idx = vqvae.quantize(z, codes)
  np.testing.assert_array_equal(idx, [[1, 2, 0]])
  np.testing.assert_array_equal(z_q, codes[jnp.array([[1, 2, 0]])])
  counts, sums = vqvae.ema_update(jnp.ones(3), codes, idx, z, 0.5)
  np.testing.assert_allclose(counts, [1.0, 1.0, 1.0])  # 0.5 * 1 + 0.5 * one use each.
  np.testing.assert_allclose(sums, 0.5 * codes + 0.5 * z[0][jnp.array([2, 0, 1])], rtol=1e-6)
  np.testing.assert_allclose(vqvae.codebook(counts, sums), sums, rtol=1e-4)


def _objective(codes=16):
  model = vae_jax.models.VQVAE(
      vae_jax.models.MLPEncoder((32,), 4 * 3, heads=vae_jax.models.CODE_HEADS),
      vae_jax.models.MLPDecoder((32,), (6, 6, 1)), num_codes=codes, code_dim=3)
  return vae_jax.objectives.VQVAEObjective(model, decay=0.9)


def test_the_straight_through_gradient_reaches_the_encoder_but_not_the_codebook():
  objective = _objective()
  params = objective.init_params(jax.random.key(0), (6, 6, 1))
  batch = {"image": jnp.asarray(np.random.default_rng(0).integers(0, 256, (8, 6, 6, 1)),
                                jnp.uint8), "label": jnp.zeros((8,), jnp.int32)}
  grads = jax.grad(lambda p: jnp.mean(objective.terms(p, batch, jax.random.key(1),
                                                      train.Hparams.of())["loss"]))(params)
  assert float(jnp.abs(grads["encoder"]["code"]["kernel"]).sum()) > 0
  assert float(jnp.abs(grads["counts"]).sum()) == 0 and float(jnp.abs(grads["sums"]).sum()) == 0


def test_a_vqvae_trains_through_fit_and_its_codebook_follows_the_encodings():
  objective = _objective()
  rng = np.random.default_rng(0)
  images = (rng.random((128, 6, 6, 1)) < np.linspace(0.1, 0.9, 36).reshape(1, 6, 6, 1)) * 255
  images = images.astype(np.uint8)
  result = vae_jax.fit(objective, optax.adam(3e-3), images, eval_data=images, epochs=4,
                       batch_size=32, progress=False)
  losses = [row["train/loss"] for row in result.history]
  assert losses[-1] < losses[0]
  assert result.history[-1]["eval/perplexity"] > 1.5  # More than one code in use.
  init = objective.init_params(jax.random.key(0), (6, 6, 1))
  assert not np.allclose(result.params["sums"], init["sums"])  # Moved by the averages alone.
  assert "eval/nll_iw" not in result.summary  # No likelihood without a prior over the codes.

