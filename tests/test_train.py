"""Train step, scan epoch, traced hyperparameters, the runs axis, determinism."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from vae_jax import compiled, epochs, evaluate, objectives, train

H = train.Hparams.of(beta=1.0, lr=1e-2, weight_decay=0.0)


@pytest.fixture
def setup(tiny_vae):
  model, params = tiny_vae
  tx = train.make_optimizer("adam")
  images = jax.random.randint(jax.random.key(1), (50, 3, 4, 1), 0, 256).astype(jnp.uint8)
  dataset = {"image": images, "label": jnp.arange(50, dtype=jnp.int32) % 3}
  return objectives.VAEObjective(model=model), params, tx, dataset


def test_train_step_lowers_loss_on_a_fixed_batch_and_runs_eagerly(setup):
  objective, params, tx, dataset = setup
  step = lambda s, k: train.train_step(s, dataset, k, H, objective=objective, tx=tx)  # noqa: E731
  state = train.create_train_state(params, tx, H)
  eager, _ = step(state, jax.random.key(0))  # Pure functions: the same step without jit.
  jitted = jax.jit(step)
  state, metrics = jitted(state, jax.random.key(0))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), eager.params,
               state.params)
  first = float(metrics["loss"])
  for i in range(1, 60):
    state, metrics = jitted(state, jax.random.key(i))
  assert np.isfinite(float(metrics["loss"]))
  assert float(metrics["loss"]) < first - 0.5
  assert int(state.step) == 60


def test_train_step_does_not_retrace_across_hparams(setup):
  """Different beta / lr values are data: one trace serves them all."""
  objective, params, tx, dataset = setup
  traces = []

  def step(state, batch, key, hparams):
    traces.append(1)  # Runs only while tracing.
    return train.train_step(state, batch, key, hparams, objective=objective, tx=tx)

  jitted = jax.jit(step, donate_argnums=0)
  state = train.create_train_state(jax.tree.map(jnp.copy, params), tx, H)  # Donated: copy.
  for i in range(3):
    h = jax.tree.map(lambda v: v * (i + 1), H)
    state, _ = jitted(state, dataset, jax.random.key(i), h)
  assert len(traces) == 1
  assert float(state.opt_state[-1].learning_rate) == pytest.approx(3e-2)


def test_injected_adam_equals_plain_optax_adam(setup):
  """The hparams optimizer is bit-identical to optax.adam at weight decay 0 (the refactor is
  pure)."""
  objective, params, _, dataset = setup
  grads = jax.grad(lambda p: jnp.mean(objective.terms(p, dataset, jax.random.key(0), H)["loss"]))(
      params)
  tx = train.make_optimizer("adam")
  ours, _ = tx.update(grads, train.set_hparams(tx.init(params), H), params)
  plain = optax.adam(1e-2)
  ref, _ = plain.update(grads, plain.init(params), params)
  jax.tree.map(np.testing.assert_array_equal, ours, ref)


def test_compiled_fn_counts_one_compile_per_signature(setup):
  objective, params, _, dataset = setup
  fn = compiled.CompiledFn(lambda p, d, k, h: evaluate.evaluate_dataset(
      lambda p, b, k, h: objective.terms(p, b, k, h), p, d, k, h, batch_size=8))
  fn(params, dataset, jax.random.key(0), H)
  fn(params, dataset, jax.random.key(1), H)
  assert fn.compiles == 1
  fn(params, jax.tree.map(lambda a: a[:20], dataset), jax.random.key(0), H)
  assert fn.compiles == 2 and fn.compile_seconds > 0


def test_train_epoch_same_seed_identical_other_seed_different(setup):
  objective, params, tx, dataset = setup
  epoch = jax.jit(lambda s, k, e: train.train_epoch(
      s, dataset, k, e, H, batch_size=16, objective=objective, tx=tx))

  def run(seed):
    state = train.create_train_state(params, tx, H)
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


def test_inactive_run_keeps_its_state(setup):
  objective, params, tx, dataset = setup
  state = train.create_train_state(params, tx, H)
  new, _ = train.train_epoch(state, dataset, train.RunKeys.from_seed(0), jnp.int32(1), H,
                             jnp.asarray(False), batch_size=16, objective=objective, tx=tx)
  jax.tree.map(np.testing.assert_array_equal, new, state)


def test_vmapped_beta_and_lr_runs_equal_separate_runs(setup):
  """Three runs with different seed, beta and lr in one vmapped epoch program equal each run
  trained alone (float rounding aside)."""
  objective, params, tx, dataset = setup
  seeds, betas, lrs = [0, 1, 2], [0.5, 1.0, 4.0], [1e-2, 3e-3, 1e-3]
  hs = [train.Hparams.of(beta=b, lr=lr, weight_decay=0.0) for b, lr in zip(betas, lrs)]
  programs = evaluate.make_programs(objective, tx, batch_size=16, eval_batch_size=16,
                                    num_classes=3)
  vmapped = evaluate.make_programs(objective, tx, batch_size=16, eval_batch_size=16,
                                   num_classes=3, runs_axis=True)
  stack = lambda trees: jax.tree.map(lambda *xs: jnp.stack(xs), *trees)  # noqa: E731
  alone = []
  for seed, h in zip(seeds, hs):
    state = train.create_train_state(jax.tree.map(jnp.copy, params), tx, h)
    keys = train.RunKeys.from_seed(seed)
    for e in (1, 2):
      state, _ = programs["epoch"](state, dataset, keys, jnp.int32(e), h, jnp.asarray(True))
    alone.append(programs["eval"](state.params, dataset, keys.eval, h))
  state = stack([train.create_train_state(jax.tree.map(jnp.copy, params), tx, h) for h in hs])
  keys = jax.vmap(train.RunKeys.from_seed)(jnp.asarray(seeds))
  for e in (1, 2):
    state, _ = vmapped["epoch"](state, dataset, keys, jnp.int32(e), stack(hs),
                                jnp.ones(3, bool))
  together = vmapped["eval"](state.params, dataset, keys.eval, stack(hs))
  for i, ref in enumerate(alone):
    for k in ref:
      np.testing.assert_allclose(together[k][i], ref[k], rtol=2e-5, atol=1e-4)
  assert len({round(float(a["loss"]), 3) for a in alone}) == 3  # The runs really differ.


@pytest.mark.parametrize("name", train.OPTIMIZERS)
def test_make_optimizer(name):
  tx = train.make_optimizer(name)
  h = train.Hparams.of(beta=1.0, lr=1e-3, weight_decay=1e-4)
  state = train.set_hparams(tx.init({"w": jnp.ones(3)}), h)
  updates, _ = tx.update({"w": jnp.ones(3)}, state, {"w": jnp.ones(3)})
  assert np.all(np.asarray(updates["w"]) < 0)


def test_make_optimizer_unknown_raises():
  with pytest.raises(ValueError, match="unknown optimizer"):
    train.make_optimizer("lbfgs")


@pytest.mark.parametrize("steps_per_call", [2, 4])
def test_host_loop_epoch_equals_scan_epoch_when_steps_do_not_divide(setup, steps_per_call):
  """50 images at batch 8 make 6 steps: calls of 4 leave a remainder of 2 (one more program)."""
  objective, params, tx, dataset = setup
  keys, epoch = train.RunKeys.from_seed(0), jnp.int32(1)
  scan = jax.jit(lambda s: train.train_epoch(s, dataset, keys, epoch, H, batch_size=8,
                                             objective=objective, tx=tx))
  ref_state, ref_metrics = scan(train.create_train_state(params, tx, H))
  host = epochs.ChunkedEpoch(batch_size=8, steps_per_call=steps_per_call, objective=objective,
                             tx=tx)
  state, metrics = host(train.create_train_state(jax.tree.map(jnp.copy, params), tx, H),
                        dataset, keys, epoch, H, jnp.asarray(True))
  assert int(state.step) == 6
  close = lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)  # noqa: E731
  jax.tree.map(close, state.params, ref_state.params)
  jax.tree.map(close, metrics, ref_metrics)


def test_compiled_fn_reports_xla_memory_without_running():
  calls = []

  def fn(x):
    calls.append(1)  # Traced once; a call that ran would not trace again anyway.
    return (x @ x.T).sum()

  f = compiled.CompiledFn(fn)
  x = jnp.ones((64, 32), jnp.float32)
  memory = f.memory(x)
  assert memory["arguments"] == 64 * 32 * 4 and memory["outputs"] == 4
  assert f.compiles == 1 and float(f(x)) == 64 * 64 * 32 and f.compiles == 1
