"""vae_jax: variational autoencoders in JAX / Flax, trained by one jitted, pure, resumable loop.

The public API:

  vae_jax.fit(objective, optimizer, train_data, *, epochs, batch_size, ...) -> FitResult
  vae_jax.load_run(workdir[, objective, optimizer]) -> RestoredRun
  vae_jax.iw_nll(objective, params, data, *, k) -> nats per image
  vae_jax.models      VAE, CVAE, Autoencoder; MLPEncoder / MLPDecoder, ConvEncoder / ConvDecoder
                      (or your own flax modules: images -> (mean, logvar), z -> logits)
  vae_jax.objectives  VAEObjective(model, likelihood="bernoulli", ...), AutoencoderObjective,
                      ClassifierObjective; the Model and Objective protocols
  vae_jax.data        from_arrays, from_iterable, from_tfds, from_folder -> Source
  vae_jax.hooks       the loop's hooks (checkpoints, early stopping, ...); write your own
  vae_jax.errors      the errors raised for input a user can fix

The config-driven CLI (`vae-jax train --config ...`) and the studies under experiments/ are
clients of the same loop (runner.train_and_evaluate).
"""

from vae_jax import data, errors, hooks, models, objectives
from vae_jax.api import FitResult, fit, iw_nll, load_run
from vae_jax.evaluate import RestoredRun
from vae_jax.loop import BaseHook, EpochResult, Hook, LoopState
from vae_jax.sources import Source

__all__ = ["BaseHook", "EpochResult", "FitResult", "Hook", "LoopState", "RestoredRun", "Source",
           "data", "errors", "fit", "hooks", "iw_nll", "load_run", "models", "objectives"]
