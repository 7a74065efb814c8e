"""The figures only studies draw (growth arms, per-class lines, early-stopping curves, curve
panels, sorted profiles, rate-distortion, ROC curves), beside every figure of vae_jax.plots
(re-exported here with vae_jax.curves.loss_curves, so a study imports one `plots`)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np

# pylint: disable-next=wildcard-import,unused-wildcard-import
from vae_jax.plots import *  # noqa: F401,F403
from vae_jax.curves import loss_curves  # noqa: F401  # Re-exported beside the images.
from vae_jax.plots import NATS, save, series


def _band(ax, epochs, runs: np.ndarray, label: str, color, style="-"):
  """Mean over runs [R, E] with a +-1 sd band."""
  mean, sd = runs.mean(0), runs.std(0)
  ax.plot(epochs, mean, style, color=color, label=label, lw=1.3)
  if len(runs) > 1:
    ax.fill_between(epochs, mean - sd, mean + sd, color=color, alpha=0.2, lw=0)


def growth_curves(arms: dict[str, np.ndarray], epochs: np.ndarray, events: Sequence[float],
                  path, *, ylabel: str, title=None, baseline: str | None = None) -> Path:
  """Curves of several arms vs epoch with dashed vertical lines at growth events.

  Args:
      arms: name -> float [R, E] (R runs, e.g. seeds; mean +- sd drawn). The `baseline` arm is
          drawn in grey (e.g. the fixed-size model overlaid on a growing one).
      epochs: [E] epoch numbers. events: epochs after which the network was resized.
  """
  fig, ax = plt.subplots(figsize=(7, 4))
  colors = iter(plt.get_cmap("tab10").colors)
  for name, runs in arms.items():
    _band(ax, epochs, np.asarray(runs, float), name,
          "0.45" if name == baseline else next(colors), "--" if name == baseline else "-")
  # Clip the y range to the curves after the first 5% of epochs (early losses dwarf the rest).
  tail = np.concatenate([np.asarray(r, float)[:, len(epochs) // 20:].ravel()
                         for r in arms.values()])
  lo, hi = np.nanmin(tail), np.nanpercentile(tail, 99.5)
  if hi > lo:
    ax.set_ylim(lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo))
  for i, e in enumerate(events):
    ax.axvline(e + 0.5, ls="--", color="k", lw=0.7, alpha=0.6,
               label="growth event" if i == 0 else None)
  ax.set_xlabel("epoch")
  ax.set_ylabel(ylabel)
  if title:
    ax.set_title(title)
  ax.legend(fontsize=8)
  ax.grid(alpha=0.3)
  return save(fig, path)


def per_class_lines(values: np.ndarray, line_labels: Sequence[str], path, *, ylabel: str,
                    class_names: Sequence[str] | None = None, title=None, sd=None) -> Path:
  """One line per setting (e.g. latent size) of a per-class metric, classes on the x axis.

  Args:
      values: float [L, C] (L lines, C classes), e.g. mean test MSE per digit for each latent
          size. sd: optional [L, C] drawn as error bars (e.g. sd over seeds).
      line_labels: L legend entries. class_names: C tick labels (default 0..C-1).
  """
  values = np.asarray(values, float)
  if values.ndim != 2 or len(line_labels) != len(values):
    raise ValueError(f"values must be [L, C] with one label per line, got {values.shape} and "
                     f"{len(line_labels)} labels")
  c = values.shape[1]
  x = np.arange(c)
  fig, ax = plt.subplots(figsize=(7, 4))
  colors = plt.get_cmap("viridis")(np.linspace(0, 0.9, len(values)))
  for k, (row, label) in enumerate(zip(values, line_labels)):
    err = None if sd is None else np.asarray(sd, float)[k]
    ax.errorbar(x, row, yerr=err, color=colors[k], marker="o", ms=3.5, lw=1.4, capsize=2,
                label=label)
  ax.set_xticks(x, class_names if class_names is not None else [str(i) for i in x])
  ax.set_xlabel("class")
  ax.set_ylabel(ylabel)
  if title:
    ax.set_title(title)
  ax.legend(fontsize=8, ncol=2)
  ax.grid(alpha=0.3)
  return save(fig, path)


def stopping_curves(panels: dict[str, list[dict]], path, *, ylabel: str, title=None) -> Path:
  """Train and validation loss vs epoch of several runs per panel, the epoch of the best
  validation loss marked with a dot and the early stop with a cross.

  Args:
      panels: panel title -> runs, each {'label': str, 'history': metrics rows with 'epoch',
          'train/loss', 'val/loss', 'best_epoch': int, 'stopped_epoch': int or None (the cap
          bound)}. All panels share the y axis.
  """
  if not panels:
    raise ValueError("panels is empty")
  fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.8), sharey=True,
                           squeeze=False)
  for ax, (name, runs) in zip(axes[0], panels.items()):
    for k, run in enumerate(runs):
      color = plt.get_cmap("tab10")(k)
      epochs = series(run["history"], "epoch")
      for key, style, what in (("train/loss", ":", "train"), ("val/loss", "-", "val")):
        ax.plot(epochs, series(run["history"], key), style, color=color, lw=1.3,
                label=f"{run['label']} {what}")
      val = dict(zip(epochs, series(run["history"], "val/loss")))
      ax.plot([run["best_epoch"]], [val[run["best_epoch"]]], "o", color=color, ms=6)
      if run["stopped_epoch"]:
        ax.plot([run["stopped_epoch"]], [val[run["stopped_epoch"]]], "x", color=color, ms=8,
                mew=2)
    ax.set_title(name)
    ax.set_xlabel("epoch")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
  axes[0, 0].set_ylabel(ylabel)
  axes[0, 0].legend(fontsize=7, title="o best  x stop", title_fontsize=7)
  # Clip the y range to the curves after epoch 2 (the first epochs dwarf the rest).
  tail = np.concatenate([series(r["history"], k)[2:] for rs in panels.values() for r in rs
                         for k in ("train/loss", "val/loss")])
  if tail.size and np.nanmax(tail) > np.nanmin(tail):
    lo, hi = np.nanmin(tail), np.nanmax(tail)
    axes[0, 0].set_ylim(lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo))
  if title:
    fig.suptitle(title)
  fig.tight_layout()
  return save(fig, path)


def curve_panels(panels: dict[str, dict[str, np.ndarray]], epochs, path, *, ylabel: str = NATS,
                 title=None) -> Path:
  """Side-by-side panels of curves vs epoch, one line (mean +- 1 sd over runs) per setting.

  Args:
      panels: panel title (e.g. 'negative ELBO', 'reconstruction term', 'KL') -> line label
          (e.g. 'β=1') -> float [R, E] (R runs, E epochs).
      epochs: [E] epoch numbers shared by every line.
  """
  if not panels:
    raise ValueError("panels is empty")
  epochs = np.asarray(epochs)
  fig, axes = plt.subplots(1, len(panels), figsize=(4.4 * len(panels), 3.6), squeeze=False)
  for ax, (name, lines) in zip(axes[0], panels.items()):
    colors = plt.get_cmap("viridis")(np.linspace(0, 0.9, max(len(lines), 1)))
    for color, (label, runs) in zip(colors, lines.items()):
      runs = np.atleast_2d(np.asarray(runs, float))
      if runs.shape[1] != len(epochs):
        raise ValueError(f"{name}/{label}: {runs.shape[1]} epochs, expected {len(epochs)}")
      _band(ax, epochs, runs, label, color)
    ax.set_title(name)
    ax.set_xlabel("epoch")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
  axes[0, 0].set_ylabel(ylabel)
  axes[0, -1].legend(fontsize=7)
  if title:
    fig.suptitle(title)
  fig.tight_layout()
  return save(fig, path)


def sorted_profiles(lines: dict[str, np.ndarray], path, *, ylabel: str, xlabel: str,
                    threshold: float | None = None, log: bool = True, title=None) -> Path:
  """Per-dimension values (e.g. KL per latent dimension) of each run sorted in decreasing order,
  one line (mean +- 1 sd over runs of the k-th largest value) per setting.

  Args:
      lines: label -> float [R, D] (R runs, D dimensions; D may differ between labels).
      threshold: optional horizontal dashed line (e.g. an active-unit cut-off).
      log: logarithmic y axis (values <= 0 are clipped to 1e-6 of the largest).
  """
  if not lines:
    raise ValueError("lines is empty")
  fig, ax = plt.subplots(figsize=(7, 4))
  colors = plt.get_cmap("viridis")(np.linspace(0, 0.9, len(lines)))
  top = max(float(np.max(v)) for v in lines.values())
  for color, (label, runs) in zip(colors, lines.items()):
    runs = -np.sort(-np.atleast_2d(np.asarray(runs, float)), axis=1)
    if log:
      runs = np.maximum(runs, 1e-6 * top)
    _band(ax, np.arange(1, runs.shape[1] + 1), runs, label, color)
    ax.plot(np.arange(1, runs.shape[1] + 1), runs.mean(0), "o", color=color, ms=3)
  if threshold is not None:
    ax.axhline(threshold, ls="--", color="k", lw=0.8, alpha=0.7, label=f"{threshold:g}")
  if log:
    ax.set_yscale("log")
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  ax.xaxis.get_major_locator().set_params(integer=True)
  if title:
    ax.set_title(title)
  ax.legend(fontsize=8, ncol=2)
  ax.grid(alpha=0.3)
  return save(fig, path)


def rate_distortion(groups: dict[str, tuple[np.ndarray, np.ndarray]], path, *,
                    units: str = NATS, title=None) -> Path:
  """Rate (KL) against distortion (reconstruction term) of runs, one colour per setting, each run
  a dot and each setting's mean a larger marker joined in order (Alemi et al., 2018).

  Args:
      groups: label -> (rate [R], distortion [R]) in `units`.
  """
  if not groups:
    raise ValueError("groups is empty")
  fig, ax = plt.subplots(figsize=(6, 4.2))
  colors = plt.get_cmap("viridis")(np.linspace(0, 0.9, len(groups)))
  means = []
  for color, (label, (rate, distortion)) in zip(colors, groups.items()):
    rate, distortion = np.asarray(rate, float), np.asarray(distortion, float)
    if rate.shape != distortion.shape:
      raise ValueError(f"{label}: rate {rate.shape} and distortion {distortion.shape} differ")
    ax.plot(rate, distortion, ".", color=color, alpha=0.6)
    means.append((rate.mean(), distortion.mean()))
    ax.plot(*means[-1], "o", color=color, ms=8, label=label)
  ax.plot(*np.array(means).T, "-", color="0.5", lw=0.8, zorder=0)
  ax.set_xlabel(f"rate: KL ({units})")
  ax.set_ylabel(f"distortion: reconstruction term ({units})")
  if title:
    ax.set_title(title)
  ax.legend(fontsize=8)
  ax.grid(alpha=0.3)
  return save(fig, path)


def roc_curves(panels: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]], path,
               title=None) -> Path:
  """ROC curves (scikit-learn's roc_curve), one panel per task, one line per score.

  Args:
      panels: panel title -> score name -> (scores of the positives [P], of the negatives [M]);
          a higher score should mean 'positive' (e.g. anomalous). The legend gives each AUROC.
  """
  from sklearn.metrics import roc_auc_score, roc_curve  # pylint: disable=import-outside-toplevel
  if not panels:
    raise ValueError("panels is empty")
  fig, axes = plt.subplots(1, len(panels), figsize=(4.4 * len(panels), 4.2), squeeze=False)
  for ax, (name, lines) in zip(axes[0], panels.items()):
    colors = plt.get_cmap("tab10").colors
    for k, (label, (pos, neg)) in enumerate(lines.items()):
      y = np.concatenate([np.ones(len(pos)), np.zeros(len(neg))])
      s = np.concatenate([np.ravel(pos), np.ravel(neg)]).astype(np.float64)
      fpr, tpr, _ = roc_curve(y, s)
      ax.plot(fpr, tpr, color=colors[k % 10], lw=1.3,
              label=f"{label} (AUROC {roc_auc_score(y, s):.3f})")
    ax.plot([0, 1], [0, 1], ":", color="0.5", lw=0.8)
    ax.set_xlabel("false positive rate")
    ax.set_title(name, fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    ax.set_aspect("equal")
  axes[0, 0].set_ylabel("true positive rate")
  if title:
    fig.suptitle(title)
  fig.tight_layout()
  return save(fig, path)
