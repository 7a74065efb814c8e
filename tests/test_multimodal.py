"""The multimodal (image, label) VAE: the product of experts, float64 gradients, the three
ELBOs, images from a label and labels from an image after training (the runs axis:
test_zoo_runs_axis.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.test_util import check_grads

import vae_jax
from vae_jax import train
from vae_jax.models import multimodal


def test_the_product_of_experts_multiplies_the_gaussians_with_the_prior():
  mean, logvar = multimodal.product_of_experts([jnp.array([[2.0]]), jnp.array([[-1.0]])],
                                               [jnp.log(jnp.array([[0.5]])), jnp.array([[0.0]])])
  # Precisions 1 (prior) + 2 + 1 = 4; mean (0 + 2 * 2 - 1 * 1) / 4.
  np.testing.assert_allclose(mean, [[0.75]], rtol=1e-6)
  np.testing.assert_allclose(jnp.exp(logvar), [[0.25]], rtol=1e-6)
  prior = multimodal.product_of_experts([], [])
  np.testing.assert_allclose(prior[1], 0.0)  # No expert: N(0, I).


def _objective():
  model = vae_jax.models.MultimodalVAE(vae_jax.models.MLPEncoder((16,), 2),
                                       vae_jax.models.MLPDecoder((16,), (4, 4, 1)), num_classes=2,
                                       hidden=8)
  return vae_jax.objectives.MultimodalObjective(model, label_weight=5.0)


@pytest.mark.slow  # float64 finite differences: seconds of compute.
def test_multimodal_gradients_in_float64():
  objective = _objective()
  with jax.enable_x64(True):
    params = jax.tree.map(lambda p: p.astype(jnp.float64) + 0.1,
                          objective.init_params(jax.random.key(0), (4, 4, 1)))
    batch = {"image": jnp.asarray(np.random.default_rng(0).integers(0, 256, (3, 4, 4, 1)),
                                  jnp.uint8), "label": jnp.array([0, 1, 1], jnp.int32)}
    # Jitted: one program, not hundreds of op-by-op compilations per evaluation.
    check_grads(jax.jit(lambda p: jnp.mean(objective.terms(p, batch, jax.random.key(1),
                                                           train.Hparams.of())["loss"])),
                (params,), order=1, modes=("rev",), atol=1e-5, rtol=1e-5)


@pytest.mark.slow  # Seconds of compute: the full suite's.
def test_after_training_a_label_makes_its_images_and_an_image_gives_its_label():
  objective = _objective()
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 2, 256).astype(np.int32)
  images = np.zeros((256, 4, 4, 1), np.uint8)
  images[labels == 0, :2] = 255  # Class 0: top half lit; class 1: bottom half.
  images[labels == 1, 2:] = 255
  result = vae_jax.fit(objective, optax.adam(1e-2), (images, labels),
                       eval_data=(images, labels), epochs=15, batch_size=32, progress=False)
  assert result.history[-1]["eval/error"] < 0.05  # The label read from the image.
  wanted = jnp.array([0] * 8 + [1] * 8, jnp.int32)
  mean = objective.images_from_labels(result.params, wanted)  # From the mean of q(z | y).
  drawn = objective.images_from_labels(result.params, wanted, jax.random.key(0))
  for images_, need in ((mean, 8), (drawn, 6)):  # Samples of q(z | y): most look right.
    top = np.asarray(images_[:, :2]).mean((1, 2, 3))
    bottom = np.asarray(images_[:, 2:]).mean((1, 2, 3))
    assert (top[:8] > bottom[:8]).sum() >= need and (bottom[8:] > top[8:]).sum() >= need

