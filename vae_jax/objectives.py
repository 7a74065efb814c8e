"""The objectives of the VAE family (VAE / CVAE, IWAE), the autoencoder and the classifier, the
registry that builds one from a config, and the validation of its `objective` section. The
protocol they implement is objective_base.py's; the zoo's other objectives are in
zoo_objectives.py and the per-example bounds in bounds.py (all re-exported here).
"""

from __future__ import annotations

import flax
import jax
import jax.numpy as jnp

from vae_jax import distributions as dist, iwae, models
from vae_jax.objective_base import Model, Objective, _Base  # noqa: F401  # Public here too.
from vae_jax.zoo_objectives import (  # noqa: F401  # Public here too.
    HierarchicalObjective, MultimodalObjective, VQVAEObjective)
from vae_jax.bounds import (  # noqa: F401  # Public here too.
    autoencoder_loss, elbo_multi_sample, iwae_bound, neg_elbo, neg_elbo_learned_prior)
from vae_jax.errors import ConfigError


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
              "mvae": MultimodalObjective,
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
  num_classes = num_classes if config.model.kind in models.LABELLED_KINDS else 0
  model = models.build_model(config.model, image_shape, num_classes, encoder_widths)
  o = config.objective
  common = dict(model=model, preprocess=config.data.preprocess,
                likelihood=config.model.likelihood,
                mixture_components=config.model.get("mixture_components", 5))
  iw = o.get("name", "elbo") == "iwae"
  if config.model.kind == "mvae":
    return MultimodalObjective(**common, label_weight=o.label_weight)
  if config.model.kind == "vqvae":
    return VQVAEObjective(**common, commitment=o.commitment, decay=config.model.vq.decay)
  if config.model.kind == "hvae":
    return HierarchicalObjective(**common, num_samples=o.num_samples if iw else 1)
  if iw:
    return IWAEObjective(**common, num_samples=o.num_samples, estimator=o.estimator)
  return OBJECTIVES[config.model.kind](**common)


def validate_config(config) -> None:
  """Checks the objective and evaluation fields against the model: objective.name,
  num_samples and estimator; eval.iw_samples and elbo_samples (a posterior and a normalized
  likelihood); the model kinds that combine (hvae, model.prior).

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
      raise ConfigError("objective.name=iwae needs model.kind=vae, cvae or hvae with a normalized "
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
  has_posterior = config.model.kind in ("vae", "cvae", "hvae", "mvae")
  if config.eval.iw_samples and (not has_posterior or config.model.likelihood
                                 not in dist.NORMALIZED_LIKELIHOODS):
    raise ConfigError(f"eval.iw_samples={config.eval.iw_samples} needs a VAE with a normalized "
                      f"likelihood ({', '.join(dist.NORMALIZED_LIKELIHOODS)}), not "
                      f"model.kind={config.model.kind} with model.likelihood="
                      f"{config.model.likelihood}; set --config.eval.iw_samples=0")
  if config.eval.elbo_samples and not has_posterior:
    raise ConfigError(f"eval.elbo_samples > 0 needs model.kind=vae or cvae (model.kind="
                      f"{config.model.kind} has no ELBO); set --config.eval.elbo_samples=0")
  if config.model.kind == "hvae" and (config.growth.enabled or config.model.prior != "standard"):
    raise ConfigError("model.kind=hvae has no growth and no VampPrior; set "
                      "--config.growth.enabled=False --config.model.prior=standard")
  if config.model.prior != "standard" and config.model.kind != "vae":
    raise ConfigError(f"model.prior={config.model.prior} needs model.kind=vae, got "
                      f"{config.model.kind}; set --config.model.prior=standard")
