"""Training schedules: pure functions of the optimizer step and the traced hyperparameters
(optimizers.Hparams), so runs that differ only in a schedule's lengths share one compiled program.

Time is measured in epochs, as the fraction e = step / hparams.steps_per_epoch (step = optimizer
steps taken). Every schedule is off at its default (a length of 0), and then leaves beta and the
learning rate bit-identical to a run without schedules.

  beta_t = beta * warm-up(e) * cycle(e)
    warm-up(e) = min(1, e / kl_warmup_epochs): linear KL warm-up (Sønderby et al., 2016, "How to
      train deep variational autoencoders and probabilistic ladder networks"; Bowman et al., 2016)
    cycle(e) = min(1, tau / beta_cycle_ratio), tau = (e mod beta_cycle_epochs) / beta_cycle_epochs:
      the cyclical annealing of Fu et al. (2019), "Cyclical annealing schedule: a simple approach
      to mitigating KL vanishing", with its linear ramp over the first `ratio` of each cycle
  lr_t = lr * min(1, e / lr_warmup_epochs), then with lr_decay_epochs > 0 a cosine decay from lr
    to lr * lr_final_fraction between lr_warmup_epochs and lr_decay_epochs (the shape of
    optax.warmup_cosine_decay_schedule, which needs Python numbers for its boundaries; tests
    check that both give the same rates)

Free bits (`free_bits_kl`) and gradient clipping by global norm (`clip_gradients`) read their
thresholds from the same hparams.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import optax

from vae_jax.errors import ConfigError

LR_SCHEDULES = ("constant", "cosine")


def epochs_done(hparams, step) -> jax.Array:
  """float32 scalar: epochs of training done after `step` optimizer steps."""
  return jnp.asarray(step, jnp.float32) / jnp.maximum(hparams.steps_per_epoch, 1.0)


def _ramp(e, length) -> jax.Array:
  """min(1, e / length), and 1 where length <= 0 (the schedule is off)."""
  on = length > 0
  return jnp.where(on, jnp.minimum(e / jnp.where(on, length, 1.0), 1.0), 1.0)


def kl_weight(hparams, step) -> jax.Array:
  """beta_t, the weight of the KL term at `step` (module docstring): float32 scalar."""
  e = epochs_done(hparams, step)
  cycle = hparams.beta_cycle_epochs
  on = cycle > 0
  tau = jnp.where(on, jnp.mod(e, jnp.where(on, cycle, 1.0)) / jnp.where(on, cycle, 1.0), 1.0)
  factor = _ramp(e, hparams.kl_warmup_epochs) * jnp.where(
      on, _ramp(tau, hparams.beta_cycle_ratio), 1.0)
  return hparams.beta * factor  # x * 1.0 == x: no schedule leaves beta bit-identical.


def learning_rate(hparams, step) -> jax.Array:
  """lr_t, the learning rate at `step` (module docstring): float32 scalar."""
  e = epochs_done(hparams, step)
  warm, end = hparams.lr_warmup_epochs, hparams.lr_decay_epochs
  decaying = (end > 0) & (e > warm)
  span = jnp.where(end > warm, end - warm, 1.0)
  progress = jnp.clip((e - warm) / span, 0.0, 1.0)
  final = hparams.lr_final_fraction
  cosine = final + (1.0 - final) * 0.5 * (1.0 + jnp.cos(jnp.pi * progress))
  factor = jnp.where(decaying, cosine, _ramp(e, warm))
  return hparams.lr * factor


def at_step(hparams, step):
  """`hparams` with beta and lr replaced by beta_t and lr_t of `step` (what a train step uses)."""
  return hparams._replace(beta=kl_weight(hparams, step), lr=learning_rate(hparams, step))


def free_bits_kl(kl_BxZ, free_bits) -> jax.Array:
  """KL with free bits: sum_j max(free_bits, KL_j) over the latent dimensions, per example
  (Kingma et al., 2016, "Improved variational inference with inverse autoregressive flow", eq. 15
  clamps the minibatch mean of each dimension's KL; this clamps each example's, so the objective
  stays a sum over examples).

  Args:
    kl_BxZ: [B, Z] KL per latent dimension, nats. free_bits: float32 scalar, nats per dimension
      (lambda).
  Returns:
    [B] nats per example.
  """
  return jnp.sum(jnp.maximum(kl_BxZ, free_bits), axis=-1)


def clip_gradients(grads, clip_norm):
  """`grads` scaled to global norm <= clip_norm by optax.clip_by_global_norm; unchanged (the same
  arrays) when clip_norm <= 0. clip_norm: float32 scalar (traced)."""
  def clip(g):
    return optax.clip_by_global_norm(clip_norm).update(g, optax.EmptyState())[0]
  return jax.lax.cond(clip_norm > 0, clip, lambda g: g, grads)


def validate_config(config) -> None:
  """Checks the config fields of the schedules (objective.kl_warmup_epochs, beta_cycle_epochs,
  beta_cycle_ratio, free_bits; optim.warmup_epochs, schedule, final_lr_fraction, clip_norm).

  Raises:
    ConfigError: naming the first bad field and its allowed values.
  """
  o, opt = config.objective, config.optim
  for name, value in (("objective.kl_warmup_epochs", o.kl_warmup_epochs),
                      ("objective.beta_cycle_epochs", o.beta_cycle_epochs),
                      ("objective.free_bits", o.free_bits),
                      ("optim.warmup_epochs", opt.warmup_epochs),
                      ("optim.clip_norm", opt.clip_norm)):
    if not 0 <= value < math.inf:
      raise ConfigError(f"{name} must be a finite number >= 0 (0 = off), got {value}; set "
                        f"--config.{name}")
  if not 0 <= opt.get("ema_decay", 0.0) < 1:
    raise ConfigError(f"optim.ema_decay must be in [0, 1) (0 = no EMA), got {opt.ema_decay}; set "
                      "--config.optim.ema_decay=0.999")
  for name, value in (("objective.beta_cycle_ratio", o.beta_cycle_ratio),
                      ("optim.final_lr_fraction", opt.final_lr_fraction)):
    if not 0 <= value <= 1:
      raise ConfigError(f"{name} must be in [0, 1], got {value}; set --config.{name}")
  if o.beta_cycle_epochs and not o.beta_cycle_ratio:
    raise ConfigError("objective.beta_cycle_ratio must be > 0 when objective.beta_cycle_epochs "
                      "is set; set --config.objective.beta_cycle_ratio=0.5")
  if opt.schedule not in LR_SCHEDULES:
    raise ConfigError(f"unknown optim.schedule {opt.schedule!r}; choose one of "
                      f"{', '.join(LR_SCHEDULES)}")
  if opt.schedule == "cosine" and opt.warmup_epochs >= config.train.epochs:
    raise ConfigError(f"optim.warmup_epochs={opt.warmup_epochs} leaves no epochs of the cosine "
                      f"decay (train.epochs={config.train.epochs}); lower it")
