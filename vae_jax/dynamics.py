"""Training dynamics, once per epoch, by a hook of the loop: per layer (a module's parameter path,
its kernel and bias together) the gradient norm on a fixed probe batch of training images, the
parameter norm, and the update ratio ||params_t - params_(t-1)|| / ||params_(t-1)|| over the
epoch. They go into the epoch's metrics rows (metrics.jsonl, TensorBoard scalars) as
'dynamics/grad_norm/<layer>', 'dynamics/param_norm/<layer>' and 'dynamics/update_ratio/<layer>',
with 'dynamics/seconds' (what the probe took); given the runs' logs, also TensorBoard histograms of
each layer's parameter and probe-gradient values ('dynamics/params/<layer>',
'dynamics/grads/<layer>', step = epoch). `train.dynamics=True` turns the hook on (`Dynamics` for
fit's hooks=).

The probe costs one extra gradient per epoch, on `probe_images` images: nothing changes in the
training steps themselves.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from vae_jax import parallel
from vae_jax.loop import BaseHook, EpochResult, Loop, LoopState

PREFIX = "dynamics/"


def layers(tree) -> dict[str, list]:
  """{'encoder/mlp/hidden_0': [its leaves], ...}: a layer is a leaf's path without its last key
  (kernel and bias of one module)."""
  out = {}
  for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
    keys = [str(getattr(k, "key", getattr(k, "idx", k))) for k in path]
    out.setdefault("/".join(keys[:-1]) or keys[-1], []).append(leaf)
  return out


def layer_norms(tree) -> dict[str, jax.Array]:
  """{'encoder/mlp/hidden_0': float32 scalar, ...}: the L2 norm of each layer's leaves together
  (see `layers`)."""
  return {k: jnp.sqrt(sum(jnp.sum(jnp.square(x.astype(jnp.float32))) for x in leaves))
          for k, leaves in layers(tree).items()}


def layer_values(tree) -> dict[str, np.ndarray]:
  """{layer: every value of its leaves, float32 [n]} on the host (for histograms)."""
  return {k: np.concatenate([np.asarray(x, np.float32).ravel() for x in leaves])
          for k, leaves in layers(jax.device_get(tree)).items()}


def _copy(tree):
  return jax.tree.map(lambda a: jnp.array(a, copy=True), tree)


def _probe_program(objective):
  def measure(params, previous, batch, key, hparams):
    grads = jax.grad(lambda p: jnp.mean(objective.terms(p, batch, key, hparams)["loss"]))(params)
    delta = jax.tree.map(lambda a, b: a - b, params, previous)
    g, p, d, q = (layer_norms(t) for t in (grads, params, delta, previous))
    return ({f"grad_norm/{k}": v for k, v in g.items()}
            | {f"param_norm/{k}": v for k, v in p.items()}
            | {f"update_ratio/{k}": d[k] / jnp.maximum(q[k], 1e-12) for k in d}), grads
  return measure


class Dynamics(BaseHook):
  """Adds the per-layer dynamics (module docstring) to every run's row of each epoch; put it
  before the metrics log in the hooks.

  Args:
    probe_images: the first this many training images form the probe batch.
    logs: one run_log.RunLog per run to write the histograms to (None: no histograms).
  """

  def __init__(self, probe_images: int = 256, logs=None):
    self.probe_images, self.logs = probe_images, logs
    self.previous = None
    self.programs = {}

  def start(self, loop: Loop, state: LoopState) -> LoopState:
    train_split = loop.data["train"]
    batch = {k: np.asarray(v[: self.probe_images]) for k, v in train_split.items()}
    self.batch = parallel.put(batch, loop.layout.replicated)
    if state.train is not None:
      self.previous = _copy(state.train.params)
    return state

  def _program(self, loop: Loop, widths):
    if widths not in self.programs:
      measure = _probe_program(loop.programs(widths)[0])
      if loop.runs.axis:
        measure = jax.vmap(measure, in_axes=(0, 0, None, 0, 0))
      self.programs[widths] = jax.jit(measure)
    return self.programs[widths]

  def after_epoch(self, loop: Loop, state: LoopState, result: EpochResult) -> LoopState:
    params = state.train.params
    previous = self.previous if self.previous is not None else params
    if jax.tree.structure(previous) != jax.tree.structure(params) or any(
        a.shape != b.shape for a, b in zip(jax.tree.leaves(previous), jax.tree.leaves(params))):
      previous = params  # Grown this epoch: no update ratio across the surgery.
    key = jax.random.fold_in(loop.keys.eval, 7) if not loop.runs.axis else jax.vmap(
        lambda k: jax.random.fold_in(k, 7))(loop.keys.eval)
    start = time.perf_counter()
    values, grads = self._program(loop, state.widths)(params, previous, self.batch, key,
                                                      loop.hparams)
    values = jax.device_get(values)
    for i, row in enumerate(result.rows):
      if row is not None and self.logs is not None:
        self.logs[i].histograms(
            {f"{PREFIX}params/{k}": v for k, v in layer_values(loop.runs.get(params, i)).items()}
            | {f"{PREFIX}grads/{k}": v for k, v in layer_values(loop.runs.get(grads, i)).items()},
            result.epoch)
    seconds = time.perf_counter() - start  # The probe's cost (compile included at epoch 1).
    for i, row in enumerate(result.rows):
      if row is not None:  # The same dicts the history holds: updated in place.
        row.update({PREFIX + k: float(loop.runs.get(v, i)) for k, v in values.items()}
                   | {PREFIX + "seconds": seconds})
    self.previous = _copy(params)  # The next epoch's program donates `params`.
    return state
