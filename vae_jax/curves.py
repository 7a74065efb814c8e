"""Figures of a run's schedules from its metrics rows (plots.py draws the losses and images)."""

from __future__ import annotations

import numpy as np

from vae_jax import plots
from vae_jax.plots import plt


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
