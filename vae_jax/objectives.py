"""Objectives, per example, in nats, and the one objective protocol the training loop, evaluation
and figures talk to.

Shape letters: B batch, K importance samples, L ELBO samples, Z latent, H/W/C image, N classes.
`model` is a vae_jax.models model and `params` its param pytree; `x_BxHxWxC` are floats in
[0, 1]; `label_B` int32 class labels (ignored by unconditional models).

A batch is a dict {"image": uint8 [B, H, W, C], "label": int32 [B]} (label -1 where the dataset
has none). `hparams` is a train.Hparams of float32 scalars (beta, lr, weight_decay): traced, so runs that differ only in them share one compiled program.

Protocol (VAEObjective, AutoencoderObjective, ClassifierObjective), all methods pure and jit-safe:
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

from vae_jax import distributions as dist, iwae, models, pixels
from vae_jax.models import vqvae
from vae_jax.bounds import (  # noqa: F401  # Public here too.
    autoencoder_loss, elbo_multi_sample, iwae_bound, neg_elbo, neg_elbo_learned_prior)
from vae_jax.errors import ConfigError


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


@flax.struct.dataclass
class VAEObjective(_Base):
  """Negative ELBO, recon + beta * KL, of a models.VAE or (with labels) a models.CVAE (Kingma &
  Welling, 2014; beta from Hparams, Higgins et al., 2017): `VAEObjective(model,
  likelihood="bernoulli", preprocess="grayscale")`. Per-example terms in nats per image for a
  normalized likelihood; `iw_bound` gives the IWAE bound (Burda et al., 2016)."""

  has_posterior = True

  def terms(self, params, batch, key, hparams) -> dict[str, jax.Array]:
    """Per-example 'loss', 'recon', 'kl' [B] (nats per image for a normalized likelihood)."""
    x, label, k_z = self.inputs(batch, key)
    log_prior = self.log_prior_fn()
    if log_prior is not None:
      return neg_elbo_learned_prior(self.model, params, x, k_z, log_prior, label,
                                    beta=hparams.beta, likelihood=self.likelihood)
    return neg_elbo(self.model, params, x, k_z, label, beta=hparams.beta,
                    free_bits=hparams.free_bits, likelihood=self.likelihood)

  def latent_of(self, params, x, label=None):
    """Posterior means [B, Z] of preprocessed images x [B, H, W, C]."""
    return self.model.apply({"params": params}, x, label, method=self.model.encode)[0]

  def latent(self, params, batch, key=None) -> jax.Array:
    """Posterior means [B, Z]."""
    return self.latent_of(params, self.images(batch, key),
                        batch["label"] if self.conditional else None)

  def eval_terms(self, params, batch, key, hparams, elbo_samples: int = 0) -> dict:
    """See _Base.eval_terms; with elbo_samples = L > 0 also 'elbo_l{L}' (the L-sample ELBO)."""
    terms = super().eval_terms(params, batch, key, hparams)
    if elbo_samples:
      x, label, k_z = self.inputs(batch, jax.random.fold_in(key, 1))
      terms[f"elbo_l{elbo_samples}"] = elbo_multi_sample(
          self.model, params, x, k_z, elbo_samples, label, likelihood=self.likelihood)
    return terms

  def iw_bound(self, params, batch, key, num_samples: int, chunk_size: int,
               unroll: bool = False) -> jax.Array:
    """IWAE bound [B] in nats (see iwae_bound); -iw_bound is the IW-NLL estimate."""
    x, label, k_z = self.inputs(batch, key)
    return iwae_bound(self.model, params, x, k_z, num_samples, label, chunk_size=chunk_size,
                      likelihood=self.likelihood, unroll=unroll,
                      log_prior=self.log_prior_fn())


@flax.struct.dataclass
class IWAEObjective(VAEObjective):
  """The importance-weighted bound with K samples as the training loss (Burda et al., 2016), with
  Burda et al.'s gradient (estimator='iwae') or the encoder's doubly reparameterized one ('dreg',
  Tucker et al., 2019); see iwae.iwae_terms. `IWAEObjective(model, num_samples=5,
  estimator="dreg")`. Evaluation, IW-NLL and figures are the VAE's; hparams.free_bits is not read.
  """
  num_samples: int = flax.struct.field(pytree_node=False, default=5)
  estimator: str = flax.struct.field(pytree_node=False, default="iwae")

  def terms(self, params, batch, key, hparams) -> dict[str, jax.Array]:
    """Per-example 'loss' (-IWAE bound with K = num_samples), 'recon', 'kl' [B], nats."""
    x, label, k_z = self.inputs(batch, key)
    return iwae.iwae_terms(self.model, params, x, k_z, self.num_samples, label, beta=hparams.beta,
                           likelihood=self.likelihood, estimator=self.estimator,
                           log_prior=self.log_prior_fn())


@flax.struct.dataclass
class HierarchicalObjective(_Base):
  """The bound of a models.HierarchicalVAE (L stochastic layers; Burda et al., 2016, sec. 5):
  -log (1/K) sum_k p(x, z_k) / q(z_k | x) over all layers, with K = num_samples samples of the
  whole hierarchy (K = 1: the single-sample ELBO, objective.name=elbo; K > 1: the IWAE
  objective). 'kl' is the single-sample estimate of KL(q(z_1..L | x) || p(z_1..L)) (no
  analytic form), 'recon' -log p(x | z_1); `iw_bound` is the IW-NLL over all layers. The
  gradient is the bound's (no DReG here); hparams.free_bits is not read.
  """
  num_samples: int = flax.struct.field(pytree_node=False, default=1)

  has_posterior = True

  def _log_weights(self, params, x, key, n: int, beta=1.0):
    """(log w [n, B] with the log prior ratio weighted by beta, log p(x | z_1) [n, B], log
    prior ratio [n, B]) of n samples of the hierarchy per image."""
    m = self.model
    z1, log_ratio = m.apply({"params": params}, x, key, n, method=m.sample_latents)
    out = m.apply({"params": params}, z1.reshape(-1, z1.shape[-1]), method=m.decode_bottom)
    log_lik = dist.log_likelihood_fn(self.likelihood)(out.reshape(*z1.shape[:2], *out.shape[1:]),
                                                      x)
    return log_lik + beta * log_ratio, log_lik, log_ratio

  def terms(self, params, batch, key, hparams) -> dict[str, jax.Array]:
    """Per-example 'loss' (-bound with K = num_samples), 'recon', 'kl' [B], nats."""
    x, _, k_z = self.inputs(batch, key)
    logw, log_lik, log_ratio = self._log_weights(params, x, k_z, self.num_samples, hparams.beta)
    bound = jax.nn.logsumexp(logw, axis=0) - jnp.log(float(self.num_samples))
    return {"loss": -bound, "recon": -jnp.mean(log_lik, axis=0),
            "kl": -jnp.mean(log_ratio, axis=0)}

  def latent_of(self, params, x, label=None):
    """Top-layer posterior means [B, Z_L] (along the means below) of preprocessed images."""
    return self.model.apply({"params": params}, x, method=self.model.encode)[0]

  def latent(self, params, batch, key=None) -> jax.Array:
    """Top-layer posterior means [B, Z_L]."""
    return self.latent_of(params, self.images(batch, key))

  def iw_bound(self, params, batch, key, num_samples: int, chunk_size: int,
               unroll: bool = False) -> jax.Array:
    """The IWAE bound [B] over all layers, in nats, its samples drawn chunk_size at a time."""
    x, _, k_z = self.inputs(batch, key)
    return iwae.log_mean_exp_chunked(lambda k, c: self._log_weights(params, x, k, c)[0], k_z,
                                     num_samples, chunk_size, x.shape[0], x.dtype, unroll)


@flax.struct.dataclass
class VQVAEObjective(_Base):
  """The VQ-VAE loss (van den Oord et al., 2017, eq. 3 with the codebook term replaced by the
  moving averages of app. A.1): reconstruction term + commitment * ||z_e - sg(z_q)||^2, the
  decoder fed z_q through the straight-through estimator. The codebook follows the moving
  averages with `decay` (update_params, called by the train step with this step's encodings).

  A VQ-VAE has no likelihood of x without a learned prior over its codes: no ELBO, no IW-NLL,
  no prior samples (has_posterior False). Metrics per image: 'recon' (nats for a normalized
  likelihood), 'commitment', and per batch (copied to each image): 'perplexity' (exp of the
  entropy of the batch's code usage) and 'codes_used' (the fraction of the K codes it used).
  """
  commitment: float = flax.struct.field(pytree_node=False, default=0.25)
  decay: float = flax.struct.field(pytree_node=False, default=0.99)

  def terms(self, params, batch, key, hparams) -> dict[str, jax.Array]:
    """Per-example 'loss', 'recon', 'commitment', 'perplexity', 'codes_used' [B], and the step's
    encodings for update_params under the private keys '_z_e' [B, N, D], '_codes' [B, N]."""
    del hparams
    x, _, _ = self.inputs(batch, key)
    out, z_e, z_q, codes = self.model.apply({"params": params}, x)
    recon = -dist.log_likelihood_fn(self.likelihood)(out, x)
    commit = self.commitment * jnp.sum(jnp.square(z_e - jax.lax.stop_gradient(z_q)), axis=(1, 2))
    usage = jnp.mean(jax.nn.one_hot(codes, self.model.num_codes), axis=(0, 1))  # [K]
    perplexity = jnp.exp(-jnp.sum(usage * jnp.log(jnp.maximum(usage, 1e-10))))
    per_batch = lambda v: jnp.broadcast_to(v, recon.shape)  # noqa: E731
    return {"loss": recon + commit, "recon": recon, "commitment": commit,
            "perplexity": per_batch(perplexity),
            "codes_used": per_batch(jnp.mean((usage > 0).astype(jnp.float32))),
            "_z_e": jax.lax.stop_gradient(z_e), "_codes": codes}

  def update_params(self, params, aux):
    """params with the codebook's moving averages moved by this step's encodings."""
    counts, sums = vqvae.ema_update(params["counts"], params["sums"], aux["_codes"],
                                    aux["_z_e"], self.decay)
    return dict(params, counts=counts, sums=sums)

  def eval_terms(self, params, batch, key, hparams, elbo_samples: int = 0) -> dict:
    """terms without the private encodings, plus 'mse' (see _Base.eval_terms)."""
    return {k: v for k, v in super().eval_terms(params, batch, key, hparams).items()
            if not k.startswith("_")}

  def latent_of(self, params, x, label=None):
    """The quantized codes [B, N * D] of preprocessed images x."""
    return self.model.apply({"params": params}, x)[2].reshape(x.shape[0], -1)

  def latent(self, params, batch, key=None) -> jax.Array:
    """The quantized codes [B, N * D]."""
    return self.latent_of(params, self.images(batch, key))


@flax.struct.dataclass
class AutoencoderObjective(_Base):
  """Reconstruction term of a deterministic models.Autoencoder (no KL, no prior, no IW-NLL)."""

  def terms(self, params, batch, key, hparams) -> dict[str, jax.Array]:
    """Per-example 'loss' and 'recon' [B] (equal)."""
    del hparams
    x, label, _ = self.inputs(batch, key)
    return autoencoder_loss(self.model, params, x, label, likelihood=self.likelihood)

  def latent_of(self, params, x, label=None):
    """Codes [B, Z] of preprocessed images x [B, H, W, C]."""
    return self.model.apply({"params": params}, x, label, method=self.model.encode)

  def latent(self, params, batch, key=None) -> jax.Array:
    """Codes [B, Z]."""
    return self.latent_of(params, self.images(batch, key), None)


@flax.struct.dataclass
class ClassifierObjective(_Base):
  """Cross-entropy of a models.Classifier on the batch labels (nats per image)."""

  can_decode = False

  @property
  def normalized(self) -> bool:
    return True  # Cross-entropy is a normalized likelihood of the label.

  def terms(self, params, batch, key, hparams) -> dict[str, jax.Array]:
    """Per-example 'loss' (cross-entropy, nats) and 'error' (1.0 if the argmax is wrong) [B]."""
    del hparams
    x, label, _ = self.inputs(batch, key)
    logits_BxN = self.model.apply({"params": params}, x)
    loss_B = -jnp.take_along_axis(jax.nn.log_softmax(logits_BxN), label[:, None], axis=1)[:, 0]
    return {"loss": loss_B, "error": (jnp.argmax(logits_BxN, -1) != label).astype(jnp.float32)}

  def latent(self, params, batch, key=None) -> jax.Array:
    """Penultimate features [B, F] (the embedding classifier-FID uses)."""
    return self.model.apply({"params": params}, self.images(batch, key),
                            method=self.model.features)

  def eval_terms(self, params, batch, key, hparams, elbo_samples: int = 0) -> dict:
    return self.terms(params, batch, key, hparams)

  def decode_mean(self, params, z_BxZ, label_B=None):
    raise NotImplementedError("a classifier has no decoder (check objective.can_decode)")


TRAINING_OBJECTIVES = ("elbo", "iwae")  # objective.name
OBJECTIVES = {"vae": VAEObjective, "cvae": VAEObjective, "ae": AutoencoderObjective,
              "hvae": HierarchicalObjective, "vqvae": VQVAEObjective,
              "classifier": ClassifierObjective}


def from_config(config, image_shape, encoder_widths=None, *, num_classes: int = 0):
  """The objective (and its model, see models.build_model) that a run's config describes.

  Args:
    image_shape: (H, W, C) after the dataset's geometry (data.image_shape).
    encoder_widths: overrides model.encoder.widths (growth changes them).
    num_classes: K of the dataset (data.num_classes); read by cvae and classifier only.
  Raises:
    ValueError: bad model sizes or kinds (see models.build_model).
  """
  num_classes = num_classes if config.model.kind in ("cvae", "classifier") else 0
  model = models.build_model(config.model, image_shape, num_classes, encoder_widths)
  o = config.objective
  common = dict(model=model, preprocess=config.data.preprocess,
                likelihood=config.model.likelihood,
                mixture_components=config.model.get("mixture_components", 5))
  iw = o.get("name", "elbo") == "iwae"
  if config.model.kind == "vqvae":
    return VQVAEObjective(**common, commitment=o.commitment, decay=config.model.vq.decay)
  if config.model.kind == "hvae":
    return HierarchicalObjective(**common, num_samples=o.num_samples if iw else 1)
  if iw:
    return IWAEObjective(**common, num_samples=o.num_samples, estimator=o.estimator)
  return OBJECTIVES[config.model.kind](**common)


def validate_config(config) -> None:
  """Checks objective.name, num_samples and estimator against the model.

  Raises:
    ConfigError: naming the bad field and the fix.
  """
  o = config.objective
  if o.name not in TRAINING_OBJECTIVES:
    raise ConfigError(f"unknown objective.name {o.name!r}; choose one of "
                      f"{', '.join(TRAINING_OBJECTIVES)}")
  if o.name == "iwae":
    if config.model.kind not in ("vae", "cvae", "hvae") or config.model.likelihood not in (
        dist.NORMALIZED_LIKELIHOODS):
      raise ConfigError("objective.name=iwae needs model.kind=vae or cvae with a normalized "
                        f"likelihood, not {config.model.kind} with {config.model.likelihood}; "
                        "set --config.objective.name=elbo")
    if o.num_samples < 1:
      raise ConfigError(f"objective.num_samples must be >= 1, got {o.num_samples}; set "
                        "--config.objective.num_samples")
    if config.model.kind == "hvae" and o.estimator != "iwae":
      raise ConfigError("model.kind=hvae trains with the bound's own gradient; set "
                        "--config.objective.estimator=iwae")
    if o.estimator not in iwae.ESTIMATORS:
      raise ConfigError(f"unknown objective.estimator {o.estimator!r}; choose one of "
                        f"{', '.join(iwae.ESTIMATORS)}")
