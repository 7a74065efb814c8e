"""Classifier-FID / IS, AUROC and the params hash on inputs with known answers."""

import jax.numpy as jnp
import numpy as np
import pytest

from vae_jax import metrics


def test_fid_of_a_set_with_itself_is_zero():
  x = np.random.default_rng(0).normal(size=(500, 8))
  assert abs(metrics.fid(x, x)) < 1e-6


def test_frechet_distance_of_gaussians_equals_the_closed_form():
  rng = np.random.default_rng(1)
  m1, m2 = rng.normal(size=5), rng.normal(size=5)
  s1, s2 = rng.uniform(0.5, 2.0, size=5), rng.uniform(0.5, 2.0, size=5)
  # Diagonal covariances: |m1 - m2|^2 + sum (s1 - s2)^2.
  expected = np.sum((m1 - m2) ** 2) + np.sum((s1 - s2) ** 2)
  got = metrics.frechet_distance(m1, np.diag(s1 ** 2), m2, np.diag(s2 ** 2))
  assert got == pytest.approx(expected, rel=1e-9)
  # A rotated pair keeps the distance (it depends on the covariances, not the basis).
  q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
  rotated = metrics.frechet_distance(q @ m1, q @ np.diag(s1 ** 2) @ q.T, q @ m2,
                                     q @ np.diag(s2 ** 2) @ q.T)
  assert rotated == pytest.approx(expected, rel=1e-6)


def test_fid_of_shifted_samples_approaches_the_squared_shift():
  x = np.random.default_rng(2).normal(size=(20000, 3))
  assert metrics.fid(x, x + np.array([1.0, 2.0, 0.0])) == pytest.approx(5.0, abs=0.05)
  with pytest.raises(ValueError, match="N >= 2"):
    metrics.fid(x[:1], x)


def test_inception_score_bounds():
  one_hot = np.eye(10)[np.arange(1000) % 10]
  assert metrics.inception_score(one_hot) == pytest.approx(10.0)
  assert metrics.inception_score(np.full((50, 10), 0.1)) == pytest.approx(1.0)
  assert metrics.inception_score(np.eye(10)[np.zeros(50, int)]) == pytest.approx(1.0)
  with pytest.raises(ValueError, match="sum to 1"):
    metrics.inception_score(np.ones((4, 10)))


def test_auroc_of_separated_and_identical_scores():
  assert metrics.auroc([5.0, 6.0, 7.0], [1.0, 2.0]) == 1.0
  assert metrics.auroc([1.0, 2.0], [5.0, 6.0]) == 0.0
  assert metrics.auroc(np.ones(10), np.ones(20)) == 0.5
  with pytest.raises(ValueError, match="positives and negatives"):
    metrics.auroc([], [1.0])


def test_params_hash_names_the_params():
  params = {"a": jnp.ones((2, 3)), "b": {"c": jnp.zeros(4)}}
  same = {"a": jnp.ones((2, 3)), "b": {"c": jnp.zeros(4)}}
  assert metrics.params_hash(params) == metrics.params_hash(same)
  assert len(metrics.params_hash(params)) == 12
  changed = {"a": jnp.ones((2, 3)).at[0, 0].set(1.5), "b": {"c": jnp.zeros(4)}}
  assert metrics.params_hash(changed) != metrics.params_hash(params)


def test_png_bits_grow_with_image_complexity():
  rng = np.random.default_rng(0)
  flat = np.zeros((2, 28, 28, 1), np.uint8)
  noise = rng.integers(0, 256, size=(2, 28, 28, 1), dtype=np.uint8)
  bits = metrics.png_bits(np.concatenate([flat, noise]))
  assert bits.shape == (4,) and bits[0] == bits[1] and bits[2] > 4 * bits[0]
  assert bits[2] > 28 * 28 * 8 * 0.9  # Noise does not compress.
  with pytest.raises(ValueError, match="uint8"):
    metrics.png_bits(flat.astype(np.float32))
