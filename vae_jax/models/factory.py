"""Building models from a config section, initializing and counting their params.

Config layout read by build_model (vae_jax/configs, config.base_config):
  model.kind: one of MODEL_KINDS;  model.latent_dim;  model.dense_init (layers.DENSE_INITS);
  model.encoder.kind / model.decoder.kind: one of ENCODER_KINDS, with `widths` (mlp hidden widths)
  and `features` (conv channels), or "package.module:Class", a flax module of your own
  (user_module: encoder x [B, H, W, C] -> (mean, logvar) [B, Z]; decoder z [B, Z] -> logits);
  model.decoder.upsample (optional, conv.UPSAMPLE_MODES, default 'transpose');
  model.classifier_hidden (classifier only, default 128).
"""

from __future__ import annotations

from collections.abc import Sequence
import dataclasses
import functools
import importlib
import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from vae_jax import discretized
from vae_jax.models import conv, layers, mlp
from vae_jax.models.classifier import Classifier
from vae_jax.models.composites import CVAE, VAE, Autoencoder
from vae_jax.models.hierarchical import INFERENCE, HierarchicalVAE
from vae_jax.models.vampprior import VampPriorVAE
from vae_jax.models.multimodal import MultimodalVAE
from vae_jax.models.vqvae import VQVAE

MODEL_KINDS = ("vae", "ae", "cvae", "classifier", "hvae", "vqvae", "mvae")
LABELLED_KINDS = ("cvae", "classifier", "mvae")  # Kinds that read the labels.
ENCODER_KINDS = ("mlp", "conv")  # For model.encoder.kind and model.decoder.kind.
# Or an open registry entry: "package.module:Class", a flax module of your own (user_module).
PRIORS = ("standard", "vampprior")  # model.prior of a vae: N(0, I) | Tomczak & Welling 2018.


def is_user_kind(kind: str) -> bool:
  """Whether an encoder / decoder kind names a user's module ("package.module:Class")."""
  return ":" in kind


def user_module(name: str, section, **known) -> nn.Module:
  """The user's flax module `name` ("package.module:Class") built from its config section: every
  field of the section but `kind` that the class declares, plus those of `known` it declares
  (latent_dim for an encoder, image_shape for a decoder).

  Raises:
    ValueError: the module or class cannot be imported, or is not a flax module.
  """
  module_name, _, attr = name.partition(":")
  try:
    cls = getattr(importlib.import_module(module_name), attr)
  except (ImportError, AttributeError) as e:
    raise ValueError(f"cannot import {name!r} ({e}); name a flax module as "
                     "'package.module:Class' importable from here") from None
  if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
    raise ValueError(f"{name!r} is not a flax.linen.Module class; name one")
  fields = {f.name for f in dataclasses.fields(cls)}
  values = {k: v for k, v in dict(section).items() if k != "kind" and k in fields}
  values |= {k: v for k, v in known.items() if k in fields}
  values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
  return cls(**values)


def _sizes(name: str, values: Sequence[int], *, nonempty: bool = False) -> tuple[int, ...]:
  """values as a tuple of ints; ValueError naming config key `name` unless all are positive."""
  sizes = tuple(int(v) for v in values)
  if any(s <= 0 for s in sizes) or (nonempty and not sizes):
    raise ValueError(f"model.{name} must be {'a non-empty tuple of ' if nonempty else ''}"
                     f"positive sizes, got {tuple(values)}; set --config.model.{name}")
  return sizes


def _kind(name: str, value: str, known: Sequence[str]) -> str:
  if value not in known and not (name in ("encoder.kind", "decoder.kind") and is_user_kind(value)):
    raise ValueError(f"unknown model.{name} {value!r}; choose one of {', '.join(known)}")
  return value


def build_model(model_config, image_shape: Sequence[int], num_classes: int = 0,
                encoder_widths: Sequence[int] | None = None) -> nn.Module:
  """The model a config's `model` section describes (layout in the module docstring).

  vae / ae / cvae compose encoder.kind and decoder.kind halves (any mix); the classifier is a CNN
  with channels model.encoder.features and hidden width model.classifier_hidden (it reads neither
  latent_dim nor the encoder/decoder kinds).

  Args:
    model_config: the config's `model` section (a ConfigDict).
    image_shape: (H, W, C) of the dataset's images.
    num_classes: K of the dataset; used by cvae and classifier only (>= 2 there).
    encoder_widths: overrides model.encoder.widths (growth changes them).

  Returns:
    A VAE, Autoencoder, CVAE or Classifier (see composites.py / classifier.py).

  Raises:
    ValueError: one line naming the fix, for an unknown kind or dense_init, non-positive sizes,
      cvae / classifier with num_classes < 2, or a conv decoder whose stride-2 layers do not
      divide H and W.
  """
  kind = _kind("kind", model_config.get("kind", "vae"), MODEL_KINDS)
  init = _kind("dense_init", model_config.get("dense_init", "lecun_normal"), layers.DENSE_INITS)
  image_shape = tuple(int(s) for s in image_shape)
  if len(image_shape) != 3 or min(image_shape) <= 0:
    raise ValueError(f"image_shape must be positive (H, W, C), got {image_shape}")
  if kind in LABELLED_KINDS and num_classes < 2:
    raise ValueError(f"model.kind={kind} needs a labelled dataset (>= 2 classes), got "
                     f"num_classes={num_classes}; pick a data.name with labels")
  enc_cfg, dec_cfg = model_config.encoder, model_config.decoder
  if kind == "classifier":
    return Classifier(channels=_sizes("encoder.features", enc_cfg.features, nonempty=True),
                      hidden=_sizes("classifier_hidden",
                                    (model_config.get("classifier_hidden", 128),))[0],
                      num_classes=int(num_classes), dense_init=init)
  if kind == "hvae":
    h = model_config.hvae
    dims, widths = _sizes("hvae.latent_dims", h.latent_dims, nonempty=True), _sizes(
        "hvae.widths", h.widths, nonempty=True)
    if len(dims) != len(widths):
      raise ValueError(f"model.hvae.latent_dims {dims} and model.hvae.widths {widths} must have "
                       "one entry per stochastic layer; give both the same length")
    out_shape = (*image_shape[:2], discretized.output_channels(
        model_config.get("likelihood", "bernoulli"), image_shape[2],
        int(model_config.get("mixture_components", 5))))
    return HierarchicalVAE(dims, widths, out_shape, _sizes("hvae.depth", (h.depth,))[0],
                           _kind("hvae.inference", h.inference, INFERENCE), init)
  latent_dim = _sizes("latent_dim", (model_config.latent_dim,))[0]
  conv_runs = _kind("conv_runs", model_config.get("conv_runs", "vmap"), conv.CONV_RUNS_MODES)
  if kind == "vqvae":  # The encoder's code holds N = latent_dim vectors of model.vq.code_dim.
    latent_dim *= _sizes("vq.code_dim", (model_config.vq.code_dim,))[0]
  heads = mlp.CODE_HEADS if kind in ("ae", "vqvae") else mlp.POSTERIOR_HEADS
  enc_kind = _kind("encoder.kind", enc_cfg.get("kind", "mlp"), ENCODER_KINDS)
  dec_kind = _kind("decoder.kind", dec_cfg.get("kind", "mlp"), ENCODER_KINDS)
  if is_user_kind(enc_kind):
    encoder = user_module(enc_kind, enc_cfg, latent_dim=latent_dim)
  elif enc_kind == "mlp":
    widths = enc_cfg.widths if encoder_widths is None else encoder_widths
    encoder = mlp.MLPEncoder(_sizes("encoder.widths", widths), latent_dim, init, heads)
  else:
    encoder = conv.ConvEncoder(_sizes("encoder.features", enc_cfg.features, nonempty=True),
                               latent_dim, init, heads,
                               int(model_config.get("conv_batch_chunks", 1)), conv_runs)
  input_shape = image_shape
  # The decoder outputs the likelihood's parameters: C channels, or P per pixel for the
  # discretized likelihoods of 8-bit images.
  image_shape = (*image_shape[:2], discretized.output_channels(
      model_config.get("likelihood", "bernoulli"), image_shape[2],
      int(model_config.get("mixture_components", 5))))
  if is_user_kind(dec_kind):
    decoder = user_module(dec_kind, dec_cfg, image_shape=image_shape)
  elif dec_kind == "mlp":
    decoder = mlp.MLPDecoder(_sizes("decoder.widths", dec_cfg.widths), image_shape, init)
  else:
    decoder = conv.ConvDecoder(
        _sizes("decoder.features", dec_cfg.features, nonempty=True), image_shape, init,
        _kind("decoder.upsample", dec_cfg.get("upsample", "transpose"), conv.UPSAMPLE_MODES),
        int(model_config.get("conv_batch_chunks", 1)), conv_runs,
        _kind("decoder.project_activation", dec_cfg.get("project_activation", "none"),
              conv.PROJECT_ACTIVATIONS),
        _kind("decoder.transpose_fan", dec_cfg.get("transpose_fan", "out"),
              layers.TRANSPOSE_FANS))
  if kind == "cvae":
    return CVAE(encoder, decoder, int(num_classes))
  if kind == "mvae":
    hidden = _sizes("classifier_hidden", (model_config.get("classifier_hidden", 128),))[0]
    return MultimodalVAE(encoder, decoder, int(num_classes), hidden, init)
  if kind == "vqvae":
    return VQVAE(encoder, decoder, _sizes("vq.num_codes", (model_config.vq.num_codes,))[0],
                 int(model_config.vq.code_dim))
  if kind == "vae" and _kind("prior", model_config.get("prior", "standard"), PRIORS) == "vampprior":
    return VampPriorVAE(encoder, decoder,
                        _sizes("pseudo_inputs", (model_config.get("pseudo_inputs", 500),))[0],
                        input_shape)
  return (Autoencoder if kind == "ae" else VAE)(encoder, decoder)


def mlp_model(kind: str, encoder_widths: Sequence[int], decoder_widths: Sequence[int],
              latent_dim: int, image_shape: Sequence[int], dense_init: str = "lecun_normal",
              num_classes: int = 0) -> VAE | Autoencoder | CVAE:
  """An all-MLP vae / ae / cvae without a config (tests, growth): the same modules and param
  names as build_model makes for encoder.kind = decoder.kind = 'mlp'.

  Raises:
    ValueError: a kind other than vae, ae and cvae (the zoo's models need their config:
      build_model).
  """
  if kind not in ("vae", "ae", "cvae"):
    raise ValueError(f"mlp_model makes a vae, ae or cvae, not {kind!r}; build the others with "
                     "build_model(model_config, ...)")
  heads = mlp.CODE_HEADS if kind == "ae" else mlp.POSTERIOR_HEADS
  encoder = mlp.MLPEncoder(tuple(encoder_widths), latent_dim, dense_init, heads)
  decoder = mlp.MLPDecoder(tuple(decoder_widths), tuple(image_shape), dense_init)
  if kind == "cvae":
    return CVAE(encoder, decoder, num_classes)
  return {"vae": VAE, "ae": Autoencoder}[kind](encoder, decoder)


def init_params(model: nn.Module, key: jax.Array, image_shape: Sequence[int],
                num_classes: int = 0):
  """Jitted initialization; returns the param pytree (no 'params' wrapper).

  Runs `model.init(key, x, key, label)` on one zero image; label is a dummy int32 [1] when the
  model is conditional (num_classes > 0 here or on the model), else None. For MLP VAEs and
  Autoencoders the params equal, bit for bit, those of the single-file models.py before the
  split (same module paths, so the same flax init RNG streams; tested).
  """
  conditional = bool(num_classes or getattr(model, "num_classes", 0))
  try:
    init = _jitted_init(model, tuple(image_shape), conditional)
  except TypeError:  # A module with an unhashable attribute: traced afresh.
    init = _jitted_init.__wrapped__(model, tuple(image_shape), conditional)
  return init(key)


@functools.lru_cache(maxsize=16)
def _jitted_init(model: nn.Module, image_shape: tuple[int, ...], conditional: bool):
  """The jitted init of init_params, one per (model, image shape) in a process: flax modules are
  equal by their fields, so the runs of one process trace it once."""
  def init(key):  # The zeros inside: a cached closure must not hold a caller's tracer.
    x = jnp.zeros((1, *image_shape), jnp.float32)
    label = jnp.zeros((1,), jnp.int32) if conditional else None
    return model.init(key, x, key, label)["params"]
  return jax.jit(init)


def param_count(params) -> int:
  """Number of scalars in a param pytree (works on ShapeDtypeStructs from jax.eval_shape)."""
  return sum(math.prod(p.shape) for p in jax.tree.leaves(params))
