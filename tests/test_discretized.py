"""Discretized likelihoods of 8-bit images: the 256 levels' masses sum to 1 (RGB mixture: all
256^3 colours), finite gradients at the edges and at tiny scales, float64 gradient checks, a VAE
with each through the public API (IW-NLL and bits/dim), and a cifar10 run under mock data."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.test_util import check_grads

import vae_jax
from vae_jax import config as config_lib, discretized, distributions as dist, runner

LEVELS = jnp.arange(256, dtype=jnp.float32) / 255.0


def _pixel(levels, channels):
  """[N, 1, 1, C] one-pixel images from [N, C] levels in [0, 1]."""
  return levels.reshape(-1, 1, 1, channels)


@pytest.mark.parametrize("mean, log_scale", [(0.3, -3.0), (-0.2, 0.5), (1.3, -6.5), (0.5, -9.0)])
def test_gaussian_masses_sum_to_one(mean, log_scale):
  out = jnp.array([mean, log_scale], jnp.float32).reshape(1, 1, 1, 2)
  masses = jnp.exp(discretized.gaussian_log_likelihood(out, _pixel(LEVELS, 1)))
  np.testing.assert_allclose(float(jnp.sum(masses)), 1.0, atol=2e-5)


@pytest.mark.parametrize("seed", [0, 1])
def test_logistic_mixture_masses_sum_to_one_grayscale(seed):
  out = jax.random.normal(jax.random.key(seed), (1, 1, 1, 3 * 4)) * 2.0  # M = 4
  masses = jnp.exp(discretized.logistic_mixture_log_likelihood(out, _pixel(LEVELS, 1)))
  np.testing.assert_allclose(float(jnp.sum(masses)), 1.0, atol=2e-5)


@pytest.mark.slow  # Seconds of compute: the full suite's.
def test_logistic_mixture_masses_sum_to_one_over_every_rgb_colour():
  out = jax.random.normal(jax.random.key(2), (1, 1, 1, 10 * 2))  # M = 2, with the coefficients.
  out = out.at[..., 2 + 6:2 + 12].add(-2.5)  # Narrower scales: mass near a few levels.
  g, b = jnp.meshgrid(LEVELS, LEVELS, indexing="ij")

  def mass_at_red(r):  # Sum over the 65,536 (green, blue) levels for one red level.
    x = jnp.stack([jnp.full(g.size, r), g.ravel(), b.ravel()], axis=-1)
    return jnp.sum(jnp.exp(discretized.logistic_mixture_log_likelihood(out, _pixel(x, 3))))

  # 16.8 M likelihoods: bound by execution, so compiled with XLA's default CPU optimization
  # rather than the suite's fast-compile flags (conftest.FAST_COMPILE): 9.8 s -> 2.8 s alone.
  total = jax.jit(lambda: jnp.sum(jax.lax.map(mass_at_red, LEVELS)), compiler_options={
      "xla_backend_optimization_level": 3, "xla_cpu_use_fusion_emitters": True})()
  np.testing.assert_allclose(float(total), 1.0, atol=1e-4)


@pytest.mark.parametrize("name, channels", [("gaussian", 2), ("logistic_mixture", 9)])
def test_gradients_are_finite_at_the_edges_and_tiny_scales(name, channels):
  fn = dist.log_likelihood_fn(name)
  x = _pixel(jnp.array([0.0, 1.0, 128 / 255, 3 / 255]), 1)
  out = jnp.broadcast_to(jnp.array([0.9] + [-12.0] * (channels - 1)), (4, 1, 1, channels))
  grads = jax.grad(lambda o: jnp.sum(fn(o, x)))(out)
  assert np.isfinite(np.asarray(grads)).all() and np.isfinite(np.asarray(fn(out, x))).all()


@pytest.mark.parametrize("name, channels, c", [("gaussian", 2, 1), ("logistic_mixture", 6, 1),
                                               ("logistic_mixture", 20, 3)])
def test_float64_gradients_match_finite_differences(name, channels, c):
  fn = dist.log_likelihood_fn(name)
  with jax.enable_x64(True):
    out = jax.random.normal(jax.random.key(0), (2, 2, 2, channels), jnp.float64) * 0.5
    x = jax.random.randint(jax.random.key(1), (2, 2, 2, c), 0, 256) / 255.0
    check_grads(lambda o: jnp.sum(fn(o, x)), (out,), order=1, modes=("rev",), atol=1e-4,
                rtol=1e-4)


@pytest.mark.parametrize("likelihood", ["gaussian", "logistic_mixture"])
def test_a_vae_with_an_8bit_likelihood_reports_nats_and_bits_per_dim(likelihood):
  images = np.random.default_rng(0).integers(0, 256, (96, 8, 8, 3), np.uint8)
  model = vae_jax.models.VAE(vae_jax.models.MLPEncoder((16,), 4), vae_jax.models.MLPDecoder(
      (16,), (8, 8, discretized.output_channels(likelihood, 3, 2))))
  objective = vae_jax.objectives.VAEObjective(model, likelihood=likelihood, mixture_components=2)
  result = vae_jax.fit(objective, optax.adam(3e-3), images, epochs=2, batch_size=32,
                       progress=False)
  losses = [row["train/loss"] for row in result.history]
  assert losses[1] < losses[0] and losses[1] < 8 * 8 * 3 * np.log(256) * 1.5  # ~Uniform.
  nll = vae_jax.iw_nll(objective, result.params, images[:32], k=20)
  bits_per_dim = nll / (8 * 8 * 3 * np.log(2))
  # Uniform noise has 8 bits/dim of entropy: no normalized likelihood can do better (a mass
  # that did not sum to 1 could), and a VAE after 2 epochs is not far above it.
  assert np.isfinite(nll) and 7.9 < bits_per_dim < 12
  mean = objective.decode_mean(result.params, jnp.zeros((2, 4)))
  assert mean.shape == (2, 8, 8, 3) and 0 <= float(mean.min()) <= float(mean.max()) <= 1


@pytest.mark.slow  # Seconds of compute: the full suite's.
def test_cifar10_with_the_logistic_mixture_under_mock_data(tfds, tmp_path):
  config = config_lib.base_config()
  config_lib.apply_overrides(config, [
      "data.name=cifar10", "model.likelihood=logistic_mixture", "model.mixture_components=2",
      "model.latent_dim=4", "model.encoder.widths=16", "model.decoder.widths=16",
      "train.epochs=1", "train.batch_size=8", "eval.iw_samples=4", "eval.iw_batch_size=8",
      "eval.batch_size=8", "eval.figures=True", "train.tensorboard=False"])
  with tfds.testing.mock_data(num_examples=16):
    summary = runner.train_and_evaluate(config, tmp_path / "run", progress=False)
  assert np.isfinite(summary["eval/nll_iw"])
  np.testing.assert_allclose(summary["eval/nll_iw_bits_per_dim"],
                             summary["eval/nll_iw"] / (32 * 32 * 3 * np.log(2)), rtol=1e-6)
  assert (tmp_path / "run" / "figures" / "reconstructions.png").is_file()
