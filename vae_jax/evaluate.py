"""Evaluation of trained runs: IW-NLL, figures, restoring a run directory for `evaluate`/`sample`."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import jax
import ml_collections
import jax.numpy as jnp
import numpy as np

from vae_jax import checkpointing, data, distributions, models, plots, train


def iw_nll(objective, params, images_uint8, key, *, num_samples: int, batch_size: int,
           chunk_size: int) -> tuple[float, float]:
  """IW-NLL estimate -IWAE_K (Burda et al., 2016) over a whole dataset, in nats per image.

  Returns:
    (nll, compile_seconds).
  """
  fn = train.CompiledFn(lambda p, x, k: train.evaluate_dataset(
      train.iw_per_example(objective, num_samples, chunk_size), p, x, k, batch_size=batch_size))
  nll = float(fn(params, images_uint8, key)["nll_iw"])
  return nll, fn.compile_seconds


def final_metrics(config, objective, params, test_uint8, keys) -> dict:
  """IW-NLL with K = config.eval.iw_samples (skipped if 0), also in bits/dim, with timings."""
  k = config.eval.iw_samples
  if not k:
    return {"compile_seconds": 0.0, "compiles": 0}
  start = time.perf_counter()
  nll, compile_seconds = iw_nll(objective, params, test_uint8, jax.random.fold_in(keys.eval, 1),
                                num_samples=k, batch_size=config.eval.iw_batch_size,
                                chunk_size=config.eval.iw_chunk_size)
  pixels = math.prod(test_uint8.shape[1:])
  return {"eval/nll_iw": nll, "eval/nll_iw_k": k,
          "eval/nll_iw_bits_per_dim": nll / (pixels * math.log(2.0)),
          "eval/nll_iw_seconds": time.perf_counter() - start - compile_seconds,
          "compile_seconds": compile_seconds, "compiles": 1}


def _batched(fn, x, batch_size=1000):
  return np.concatenate([np.asarray(fn(x[i:i + batch_size])) for i in range(0, len(x), batch_size)])


def write_figures(model, params, test_split, history, fig_dir: Path, key, likelihood: str,
                  num_recon: int = 16, num_samples: int = 64) -> None:
  """loss_curves, reconstructions (originals above reconstructions from the posterior mean or
  code), latent scatter of the test-set posterior means / codes coloured by class; for a VAE also
  prior samples and, for Z = 2, the decoded manifold (an autoencoder has no prior)."""
  images, labels = test_split
  is_vae = isinstance(model, models.VAE)
  x = data.preprocess(jnp.asarray(images), "grayscale")
  encode = jax.jit(lambda x: models.latent_mean(model, params, x))
  decode = jax.jit(lambda z: distributions.mean_from_output(
      likelihood, model.apply({"params": params}, z, method=model.decode)))
  means = _batched(encode, x)
  if likelihood in distributions.NORMALIZED_LIKELIHOODS:
    plots.loss_curves(history, fig_dir / "loss_curves.png")
  else:
    plots.loss_curves(history, fig_dir / "loss_curves.png",
                      loss_name="loss" if is_vae else "reconstruction loss",
                      units=f"{likelihood}, per image")
  plots.image_rows([np.asarray(x[:num_recon]), np.asarray(decode(means[:num_recon]))],
                   fig_dir / "reconstructions.png", row_labels=["original", "reconstruction"])
  plots.latent_scatter(means, labels, fig_dir / "latent_scatter.png",
                       title="test-set posterior means" if is_vae else "test-set codes")
  if not is_vae:
    return
  z = jax.random.normal(key, (num_samples, model.latent_dim))
  plots.image_grid(np.asarray(decode(z)), fig_dir / "prior_samples.png", title="samples z ~ N(0, I)")
  if model.latent_dim == 2:
    z_grid, values = plots.manifold_latents()
    plots.manifold_grid(np.asarray(decode(jnp.asarray(z_grid))), values, fig_dir / "manifold.png",
                        title="decoded latent grid")


def restore_run(workdir: str | Path):
  """(config, objective, params, keys, epoch) of the latest checkpoint in workdir.

  Raises:
    checkpointing.CheckpointError: no run directory, no checkpoint, or unreadable checkpoint.
  """
  workdir = Path(workdir)
  if not (workdir / "config.json").is_file():
    raise checkpointing.CheckpointError(f"{workdir} is not a run directory (no config.json); pass "
                                        "--workdir of a run made by vae-jax train")
  try:
    config = ml_collections.ConfigDict(json.loads((workdir / "config.json").read_text()))
  except (ValueError, TypeError) as e:
    raise checkpointing.CheckpointError(f"{workdir}/config.json is unreadable ({e}); "
                                        "retrain into a fresh --workdir") from None
  epoch, meta = checkpointing.restore_meta(workdir)
  image_shape = data.DATASETS[config.data.name].image_shape
  objective = train.objective_from_config(config, image_shape, meta.get("encoder_widths"))
  tx = train.make_optimizer(config.optim.name, config.optim.lr, config.optim.weight_decay)
  abstract = jax.eval_shape(lambda: train.create_train_state(
      models.init_params(objective.model, jax.random.key(0), image_shape), tx))
  state = checkpointing.restore_state(workdir, epoch, abstract)
  return config, objective, state.params, train.RunKeys.from_seed(config.seed), epoch
