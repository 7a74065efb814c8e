"""Train step, scan epoch, exact evaluation, determinism."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vae_jax import models, train


@pytest.fixture
def setup(tiny_vae):
  model, params = tiny_vae
  tx = train.make_optimizer("adam", 1e-2)
  images = jax.random.randint(jax.random.key(1), (50, 3, 4, 1), 0, 256).astype(jnp.uint8)
  return model, params, tx, images


@pytest.mark.parametrize("use_jit", [False, True])
def test_train_step_lowers_loss_on_a_fixed_batch(setup, use_jit):
  model, params, tx, images = setup
  objective = train.Objective(model=model)
  step = lambda s, k: train.train_step(s, images, k, objective=objective, tx=tx)
  step = jax.jit(step) if use_jit else step
  state = train.create_train_state(params, tx)
  first = None
  for i in range(60):
    state, metrics = step(state, jax.random.key(i))
    first = first if first is not None else float(metrics["loss"])
  assert np.isfinite(float(metrics["loss"]))
  assert float(metrics["loss"]) < first - 0.5
  assert int(state.step) == 60


def test_train_step_does_not_retrace(setup):
  model, params, tx, images = setup
  traces = []

  def step(state, x, key):
    traces.append(1)  # Runs only while tracing.
    return train.train_step(state, x, key, objective=train.Objective(model=model), tx=tx)

  jitted = jax.jit(step, donate_argnums=0)
  state = train.create_train_state(jax.tree.map(jnp.copy, params), tx)  # Donated: copy.
  for i in range(3):
    state, _ = jitted(state, images[:10], jax.random.key(i))
  assert len(traces) == 1


def test_compiled_fn_counts_one_compile_per_signature(setup):
  model, params, tx, images = setup
  fn = train.CompiledFn(lambda p, x, k: train.evaluate_dataset(
      train.Objective(model=model).terms, p, x, k, batch_size=8))
  fn(params, images, jax.random.key(0))
  fn(params, images, jax.random.key(1))
  assert fn.compiles == 1
  fn(params, images[:20], jax.random.key(0))
  assert fn.compiles == 2 and fn.compile_seconds > 0


def test_evaluate_dataset_is_exact_per_example_mean(setup):
  """50 examples in batches of 8 (last batch padded): equals the plain mean over examples."""
  model, params, _, images = setup
  objective = train.Objective(model=model, preprocess="binarize_threshold")
  key = jax.random.key(3)
  result = jax.jit(lambda p, x: train.evaluate_dataset(objective.terms, p, x, key, batch_size=8))(
      params, images)
  per_batch = [objective.terms(params, images[i * 8:(i + 1) * 8], jax.random.fold_in(key, i))
               for i in range(7)]
  ref = {k: np.concatenate([np.asarray(b[k]) for b in per_batch])[:50].mean() for k in result}
  for k in ref:
    np.testing.assert_allclose(result[k], ref[k], rtol=1e-5)


def test_train_epoch_same_seed_identical_other_seed_different(setup):
  model, params, tx, images = setup
  epoch = jax.jit(lambda s, k, e: train.train_epoch(
      s, images, k, e, batch_size=16, objective=train.Objective(model=model), tx=tx))

  def run(seed):
    state = train.create_train_state(params, tx)
    keys = train.RunKeys.from_seed(seed)
    out = []
    for e in range(1, 3):
      state, m = epoch(state, keys, jnp.int32(e))
      out.append(float(m["loss"]))
    return out, state

  a, sa = run(0)
  b, sb = run(0)
  c, _ = run(1)
  assert a == b
  jax.tree.map(np.testing.assert_array_equal, sa.params, sb.params)
  assert a != c
  assert int(sa.step) == 2 * (50 // 16)


@pytest.mark.parametrize("name", train.OPTIMIZERS)
def test_make_optimizer(name):
  tx = train.make_optimizer(name, 1e-3, 1e-4)
  state = tx.init({"w": jnp.ones(3)})
  updates, _ = tx.update({"w": jnp.ones(3)}, state, {"w": jnp.ones(3)})
  assert np.all(np.asarray(updates["w"]) < 0)


def test_make_optimizer_unknown_raises():
  with pytest.raises(ValueError, match="unknown optimizer"):
    train.make_optimizer("lbfgs", 1e-3)
