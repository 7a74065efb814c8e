"""Looking inside a conv encoder: its first-layer filters (and how they evolve over the kept
checkpoints of a run) and the feature maps of one image through each of its conv layers.

Shape letters: K kernel size, C_in / C_out channels, E epochs, H/W/C image. Filters are flax conv
kernels [K, K, C_in, C_out]; feature maps are the conv layers' outputs before their activation,
captured with flax's `capture_intermediates`.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib import pyplot as plt

from vae_jax import plots


def _natural(name: str) -> list:
  """Sort key of a layer path: conv_2 before conv_10."""
  return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def _path_keys(path) -> tuple[str, ...]:
  return tuple(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)


def conv_kernels(params) -> dict[str, np.ndarray]:
  """The encoder's conv kernels in layer order: {'encoder/conv/conv_0': [K, K, C_in, C_out], ...}
  (empty for an encoder without convs, e.g. an MLP)."""
  found = []
  for path, leaf in jax.tree_util.tree_leaves_with_path(params.get("encoder", {})):
    keys = _path_keys(path)
    if keys[-1] == "kernel" and np.ndim(leaf) == 4:
      found.append(("/".join(("encoder", *keys[:-1])), np.asarray(leaf, np.float32)))
  return dict(sorted(found, key=lambda kv: _natural(kv[0])))


def first_layer_filters(params) -> np.ndarray:
  """The first conv layer's kernel [K, K, C_in, C_out].

  Raises:
    ValueError: the encoder has no conv layer.
  """
  kernels = conv_kernels(params)
  if not kernels:
    raise ValueError("the encoder has no conv layer (model.encoder.kind=conv has)")
  return next(iter(kernels.values()))


def _filter_images(kernel: np.ndarray, max_filters: int) -> np.ndarray:
  """[K, K, C_in, C_out] -> [n, K, K, 1 or 3] in [0, 1], each filter scaled by its own max |w|."""
  k = np.moveaxis(kernel[..., :max_filters], -1, 0)  # [n, K, K, C_in]
  if k.shape[-1] not in (1, 3):
    k = k.mean(-1, keepdims=True)  # Neither gray nor RGB input: the mean over input channels.
  scale = np.abs(k).reshape(len(k), -1).max(1).clip(1e-12)[:, None, None, None]
  return 0.5 + 0.5 * k / scale


def filter_evolution(kernels_by_epoch: dict[int, np.ndarray], path, max_filters: int = 16):
  """One row per epoch of the first-layer filters (each scaled to its own max |w|: mid-gray is
  0), so their evolution over training reads top to bottom.

  Args:
    kernels_by_epoch: {epoch: [K, K, C_in, C_out]}, e.g. first_layer_filters of each kept
      checkpoint.
  Returns:
    The PNG path.
  Raises:
    ValueError: no epochs, or kernels of different shapes.
  """
  if not kernels_by_epoch or len({k.shape for k in kernels_by_epoch.values()}) != 1:
    raise ValueError("need first-layer kernels of one shape for at least one epoch, got "
                     f"{ {e: k.shape for e, k in kernels_by_epoch.items()} }")
  epochs = sorted(kernels_by_epoch)
  rows = [_filter_images(kernels_by_epoch[e], max_filters) for e in epochs]
  n = rows[0].shape[0]
  fig, axes = plt.subplots(len(epochs), n, figsize=(0.7 * n + 0.8, 0.75 * len(epochs) + 0.5),
                           squeeze=False)
  for r, (epoch, images) in enumerate(zip(epochs, rows)):
    for c in range(n):
      ax = axes[r, c]
      ax.imshow(images[c].squeeze(-1) if images.shape[-1] == 1 else images[c], cmap="gray",
                vmin=0, vmax=1, interpolation="nearest")
      ax.set_xticks([])
      ax.set_yticks([])
    axes[r, 0].set_ylabel(f"epoch {epoch}", fontsize=8)
  fig.suptitle(f"first-layer conv filters ({kernels_by_epoch[epochs[0]].shape[0]}×"
               f"{kernels_by_epoch[epochs[0]].shape[1]}), mid-gray = 0", fontsize=9)
  fig.tight_layout()
  return plots.save(fig, path)


def feature_maps(model, params, x_HxWxC, label=None) -> dict[str, np.ndarray]:
  """The outputs [h, w, c] of each conv layer of the encoder (before its activation) for one
  preprocessed image x [H, W, C] in [0, 1]: {'encoder/conv/conv_0': [h, w, c], ...} in layer
  order (empty for an encoder without convs)."""
  x = jnp.asarray(x_HxWxC, jnp.float32)[None]
  label = None if label is None else jnp.asarray([label], jnp.int32)
  _, state = model.apply({"params": params}, x, label, method=model.encode,
                         capture_intermediates=True, mutable=["intermediates"])
  maps = {}
  for path, leaf in jax.tree_util.tree_leaves_with_path(state["intermediates"]):
    keys = [k for k in _path_keys(path) if k not in ("__call__", "0")]
    if np.ndim(leaf) == 4 and keys and keys[-1].startswith("conv_"):
      maps["/".join(keys)] = np.asarray(leaf[0], np.float32)
  return dict(sorted(maps.items(), key=lambda kv: _natural(kv[0])))


def feature_map_figure(image_HxWxC, maps: dict[str, np.ndarray], path, channels: int = 8):
  """The input image, then one row per conv layer of its first `channels` feature maps (each
  scaled to its own range).

  Args:
    image_HxWxC: the input in [0, 1]. maps: feature_maps' result.
  Returns:
    The PNG path.
  Raises:
    ValueError: no feature maps (an encoder without convs).
  """
  if not maps:
    raise ValueError("no feature maps: the encoder has no conv layer")
  fig, axes = plt.subplots(len(maps) + 1, channels, figsize=(1.1 * channels, 1.2 * (len(maps) + 1)),
                           squeeze=False)
  for ax in axes.ravel():
    ax.axis("off")
  image = np.asarray(image_HxWxC, np.float32)
  axes[0, 0].imshow(image.squeeze(-1) if image.shape[-1] == 1 else image, cmap="gray",
                    vmin=0, vmax=1)
  axes[0, 0].set_title("input", fontsize=8)
  for r, (name, fmap) in enumerate(maps.items(), start=1):
    for c in range(min(channels, fmap.shape[-1])):
      axes[r, c].imshow(fmap[..., c], cmap="viridis", interpolation="nearest")
    axes[r, 0].set_title(f"{name.rsplit('/', 1)[-1]} {fmap.shape[0]}×{fmap.shape[1]}×"
                         f"{fmap.shape[2]}", fontsize=7, loc="left")
  fig.suptitle("feature maps through the encoder (conv outputs before the activation)",
               fontsize=9)
  fig.tight_layout()
  return plots.save(fig, path)
