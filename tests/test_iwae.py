"""The IWAE training objective and DReG: float64 gradient checks, the bound against an exact
log-likelihood (a 1-D latent integrated by quadrature), DReG's gradients against the IWAE ones
(the runs axis: test_zoo_runs_axis.py)."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from jax.test_util import check_grads

from conftest import jittered
from vae_jax import config as config_lib, distributions as dist, iwae, models, objectives

SHAPE = (3, 4, 1)


def _model(latent_dim=2):
  return models.build_model(ml_collections.ConfigDict(dict(
      kind="vae", latent_dim=latent_dim, dense_init="lecun_normal", conv_runs="vmap",
      encoder=dict(kind="mlp", widths=(6,), features=(2,)),
      decoder=dict(kind="mlp", widths=(6,), features=(2,), upsample="phase"))), SHAPE)


def _jittered(model, dtype=jnp.float32):
  return jittered(models.init_params(model, jax.random.key(0), SHAPE), dtype)


def _images(n=4, dtype=jnp.float32):
  return jax.random.bernoulli(jax.random.key(1), 0.4, (n, *SHAPE)).astype(dtype)


@pytest.mark.slow  # float64 finite differences: seconds of compute.
@pytest.mark.parametrize("estimator", ["iwae", "dreg"])
def test_iwae_gradients_match_finite_differences_in_float64(estimator):
  model = _model()
  with jax.enable_x64(True):
    params, x, key = _jittered(model, jnp.float64), _images(dtype=jnp.float64), jax.random.key(2)

    def loss(p):  # Fixed noise: a deterministic function of the params.
      return jnp.mean(iwae.iwae_terms(model, p, x, key, 5, estimator="iwae")["loss"])

    check_grads(loss, (params,), order=1, modes=("rev",), atol=1e-5, rtol=1e-5)
    # DReG has the bound's value; its decoder gradient is the bound's, exactly.
    def dreg(p):
      return jnp.mean(iwae.iwae_terms(model, p, x, key, 5, estimator="dreg")["loss"])
    np.testing.assert_allclose(dreg(params), loss(params), rtol=1e-12)
    if estimator == "dreg":
      g_iwae, g_dreg = jax.grad(loss)(params), jax.grad(dreg)(params)
      jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12),
                   g_iwae["decoder"], g_dreg["decoder"])


@pytest.mark.slow  # Seconds of compute: the full suite's.
def test_dreg_encoder_gradient_is_unbiased_with_lower_variance():
  model, x = _model(), _images(2)
  params = _jittered(model)

  def grads(estimator):
    g = jax.vmap(lambda k: jax.grad(lambda p: jnp.mean(iwae.iwae_terms(
        model, p, x, k, 20, estimator=estimator)["loss"]))(params)["encoder"])(
            jax.random.split(jax.random.key(5), 4000))
    return np.concatenate([np.asarray(a).reshape(4000, -1) for a in jax.tree.leaves(g)], 1)

  g_iwae, g_dreg = grads("iwae"), grads("dreg")
  se = np.sqrt(g_iwae.var(0) / 4000 + g_dreg.var(0) / 4000)
  assert np.all(np.abs(g_iwae.mean(0) - g_dreg.mean(0)) < 5 * se + 1e-6)  # Same expectation.
  assert g_dreg.var(0).sum() < 0.5 * g_iwae.var(0).sum()  # Tucker et al.: far lower variance.


def test_the_bound_rises_with_k_towards_the_exact_log_likelihood():
  model = _model(latent_dim=1)
  params, x = _jittered(model), _images(3)
  # Exact log p(x) = log of the integral of p(x|z) N(z; 0, 1) over the 1-D latent, on a grid.
  z = jnp.linspace(-9.0, 9.0, 20001)
  logits = model.apply({"params": params}, z[:, None], None, method=model.decode)
  log_joint = (dist.bernoulli_log_likelihood(logits[:, None], x[None])
               + dist.log_normal_standard(z[:, None, None]))
  exact = jax.nn.logsumexp(log_joint, axis=0) + jnp.log(z[1] - z[0])
  def draws(k, n):  # [n, B] IW-NLL estimates, one vmapped program.
    bound = jax.jit(jax.vmap(lambda key: objectives.iwae_bound(
        model, params, x, key, k, chunk_size=min(k, 1000))))
    return -np.asarray(bound(jax.random.split(jax.random.key(9), n)))

  draws = {k: draws(k, n) for k, n in ((1, 400), (10, 400), (5000, 10))}
  nll = {k: d.mean(0) for k, d in draws.items()}
  se = {k: d.std(0) / np.sqrt(len(d)) for k, d in draws.items()}
  assert all(np.isfinite(d).all() for d in draws.values())
  for lo, hi in ((10, 1), (5000, 10)):  # E[-bound_K] falls as K grows (Burda et al., thm. 1).
    assert np.all(nll[hi] - nll[lo] > -3 * (se[hi] + se[lo])), (lo, hi, nll)
  assert np.all(nll[1] - nll[5000] > 0.05)  # Strictly here: the posterior is not exact.
  assert np.all(nll[5000] >= -np.asarray(exact) - 3 * se[5000] - 1e-3)  # A bound.
  np.testing.assert_allclose(nll[5000], -np.asarray(exact), atol=0.02)


def test_k1_iwae_is_the_single_sample_elbo_estimate():
  model = _model()
  params, x, key = _jittered(model), _images(), jax.random.key(4)
  t = iwae.iwae_terms(model, params, x, key, 1)
  mean, logvar = model.apply({"params": params}, x, None, method=model.encode)
  z = dist.reparameterize(key, mean[None], logvar[None])[0]
  logits = model.apply({"params": params}, z, None, method=model.decode)
  expect = (dist.bernoulli_log_likelihood(logits, x) + dist.log_normal_standard(z)
            - dist.log_normal_diag(z, mean, logvar))
  np.testing.assert_allclose(t["loss"], -expect, rtol=1e-5)
  np.testing.assert_allclose(t["recon"], -dist.bernoulli_log_likelihood(logits, x), rtol=1e-5)


def test_iwae_config_builds_the_objective_and_refuses_bad_fields():
  config = config_lib.apply_overrides(config_lib.base_config(), [
      "objective.name=iwae", "objective.num_samples=50", "objective.estimator=dreg"])
  objective = objectives.from_config(config_lib.validate(config), (28, 28, 1))
  assert isinstance(objective, objectives.IWAEObjective)
  assert (objective.num_samples, objective.estimator) == (50, "dreg")
  for override, message in (("objective.estimator=rws", "unknown objective.estimator"),
                            ("objective.num_samples=0", "objective.num_samples must be >= 1"),
                            ("model.kind=ae", "needs model.kind=vae, cvae or hvae")):
    bad = config_lib.apply_overrides(config.copy_and_resolve_references(), [override])
    with pytest.raises(config_lib.ConfigError, match=message):
      config_lib.validate(bad)

