"""Data sources: a user's own images as one in-memory `Source` that `vae_jax.fit` trains on.

  from_arrays(images, labels=None)   NumPy / JAX arrays, uint8 or float in [0, 1], any H x W x C
  from_iterable(iterable)            a tf.data.Dataset or any iterable of batches
  data.from_tfds(name, split)        a named dataset variant (data.DATASETS)
  data.from_folder(root, split)      an image folder, through TFDS's own ImageFolder builder

A Source holds the whole dataset on the host; the loop puts it on the device when it fits (and
streams it in chunks when it does not), pads the last evaluation batch and masks the padding.
"""

from __future__ import annotations

from collections.abc import Iterable
import dataclasses

import numpy as np

from vae_jax.errors import DataError


@dataclasses.dataclass(frozen=True)
class Source:
  """A dataset in host memory.

  Attributes:
    images: uint8 [N, H, W, C] (0..255) or float32 [N, H, W, C] in [0, 1].
    labels: int32 [N]; -1 where there is no label.
    num_classes: K when labels are class ids in [0, K); 0 without labels.
  """
  images: np.ndarray
  labels: np.ndarray
  num_classes: int = 0

  @property
  def image_shape(self) -> tuple[int, int, int]:
    """(H, W, C)."""
    return tuple(int(s) for s in self.images.shape[1:])

  def __len__(self) -> int:
    return int(self.images.shape[0])

  def as_dict(self) -> dict[str, np.ndarray]:
    """{"image": images, "label": labels}: the batch layout of every program."""
    return {"image": self.images, "label": self.labels}


def from_arrays(images, labels=None, *, num_classes: int | None = None) -> Source:
  """A Source from arrays.

  Args:
    images: [N, H, W, C] or [N, H, W] (one channel), uint8 (0..255) or float in [0, 1] (kept as
      float32: nothing is quantized).
    labels: integer class ids [N] in [0, K), or None.
    num_classes: K; default: max(labels) + 1 (0 without labels).
  Returns:
    the Source (images copied into a contiguous array).
  Raises:
    DataError: no images, a wrong rank, dtype or value range, labels of another length or
      negative, or num_classes not above every label.
  """
  x = np.asarray(images)
  if x.ndim == 3:
    x = x[..., None]
  if x.ndim != 4 or not x.shape[0] or not min(x.shape[1:]):
    raise DataError(f"images must be [N, H, W, C] or [N, H, W] with N, H, W, C > 0, got shape "
                    f"{x.shape}; pass a stack of images")
  if x.dtype == np.uint8:
    pass
  elif np.issubdtype(x.dtype, np.floating):
    x = x.astype(np.float32)
    lo, hi = float(np.min(x)), float(np.max(x))
    if not (np.isfinite(lo) and np.isfinite(hi) and 0.0 <= lo and hi <= 1.0):
      raise DataError(f"float images must lie in [0, 1], got values in [{lo}, {hi}]; divide "
                      "by 255 or rescale them")
  else:
    raise DataError(f"images must be uint8 or float in [0, 1], got {x.dtype}; convert them")
  if labels is None:
    y, k = np.full((len(x),), -1, np.int32), 0
  else:
    y = np.asarray(labels)
    if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer):
      raise DataError(f"labels must be integers [N] = [{len(x)}], got {y.dtype} {y.shape}; pass "
                      "one class id per image")
    if y.min() < 0:
      raise DataError(f"labels must be >= 0, got {int(y.min())}; pass class ids 0..K-1")
    y = y.astype(np.int32)
    k = int(y.max()) + 1
  if num_classes is not None:
    if labels is not None and num_classes < k:
      raise DataError(f"num_classes={num_classes} but a label is {k - 1}; pass num_classes > "
                      "every label")
    k = int(num_classes)
  return Source(np.ascontiguousarray(x), y, k)


def from_iterable(batches: Iterable, *, num_classes: int | None = None) -> Source:
  """A Source from an iterable of batches, read once (a tf.data.Dataset is read through
  `as_numpy_iterator`).

  Args:
    batches: each element an images array [B, H, W(, C)], a tuple (images, labels), or a dict
      with "image" (and "label"); all images as `from_arrays` takes them.
  Raises:
    DataError: an empty iterable, mixed element kinds, or what `from_arrays` refuses.
  """
  if hasattr(batches, "as_numpy_iterator"):
    batches = batches.as_numpy_iterator()
  images, labels = [], []
  for element in batches:
    if isinstance(element, dict):
      x, y = element.get("image"), element.get("label")
    elif isinstance(element, (tuple, list)):
      x, y = (element[0], element[1]) if len(element) > 1 else (element[0], None)
    else:
      x, y = element, None
    images.append(np.asarray(x))
    labels.append(None if y is None else np.asarray(y))
  if not images:
    raise DataError("the iterable yielded no batches; pass a non-empty dataset")
  if len({y is None for y in labels}) > 1:
    raise DataError("some batches have labels and others not; give every batch labels or none")
  y = None if labels[0] is None else np.concatenate([np.atleast_1d(v) for v in labels])
  return from_arrays(np.concatenate(images), y, num_classes=num_classes)


def as_source(data) -> Source:
  """A Source as is; an array, (images, labels) tuple or dict through from_arrays; any other
  iterable (tf.data.Dataset, generator of batches) through from_iterable."""
  if isinstance(data, Source):
    return data
  if isinstance(data, dict):
    return from_arrays(data["image"], data.get("label"))
  if isinstance(data, tuple) and len(data) == 2:
    return from_arrays(*data)
  if hasattr(data, "shape") and hasattr(data, "dtype"):
    return from_arrays(data)
  return from_iterable(data)
