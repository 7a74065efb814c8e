"""Figures for VAE studies: reconstructions, samples, latents, manifolds (curves.py draws
the curves of metrics rows).

Pure plotting: every function takes plain NumPy arrays / lists (anything
``np.asarray`` accepts, including JAX arrays) plus an output path, writes one
PNG, closes the figure and returns the path as a :class:`pathlib.Path`.  The
parent directory is created if needed.  No training or model logic lives here.

Image conventions
-----------------
Images are float arrays ``[n, H, W, C]`` with values in ``[0, 1]`` and
``C == 1`` (grayscale, drawn with ``cmap="gray", vmin=0, vmax=1``) or ``C == 3``
(RGB, clipped to ``[0, 1]`` and drawn directly).  ``[n, H, W]`` is accepted as
grayscale.  Image figures have no axis ticks, except :func:`manifold_grid`,
which labels a few latent coordinates.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import BoundaryNorm, ListedColormap  # noqa: E402

__all__ = [
    "image_rows",
    "image_grid",
    "latent_scatter",
    "manifold_grid",
    "manifold_latents",
    "save",
    "series",
]

DPI = 120
_PAD_VALUE = 1.0  # white separators between tiles
NATS = "nats per image"


# --------------------------------------------------------------------------- #
# helpers
# --------------------------------------------------------------------------- #
def _prepare_path(path: str | os.PathLike) -> Path:
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  return path


def save(fig: plt.Figure, path: str | os.PathLike) -> Path:
  path = _prepare_path(path)
  try:
    fig.savefig(path, dpi=DPI, bbox_inches="tight", format="png")
  finally:
    plt.close(fig)
  return path


def _as_images(images, name: str = "images") -> np.ndarray:
  """Return float32 ``[n, H, W, C]`` with C in {1, 3}, clipped to [0, 1]."""
  x = np.asarray(images, dtype=np.float32)
  if x.ndim == 3:  # [n, H, W] -> grayscale
    x = x[..., None]
  if x.ndim != 4 or x.shape[-1] not in (1, 3):
    raise ValueError(
        f"{name} must have shape [n, H, W, C] with C in (1, 3); got {x.shape}"
    )
  if x.shape[0] == 0:
    raise ValueError(f"{name} is empty")
  return np.clip(np.nan_to_num(x, nan=0.0), 0.0, 1.0)


def _tile(x: np.ndarray, nrows: int, ncols: int, pad: int) -> np.ndarray:
  """Tile ``x [n, H, W, C]`` row-major into ``[nrows*H + .., ncols*W + .., C]``.

  Cells beyond ``n`` and the ``pad``-pixel gutters are filled with white.
  """
  n, h, w, c = x.shape
  out = np.full(
      (nrows * h + (nrows - 1) * pad, ncols * w + (ncols - 1) * pad, c),
      _PAD_VALUE,
      dtype=np.float32,
  )
  for k in range(min(n, nrows * ncols)):
    i, j = divmod(k, ncols)
    r, q = i * (h + pad), j * (w + pad)
    out[r : r + h, q : q + w] = x[k]
  return out


def _imshow(ax: plt.Axes, img: np.ndarray, **kw) -> None:
  """Show ``img [H, W, C]``: gray for C == 1, RGB for C == 3."""
  if img.shape[-1] == 1:
    ax.imshow(img[..., 0], cmap="gray", vmin=0.0, vmax=1.0,
              interpolation="nearest", **kw)
  else:
    ax.imshow(img, interpolation="nearest", **kw)


def _no_ticks(ax: plt.Axes) -> None:
  ax.set_xticks([])
  ax.set_yticks([])
  for s in ax.spines.values():
    s.set_visible(False)


def _pad_for(h: int) -> int:
  return max(1, round(h / 14))


# --------------------------------------------------------------------------- #
# loss curves
# --------------------------------------------------------------------------- #
def series(metrics: Sequence[dict], key: str) -> np.ndarray | None:
  """Float array of ``metrics[i][key]`` (NaN where missing); None if absent everywhere."""
  if not any(key in m for m in metrics):
    return None
  return np.array([float(m[key]) if key in m else np.nan for m in metrics],
                  dtype=np.float64)


# --------------------------------------------------------------------------- #
# image figures
# --------------------------------------------------------------------------- #
def image_rows(rows: list[np.ndarray], path, row_labels: list[str] | None = None,
               title=None) -> Path:
  """Draw several strips of images, one strip per row.

  Args:
    rows: list of R float arrays, each ``[n_r, H, W, C]`` in ``[0, 1]`` with
      ``C in (1, 3)`` (all rows share H, W, C; n_r may differ).  E.g.
      ``[originals, reconstructions]``.
    path: output PNG path.
    row_labels: optional list of R strings drawn to the left of each strip.
    title: optional figure title.

  Returns:
    The PNG path.
  """
  rows = [_as_images(r, f"rows[{k}]") for k, r in enumerate(rows)]
  if not rows:
    raise ValueError("rows is empty")
  shapes = {r.shape[1:] for r in rows}
  if len(shapes) != 1:
    raise ValueError(f"all rows must share [H, W, C]; got {sorted(shapes)}")
  if row_labels is not None and len(row_labels) != len(rows):
    raise ValueError("row_labels must have one entry per row")
  _, h, w, c = rows[0].shape
  pad = _pad_for(h)
  nmax = max(r.shape[0] for r in rows)
  strips = [_tile(r, 1, nmax, pad) for r in rows]

  sh, sw = strips[0].shape[:2]
  cell = 0.85  # inches per image tile
  fig_w = max(4.0, cell * nmax + (1.2 if row_labels else 0.2))
  fig_h = len(rows) * cell * sh / sw * nmax + (0.5 if title else 0.1)
  fig, axes = plt.subplots(len(rows), 1, figsize=(fig_w, fig_h), squeeze=False)
  for k, (ax, strip) in enumerate(zip(axes[:, 0], strips)):
    _imshow(ax, strip)
    _no_ticks(ax)
    if row_labels is not None:
      ax.set_ylabel(row_labels[k], rotation=0, ha="right", va="center",
                    fontsize=11, labelpad=8)
  if title:
    fig.suptitle(title)
  fig.tight_layout(h_pad=0.4)
  return save(fig, path)


def image_grid(images: np.ndarray, path, ncols: int | None = None, title=None) -> Path:
  """Tile images into a near-square grid (prior samples, decoded manifolds).

  Args:
    images: float ``[n, H, W, C]`` in ``[0, 1]``, ``C in (1, 3)``.
    path: output PNG path.
    ncols: number of columns; default ``ceil(sqrt(n))``.  Rows =
      ``ceil(n / ncols)``; images fill row-major, empty cells are white.
    title: optional figure title.

  Returns:
    The PNG path.
  """
  x = _as_images(images)
  n, h, w, _ = x.shape
  ncols = int(ncols) if ncols else math.ceil(math.sqrt(n))
  if ncols < 1:
    raise ValueError("ncols must be >= 1")
  nrows = math.ceil(n / ncols)
  big = _tile(x, nrows, ncols, _pad_for(h))
  bh, bw = big.shape[:2]
  width = min(12.0, max(3.0, 0.7 * ncols))
  fig, ax = plt.subplots(figsize=(width, width * bh / bw + (0.4 if title else 0.0)))
  _imshow(ax, big)
  _no_ticks(ax)
  if title:
    ax.set_title(title)
  fig.tight_layout()
  return save(fig, path)


# --------------------------------------------------------------------------- #
# latent space
# --------------------------------------------------------------------------- #
def latent_scatter(latents: np.ndarray, labels: np.ndarray, path, title=None) -> Path:
  """Scatter plot of latent codes coloured by class.

  Args:
    latents: float ``[N, Z]`` (e.g. posterior means).  ``Z == 2``: drawn
      directly (axes z1, z2).  ``Z > 2``: projected with
      ``sklearn.decomposition.PCA(2)``; axes ``'PC1 (xx% var)'``.
      ``Z == 1``: z1 against a uniform vertical jitter.  ``[N]`` is
      treated as ``Z == 1``.
    labels: int ``[N]`` class ids; coloured with a discrete colormap
      (tab10, tab20 for > 10 classes) with a colorbar of class ids.
    path: output PNG path.
    title: optional axes title.

  Returns:
    The PNG path.
  """
  z = np.asarray(latents, dtype=np.float64)
  if z.ndim == 1:
    z = z[:, None]
  y = np.asarray(labels).reshape(-1)
  if z.ndim != 2 or z.shape[0] != y.shape[0] or z.shape[0] == 0:
    raise ValueError(f"latents [N, Z] and labels [N] mismatch: {z.shape}, {y.shape}")
  n, dim = z.shape

  if dim == 1:
    rng = np.random.default_rng(0)
    xy = np.stack([z[:, 0], rng.uniform(-1.0, 1.0, n)], axis=1)
    xlabel, ylabel = "z1", "jitter (no meaning)"
  elif dim == 2:
    xy = z
    xlabel, ylabel = "z1", "z2"
  else:
    from sklearn.decomposition import PCA

    pca = PCA(n_components=2)
    xy = pca.fit_transform(z)
    r1, r2 = 100.0 * pca.explained_variance_ratio_
    xlabel, ylabel = f"PC1 ({r1:.0f}% var)", f"PC2 ({r2:.0f}% var)"

  classes, idx = np.unique(y, return_inverse=True)
  k = len(classes)
  base = plt.get_cmap("tab10" if k <= 10 else "tab20" if k <= 20 else "turbo")
  colors = base(np.arange(k) % base.N) if k <= 20 else base(np.linspace(0, 1, k))
  cmap = ListedColormap(colors)
  norm = BoundaryNorm(np.arange(-0.5, k + 0.5), k)

  size = float(np.clip(8000.0 / n, 3.0, 16.0))
  fig, ax = plt.subplots(figsize=(6.4, 5.4))
  order = np.random.default_rng(1).permutation(n)  # avoid last class on top
  sc = ax.scatter(xy[order, 0], xy[order, 1], c=idx[order], cmap=cmap, norm=norm,
                  s=size, alpha=0.6, linewidths=0, rasterized=True)
  cbar = fig.colorbar(sc, ax=ax, ticks=np.arange(k), fraction=0.05, pad=0.02)
  cbar.set_label("class")
  cbar.set_ticklabels([str(c) for c in classes])
  cbar.solids.set_alpha(1.0)
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  if dim == 1:
    ax.set_yticks([])
  if dim == 2:
    ax.set_aspect("equal", adjustable="datalim")
  ax.grid(alpha=0.25)
  if title:
    ax.set_title(title)
  fig.tight_layout()
  return save(fig, path)


def manifold_latents(n: int = 20, lo: float = 0.05, hi: float = 0.95
                     ) -> tuple[np.ndarray, np.ndarray]:
  """Regular n x n grid of 2-D latent points through the N(0, I) prior's quantiles.

  Args:
    n: points per axis.
    lo, hi: lowest / highest quantile, ``0 < lo < hi < 1``.

  Returns:
    ``(z, grid_values)``: ``grid_values`` float32 ``[n]`` =
    ``scipy.stats.norm.ppf(np.linspace(lo, hi, n))`` (ascending) and ``z``
    float32 ``[n*n, 2]`` in row-major order, the order :func:`manifold_grid`
    expects: ``z[i*n + j] = (grid_values[j], grid_values[n-1-i])``, i.e. z1
    ascends along columns j, z2 descends down rows i.
  """
  from scipy.stats import norm

  if n < 1 or not 0.0 < lo < hi < 1.0:
    raise ValueError("need n >= 1 and 0 < lo < hi < 1")
  gv = norm.ppf(np.linspace(lo, hi, n)).astype(np.float32)
  z1, z2 = np.meshgrid(gv, gv[::-1])  # z1[i, j] = gv[j]; z2[i, j] = gv[n-1-i]
  z = np.stack([z1.ravel(), z2.ravel()], axis=1).astype(np.float32)
  return z, gv


def manifold_grid(decoded: np.ndarray, grid_values: np.ndarray, path, title=None) -> Path:
  """Tile decodings of a regular 2-D latent grid into one image.

  Args:
    decoded: float ``[n*n, H, W, C]`` in ``[0, 1]``, decoded from the points
      returned by :func:`manifold_latents` (row-major: index ``i*n + j`` is
      row i, column j; z1 = ``grid_values[j]`` ascending left to right, z2 =
      ``grid_values[n-1-i]`` descending top to bottom).
    grid_values: float ``[n]`` ascending coordinates along each latent axis.
    path: output PNG path.
    title: optional title.

  Tiles abut without gutters; a few ticks (at most 6 per axis, both ends included) label the
  latent coordinates at tile centres.

  Returns:
    The PNG path.
  """
  x = _as_images(decoded, "decoded")
  gv = np.asarray(grid_values, dtype=np.float64).reshape(-1)
  n = gv.shape[0]
  if x.shape[0] != n * n:
    raise ValueError(f"decoded has {x.shape[0]} images, expected n*n = {n * n}")
  _, h, w, _ = x.shape
  big = _tile(x, n, n, pad=0)

  side = min(9.0, max(4.0, 0.45 * n))
  fig, ax = plt.subplots(figsize=(side + 0.6, side + (0.7 if title else 0.4)))
  _imshow(ax, big)

  ticks = sorted({int(round(t)) for t in np.linspace(0, n - 1, min(n, 6))})
  ax.set_xticks([j * w + (w - 1) / 2 for j in ticks])
  ax.set_xticklabels([f"{gv[j]:.2f}" for j in ticks])
  ax.set_yticks([i * h + (h - 1) / 2 for i in ticks])
  ax.set_yticklabels([f"{gv[n - 1 - i]:.2f}" for i in ticks])
  ax.tick_params(length=3, labelsize=9)
  ax.set_xlabel("z1")
  ax.set_ylabel("z2")
  if title:
    ax.set_title(title)
  fig.tight_layout()
  return save(fig, path)
