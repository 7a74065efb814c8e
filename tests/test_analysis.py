"""Latent-space analysis functions."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from vae_jax import analysis


def test_linear_path_runs_from_start_to_end_in_equal_steps():
  z0, z1 = jnp.zeros((2, 3)), jnp.ones((2, 3)) * jnp.array([[1.0], [4.0]])
  path = analysis.linear_path(z0, z1, 5)
  assert path.shape == (2, 5, 3)
  np.testing.assert_allclose(path[:, 0], z0)
  np.testing.assert_allclose(path[:, -1], z1)
  np.testing.assert_allclose(np.diff(path[1, :, 0]), 1.0, rtol=1e-6)


@pytest.mark.parametrize("steps, shape", [(1, (2, 3)), (4, (2, 4))])
def test_linear_path_rejects_bad_input(steps, shape):
  with pytest.raises(ValueError, match="steps"):
    analysis.linear_path(jnp.zeros((2, 3)), jnp.zeros(shape), steps)


def test_spherical_path_keeps_the_norm_between_equal_norm_endpoints():
  z0, z1 = jnp.array([[3.0, 0.0]]), jnp.array([[0.0, 3.0]])
  path = analysis.spherical_path(z0, z1, 7)
  np.testing.assert_allclose(np.linalg.norm(path, axis=-1), 3.0, rtol=1e-5)
  np.testing.assert_allclose(path[0, [0, -1]], np.concatenate([z0, z1]), atol=1e-6)
  parallel = analysis.spherical_path(z0, 2 * z0, 3)  # Parallel: the linear path.
  np.testing.assert_allclose(parallel, analysis.linear_path(z0, 2 * z0, 3), atol=1e-6)


def test_active_units_count_dimensions_whose_posterior_mean_varies():
  rng = np.random.default_rng(0)
  means = np.concatenate([rng.normal(0, 1.0, (500, 3)), rng.normal(0, 0.05, (500, 2)),
                          np.full((500, 1), 4.0)], axis=1)  # sd 1, sd 0.05 (var 0.0025), const.
  count, variances = analysis.active_units(means)
  assert count == 3 and variances.shape == (6,)
  assert analysis.active_units(means, threshold=1e-4)[0] == 5
  with pytest.raises(ValueError, match="N >= 2"):
    analysis.active_units(means[:1])


def test_kl_per_dimension_sums_to_the_kl_term():
  from vae_jax import distributions
  mean = jnp.array([[0.0, 1.0], [0.5, -1.0]])
  logvar = jnp.array([[0.0, -1.0], [0.2, 0.3]])
  per_dim = analysis.kl_per_dimension(mean, logvar)
  assert per_dim[0] == pytest.approx(np.mean([0.0, 0.5 * (0.25 + np.exp(0.2) - 1 - 0.2)]))
  assert per_dim.sum() == pytest.approx(
      float(distributions.kl_diag_gaussian_standard(mean, logvar).mean()), rel=1e-6)


def test_arithmetic_and_class_means():
  latents = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 4.0]])
  means = analysis.class_means(latents, np.array([0, 0, 1]), 3)
  np.testing.assert_allclose(means[:2], [[1.0, 0.0], [0.0, 4.0]])
  assert np.isnan(means[2]).all()
  moved = analysis.latent_arithmetic(latents[:1], means[0], means[1])
  np.testing.assert_allclose(moved, [[-1.0, 4.0]])


def test_uncertainty_maps_are_zero_for_a_point_posterior_and_grow_with_its_spread():
  decode = lambda z: jax.nn.sigmoid(z[:, :4].reshape(-1, 2, 2, 1))  # noqa: E731
  mean = jnp.zeros((3, 4))
  key = jax.random.key(0)
  m0, sd0 = analysis.uncertainty_maps(decode, key, mean, jnp.full((3, 4), -30.0), 8)
  assert m0.shape == sd0.shape == (3, 2, 2, 1)
  np.testing.assert_allclose(sd0, 0.0, atol=1e-6)
  np.testing.assert_allclose(m0, 0.5, atol=1e-6)
  _, sd1 = analysis.uncertainty_maps(decode, key, mean, jnp.zeros((3, 4)), 64)
  assert float(sd1.min()) > 0.1
  with pytest.raises(ValueError, match="num_samples"):
    analysis.uncertainty_maps(decode, key, mean, mean, 1)


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_project_2d_separates_two_clusters(method):
  rng = np.random.default_rng(0)
  x = np.concatenate([rng.normal(0, 0.1, (20, 5)), rng.normal(5, 0.1, (20, 5))])
  # One OpenMP thread: scikit-learn's t-SNE spin-waits with 2 on 2 busy cores (31 s, not 0.1 s);
  # the embedding is the same.
  with threadpool_limits(1):
    y = analysis.project_2d(x, method)
  assert y.shape == (40, 2)
  gap = np.linalg.norm(y[:20].mean(0) - y[20:].mean(0))
  spread = max(np.linalg.norm(y[:20] - y[:20].mean(0), axis=1).max(),
               np.linalg.norm(y[20:] - y[20:].mean(0), axis=1).max())
  assert gap > spread
  with pytest.raises(ValueError, match="unknown projection"):
    analysis.project_2d(x, "umap")
