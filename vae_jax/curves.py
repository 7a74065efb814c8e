"""Figures of a run's metrics rows: loss curves, schedules, gradient flow, scores over training
(plots.py draws the images)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vae_jax import plots
from vae_jax.plots import plt


def loss_curves(metrics: list[dict], path, *, loss_name: str = "negative ELBO",
                units: str = plots.NATS) -> Path:
  """Plot training curves.

  Args:
    metrics: one dict per epoch with scalar entries ``'epoch'`` (int),
      ``'train/loss'``, ``'eval/loss'``, ``'eval/recon'``, ``'eval/kl'``
      (floats, nats per image; loss = negative ELBO = recon + KL) and
      optionally ``'val/loss'``.  Missing keys in individual epochs are
      drawn as gaps.  If ``'epoch'`` is absent, epochs are numbered 1..E.
    path: output PNG path.
    loss_name, units: how the loss and its terms are labelled (e.g. "MSE loss" and
      "squared error per image" for the MSE reconstruction term).

  Left panel: train / test (and validation, if present) negative ELBO vs
  epoch.  Right panel: test reconstruction term (left axis) and KL (twin
  right axis) vs epoch, with a combined legend.

  Returns:
    The PNG path.
  """
  metrics = list(metrics)
  if not metrics:
    raise ValueError("metrics is empty")
  epoch = plots.series(metrics, "epoch")
  if epoch is None or np.isnan(epoch).any():
    epoch = np.arange(1, len(metrics) + 1, dtype=np.float64)
  marker = "o" if len(metrics) <= 30 else None

  fig, (ax_l, ax_r) = plt.subplots(1, 2, figsize=(11, 4.2))

  # --- left: negative ELBO ---
  for key, label, color in (
      ("train/loss", "train", "C0"),
      ("val/loss", "validation", "C2"),
      ("eval/loss", "test", "C1"),
  ):
    y = plots.series(metrics, key)
    if y is not None:
      ax_l.plot(epoch, y, color=color, marker=marker, ms=3, lw=1.5, label=label)
  ax_l.set_xlabel("epoch")
  ax_l.set_ylabel(f"{loss_name} ({units})")
  ax_l.set_title(loss_name[:1].upper() + loss_name[1:])
  ax_l.grid(alpha=0.3)
  if ax_l.get_legend_handles_labels()[0]:
    ax_l.legend(frameon=False)

  # --- right: recon + KL (twin axes) ---
  handles = []
  recon = plots.series(metrics, "eval/recon")
  kl = plots.series(metrics, "eval/kl")
  if recon is not None:
    handles += ax_r.plot(epoch, recon, color="C3", marker=marker, ms=3,
                         lw=1.5, label="test reconstruction term")
  ax_r.set_xlabel("epoch")
  ax_r.set_ylabel(f"reconstruction ({units})", color="C3")
  ax_r.tick_params(axis="y", colors="C3")
  ax_r.grid(alpha=0.3)
  ax_kl = ax_r.twinx()
  if kl is not None:
    handles += ax_kl.plot(epoch, kl, color="C4", marker=marker, ms=3,
                          lw=1.5, ls="--", label="test KL(q(z|x) ‖ p(z))")
  ax_kl.set_ylabel(f"KL ({plots.NATS})", color="C4")
  if kl is None:
    ax_kl.set_visible(False)
  ax_kl.tick_params(axis="y", colors="C4")
  ax_r.set_title("Test reconstruction and KL" if kl is not None else "Test reconstruction")
  if handles:
    # below the panel: the two curves usually cross the whole plot area
    ax_r.legend(handles, [h.get_label() for h in handles], frameon=False,
                loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)

  for ax in (ax_l, ax_r):
    ax.xaxis.get_major_locator().set_params(integer=True)
  fig.tight_layout()
  return plots.save(fig, path)


def has_schedule(metrics: list[dict]) -> bool:
  """Whether the rows' 'train/beta' or 'train/lr' (epoch means) change over the run."""
  return any(len({row.get(key) for row in metrics} - {None}) > 1
             for key in ("train/beta", "train/lr"))


def schedule_curves(metrics: list[dict], path):
  """The KL weight beta and the learning rate per epoch (epoch means of the steps' values,
  vae_jax.schedules), beside the test KL (nats per image) when the rows have it.

  Args:
    metrics: metrics.jsonl rows with 'epoch', 'train/beta', 'train/lr' and optionally 'eval/kl'.
    path: the PNG to write.
  Returns:
    The PNG path.
  Raises:
    ValueError: the rows have no 'train/beta' or 'train/lr'.
  """
  beta, lr = plots.series(metrics, "train/beta"), plots.series(metrics, "train/lr")
  if beta is None or lr is None:
    raise ValueError("the metrics rows have no train/beta or train/lr (runs before schedules)")
  epoch = plots.series(metrics, "epoch")
  if epoch is None:
    epoch = np.arange(1, len(metrics) + 1, dtype=np.float64)
  fig, (ax_b, ax_lr) = plt.subplots(1, 2, figsize=(10, 3.8))
  ax_b.plot(epoch, beta, color="C0", lw=1.5, marker="o" if len(epoch) <= 30 else None, ms=3,
            label="β (epoch mean)")
  ax_b.set_xlabel("epoch")
  ax_b.set_ylabel("KL weight β", color="C0")
  ax_b.set_title("KL weight")
  kl = plots.series(metrics, "eval/kl")
  if kl is not None:
    ax_kl = ax_b.twinx()
    ax_kl.plot(epoch, kl, color="C4", ls="--", lw=1.2, label="test KL")
    ax_kl.set_ylabel(f"test KL ({plots.NATS})", color="C4")
  ax_lr.plot(epoch, lr, color="C1", lw=1.5, marker="o" if len(epoch) <= 30 else None, ms=3)
  ax_lr.set_xlabel("epoch")
  ax_lr.set_ylabel("learning rate (epoch mean)")
  ax_lr.set_title("Learning rate")
  ax_lr.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
  for ax in (ax_b, ax_lr):
    ax.grid(alpha=0.3)
  fig.tight_layout()
  return plots.save(fig, path)


def has_dynamics(metrics: list[dict]) -> bool:
  """Whether the rows hold the per-layer dynamics of vae_jax.dynamics."""
  return any(k.startswith("dynamics/grad_norm/") for row in metrics for k in row)


def _per_layer_pair(metrics: list[dict], path, kind: str, left, right, titles, log: bool):
  """Two panels over the epochs, one line per layer of the rows' 'dynamics/<kind>/<layer>'
  entries: left(layer) and right(layer) give each panel's series (None: no line)."""
  if not has_dynamics(metrics):
    raise ValueError("the metrics rows hold no dynamics/ entries; train with "
                     "--config.train.dynamics=True")
  epoch = plots.series(metrics, "epoch")
  layers = sorted({k.split("/", 2)[2] for row in metrics for k in row
                   if k.startswith(f"dynamics/{kind}/")})
  fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
  for i, layer in enumerate(layers):
    for ax, series in zip(axes, (left(layer), right(layer))):
      if series is not None:
        ax.plot(epoch, series, color=f"C{i % 10}", lw=1.4, label=layer)
  for ax, title in zip(axes, titles):
    ax.set_title(title)
    ax.set_xlabel("epoch")
    ax.grid(alpha=0.3)
    if log:
      ax.set_yscale("log")
  axes[0].legend(frameon=False, fontsize=7)
  fig.tight_layout()
  return plots.save(fig, path)


def gradient_flow(metrics: list[dict], path):
  """Per-layer gradient norm (left, log scale: the gradient flow) and update ratio (right) over
  the epochs, one line per layer, from the rows' 'dynamics/...' entries (vae_jax.dynamics).

  Returns:
    The PNG path.
  Raises:
    ValueError: the rows hold no dynamics (train.dynamics was off).
  """
  return _per_layer_pair(
      metrics, path, "grad_norm",
      lambda layer: plots.series(metrics, f"dynamics/grad_norm/{layer}"),
      lambda layer: plots.series(metrics, f"dynamics/update_ratio/{layer}"),
      ("Gradient norm per layer (probe batch)", "Update ratio ‖Δθ‖ / ‖θ‖ per layer, per epoch"),
      log=True)


def parameter_evolution(metrics: list[dict], path):
  """Per-layer parameter norm ||theta|| over the epochs (left) and relative to its first recorded
  epoch (right), one line per layer, from the rows' 'dynamics/param_norm/...' entries.

  Returns:
    The PNG path.
  Raises:
    ValueError: the rows hold no dynamics (train.dynamics was off).
  """
  norm = lambda layer: plots.series(metrics, f"dynamics/param_norm/{layer}")  # noqa: E731
  first = int(plots.series(metrics, "epoch")[0]) if metrics else 0
  return _per_layer_pair(
      metrics, path, "param_norm", norm, lambda layer: norm(layer) / norm(layer)[0],
      ("Parameter norm ‖θ‖ per layer", f"‖θ‖ relative to epoch {first}"), log=False)


def posterior_histograms(mean_NxZ, logvar_NxZ, path, max_dims: int = 8, dims=None):
  """Histograms of the posterior means mu_j and standard deviations sigma_j = exp(logvar_j / 2)
  over N test images, one panel pair per latent dimension, the N(0, 1) prior's density over the
  means.

  Args:
    mean_NxZ, logvar_NxZ: float arrays [N, Z] (e.g. study.posterior's).
    dims: the dimensions to draw, in order (e.g. highest KL first); default the first
      `max_dims`.
  Returns:
    The PNG path.
  Raises:
    ValueError: shapes differ, N < 2, or a dimension out of range.
  """
  mean, logvar = np.asarray(mean_NxZ, np.float64), np.asarray(logvar_NxZ, np.float64)
  if mean.shape != logvar.shape or mean.ndim != 2 or len(mean) < 2:
    raise ValueError(f"mean and logvar must be [N >= 2, Z] of one shape, got {mean.shape} and "
                     f"{logvar.shape}")
  dims = list(range(min(max_dims, mean.shape[1]))) if dims is None else [int(d) for d in dims]
  if not dims or not all(0 <= d < mean.shape[1] for d in dims):
    raise ValueError(f"dims must be latent dimensions in 0..{mean.shape[1] - 1}, got {dims}")
  fig, axes = plt.subplots(2, len(dims), figsize=(2.2 * len(dims), 4.2), squeeze=False)
  grid = np.linspace(-4, 4, 200)
  for col, j in enumerate(dims):
    axes[0, col].hist(mean[:, j], bins=40, density=True, color="C0", alpha=0.8)
    axes[0, col].plot(grid, np.exp(-grid ** 2 / 2) / np.sqrt(2 * np.pi), color="C3", lw=1)
    axes[0, col].set_title(f"z{j}: μ", fontsize=9)
    axes[1, col].hist(np.exp(logvar[:, j] / 2), bins=40, density=True, color="C1", alpha=0.8)
    axes[1, col].set_title(f"z{j}: σ", fontsize=9)
  fig.suptitle(f"posterior means and standard deviations over {len(mean):,} test images "
               "(red: the N(0, 1) prior)", fontsize=10)
  fig.tight_layout()
  return plots.save(fig, path)


def scores_over_training(scores: list[dict], path):
  """Classifier-FID (with the train-vs-test floor), classifier-IS (with the real test images'
  IS) and sample diversity (mean pairwise feature distance, with the test images') over the
  epochs of scoring.score_over_training's dicts, and the classifier's label histogram of the
  last epoch's samples.

  Returns:
    The PNG path.
  Raises:
    ValueError: no scores.
  """
  if not scores:
    raise ValueError("no scores to draw; score at least one checkpoint")
  epoch = [s["epoch"] for s in scores]
  fig, axes = plt.subplots(1, 4, figsize=(17, 3.8))
  for ax, key, ref, title in ((axes[0], "fid", "fid_floor_train_vs_test", "classifier-FID"),
                              (axes[1], "is", "is_real_test", "classifier-IS"),
                              (axes[2], "diversity", "diversity_test", "sample diversity")):
    ax.plot(epoch, [s[key] for s in scores], "o-", color="C0", label=scores[0]["of"])
    ax.axhline(scores[0][ref], color="C3", ls="--", lw=1,
               label="train vs test" if key == "fid" else "test images")
    ax.set_title(title)
    ax.set_xlabel("epoch")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=8)
  axes[2].set_ylabel("mean pairwise feature distance")
  counts = scores[-1]["label_histogram"]
  axes[3].bar(range(len(counts)), counts, color="C0")
  axes[3].axhline(scores[-1]["n"] / len(counts), color="C3", ls="--", lw=1, label="uniform")
  axes[3].set_xticks(range(len(counts)))
  axes[3].set_title(f"classifier's labels of the samples, epoch {scores[-1]['epoch']}")
  axes[3].legend(frameon=False, fontsize=8)
  fig.suptitle(f"n = {scores[0]['n']:,}, classifier {scores[0]['classifier_hash']}", fontsize=9)
  fig.tight_layout()
  return plots.save(fig, path)
