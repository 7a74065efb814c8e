"""ELBO and IWAE bound identities."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vae_jax import distributions as dist
from vae_jax import iwae, objectives


@pytest.fixture
def batch():
  return jax.random.uniform(jax.random.key(5), (6, 3, 4, 1))


def test_iwae_k1_equals_elbo_on_the_same_sample(tiny_vae, batch):
  model, params = tiny_vae
  key = jax.random.key(7)
  bound = objectives.iwae_bound(model, params, batch, key, 1, chunk_size=1)
  # The same z: iwae_bound draws chunk 0 with fold_in(key, 0) and shape [1, B, Z].
  mean, logvar = model.apply({"params": params}, batch, method=model.encode)
  z = dist.reparameterize(jax.random.fold_in(key, 0), mean[None], logvar[None])[0]
  logits = model.apply({"params": params}, z, method=model.decode)
  elbo = (dist.bernoulli_log_likelihood(logits, batch) + dist.log_normal_standard(z)
          - dist.log_normal_diag(z, mean, logvar))
  np.testing.assert_allclose(bound, elbo, rtol=1e-5)


def test_iwae_at_least_elbo_and_rises_with_k(tiny_vae, batch):
  model, params = tiny_vae
  keys = jax.random.split(jax.random.key(8), 200)
  elbo = jnp.mean(jax.vmap(
      lambda k: objectives.elbo_multi_sample(model, params, batch, k, 1))(keys))
  means = [float(jnp.mean(jax.vmap(lambda k, n=n: objectives.iwae_bound(
      model, params, batch, k, n, chunk_size=4))(keys))) for n in (1, 5, 50)]
  assert abs(means[0] - float(elbo)) < 0.5  # Same expectation (MC vs analytic KL).
  assert means[0] < means[1] < means[2]
  assert means[2] >= float(elbo)


def test_iwae_chunking_bounds_memory_but_not_the_value(tiny_vae, batch):
  """K = 7 in chunks of 3 (last chunk masked) equals K = 7 in chunks of 3 computed by hand."""
  model, params = tiny_vae
  key = jax.random.key(9)
  bound = objectives.iwae_bound(model, params, batch, key, 7, chunk_size=3)
  mean, logvar = model.apply({"params": params}, batch, method=model.encode)
  logws = []
  for i in range(3):
    z = dist.reparameterize(jax.random.fold_in(key, i), jnp.broadcast_to(mean, (3, *mean.shape)),
                            jnp.broadcast_to(logvar, (3, *logvar.shape)))
    logits = iwae.decode_many(model, params, z)
    logws.append(dist.bernoulli_log_likelihood(logits, batch) + dist.log_normal_standard(z)
                 - dist.log_normal_diag(z, mean, logvar))
  logw = jnp.concatenate(logws)[:7]
  np.testing.assert_allclose(bound, jax.nn.logsumexp(logw, axis=0) - np.log(7), rtol=1e-5)


def test_neg_elbo_terms_and_beta(tiny_vae, batch):
  model, params = tiny_vae
  key = jax.random.key(10)
  t1 = objectives.neg_elbo(model, params, batch, key)
  t4 = objectives.neg_elbo(model, params, batch, key, beta=4.0)
  assert t1["loss"].shape == (6,)
  np.testing.assert_allclose(t1["loss"], t1["recon"] + t1["kl"], rtol=1e-6)
  np.testing.assert_allclose(t4["loss"], t1["recon"] + 4 * t1["kl"], rtol=1e-6)
  assert np.all(np.asarray(t1["kl"]) >= 0)


def test_elbo_multi_sample_converges_to_single_sample_mean(tiny_vae, batch):
  model, params = tiny_vae
  l20 = objectives.elbo_multi_sample(model, params, batch, jax.random.key(11), 2000)
  singles = jax.vmap(lambda k: -objectives.neg_elbo(model, params, batch, k)["loss"])(
      jax.random.split(jax.random.key(12), 2000)).mean(0)
  np.testing.assert_allclose(l20, singles, atol=0.2)


def test_iwae_bad_k_raises(tiny_vae, batch):
  model, params = tiny_vae
  with pytest.raises(ValueError):
    objectives.iwae_bound(model, params, batch, jax.random.key(0), 0)
