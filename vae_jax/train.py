"""One training path for every study: pure train step, a jitted `lax.scan` epoch over the
device-resident uint8 training set, exact test-set evaluation, orbax checkpoints, run directory.

Randomness is a function of (seed, epoch) and (seed, step) only, never stored in a checkpoint, so a
resumed run continues exactly as an uninterrupted one.
"""

from __future__ import annotations

import functools
import time
from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
import optax

from vae_jax import data, models, objectives


OPTIMIZERS = ("adam", "adamw", "sgd")


def make_optimizer(name: str, lr: float, weight_decay: float = 0.0) -> optax.GradientTransformation:
  """optax optimizer by name. 'adam' with weight_decay > 0 adds L2 decay before Adam (as PyTorch's
  Adam does); 'adamw' uses decoupled decay (Loshchilov & Hutter, 2019; weight_decay=0 -> optax's
  default 1e-4 is NOT applied: pass the value you want). Raises ValueError for unknown names."""
  if name == "adam":
    tx = optax.adam(lr)
    return optax.chain(optax.add_decayed_weights(weight_decay), tx) if weight_decay else tx
  if name == "adamw":
    return optax.adamw(lr, weight_decay=weight_decay)
  if name == "sgd":
    return optax.chain(optax.add_decayed_weights(weight_decay), optax.sgd(lr, momentum=0.9))
  raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")


class TrainState(flax.struct.PyTreeNode):
  """step: int32 scalar (optimizer steps taken); params and opt_state: pytrees."""
  step: jax.Array
  params: Any
  opt_state: Any


def create_train_state(params, tx: optax.GradientTransformation) -> TrainState:
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params))


class RunKeys(flax.struct.PyTreeNode):
  """Independent PRNG streams derived from the seed: init, data order, training noise, eval."""
  init: jax.Array
  order: jax.Array
  step: jax.Array
  eval: jax.Array

  @classmethod
  def from_seed(cls, seed: int) -> "RunKeys":
    root = jax.random.key(seed)
    return cls(*(jax.random.fold_in(root, i) for i in range(4)))


@flax.struct.dataclass
class Objective:
  """Static description of the training objective (hashable, closed over by jitted code)."""
  model: Any = flax.struct.field(pytree_node=False)
  preprocess: str = flax.struct.field(pytree_node=False, default="grayscale")
  beta: float = flax.struct.field(pytree_node=False, default=1.0)
  likelihood: str = flax.struct.field(pytree_node=False, default="bernoulli")

  @property
  def has_posterior(self) -> bool:
    """True for a VAE (KL term, IW-NLL); False for a deterministic Autoencoder."""
    return isinstance(self.model, models.VAE)

  def inputs(self, x_uint8, key) -> tuple[jax.Array, jax.Array]:
    """(x, key for z): a uint8 batch [B, H, W, C] preprocessed into floats [B, H, W, C] in [0, 1]
    (binarization drawn from one half of `key`) and the other half of `key` for the latents."""
    k_data, k_z = jax.random.split(key)
    return data.preprocess(x_uint8, self.preprocess, k_data), k_z

  def terms(self, params, x_uint8, key) -> dict[str, jax.Array]:
    """Per-example 'loss', 'recon', 'kl' [B] (nats per image for a normalized likelihood) for a
    uint8 batch [B, H, W, C]; an Autoencoder has no 'kl'."""
    x, k_z = self.inputs(x_uint8, key)
    if not self.has_posterior:
      return objectives.autoencoder_loss(self.model, params, x, likelihood=self.likelihood)
    return objectives.neg_elbo(self.model, params, x, k_z, beta=self.beta,
                               likelihood=self.likelihood)


def objective_from_config(config, image_shape, encoder_widths=None) -> Objective:
  """The Objective (and its model, see models.build_model) that a run's config describes."""
  model = models.build_model(config.model, image_shape, encoder_widths)
  return Objective(model=model, preprocess=config.data.preprocess, beta=config.objective.beta,
                   likelihood=config.model.likelihood)


def train_step(state: TrainState, x_uint8, key, *, objective: Objective,
               tx: optax.GradientTransformation):
  """One optimizer step on the batch mean of the negative ELBO. Pure.

  Args:
    x_uint8: [B, H, W, C] uint8 batch (preprocessed inside, binarization drawn from `key`).
  Returns:
    (new state, batch means of 'loss', 'recon', 'kl' in nats per image).
  """
  def loss_fn(params):
    terms = objective.terms(params, x_uint8, key)
    return jnp.mean(terms["loss"]), terms

  grads, terms = jax.grad(loss_fn, has_aux=True)(state.params)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  state = state.replace(step=state.step + 1, params=optax.apply_updates(state.params, updates),
                        opt_state=opt_state)
  return state, jax.tree.map(jnp.mean, terms)


def train_epoch(state: TrainState, images_uint8, keys: RunKeys, epoch, *, batch_size: int,
                objective: Objective, tx: optax.GradientTransformation):
  """One epoch as a single `lax.scan`: shuffle with fold_in(keys.order, epoch), drop the last
  partial batch (a different remainder each epoch), step noise fold_in(keys.step, state.step).

  Args:
    images_uint8: [N, H, W, C] uint8, device resident. epoch: int32 scalar.
  Returns:
    (new state, epoch means of 'loss', 'recon', 'kl').
  """
  n = images_uint8.shape[0]
  num_batches = n // batch_size
  perm = jax.random.permutation(jax.random.fold_in(keys.order, epoch), n)
  idx_SxB = perm[: num_batches * batch_size].reshape(num_batches, batch_size)

  def body(state, idx_B):
    key = jax.random.fold_in(keys.step, state.step)
    return train_step(state, images_uint8[idx_B], key, objective=objective, tx=tx)

  state, metrics = jax.lax.scan(body, state, idx_SxB)
  return state, jax.tree.map(jnp.mean, metrics)


def evaluate_by_class(per_example_fn: Callable, params, images_uint8, labels, key, *,
                      batch_size: int, num_classes: int):
  """Exact per-example means over a whole dataset, overall and per class. Pads to a multiple of
  `batch_size` and masks the padding, so the result is sum over examples / N (not an average of
  batch averages); the overall mean is the count-weighted average of the class means.

  Args:
    per_example_fn: (params, x_uint8 [B, H, W, C], key) -> dict of [B] arrays.
    images_uint8: [N, H, W, C] uint8. labels: [N] int32 in [0, num_classes).
    key: batch b uses fold_in(key, b).
  Returns:
    (means, per_class): dicts of scalars and of [num_classes] arrays (NaN for an absent class).
  """
  n = images_uint8.shape[0]
  num_batches = -(-n // batch_size)
  pad = num_batches * batch_size - n
  x = jnp.pad(images_uint8, [(0, pad)] + [(0, 0)] * (images_uint8.ndim - 1))
  x = x.reshape(num_batches, batch_size, *images_uint8.shape[1:])
  mask = (jnp.arange(num_batches * batch_size) < n)[:, None]
  onehot = jax.nn.one_hot(jnp.pad(labels, (0, pad)), num_classes) * mask
  onehot = onehot.reshape(num_batches, batch_size, num_classes)

  def body(totals, inputs):
    b, x_B, onehot_BxC = inputs
    values = per_example_fn(params, x_B, jax.random.fold_in(key, b))
    # where() and not a multiply: padded rows may hold inf/NaN (e.g. log of an all-zero image).
    masked = jax.tree.map(lambda v: jnp.where(onehot_BxC > 0, v[:, None], 0.0), values)
    return jax.tree.map(lambda t, v: t + jnp.sum(v, axis=0), totals, masked), None

  shapes = jax.eval_shape(per_example_fn, params, x[0], key)
  zeros = jax.tree.map(lambda s: jnp.zeros((num_classes,), s.dtype), shapes)
  totals, _ = jax.lax.scan(body, zeros, (jnp.arange(num_batches), x, onehot))
  counts = jnp.sum(onehot, axis=(0, 1))
  means = jax.tree.map(lambda t: jnp.sum(t) / n, totals)
  per_class = jax.tree.map(lambda t: jnp.where(counts > 0, t / jnp.maximum(counts, 1), jnp.nan),
                           totals)
  return means, per_class


def evaluate_dataset(per_example_fn: Callable, params, images_uint8, key, *, batch_size: int):
  """Exact per-example means over a whole dataset (see `evaluate_by_class`).

  Returns:
    dict of scalars (means over the N examples).
  """
  labels = jnp.zeros(images_uint8.shape[:1], jnp.int32)
  return evaluate_by_class(per_example_fn, params, images_uint8, labels, key,
                           batch_size=batch_size, num_classes=1)[0]


def iw_per_example(objective: Objective, num_samples: int, chunk_size: int):
  """per_example_fn giving 'nll_iw' = -IWAE bound with K = num_samples (nats per image)."""
  def fn(params, x_uint8, key):
    x, k_z = objective.inputs(x_uint8, key)
    bound = objectives.iwae_bound(objective.model, params, x, k_z, num_samples,
                                  chunk_size=chunk_size, likelihood=objective.likelihood)
    return {"nll_iw": -bound}
  return fn


class CompiledFn:
  """jax.jit + explicit ahead-of-time compilation per input signature, counting compilations.

  Calling it with arguments of a new shape/dtype/structure lowers and compiles once (timed);
  later calls with the same signature reuse the executable and can never retrace silently.
  """

  def __init__(self, fn: Callable, **jit_kwargs):
    self._jitted = jax.jit(fn, **jit_kwargs)
    self._executables: dict = {}
    self.compile_seconds = 0.0

  @property
  def compiles(self) -> int:
    return len(self._executables)

  def __call__(self, *args):
    leaves, treedef = jax.tree.flatten(args)
    signature = (treedef, tuple((jnp.shape(x), jnp.result_type(x)) for x in leaves))
    if signature not in self._executables:
      start = time.perf_counter()
      self._executables[signature] = self._jitted.lower(*args).compile()
      self.compile_seconds += time.perf_counter() - start
    return self._executables[signature](*args)


def eval_per_example(objective: Objective, elbo_samples: int = 0):
  """per_example_fn: objective.terms, 'mse' (squared error summed over pixels of the reconstruction
  decoded from the posterior mean or code, see objectives.reconstruction_mse) and, when
  elbo_samples = L > 0, 'elbo_l{L}' (the L-sample ELBO; VAE only)."""
  def fn(params, x_uint8, key):
    terms = objective.terms(params, x_uint8, key)
    x, _ = objective.inputs(x_uint8, key)  # The images `terms` saw.
    terms["mse"] = objectives.reconstruction_mse(objective.model, params, x,
                                                 likelihood=objective.likelihood)
    if elbo_samples:
      x, k_z = objective.inputs(x_uint8, jax.random.fold_in(key, 1))
      terms[f"elbo_l{elbo_samples}"] = objectives.elbo_multi_sample(
          objective.model, params, x, k_z, elbo_samples, likelihood=objective.likelihood)
    return terms
  return fn


def make_programs(objective: Objective, tx, *, batch_size: int, eval_batch_size: int,
                  elbo_samples: int = 0, num_classes: int = 10, seeds_axis: bool = False) -> dict:
  """The compiled programs a run uses: 'epoch' (state donated), 'eval' (dataset means of
  eval_per_example) and 'eval_by_class' (overall and per-class means on labelled images).

  With seeds_axis=True every program is `jax.vmap`ped over a leading seed axis of the state /
  params and of the RunKeys (images, labels and epoch shared): S seeds train in one program.
  """
  epoch_fn = functools.partial(train_epoch, batch_size=batch_size, objective=objective, tx=tx)
  per_example = eval_per_example(objective, elbo_samples)
  eval_fn = functools.partial(evaluate_dataset, per_example, batch_size=eval_batch_size)
  by_class_fn = functools.partial(evaluate_by_class, per_example, batch_size=eval_batch_size,
                                  num_classes=num_classes)
  if seeds_axis:
    epoch_fn = jax.vmap(epoch_fn, in_axes=(0, None, 0, None))
    eval_fn = jax.vmap(eval_fn, in_axes=(0, None, 0))
    by_class_fn = jax.vmap(by_class_fn, in_axes=(0, None, None, 0))
  return {"epoch": CompiledFn(epoch_fn, donate_argnums=0), "eval": CompiledFn(eval_fn),
          "eval_by_class": CompiledFn(by_class_fn)}
