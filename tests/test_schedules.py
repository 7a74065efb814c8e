"""Schedules: KL warm-up, cyclical beta, learning-rate warm-up + cosine decay (against optax's),
free bits, gradient clipping; all traced, so a sweep over their lengths shares one program."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from vae_jax import config as config_lib, objectives, runner, schedules, sweep, train


def _h(**values):
  return train.Hparams.of(steps_per_epoch=10, **values)


def test_kl_warmup_and_cyclical_beta():
  warm = _h(beta=2.0, kl_warmup_epochs=4)
  assert [float(schedules.kl_weight(warm, s)) for s in (0, 10, 20, 40, 400)] == [
      0.0, 0.5, 1.0, 2.0, 2.0]
  cyc = _h(beta_cycle_epochs=4, beta_cycle_ratio=0.5)  # Ramp over 2 epochs, flat for 2.
  got = [float(schedules.kl_weight(cyc, s)) for s in (0, 10, 20, 30, 40, 50)]
  np.testing.assert_allclose(got, [0.0, 0.5, 1.0, 1.0, 0.0, 0.5], atol=1e-6)
  both = _h(kl_warmup_epochs=4, beta_cycle_epochs=4, beta_cycle_ratio=0.5)
  np.testing.assert_allclose(float(schedules.kl_weight(both, 10)), 0.25 * 0.5, atol=1e-6)


def test_no_schedule_leaves_beta_and_lr_bit_identical():
  h = train.Hparams.of(beta=0.37, lr=3.3e-4)
  for step in (0, 1, 10**6):
    at = schedules.at_step(h, step)
    assert at.beta == h.beta and at.lr == h.lr
    assert at.beta.dtype == jnp.float32 and at.lr.dtype == jnp.float32


@pytest.mark.parametrize("warmup, decay, final", [(2, 10, 0.0), (0, 10, 0.1), (3, 0, 0.0)])
def test_learning_rate_matches_optax_schedules(warmup, decay, final):
  h = _h(lr=2e-3, lr_warmup_epochs=warmup, lr_decay_epochs=decay, lr_final_fraction=final)
  if decay:
    reference = optax.warmup_cosine_decay_schedule(
        0.0, 2e-3, warmup_steps=10 * warmup, decay_steps=10 * decay, end_value=2e-3 * final)
  else:
    reference = optax.linear_schedule(0.0, 2e-3, transition_steps=10 * warmup)
  steps = np.arange(0, 10 * (decay or warmup) + 15)
  ours = jax.vmap(lambda s: schedules.learning_rate(h, s))(steps)
  np.testing.assert_allclose(ours, jax.vmap(reference)(steps), rtol=1e-5, atol=1e-9)


def test_free_bits_clamps_each_dimension():
  kl = jnp.array([[0.1, 2.0, 0.0], [1.0, 1.0, 1.0]])
  np.testing.assert_allclose(schedules.free_bits_kl(kl, 0.5), [3.0, 3.0])


def test_free_bits_in_the_loss_keeps_the_kl(tiny_vae):
  model, params = tiny_vae
  objective = objectives.VAEObjective(model=model)
  batch = {"image": jnp.full((4, 3, 4, 1), 128, jnp.uint8), "label": jnp.zeros((4,), jnp.int32)}
  plain = objective.terms(params, batch, jax.random.key(0), train.Hparams.of())
  lam = 2.0  # Above every dimension's KL of a fresh model: the KL term is then Z * lambda.
  free = objective.terms(params, batch, jax.random.key(0), train.Hparams.of(free_bits=lam))
  np.testing.assert_array_equal(free["kl"], plain["kl"])
  np.testing.assert_allclose(free["loss"], plain["recon"] + 3 * lam, rtol=1e-6)


def test_clip_gradients_by_global_norm():
  grads = {"a": jnp.array([3.0, 0.0]), "b": jnp.array([[4.0]])}  # Global norm 5.
  clipped = schedules.clip_gradients(grads, jnp.float32(1.0))
  np.testing.assert_allclose(float(optax.global_norm(clipped)), 1.0, rtol=1e-6)
  same = schedules.clip_gradients(grads, jnp.float32(0.0))
  jax.tree.map(np.testing.assert_array_equal, same, grads)


def test_train_step_uses_the_step_beta_and_lr(tiny_vae):
  model, params = tiny_vae
  objective, tx = objectives.VAEObjective(model=model), train.make_optimizer("adam")
  batch = {"image": jnp.full((4, 3, 4, 1), 99, jnp.uint8), "label": jnp.zeros((4,), jnp.int32)}
  h = train.Hparams.of(beta=1.0, lr=1e-3, kl_warmup_epochs=2, lr_warmup_epochs=4,
                       steps_per_epoch=1)
  state = train.create_train_state(params, tx, h).replace(step=jnp.int32(1))
  _, m = train.train_step(state, batch, jax.random.key(0), h, objective=objective, tx=tx)
  assert float(m["beta"]) == 0.5 and float(m["lr"]) == pytest.approx(2.5e-4)
  expect = objective.terms(params, batch, jax.random.key(0), h._replace(beta=jnp.float32(0.5)))
  np.testing.assert_allclose(float(m["loss"]), float(jnp.mean(expect["loss"])), rtol=1e-6)


@pytest.mark.parametrize("override, message", [
    ("objective.kl_warmup_epochs=-1", "objective.kl_warmup_epochs must be a finite number >= 0"),
    ("objective.beta_cycle_ratio=1.5", "objective.beta_cycle_ratio must be in [0, 1]"),
    ("optim.schedule=linear", "unknown optim.schedule 'linear'"),
    ("optim.clip_norm=-0.1", "optim.clip_norm must be"),
])
def test_bad_schedule_fields_are_refused(override, message):
  config = config_lib.apply_overrides(config_lib.base_config(), [override])
  with pytest.raises(config_lib.ConfigError, match=message.replace("[", r"\[")):
    config_lib.validate(config)


def test_schedule_lengths_share_a_program():
  config = config_lib.base_config()
  runs = sweep.expand(config, sweep.parse(config, [
      "objective.kl_warmup_epochs=0,5,20", "optim.schedule=constant,cosine",
      "objective.free_bits=0,0.25", "optim.clip_norm=0,1"]))
  assert len({runner.program_key(r.config) for r in runs}) == 1


def test_a_warmup_sweep_trains_in_one_program_and_logs_beta_and_lr(tiny, tmp_path):
  config = tiny(**{"train.epochs": 3, "eval.iw_samples": 0, "optim.schedule": "cosine",
                   "optim.warmup_epochs": 1})
  results = sweep.run_sweep(config, ["objective.kl_warmup_epochs=0,2"], tmp_path / "sw",
                            progress=False)
  assert {r["program"] for r in results} == {0}
  assert all(r["summary"]["runs_in_program"] == 2 for r in results)
  betas = {}
  for r in results:
    rows = [json.loads(line) for line in
            (tmp_path / "sw" / r["name"] / "metrics.jsonl").read_text().splitlines()]
    betas[r["name"]] = [row["train/beta"] for row in rows]
    lrs = [row["train/lr"] for row in rows]
    assert lrs[0] < lrs[1] and lrs[2] < lrs[1]  # Warm-up, then the cosine decay.
  assert betas["objective.kl_warmup_epochs=0"] == [1.0, 1.0, 1.0]
  warm = betas["objective.kl_warmup_epochs=2"]
  assert warm[2] == 1.0
  np.testing.assert_allclose(warm[:2], [7 / 32, 23 / 32], rtol=1e-6)  # 8 steps an epoch.


def test_schedule_figure_draws_the_rows(tmp_path):
  from vae_jax import curves  # pylint: disable=g-import-not-at-top
  rows = [{"epoch": e, "train/beta": min(1.0, e / 4), "train/lr": 1e-3 * (1 - e / 10),
           "eval/kl": 10.0 + e} for e in range(1, 9)]
  assert curves.has_schedule(rows) and not curves.has_schedule(
      [{"train/beta": 1.0, "train/lr": 1e-3}] * 3)
  path = curves.schedule_curves(rows, tmp_path / "schedules.png")
  fig = curves.plt.imread(path)
  assert fig.shape[1] > fig.shape[0] > 300  # Two panels side by side.
  with pytest.raises(ValueError, match="no train/beta"):
    curves.schedule_curves([{"epoch": 1}], tmp_path / "x.png")


def test_params_ema_follows_polyak_averaging_and_is_what_fit_evaluates():
  import vae_jax  # pylint: disable=g-import-not-at-top
  tx = optax.chain(optax.sgd(0.1), vae_jax.optimizers.track_params_ema(0.5))
  params = {"w": jnp.array([1.0, -2.0])}
  state = tx.init(params)
  ema = params["w"]
  for g in ([1.0, 0.0], [0.0, 4.0], [2.0, 2.0]):
    updates, state = tx.update({"w": jnp.array(g)}, state, params)
    params = optax.apply_updates(params, updates)
    ema = 0.5 * ema + 0.5 * params["w"]
  np.testing.assert_allclose(train.eval_params(params, state)["w"], ema, rtol=1e-6)
  assert train.eval_params(params, optax.adam(1e-3).init(params)) is params  # No EMA: params.
  model = vae_jax.models.VAE(vae_jax.models.MLPEncoder((8,), 2),
                             vae_jax.models.MLPDecoder((8,), (4, 4, 1)))
  objective = vae_jax.objectives.VAEObjective(model)
  images = np.random.default_rng(0).integers(0, 256, (64, 4, 4, 1), np.uint8)
  result = vae_jax.fit(objective, optax.chain(optax.adam(1e-2),
                                              vae_jax.optimizers.track_params_ema(0.9)),
                       images, eval_data=images, epochs=2, batch_size=16, progress=False)
  assert not np.allclose(result.eval_params["encoder"]["mean"]["kernel"],
                         result.params["encoder"]["mean"]["kernel"])
  h = train.Hparams.of()
  ema_loss = jnp.mean(objective.eval_terms(result.eval_params, {
      "image": jnp.asarray(images), "label": jnp.zeros((64,), jnp.int32)}, jax.random.key(0),
      h)["loss"])
  assert np.isfinite(float(ema_loss)) and np.isfinite(result.history[-1]["eval/loss"])


def test_a_config_with_an_ema_resumes_exactly_and_evaluates_the_ema(tiny, tmp_path):
  from vae_jax import evaluate  # pylint: disable=g-import-not-at-top
  config = tiny(**{"optim.ema_decay": 0.9, "train.epochs": 2, "eval.iw_samples": 4})
  whole = runner.train_and_evaluate(config, tmp_path / "whole", progress=False)
  first = tiny(**{"optim.ema_decay": 0.9, "train.epochs": 1, "eval.iw_samples": 4})
  runner.train_and_evaluate(first, tmp_path / "split", progress=False)
  resumed = runner.train_and_evaluate(config, tmp_path / "split", resume=True, progress=False)
  assert resumed["eval/loss"] == whole["eval/loss"]
  assert resumed["eval/nll_iw"] == whole["eval/nll_iw"]
  restored = evaluate.restore_run(tmp_path / "whole")
  ema = restored.params  # restore_run gives the params evaluation uses: the EMA.
  plain = runner.train_and_evaluate(tiny(**{"train.epochs": 2, "eval.iw_samples": 4}),
                                    tmp_path / "plain", progress=False)
  assert plain["eval/loss"] != whole["eval/loss"]  # The EMA, not the last params, was evaluated.
  assert jax.tree.structure(ema) == jax.tree.structure(evaluate.restore_run(
      tmp_path / "plain").params)
