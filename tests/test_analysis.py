"""Latent-space analysis functions."""

import jax.numpy as jnp
import numpy as np
import pytest

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
