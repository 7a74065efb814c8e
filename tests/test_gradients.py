"""Gradient checks (float64 finite differences, jax.test_util.check_grads) of the negative ELBO
with respect to the params and through the reparameterized sample, for MLP, conv and CVAE models."""

import jax
import jax.numpy as jnp
import ml_collections
import pytest
from jax.test_util import check_grads

from vae_jax import distributions as dist, models, objectives

SHAPE = (8, 8, 1)
KINDS = {  # name -> (model.kind, encoder/decoder kind)
    "mlp_vae": ("vae", "mlp"), "conv_vae": ("vae", "conv"), "mlp_cvae": ("cvae", "mlp"),
    "conv_cvae": ("cvae", "conv")}


def _model(kind, layers, conv_runs="vmap"):
  return models.build_model(ml_collections.ConfigDict(dict(
      kind=kind, latent_dim=3, dense_init="lecun_normal", conv_runs=conv_runs,
      encoder=dict(kind=layers, widths=(6,), features=(2, 3)),
      decoder=dict(kind=layers, widths=(6,), features=(3, 2), upsample="phase"))), SHAPE,
      num_classes=4 if kind == "cvae" else 0)


@pytest.mark.parametrize("name", sorted(KINDS))
def test_negative_elbo_gradients_match_finite_differences(name):
  kind, layers = KINDS[name]
  model = _model(kind, layers)
  looped = _model(kind, layers, "loop")  # Convs with the runs-axis rule: first order only.
  with jax.enable_x64(True):
    params = models.init_params(model, jax.random.key(0), SHAPE, 4 if kind == "cvae" else 0)
    # Jitter every param (biases start at 0): a ReLU fed zeros from a zero bias sits exactly on
    # its kink, where autodiff (slope 0) and finite differences (slope 1/2) rightly disagree.
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(3), len(leaves))
    params = jax.tree.unflatten(tree, [
        p.astype(jnp.float64) + 0.1 * jax.random.normal(k, p.shape, jnp.float64)
        for p, k in zip(leaves, keys)])
    x = jax.random.uniform(jax.random.key(1), (2, *SHAPE), jnp.float64)
    label = jnp.array([1, 3], jnp.int32) if kind == "cvae" else None
    key = jax.random.key(2)

    for m in (model, looped):
      def loss_of_params(p, m=m):  # One fixed eps: a deterministic function of the params.
        return jnp.mean(objectives.neg_elbo(m, p, x, key, label)["loss"])

      check_grads(loss_of_params, (params,), order=1, modes=("rev",), atol=1e-5, rtol=1e-5)

    mean, logvar = model.apply({"params": params}, x, label, method=model.encode)

    def loss_of_posterior(mean, logvar):  # Through z = mean + exp(logvar / 2) * eps.
      z = dist.reparameterize(key, mean, logvar)
      out = model.apply({"params": params}, z, label, method=model.decode)
      return jnp.mean(-dist.bernoulli_log_likelihood(out, x)
                      + dist.kl_diag_gaussian_standard(mean, logvar))

    check_grads(loss_of_posterior, (mean, logvar), order=2, modes=("rev",), atol=1e-5,
                rtol=1e-5)
