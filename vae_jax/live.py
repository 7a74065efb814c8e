"""Real-time generation: a hook of the loop that writes, at every epoch, each run's
reconstructions of fixed test images and the decoder means of fixed prior draws to TensorBoard
(tags live/reconstructions and live/samples, step = epoch), so one watches them sharpen while
training runs; `train.live_images=True` turns it on.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from vae_jax import figures, plots, train
from vae_jax.loop import BaseHook, EpochResult, Loop, LoopState


def grid(images: np.ndarray) -> np.ndarray:
  """n images [n, H, W, C] in [0, 1] tiled into one square-ish [H', W', C] image (C = 1 or 3)."""
  n = len(images)
  cols = math.ceil(math.sqrt(n))
  # pylint: disable-next=protected-access
  return plots._tile(np.asarray(images), math.ceil(n / cols), cols, 1)


class LiveImages(BaseHook):
  """Writes live/reconstructions (the first `n` test images' decoded latents) and live/samples
  (decoder means of `n` prior draws fixed by key 0) through each run's run_log.RunLog.images
  after every epoch; a model that cannot decode writes nothing, one without a prior no samples.

  Args:
    logs: one run_log.RunLog per run (the MetricsLog's).
  """

  def __init__(self, logs, n: int = 16):
    self.logs, self.n = list(logs), n

  def start(self, loop: Loop, state: LoopState) -> LoopState:
    test = loop.data.get("test") or loop.data["train"]
    self.batch = {k: jnp.asarray(np.asarray(v[: self.n])) for k, v in test.items()}
    return state

  def after_epoch(self, loop: Loop, state: LoopState, result: EpochResult) -> LoopState:
    objective = loop.programs(state.widths)[0]
    if not objective.can_decode:
      return state
    latent_fn, decode = figures._programs(objective)  # pylint: disable=protected-access
    params = train.eval_params(state.train.params, state.train.opt_state)
    for i, (log, row) in enumerate(zip(self.logs, result.rows)):
      if row is None:
        continue
      p = jax.device_get(loop.runs.get(params, i))
      key = jax.random.key(0)
      recon = decode(p, latent_fn(p, self.batch, key), self.batch["label"])
      images = {"live/reconstructions": grid(np.asarray(recon))}
      if objective.has_posterior:
        z = objective.sample_prior(p, key, self.n, objective.model.latent_dim)
        images["live/samples"] = grid(np.asarray(decode(p, z, objective.prior_labels(self.n))))
      log.images(images, result.epoch)
    return state
