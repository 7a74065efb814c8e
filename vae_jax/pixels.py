"""Pixels to the floats a model sees: uint8 (or float) images -> float32 in [0, 1], optionally
binarized. Pure JAX, used inside the jitted steps (the objectives call it on every batch)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

PREPROCESS_MODES = ("grayscale", "binarize_dynamic", "binarize_threshold")


def preprocess(images: jax.Array, mode: str, key: jax.Array | None = None) -> jax.Array:
  """Maps images to float32 in [0, 1]; pure JAX, jit-safe (``mode`` is static).

  Args:
    images: uint8 ``[..., H, W, C]`` (0..255, divided by 255) or float32 (already in [0, 1],
      as `from_arrays` keeps float images).
    mode: "grayscale" (x), "binarize_dynamic" (a fresh Bernoulli(x) draw with ``key``; use a
      new key for every batch) or "binarize_threshold" (x > 0.5).
    key: PRNG key, required by "binarize_dynamic" only.

  Returns:
    float32 array with the shape of ``images``.

  Raises:
    ValueError: unknown ``mode``, or no ``key`` for "binarize_dynamic".
    TypeError: ``images`` neither uint8 nor float32 (guards against normalising twice).
  """
  if mode not in PREPROCESS_MODES:
    raise ValueError(f"unknown preprocess mode {mode!r}; choose one of {PREPROCESS_MODES}")
  images = jnp.asarray(images)
  if images.dtype == jnp.uint8:
    x = images.astype(jnp.float32) / 255.0
  elif images.dtype == jnp.float32:
    x = images
  else:
    raise TypeError(f"preprocess expects uint8 or float32 images, got {images.dtype}")
  if mode == "grayscale":
    return x
  if mode == "binarize_threshold":
    return (x > 0.5).astype(jnp.float32)
  if key is None:
    raise ValueError("preprocess mode 'binarize_dynamic' needs a PRNG key (a new one per batch)")
  return jax.random.bernoulli(key, x).astype(jnp.float32)
