"""The figures of a run directory, drawn through the objective protocol (objectives.py): no
question here about what kind of model a run holds, only what its objective can do."""

from __future__ import annotations

import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from vae_jax import conv_views, curves, plots


@functools.lru_cache(maxsize=8)
def _programs(objective):
  """Jitted latent and decode_mean with params as an argument: runs of one config share them."""
  return (jax.jit(lambda p, b, k: objective.latent(p, b, k)), decode_program(objective))


@functools.lru_cache(maxsize=8)
def decode_program(objective):
  """Jitted (params, z [B, Z], labels [B] or None) -> objective.decode_mean, params an argument:
  one compile serves every run of a config."""
  return jax.jit(lambda p, z, y: objective.decode_mean(p, z, y))


def write_figures(objective, params, test: dict, history: list[dict], fig_dir: Path, key,
                  num_recon: int = 16, num_samples: int = 64) -> list[str]:
  """Writes the figures a run's objective supports into fig_dir; returns their file names.

  loss_curves (always); schedules (beta and learning rate per epoch, when either changes:
  curves.schedule_curves); gradient_flow and parameter_evolution (with train.dynamics:
  curves.gradient_flow, curves.parameter_evolution); for a conv encoder filters (its first-layer
  filters) and feature_maps (of the first test image, conv_views); latent_scatter of test-set
  latents (posterior means, codes or classifier features, PCA when the dimension exceeds 2)
  coloured by class; if the objective can decode:
  reconstructions (originals above decode_mean(latent(x)), with the run's preprocessing, the
  binarization drawn from `key`); if it has a posterior: prior_samples, and for a 2-D latent the
  decoded manifold. A conditional model's samples use labels 0, 1, 2, ... in turn.

  Args:
    test: {"image": uint8 [N, H, W, C], "label": int32 [N]} on the host.
    history: the run's metrics rows. key: the run's eval key.
  """
  written = []
  if objective.normalized:
    curves.loss_curves(history, fig_dir / "loss_curves.png")
  else:
    curves.loss_curves(history, fig_dir / "loss_curves.png",
                      loss_name="loss" if objective.has_posterior else "reconstruction loss",
                      units=f"{objective.likelihood}, per image")
  written.append("loss_curves.png")
  if curves.has_schedule(history):
    curves.schedule_curves(history, fig_dir / "schedules.png")
    written.append("schedules.png")
  if curves.has_dynamics(history):
    curves.gradient_flow(history, fig_dir / "gradient_flow.png")
    curves.parameter_evolution(history, fig_dir / "parameter_evolution.png")
    written += ["gradient_flow.png", "parameter_evolution.png"]
  k_x, k_z = jax.random.split(key)
  labels = np.asarray(test["label"])
  latent_fn, decode_fn = _programs(objective)
  encode = functools.partial(latent_fn, params)
  latents = np.concatenate([np.asarray(encode(
      {"image": test["image"][i:i + 1000], "label": test["label"][i:i + 1000]},
      jax.random.fold_in(k_x, i))) for i in range(0, len(labels), 1000)])
  plots.latent_scatter(latents, labels, fig_dir / "latent_scatter.png",
                       title="test-set " + ("posterior means" if objective.has_posterior
                                            else "codes" if objective.can_decode else "features"))
  written.append("latent_scatter.png")
  if not objective.can_decode:
    return written
  first = {"image": jnp.asarray(test["image"][:num_recon]),
           "label": jnp.asarray(test["label"][:num_recon])}
  decode = functools.partial(decode_fn, params)
  k_first = jax.random.fold_in(k_x, 0)
  originals = objective.images(first, k_first)  # The binarization the reconstructions saw.
  recon = decode(encode(first, k_first), first["label"])
  plots.image_rows([np.asarray(originals), np.asarray(recon)], fig_dir / "reconstructions.png",
                   row_labels=["original", "reconstruction"])
  written.append("reconstructions.png")
  if conv_views.conv_kernels(params):  # A conv encoder: its filters and one image's maps.
    conv_views.filter_evolution({0: conv_views.first_layer_filters(params)},
                                fig_dir / "filters.png")
    maps = conv_views.feature_maps(objective.model, params, originals[0],
                                   first["label"][0] if objective.conditional else None)
    conv_views.feature_map_figure(np.asarray(originals[0]), maps, fig_dir / "feature_maps.png")
    written += ["filters.png", "feature_maps.png"]
  if not objective.has_posterior:
    return written
  latent_dim = latents.shape[1]
  num_classes = objective.num_classes
  z = objective.sample_prior(params, k_z, num_samples, latent_dim)
  prior = "the VampPrior" if hasattr(objective.model, "sample_prior") else "N(0, I)"
  plots.image_grid(np.asarray(decode(z, objective.prior_labels(num_samples))),
                   fig_dir / "prior_samples.png",
                   title=f"samples z ~ {prior}"
                   + (", labels 0..N-1 in turn" if num_classes else ""))
  written.append("prior_samples.png")
  if latent_dim == 2:
    z_grid, values = plots.manifold_latents()
    grid_labels = jnp.zeros((len(z_grid),), jnp.int32)
    plots.manifold_grid(np.asarray(decode(jnp.asarray(z_grid), grid_labels)), values,
                        fig_dir / "manifold.png", title="decoded latent grid"
                        + (" (label 0)" if num_classes else ""))
    written.append("manifold.png")
  return written


def filter_evolution(workdir, path, max_filters: int = 16):
  """The first-layer conv filters of every kept checkpoint of a run (checkpointing.all_epochs;
  `--config.train.keep_checkpoints=0` keeps every epoch), one row per epoch, drawn by
  conv_views.filter_evolution.

  Returns:
    The PNG path.
  Raises:
    checkpointing.CheckpointError: no run or no checkpoint. ValueError: no conv encoder.
  """
  from vae_jax import checkpointing, evaluate  # pylint: disable=import-outside-toplevel
  kernels = {e: conv_views.first_layer_filters(evaluate.restore_run(workdir, e).params)
             for e in checkpointing.all_epochs(workdir)}
  if not kernels:
    raise checkpointing.CheckpointError(f"no checkpoint in {workdir}; train first")
  return conv_views.filter_evolution(kernels, path, max_filters)
