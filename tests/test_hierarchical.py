"""The hierarchical VAE (L stochastic layers; bottom-up and ladder inference): float64 gradients,
the IW bound against an exact log-likelihood of a 2-layer model with 1-D latents (a 2-D grid),
the ladder's precision-weighted merge (the runs axis: test_zoo_runs_axis.py)."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from jax.test_util import check_grads

from conftest import jittered
from vae_jax import distributions as dist, models, objectives, train

SHAPE = (3, 4, 1)


def _objective(inference, dims=(2, 2), num_samples=1):
  model = models.build_model(ml_collections.ConfigDict(dict(
      kind="hvae", dense_init="lecun_normal",
      hvae=dict(latent_dims=dims, widths=(6, 5), depth=1, inference=inference),
      encoder=dict(kind="mlp", widths=(6,)), decoder=dict(kind="mlp", widths=(6,)))), SHAPE)
  return objectives.HierarchicalObjective(model, num_samples=num_samples)


def _params(objective, dtype=jnp.float32):
  return jittered(objective.init_params(jax.random.key(0), SHAPE), dtype)


def _batch(n=2):
  return {"image": jnp.asarray(np.random.default_rng(0).integers(0, 256, (n, *SHAPE)), jnp.uint8),
          "label": jnp.zeros((n,), jnp.int32)}


@pytest.mark.slow  # float64 finite differences: seconds of compute.
@pytest.mark.parametrize("inference, k", [("bottom_up", 1), ("ladder", 3)])
def test_hierarchical_gradients_in_float64(inference, k):
  objective = _objective(inference, num_samples=k)
  with jax.enable_x64(True):
    params, batch, h = _params(objective, jnp.float64), _batch(), train.Hparams.of()
    # Jitted: one program, not hundreds of op-by-op compilations per evaluation.
    check_grads(jax.jit(lambda p: jnp.mean(objective.terms(p, batch, jax.random.key(1),
                                                           h)["loss"])),
                (params,), order=1, modes=("rev",), atol=1e-5, rtol=1e-5)


def test_the_ladder_merge_is_the_product_of_the_two_gaussians():
  from vae_jax.models.hierarchical import _merge  # pylint: disable=g-import-not-at-top
  mean, logvar = _merge(jnp.array([1.0]), jnp.log(jnp.array([4.0])), jnp.array([-2.0]),
                        jnp.log(jnp.array([1.0])))
  # N(1, 4) * N(-2, 1): precision 1/4 + 1 = 5/4, mean (1/4 - 2) / (5/4) = -1.4.
  np.testing.assert_allclose(mean, [-1.4], rtol=1e-6)
  np.testing.assert_allclose(jnp.exp(logvar), [0.8], rtol=1e-6)


@pytest.mark.parametrize("inference", ["bottom_up", "ladder"])
def test_the_iw_bound_over_both_layers_approaches_the_exact_log_likelihood(inference):
  objective = _objective(inference, dims=(1, 1))
  params, model = _params(objective), objective.model
  x = objective.images(_batch(3))
  grid = jnp.linspace(-8.0, 8.0, 641)
  z1, z2 = (a.reshape(-1, 1) for a in jnp.meshgrid(grid, grid, indexing="ij"))
  logits = model.apply({"params": params}, z1, method=model.decode_bottom)  # [G, H, W, C]
  mean_p, logvar_p = model.apply({"params": params}, z2, method=lambda m, z: m.p[0](z))
  log_prior = dist.log_normal_diag(z1, mean_p, logvar_p) + dist.log_normal_standard(z2)  # [G]
  log_joint = dist.bernoulli_log_likelihood(logits[:, None], x[None]) + log_prior[:, None]
  exact = np.asarray(jax.nn.logsumexp(log_joint, axis=0) + 2 * jnp.log(grid[1] - grid[0]))
  bound = jax.jit(jax.vmap(lambda k: objective.iw_bound(params, _batch(3), k, 5000, 1000)))
  nll = -np.asarray(bound(jax.random.split(jax.random.key(4), 8)))  # [8, B]
  assert np.isfinite(nll).all()
  assert np.all(nll.mean(0) >= -exact - 3 * nll.std(0) / np.sqrt(8) - 1e-3)  # A bound.
  np.testing.assert_allclose(nll.mean(0), -exact, atol=0.1)

