"""Closed forms of distributions.py against Monte Carlo and optax."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from vae_jax import distributions as dist


@pytest.mark.parametrize("use_jit", [False, True])
def test_analytic_kl_matches_monte_carlo(use_jit):
  k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
  mean = jax.random.normal(k1, (4, 3))
  logvar = 0.5 * jax.random.normal(k2, (4, 3))
  kl = (jax.jit(dist.kl_diag_gaussian_standard) if use_jit else dist.kl_diag_gaussian_standard)(
      mean, logvar)
  z = dist.reparameterize(k3, jnp.broadcast_to(mean, (200_000, 4, 3)),
                          jnp.broadcast_to(logvar, (200_000, 4, 3)))
  mc = jnp.mean(dist.log_normal_diag(z, mean, logvar) - dist.log_normal_standard(z), axis=0)
  np.testing.assert_allclose(kl, mc, atol=0.02)
  assert np.all(np.asarray(kl) > 0)
  np.testing.assert_allclose(dist.kl_diag_gaussian_standard(jnp.zeros((2, 5)), jnp.zeros((2, 5))),
                             0.0, atol=1e-7)


def test_reparameterization_moments_and_gradient():
  mean = jnp.array([1.0, -2.0, 0.5])
  logvar = jnp.log(jnp.array([0.25, 4.0, 1.0]))
  z = dist.reparameterize(jax.random.key(1), jnp.broadcast_to(mean, (100_000, 3)),
                          jnp.broadcast_to(logvar, (100_000, 3)))
  np.testing.assert_allclose(z.mean(0), mean, atol=0.02)
  np.testing.assert_allclose(z.var(0), jnp.exp(logvar), rtol=0.03)
  # dz/dmean = 1 exactly: the sample is a differentiable function of the parameters.
  grad = jax.grad(lambda m: dist.reparameterize(jax.random.key(2), m, logvar).sum())(mean)
  np.testing.assert_allclose(grad, 1.0)


def test_bernoulli_log_likelihood_is_minus_optax_bce():
  k1, k2 = jax.random.split(jax.random.key(3))
  logits = 5 * jax.random.normal(k1, (2, 5, 3, 4, 1))
  x = jax.random.uniform(k2, (5, 3, 4, 1))  # grayscale targets, broadcast over the leading axis
  ours = dist.bernoulli_log_likelihood(logits, x)
  ref = -optax.sigmoid_binary_cross_entropy(logits, jnp.broadcast_to(x, logits.shape)).sum(
      (-3, -2, -1))
  assert ours.shape == (2, 5)
  np.testing.assert_allclose(ours, ref, rtol=1e-5)


def test_softplus_stable_with_sigmoid_gradient():
  x = jnp.array([-1000.0, -20.0, -1.0, 0.0, 1.0, 20.0, 1000.0])
  np.testing.assert_allclose(dist.softplus(x), jax.nn.softplus(x), rtol=1e-6)
  np.testing.assert_allclose(jax.vmap(jax.grad(dist.softplus))(x), jax.nn.sigmoid(x), atol=1e-7)


def test_log_normal_diag_matches_scipy():
  scipy_stats = pytest.importorskip("scipy.stats")
  z, mean, logvar = np.array([0.3, -1.2]), np.array([0.1, 0.4]), np.array([-0.5, 0.7])
  ref = scipy_stats.norm.logpdf(z, mean, np.exp(0.5 * logvar)).sum()
  np.testing.assert_allclose(dist.log_normal_diag(z, mean, logvar), ref, rtol=1e-5)
  np.testing.assert_allclose(dist.log_normal_standard(z), scipy_stats.norm.logpdf(z).sum(),
                             rtol=1e-5)


def test_unknown_likelihood_raises():
  with pytest.raises(ValueError, match="unknown likelihood"):
    dist.log_likelihood_fn("poisson")
