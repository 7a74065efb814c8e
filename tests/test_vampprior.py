"""The VampPrior (Tomczak & Welling, 2018): the mixture density, float64 gradients of its ELBO,
the IW bound against an exact log-likelihood, DReG with a learned prior (the runs axis:
test_zoo_runs_axis.py)."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from jax.test_util import check_grads

from conftest import jittered
from vae_jax import distributions as dist, iwae, models, objectives, train

SHAPE = (3, 4, 1)


def _objective(latent_dim=2, pseudo=3):
  model = models.build_model(ml_collections.ConfigDict(dict(
      kind="vae", latent_dim=latent_dim, dense_init="lecun_normal", prior="vampprior",
      pseudo_inputs=pseudo, encoder=dict(kind="mlp", widths=(6,)),
      decoder=dict(kind="mlp", widths=(6,)))), SHAPE)
  return objectives.VAEObjective(model)


def _params(objective, dtype=jnp.float32):
  return jittered(objective.init_params(jax.random.key(0), SHAPE), dtype)


def test_the_mixture_density_matches_a_direct_sum():
  mean = jax.random.normal(jax.random.key(0), (5, 3))
  logvar = 0.5 * jax.random.normal(jax.random.key(1), (5, 3))
  z = jax.random.normal(jax.random.key(2), (4, 7, 3)) * 2
  direct = jax.nn.logsumexp(dist.log_normal_diag(z[..., None, :], mean, logvar), -1) - np.log(5)
  np.testing.assert_allclose(models.vampprior.log_normal_mixture(z, mean, logvar), direct,
                             rtol=1e-5, atol=1e-4)


@pytest.mark.slow  # float64 finite differences: seconds of compute.
def test_vampprior_objective_gradients_in_float64():
  objective = _objective()
  with jax.enable_x64(True):
    params = _params(objective, jnp.float64)
    batch = {"image": jnp.asarray(np.random.default_rng(0).integers(0, 256, (2, *SHAPE)),
                                  jnp.uint8), "label": jnp.zeros((2,), jnp.int32)}
    h = train.Hparams.of()

    def loss(p):
      return jnp.mean(objective.terms(p, batch, jax.random.key(1), h)["loss"])

    check_grads(loss, (params,), order=1, modes=("rev",), atol=1e-5, rtol=1e-5)
    assert np.abs(np.asarray(jax.grad(loss)(params)["pseudo_inputs"])).sum() > 0  # Learned.


def test_the_iw_bound_under_the_mixture_prior_approaches_the_exact_log_likelihood():
  objective = _objective(latent_dim=1)
  params = _params(objective)
  x = jax.random.bernoulli(jax.random.key(1), 0.4, (3, *SHAPE)).astype(jnp.float32)
  model = objective.model
  z = jnp.linspace(-12.0, 12.0, 24001)
  logits = model.apply({"params": params}, z[:, None], None, method=model.decode)
  log_prior = model.apply({"params": params}, z[:, None], method=model.log_prior)  # [N]
  log_joint = dist.bernoulli_log_likelihood(logits[:, None], x[None]) + log_prior[:, None]
  exact = np.asarray(jax.nn.logsumexp(log_joint, axis=0) + jnp.log(z[1] - z[0]))
  bound = jax.jit(jax.vmap(lambda k: objectives.iwae_bound(
      model, params, x, k, 5000, chunk_size=1000, log_prior=objective.log_prior_fn())))
  nll = -np.asarray(bound(jax.random.split(jax.random.key(4), 8)))  # [8, B]
  assert np.isfinite(nll).all()
  assert np.all(nll.mean(0) >= -exact - 3 * nll.std(0) / np.sqrt(8) - 1e-3)
  np.testing.assert_allclose(nll.mean(0), -exact, atol=0.05)


@pytest.mark.slow  # Seconds of compute: the full suite's.
def test_dreg_with_a_learned_prior_keeps_the_bound_and_the_prior_gradient():
  objective = _objective()
  params = _params(objective)
  x = jax.random.bernoulli(jax.random.key(1), 0.4, (4, *SHAPE)).astype(jnp.float32)

  def loss(p, estimator):
    return jnp.mean(iwae.iwae_terms(objective.model, p, x, jax.random.key(2), 10,
                                    estimator=estimator,
                                    log_prior=objective.log_prior_fn())["loss"])

  # Jitted: one program per estimator, not hundreds of op-by-op compilations.
  value_and_grad = jax.jit(jax.value_and_grad(loss), static_argnums=1)
  (l_iwae, g_iwae), (l_dreg, g_dreg) = (value_and_grad(params, e) for e in ("iwae", "dreg"))
  np.testing.assert_allclose(l_dreg, l_iwae, rtol=1e-6)
  for part in ("decoder", "pseudo_inputs"):  # Generative-model params: the bound's gradient.
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
                 g_iwae[part], g_dreg[part])

