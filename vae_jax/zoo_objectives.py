"""Objectives of the model zoo beyond the VAE family (objectives.py): the hierarchical VAE's bound
over its layers, the VQ-VAE's loss with its moving-average codebook, and the multimodal VAE's
subsampled ELBOs; each implements the objective protocol of objective_base.py.

Shape letters: B batch, K importance samples, Z latent, N codes, D code size, H/W/C image.
"""

from __future__ import annotations

import flax
import jax
import jax.numpy as jnp

from vae_jax import bounds, distributions as dist, iwae
from vae_jax.models import vqvae
from vae_jax.objective_base import _Base


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
class MultimodalObjective(_Base):
  """The MVAE objective of a models.MultimodalVAE (Wu & Goodman, 2018, eq. 7: the ELBO of the
  joint (image, label) plus the ELBO of each modality alone, each with its product-of-experts
  posterior); the label's log-likelihood weighted by `label_weight` (theirs: 50 on MNIST), beta
  (hparams) on every KL.

  Terms per example [B], nats: 'loss'; 'recon' and 'kl' of the joint ELBO (image term, KL of
  q(z | x, y)); 'label_nll' -log p(y | z) of the joint ELBO; 'error' (1.0 where the label read
  from the image, argmax p(y | mean of q(z | x)), is wrong; its test mean is the test error).
  `iw_bound` is the image's IW bound under q(z | x): -iw_bound is the image's IW-NLL.
  """
  label_weight: float = flax.struct.field(pytree_node=False, default=50.0)

  has_posterior = True

  def _elbo(self, params, x, label, key, beta):
    """(-ELBO [B], image term [B] or 0, label term [B] or 0, KL [B]) with the posterior of the
    modalities given (x or label may be None)."""
    m = self.model
    mean, logvar = m.apply({"params": params}, x, label, method=m.posterior)
    z = dist.reparameterize(key, mean, logvar)
    kl = dist.kl_diag_gaussian_standard(mean, logvar)
    recon = label_nll = jnp.zeros_like(kl)
    if x is not None:
      out = m.apply({"params": params}, z, method=m.decode)
      recon = -dist.log_likelihood_fn(self.likelihood)(out, x)
    if label is not None:
      logits = m.apply({"params": params}, z, method=m.classify)
      label_nll = -jnp.take_along_axis(jax.nn.log_softmax(logits), label[:, None], 1)[:, 0]
    return recon + self.label_weight * label_nll + beta * kl, recon, label_nll, kl

  def terms(self, params, batch, key, hparams) -> dict[str, jax.Array]:
    """Per-example 'loss' (the three negative ELBOs), 'recon', 'kl', 'label_nll', 'error'."""
    x, label, k_z = self.inputs(batch, key)
    keys = jax.random.split(k_z, 3)
    joint, recon, label_nll, kl = self._elbo(params, x, label, keys[0], hparams.beta)
    image_only = self._elbo(params, x, None, keys[1], hparams.beta)[0]
    label_only = self._elbo(params, None, label, keys[2], hparams.beta)[0]
    logits = self.model.apply({"params": params}, self.latent_of(params, x),
                              method=self.model.classify)
    return {"loss": joint + image_only + label_only, "recon": recon, "kl": kl,
            "label_nll": label_nll,
            "error": (jnp.argmax(logits, -1) != label).astype(jnp.float32)}

  def latent_of(self, params, x, label=None):
    """Means [B, Z] of q(z | x), the image alone."""
    return self.model.apply({"params": params}, x, method=self.model.encode)[0]

  def latent(self, params, batch, key=None) -> jax.Array:
    """Means [B, Z] of q(z | x)."""
    return self.latent_of(params, self.images(batch, key))

  def images_from_labels(self, params, labels, key=None) -> jax.Array:
    """Mean images [B, H, W, C] decoded from z ~ q(z | y) for int32 labels [B] (from the mean
    of q(z | y) when key is None)."""
    m = self.model
    mean, logvar = m.apply({"params": params}, None, labels, method=m.posterior)
    return self.decode_mean(params, mean if key is None else dist.reparameterize(key, mean, logvar))

  def labels_from_images(self, params, x) -> jax.Array:
    """int32 [B]: argmax p(y | mean of q(z | x)) for preprocessed images x."""
    return jnp.argmax(self.model.apply({"params": params}, self.latent_of(params, x),
                                       method=self.model.classify), -1).astype(jnp.int32)

  def iw_bound(self, params, batch, key, num_samples: int, chunk_size: int,
               unroll: bool = False) -> jax.Array:
    """The image's IWAE bound [B] under q(z | x), nats (the label is not read)."""
    x, _, k_z = self.inputs(batch, key)  # model.encode is q(z | x): the image's expert alone.
    return bounds.iwae_bound(self.model, params, x, k_z, num_samples, chunk_size=chunk_size,
                             likelihood=self.likelihood, unroll=unroll)
