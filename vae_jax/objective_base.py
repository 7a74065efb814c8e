"""The one objective protocol the training loop, evaluation and figures talk to, and _Base, the
parts every objective shares (objectives.py and zoo_objectives.py build on it).

Shape letters: B batch, K importance samples, L ELBO samples, Z latent, H/W/C image, N classes.
`model` is a vae_jax.models model and `params` its param pytree; `x_BxHxWxC` are floats in
[0, 1]; `label_B` int32 class labels (ignored by unconditional models).

A batch is a dict {"image": uint8 [B, H, W, C], "label": int32 [B]} (label -1 where the dataset
has none). `hparams` is a train.Hparams of float32 scalars (beta, lr, weight_decay, the
schedules): traced, so runs that differ only in them share one compiled program.

Protocol (VAEObjective, IWAEObjective, AutoencoderObjective, ClassifierObjective and the zoo's),
all methods pure and jit-safe:
  terms(params, batch, key, hparams) -> dict of [B]: 'loss' (what training minimizes) and its parts
  eval_terms(params, batch, key, hparams, elbo_samples) -> terms plus evaluation-only metrics
  latent(params, batch, key=None) -> [B, Z]: the deterministic point a reconstruction decodes
    (latent_of(params, x, label) for images already preprocessed)
  decode_mean(params, z, label=None) -> [B, H, W, C] in [0, 1]: mean of p(x | z[, y])
  iw_bound(params, batch, key, num_samples, chunk_size) -> [B] (has_posterior only)
and capability flags has_posterior (KL, prior samples, ELBO, IW-NLL), can_decode, normalized
(the reconstruction term is a normalized likelihood, so nats and IW-NLL mean something).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import flax
import jax
import jax.numpy as jnp

from vae_jax import distributions as dist, models, pixels


@runtime_checkable
class Model(Protocol):
  """What an autoencoding model offers the objectives (models.VAE, CVAE, Autoencoder): flax
  modules with encode(x [B, H, W, C], label=None), decode(z [B, Z], label=None) -> logits
  [B, H, W, C], __call__(x, key, label=None) and `num_classes` (0: labels ignored)."""

  num_classes: int

  def encode(self, x, label=None): ...
  def decode(self, z, label=None): ...


@runtime_checkable
class Objective(Protocol):
  """The objective protocol the loop, evaluation and figures talk to (module docstring):
  VAEObjective, AutoencoderObjective and ClassifierObjective implement it."""

  model: Any
  has_posterior: bool
  can_decode: bool

  def terms(self, params, batch, key, hparams) -> dict: ...
  def eval_terms(self, params, batch, key, hparams, elbo_samples: int = 0) -> dict: ...
  def init_params(self, key, image_shape): ...


@flax.struct.dataclass
class _Base:
  """Shared parts of the objectives: static model and preprocessing, hashable for jit.

  Attributes:
    model: a models.VAE / CVAE / Autoencoder / Classifier, or any flax module with the
      objectives.Model protocol (your own encoder and decoder inside models.VAE work).
    preprocess: pixels.PREPROCESS_MODES: 'grayscale' (uint8 / 255, floats as they are),
      'binarize_dynamic' (a fresh Bernoulli draw per step) or 'binarize_threshold'.
    likelihood: distributions.LIKELIHOODS: 'bernoulli' (the decoder's outputs are logits; nats
      per image), 'mse' (squared error summed over pixels: not a normalized likelihood), or the
      discretized likelihoods of 8-bit pixels 'gaussian' and 'logistic_mixture' (nats per image;
      the decoder outputs their parameters, discretized.output_channels).
    mixture_components: M of 'logistic_mixture' (the decoder must output as many).
  """
  model: Any = flax.struct.field(pytree_node=False)
  preprocess: str = flax.struct.field(pytree_node=False, default="grayscale")
  likelihood: str = flax.struct.field(pytree_node=False, default="bernoulli")
  mixture_components: int = flax.struct.field(pytree_node=False, default=5)

  has_posterior = False
  can_decode = True

  @property
  def normalized(self) -> bool:
    """True when the reconstruction term is a normalized likelihood (values are nats)."""
    return self.likelihood in dist.NORMALIZED_LIKELIHOODS

  @property
  def num_classes(self) -> int:
    """Classes the model reads (CVAE, classifier); 0 when it ignores labels."""
    return self.model.num_classes

  @property
  def conditional(self) -> bool:
    """True when the model reads the labels (CVAE, classifier)."""
    return self.num_classes > 0

  def prior_labels(self, n: int) -> jax.Array:
    """int32 [n] labels for n prior samples: 0, 1, ..., K-1 in turn (all 0 when unconditional)."""
    return jnp.arange(n, dtype=jnp.int32) % max(self.num_classes, 1)

  def update_params(self, params, aux):
    """params after an optimizer step, changed by what the objective keeps outside the gradient
    (the VQ-VAE's codebook averages); `aux` holds the private '_' terms of that step's `terms`.
    The identity here."""
    del aux
    return params

  def log_prior_fn(self):
    """(params, z [..., Z]) -> log p(z) [...] of the model's learned prior (a
    models.VampPriorVAE), or None for the standard normal prior (whose terms are analytic)."""
    if not hasattr(self.model, "log_prior"):
      return None
    return lambda params, z: self.model.apply({"params": params}, z,
                                              method=self.model.log_prior)

  def sample_prior(self, params, key, n: int, latent_dim: int) -> jax.Array:
    """n latents [n, Z] from the prior p(z): N(0, I), or the model's learned prior."""
    if hasattr(self.model, "sample_prior"):
      return self.model.apply({"params": params}, key, n, method=self.model.sample_prior)
    return jax.random.normal(key, (n, latent_dim))

  def init_params(self, key, image_shape):
    """The model's initial param pytree (see models.init_params)."""
    return models.init_params(self.model, key, image_shape, self.num_classes)

  def inputs(self, batch, key) -> tuple[jax.Array, jax.Array | None, jax.Array]:
    """(x floats [B, H, W, C] in [0, 1], labels [B] or None, key for z): the binarization (if
    any) is drawn from one half of `key`, the other half is left for the latents."""
    k_data, k_z = jax.random.split(key)
    label = batch["label"] if self.conditional else None
    return pixels.preprocess(batch["image"], self.preprocess, k_data), label, k_z

  def images(self, batch, key=None) -> jax.Array:
    """The floats [B, H, W, C] that `terms` sees for this batch and key (key may be None unless
    preprocess is binarize_dynamic)."""
    if key is None:
      return pixels.preprocess(batch["image"], self.preprocess)
    return self.inputs(batch, key)[0]

  def decode_mean(self, params, z_BxZ, label_B=None) -> jax.Array:
    """Mean of the likelihood p(x | z[, y]) [B, H, W, C] in [0, 1] (dist.mean_from_output)."""
    out = self.model.apply({"params": params}, z_BxZ, label_B if self.conditional else None,
                           method=self.model.decode)
    return dist.mean_from_output(self.likelihood, out, self.mixture_components)

  def eval_terms(self, params, batch, key, hparams, elbo_samples: int = 0) -> dict:
    """terms plus 'mse': squared error summed over pixels between x and decode_mean(latent(x))
    (no sampling); [B] each."""
    terms = self.terms(params, batch, key, hparams)
    x, label, _ = self.inputs(batch, key)  # The images `terms` saw.
    recon = self.decode_mean(params, self.latent_of(params, x, label), label)
    terms["mse"] = dist.squared_error(recon, x)
    return terms
