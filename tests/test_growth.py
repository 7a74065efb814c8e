"""Growth: pytree surgery on params and optax state, schedules, resume across growth events."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from vae_jax import config as config_lib, growth, models, objectives, runner, train

SHAPE = (3, 4, 1)
H = train.Hparams.of(beta=1.0, lr=1e-3, weight_decay=0.0)


def _vae_model(encoder_widths):
  c = config_lib.base_config().model
  c.latent_dim, c.encoder.widths, c.decoder.widths = 3, encoder_widths, (6,)
  return models.build_model(c, SHAPE)


@pytest.fixture
def vae():
  model = _vae_model((8, 4))
  return model, models.init_params(model, jax.random.key(0), SHAPE)


def _trained_state(model, params, tx, steps=3):
  """Optimizer state with non-zero moments after a few steps (tx: any optax transformation)."""
  state = train.TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params))
  x = jax.random.randint(jax.random.key(1), (16, *SHAPE), 0, 256).astype(jnp.uint8)
  batch = {"image": x, "label": jnp.zeros((16,), jnp.int32)}
  objective = objectives.VAEObjective(model=model)

  @jax.jit
  def step(state, key):
    grads = jax.grad(lambda p: jnp.mean(objective.terms(p, batch, key, H)["loss"]))(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    return state.replace(params=optax.apply_updates(state.params, updates), opt_state=opt_state)

  for i in range(steps):
    state = step(state, jax.random.key(i))
  return state


OPTIMIZERS = {
    "adam": lambda: optax.adam(1e-3),
    "adamw": lambda: optax.adamw(1e-3, weight_decay=1e-2),
    "chain": lambda: optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-3)),
    "inject_hyperparams": lambda: optax.inject_hyperparams(optax.adam)(learning_rate=1e-3),
    "sgd_momentum": lambda: optax.sgd(1e-3, momentum=0.9),
}


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_widen_keeps_old_slices_and_zero_pads_optimizer_state(vae, name):
  model, params = vae
  tx = OPTIMIZERS[name]()
  state = _trained_state(model, params, tx)
  layer, consumers = growth.encoder_layer(state.params, 0)
  new_p, new_o = growth.widen(state.params, state.opt_state, layer, consumers, 5,
                              jax.random.key(2))
  assert growth.encoder_widths(new_p) == (13, 4)
  k_old = state.params["encoder"]["mlp"]["hidden_0"]["kernel"]
  k_new = new_p["encoder"]["mlp"]["hidden_0"]["kernel"]
  np.testing.assert_array_equal(k_new[:, :8], k_old)
  assert float(jnp.std(k_new[:, 8:])) > 0
  np.testing.assert_array_equal(new_p["encoder"]["mlp"]["hidden_1"]["kernel"][:8],
                                state.params["encoder"]["mlp"]["hidden_1"]["kernel"])
  mirrors_old, mirrors_new = [], []
  growth.map_param_mirrors(state.opt_state, state.params, lambda t: mirrors_old.append(t) or t)
  growth.map_param_mirrors(new_o, new_p, lambda t: mirrors_new.append(t) or t)
  assert len(mirrors_new) == len(mirrors_old) >= 1
  for old, new in zip(mirrors_old, mirrors_new):
    kernel_new = new["encoder"]["mlp"]["hidden_0"]["kernel"]
    np.testing.assert_array_equal(kernel_new[:, :8], old["encoder"]["mlp"]["hidden_0"]["kernel"])
    np.testing.assert_array_equal(kernel_new[:, 8:], 0.0)
    np.testing.assert_array_equal(new["encoder"]["mlp"]["hidden_1"]["kernel"][8:], 0.0)
  # Scalars (Adam's count, hyperparameters) are untouched, and the optimizer still runs.
  old_scalars = [x for x in jax.tree.leaves(state.opt_state) if jnp.ndim(x) == 0]
  new_scalars = [x for x in jax.tree.leaves(new_o) if jnp.ndim(x) == 0]
  assert [float(a) for a in old_scalars] == [float(b) for b in new_scalars]
  updates, _ = tx.update(jax.tree.map(jnp.ones_like, new_p), new_o, new_p)
  assert jax.tree.map(jnp.shape, updates) == jax.tree.map(jnp.shape, new_p)


def test_widen_last_layer_pads_both_heads(vae):
  model, params = vae
  layer, consumers = growth.encoder_layer(params, 1)
  assert consumers == [("encoder", "mean"), ("encoder", "logvar")]
  new_p, _ = growth.widen(params, (), layer, consumers, 3, jax.random.key(0))
  assert new_p["encoder"]["mean"]["kernel"].shape == (7, 3)
  assert new_p["encoder"]["logvar"]["kernel"].shape == (7, 3)


def test_zero_outgoing_init_preserves_the_encoder_function(vae):
  model, params = vae
  x = jax.random.uniform(jax.random.key(3), (10, *SHAPE))
  new_p, _ = growth.resize_encoder(params, (), (20, 9), jax.random.key(4), outgoing_init="zeros")
  grown = _vae_model((20, 9))
  before = model.apply({"params": params}, x, method=model.encode)
  after = grown.apply({"params": new_p}, x, method=grown.encode)
  for a, b in zip(before, after):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
  he_p, _ = growth.resize_encoder(params, (), (20, 9), jax.random.key(4), outgoing_init="he")
  changed = grown.apply({"params": he_p}, x, method=grown.encode)[0]
  assert not np.allclose(changed, before[0], atol=1e-3)


def test_narrow_then_widen_keeps_params_and_optimizer_state_consistent(vae):
  model, params = vae
  tx = train.make_optimizer("adam")
  state = _trained_state(model, params, tx)
  p, o = growth.resize_encoder(state.params, state.opt_state, (3, 2), jax.random.key(5), tx=tx)
  assert growth.encoder_widths(p) == (3, 2)
  np.testing.assert_array_equal(p["encoder"]["mlp"]["hidden_0"]["kernel"],
                                state.params["encoder"]["mlp"]["hidden_0"]["kernel"][:, :3])
  p, o = growth.resize_encoder(p, o, (7, 6), jax.random.key(6), tx=tx)
  # map_param_mirrors only visits subtrees already shaped like p, so a stale moment would be
  # skipped, not caught: count the mirrors (Adam: mu and nu) and check that every non-scalar
  # leaf of the optimizer state is one of them, i.e. has a shape of p's leaves.
  mirrors = []
  growth.map_param_mirrors(o, p, lambda t: mirrors.append(t) or t)
  assert len(mirrors) == 2
  param_shapes = sorted(jnp.shape(x) for x in jax.tree.leaves(p))
  state_shapes = sorted(jnp.shape(x) for x in jax.tree.leaves(o) if jnp.ndim(x) > 0)
  assert state_shapes == sorted(param_shapes * 2)
  grown = _vae_model((7, 6))
  state = train.TrainState(step=state.step, params=p, opt_state=o)
  x = jax.random.randint(jax.random.key(1), (16, *SHAPE), 0, 256).astype(jnp.uint8)
  batch = {"image": x, "label": jnp.zeros((16,), jnp.int32)}
  state, metrics = train.train_step(state, batch, jax.random.key(0), H,
                                    objective=objectives.VAEObjective(model=grown), tx=tx)
  assert np.isfinite(float(metrics["loss"]))


def test_narrow_largest_norm_keeps_the_largest_units_in_order(vae):
  _, params = vae
  kernel = params["encoder"]["mlp"]["hidden_0"]["kernel"]
  kernel = kernel.at[:, 5].multiply(100.0).at[:, 2].multiply(50.0)
  params = jax.tree.map(lambda x: x, params)
  params["encoder"]["mlp"]["hidden_0"]["kernel"] = kernel
  layer, consumers = growth.encoder_layer(params, 0)
  new_p, _ = growth.narrow(params, (), layer, consumers, 2, keep="largest_norm")
  np.testing.assert_array_equal(new_p["encoder"]["mlp"]["hidden_0"]["kernel"],
                                kernel[:, np.array([2, 5])])
  np.testing.assert_array_equal(new_p["encoder"]["mlp"]["hidden_1"]["kernel"],
                                params["encoder"]["mlp"]["hidden_1"]["kernel"][np.array([2, 5])])


def test_reset_policy_recreates_the_optimizer_state(vae):
  model, params = vae
  tx = optax.adam(1e-3)
  state = _trained_state(model, params, tx)
  p, o = growth.resize_encoder(state.params, state.opt_state, (10, 4), jax.random.key(0),
                               tx=tx, optimizer="reset")
  assert int(o[0].count) == 0
  assert float(jnp.abs(o[0].mu["encoder"]["mlp"]["hidden_0"]["kernel"]).max()) == 0
  with pytest.raises(ValueError):
    growth.resize_encoder(state.params, state.opt_state, (10, 4), jax.random.key(0),
                          optimizer="reset")


def test_schedules_of_the_study():
  one = growth.schedule((32, 16), 200, every_epochs=25, increments=(32, 16), final=(256, 128))
  assert one[1] == one[25] == (32, 16) and one[26] == (64, 32) and one[175] == (224, 112)
  assert one[176] == one[200] == (256, 128) and len(set(one.values())) == 8
  two = growth.schedule((256, 128), 200, every_epochs=25, increments=(32, 16), final=(256, 128),
                        narrow_at=25, narrow_to=(64, 32))
  assert two[25] == (256, 128) and two[26] == (64, 32) and two[51] == (96, 48)
  assert two[176] == (256, 128)
  fast = growth.schedule((32, 16), 30, every_epochs=10, increments=(32, 16), final=(256, 128))
  assert fast[11] == (64, 32) and fast[21] == (96, 48)


def _growing(tiny, **overrides):
  base = {"model.encoder.widths": "8,4", "growth.enabled": True, "growth.every_epochs": 1,
          "growth.increments": "4,2", "growth.final_widths": "16,8", "growth.narrow_to": "4,2",
          "eval.elbo_samples": 3}
  return tiny(**(base | overrides))


def test_narrowing_run_and_sample_from_grown_checkpoint(tiny, tmp_path):
  from vae_jax import evaluate
  config = _growing(tiny, **{"train.epochs": 3, "growth.narrow_at": 1, "eval.iw_samples": 0})
  runner.train_and_evaluate(config, tmp_path / "n", progress=False)
  widths = [json.loads(l)["encoder_widths"]
            for l in (tmp_path / "n" / "metrics.jsonl").read_text().splitlines()]
  assert widths == [[8, 4], [4, 2], [8, 4]]
  _, objective, params, _, _ = evaluate.restore_run(tmp_path / "n")
  assert growth.encoder_widths(params) == (8, 4)


def test_schedule_is_lazy_and_equals_the_epoch_by_epoch_rule():
  """train.epochs=10**8 costs no memory (the schedule was a dict over every epoch)."""
  s = growth.schedule((8, 4), 10**8, every_epochs=3, increments=(4, 2), final=(64, 32),
                      narrow_at=5, narrow_to=(4, 2))
  widths = (8, 4)
  for epoch in range(1, 60):
    passed = epoch - 1
    if passed == 5:
      widths = (4, 2)
    elif passed and passed % 3 == 0:
      widths = tuple(min(w + d, f) for w, d, f in zip(widths, (4, 2), (64, 32)))
    assert s[epoch] == widths, epoch
  assert s[10**8] == (64, 32) and len(s) == 10**8 and 0 not in s and 10**8 + 1 not in s
