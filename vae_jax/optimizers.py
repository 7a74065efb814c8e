"""optax optimizers whose learning rate and weight decay are traced data in their state (set from
the hparams pytree at every step), so runs that differ in them share one compiled program.

optax.inject_hyperparams would carry the rate as well, but it keeps its hyperparameters in an
InjectHyperparamsState of its own (another checkpoint layout than every run written so far) and
recomputes them from a schedule each step; `scale_by_traced_learning_rate` is bit-identical to
optax.scale_by_learning_rate with the same constant, which keeps the golden mnist_mlp numbers.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

OPTIMIZERS = ("adam", "adamw", "sgd")

# Config fields that are traced data (the hparams pytree), not compile-time constants: runs whose
# configs differ only in these (and the seed) train in one program, vmapped over a runs axis.
HPARAMS = {"objective.beta": "beta", "optim.lr": "lr", "optim.weight_decay": "weight_decay",
           "objective.kl_warmup_epochs": "kl_warmup_epochs",
           "objective.beta_cycle_epochs": "beta_cycle_epochs",
           "objective.beta_cycle_ratio": "beta_cycle_ratio", "objective.free_bits": "free_bits",
           "optim.warmup_epochs": "lr_warmup_epochs",
           "optim.final_lr_fraction": "lr_final_fraction", "optim.clip_norm": "clip_norm"}
# Traced too, through hparams_from_config: optim.schedule sets lr_decay_epochs.
TRACED_KEYS = ("seed", *HPARAMS, "optim.schedule")


class Hparams(NamedTuple):
  """The traced hyperparameters: float32 scalars (or [R] under a runs axis), data rather than
  compile-time constants, so runs that differ only in them share one compiled program.

  beta: weight of the KL term (Higgins et al., 2017; 1 = the ELBO). lr: learning rate and
  weight_decay: decay, both read only by `make_optimizer`'s optimizers (through `set_hparams`).
  The schedules (vae_jax.schedules; lengths in epochs, 0 = off): kl_warmup_epochs,
  beta_cycle_epochs and beta_cycle_ratio (beta_t), lr_warmup_epochs, lr_decay_epochs (end of the
  cosine decay, 0 = none) and lr_final_fraction (lr_t); free_bits (nats per latent dimension),
  clip_norm (global gradient norm, 0 = no clipping); steps_per_epoch converts steps to epochs.
  """
  beta: Any = 1.0
  lr: Any = 1e-3
  weight_decay: Any = 0.0
  kl_warmup_epochs: Any = 0.0
  beta_cycle_epochs: Any = 0.0
  beta_cycle_ratio: Any = 0.5
  free_bits: Any = 0.0
  lr_warmup_epochs: Any = 0.0
  lr_decay_epochs: Any = 0.0
  lr_final_fraction: Any = 0.0
  clip_norm: Any = 0.0
  steps_per_epoch: Any = 1.0

  @classmethod
  def of(cls, **values) -> "Hparams":
    """Hparams of float32 scalars; fields not given keep their defaults."""
    return cls(**{k: jnp.float32(v) for k, v in (cls()._asdict() | values).items()})


def hparams_from_config(config, steps_per_epoch: int = 1) -> Hparams:
  """Hparams of float32 scalars from the config (see HPARAMS): lr_decay_epochs is train.epochs
  under optim.schedule='cosine', else 0; `steps_per_epoch` is the training set's batches per
  epoch (read by the schedules only)."""
  values = {name: config[k.split(".")[0]][k.split(".")[1]] for k, name in HPARAMS.items()}
  cosine = config.optim.get("schedule", "constant") == "cosine"
  return Hparams.of(**values, lr_decay_epochs=config.train.epochs if cosine else 0.0,
                    steps_per_epoch=steps_per_epoch)


class LearningRateState(NamedTuple):
  """Optimizer state holding the learning rate (float32 scalar), set from hparams every step."""
  learning_rate: jax.Array


class WeightDecayState(NamedTuple):
  """Optimizer state holding the weight decay (float32 scalar), set from hparams every step."""
  weight_decay: jax.Array


def scale_by_traced_learning_rate() -> optax.GradientTransformation:
  """updates * -learning_rate, the rate read from the state (bit-identical to optax's
  scale_by_learning_rate with the same constant)."""
  def update(updates, state, params=None):
    del params
    return jax.tree.map(lambda g: -state.learning_rate * g, updates), state
  return optax.GradientTransformation(
      lambda params: LearningRateState(jnp.float32(1e-3)), update)


def add_traced_decayed_weights() -> optax.GradientTransformation:
  """updates + weight_decay * params, the decay read from the state. Gated by a `lax.cond` on
  weight_decay != 0, so a zero decay leaves the updates (and XLA's fusion of the gradient) exactly
  as without the transformation."""
  def update(updates, state, params):
    wd = state.weight_decay
    updates = jax.lax.cond(wd != 0, lambda: jax.tree.map(lambda g, p: g + wd * p, updates, params),
                           lambda: updates)
    return updates, state
  return optax.GradientTransformation(
      lambda params: WeightDecayState(jnp.float32(0.0)), update)


class EmaState(NamedTuple):
  """Optimizer state holding an exponential moving average of the params (params-shaped)."""
  ema: Any


def track_params_ema(decay: float) -> optax.GradientTransformation:
  """Keeps ema <- decay * ema + (1 - decay) * new params in its state (Polyak averaging, through
  optax.incremental_update), the updates passing unchanged; put it last in a chain, where the
  updates are final. `eval_params` finds it: vae_jax evaluates, checkpoints' evaluation, figures
  and IW-NLL use the average. Growth pads it like the Adam moments: new units start at 0 in the
  average, which therefore keeps computing the grown network's old function at first.

  Args:
    decay: in [0, 1), a Python float (a compile-time constant).
  """
  def init(params):
    return EmaState(jax.tree.map(lambda p: jnp.array(p, copy=True), params))

  def update(updates, state, params):
    new = optax.apply_updates(params, updates)
    return updates, EmaState(optax.incremental_update(new, state.ema, 1.0 - decay))
  return optax.GradientTransformation(init, update)


def eval_params(params, opt_state):
  """The params evaluation uses: the EMA of `track_params_ema` when opt_state holds one (with a
  leading runs axis too), else `params`."""
  found = [x for x in jax.tree.leaves(opt_state, is_leaf=lambda x: isinstance(x, EmaState))
           if isinstance(x, EmaState)]
  return found[0].ema if found else params


def optimizer_from_config(config) -> optax.GradientTransformation:
  """make_optimizer(optim.name, ema_decay=optim.ema_decay) of a run's config."""
  return make_optimizer(config.optim.name, ema_decay=config.optim.get("ema_decay", 0.0))


@functools.lru_cache(maxsize=None)
def make_optimizer(name: str, ema_decay: float = 0.0) -> optax.GradientTransformation:
  """optax optimizer by name with the learning rate and weight decay held in its state as data
  (set from the hparams pytree at every step by `set_hparams`), so runs that differ in them share
  one compiled program. The same object for the same arguments (cached): runs of one process
  with equal optimizers share their compiled programs (compiled.shared).

  'adam' adds L2 decay to the gradient before Adam (as PyTorch's Adam with weight_decay does);
  'adamw' decays decoupled from the Adam moments (Loshchilov & Hutter, 2019; optax.adamw's
  order); 'sgd' is momentum-0.9 SGD with L2 decay. With zero decay and a given learning rate,
  'adam' is bit-identical to optax.adam. ema_decay > 0 appends track_params_ema(ema_decay).

  Raises:
    ValueError: unknown name.
  """
  if name == "adam":
    parts = [add_traced_decayed_weights(), optax.scale_by_adam()]
  elif name == "adamw":
    parts = [optax.scale_by_adam(), add_traced_decayed_weights()]
  elif name == "sgd":
    parts = [add_traced_decayed_weights(), optax.trace(decay=0.9)]
  else:
    raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")
  parts.append(scale_by_traced_learning_rate())
  if ema_decay:
    parts.append(track_params_ema(float(ema_decay)))
  return optax.chain(*parts)


def set_hparams(opt_state, hparams):
  """opt_state with its learning rate and weight decay set from `hparams` (copies: the state is
  donated to the epoch program while the hparams are passed beside it)."""
  def put(x):
    if isinstance(x, LearningRateState):
      return LearningRateState(jnp.array(hparams.lr, jnp.float32, copy=True))
    if isinstance(x, WeightDecayState):
      return WeightDecayState(jnp.array(hparams.weight_decay, jnp.float32, copy=True))
    return x
  is_hparam = lambda x: isinstance(x, (LearningRateState, WeightDecayState))  # noqa: E731
  return jax.tree.map(put, opt_state, is_leaf=is_hparam)
