"""vae_jax: variational autoencoders in JAX / Flax, trained by one jitted, pure, resumable loop.

The public API:

  vae_jax.fit(objective, optimizer, train_data, *, epochs, batch_size, ...) -> FitResult
  vae_jax.load_run(workdir[, objective, optimizer]) -> RestoredRun
  vae_jax.iw_nll(objective, params, data, *, k) -> nats per image
  vae_jax.models      VAE, CVAE, Autoencoder; MLPEncoder / MLPDecoder, ConvEncoder / ConvDecoder
                      (or your own flax modules: images -> (mean, logvar), z -> logits)
  vae_jax.objectives  VAEObjective(model, likelihood="bernoulli", ...), IWAEObjective(model,
                      num_samples=K, estimator="iwae" | "dreg"), AutoencoderObjective,
                      ClassifierObjective; the Model and Objective protocols
  vae_jax.optimizers  make_optimizer (traced learning rate), track_params_ema(decay) (evaluate
                      an EMA of the params), Hparams
  vae_jax.schedules   KL warm-up, cyclical beta, free bits, learning-rate warm-up + cosine
                      decay, clipping: fields of the traced train.Hparams (fit's hparams=)
  vae_jax.data        from_arrays, from_iterable, from_tfds, from_folder -> Source
  vae_jax.hooks       the loop's hooks (checkpoints, early stopping, ...); write your own
  vae_jax.errors      the errors raised for input a user can fix

The config-driven CLI (`vae-jax train --config ...`) and the studies under experiments/ are
clients of the same loop (runner.train_and_evaluate).
"""

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # What type checkers and IDEs see; at run time these load on first use.
  from vae_jax import data, errors, hooks, models, objectives, optimizers, schedules  # noqa: F401
  from vae_jax.api import FitResult, fit, iw_nll, load_run  # noqa: F401
  from vae_jax.evaluate import RestoredRun  # noqa: F401
  from vae_jax.loop import BaseHook, EpochResult, Hook, LoopState  # noqa: F401
  from vae_jax.data import Source  # noqa: F401

# Loaded on first use (PEP 562), so that `import vae_jax.errors` or the CLI's usage errors do not
# pay for JAX, flax and orbax.
_SUBMODULES = ("data", "errors", "hooks", "models", "objectives", "optimizers", "schedules")
_NAMES = {"FitResult": "api", "fit": "api", "iw_nll": "api", "load_run": "api",
          "RestoredRun": "evaluate", "BaseHook": "loop", "EpochResult": "loop", "Hook": "loop",
          "LoopState": "loop", "Source": "data"}

__all__ = sorted([*_NAMES, *_SUBMODULES])


def __getattr__(name: str):
  if name in _SUBMODULES:
    return importlib.import_module(f"vae_jax.{name}")
  if name in _NAMES:
    return getattr(importlib.import_module(f"vae_jax.{_NAMES[name]}"), name)
  raise AttributeError(f"module 'vae_jax' has no attribute {name!r}")


def __dir__():
  return __all__
