"""A VAE with L stochastic layers z_1 .. z_L (bottom to top), as in the IWAE paper's two-layer
MNIST model (Burda, Grosse & Salakhutdinov, 2016, sec. 5: 784-200-200-[100]-100-100-[50], each
[.] a Gaussian stochastic layer), with bottom-up inference or the top-down inference of the
Ladder VAE (Sønderby, Raiko, Maaløe, Sønderby & Winther, 2016).

  generative:  p(z_L) = N(0, I), p(z_l | z_{l+1}) = N(mean_l, diag(exp(logvar_l))), p(x | z_1)
  bottom-up:   q(z_1 | x) q(z_2 | z_1) ... q(z_L | z_{L-1}), each layer fed the sample below
  ladder:      a deterministic bottom-up pass gives (mean^_l, logvar^_l) from x (each layer fed
               the mean below); then top-down, q(z_L | x) = N(mean^_L, var^_L) and q(z_l | ...)
               the precision-weighted product of N(mean^_l, var^_l) and p(z_l | z_{l+1})
               (Sønderby et al., 2016, eq. 17-19)

Every conditional is an MLP (models.MLPEncoder: dense ReLU layers, then the mean and logvar
heads); the layers of stochastic layer l are `depth` dense layers of width widths[l] in the
inference network and in the generative network above it (p(z_l | z_{l+1}); p(x | z_1) uses
widths[0]). The IWAE paper used tanh units; these are ReLU, as every MLP here.

Shape letters: N samples per example, B batch, Z_l latent size of layer l, H/W/P decoder output.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from vae_jax import distributions as dist
from vae_jax.models.mlp import MLPDecoder, MLPEncoder

INFERENCE = ("bottom_up", "ladder")


def _merge(mean_hat, logvar_hat, mean_p, logvar_p):
  """The precision-weighted product of two diagonal Gaussians (Ladder VAE, eq. 18-19)."""
  prec_hat, prec_p = jnp.exp(-logvar_hat), jnp.exp(-logvar_p)
  prec = prec_hat + prec_p
  return (mean_hat * prec_hat + mean_p * prec_p) / prec, -jnp.log(prec)


class HierarchicalVAE(nn.Module):
  """L Gaussian stochastic layers (module docstring).

  Attributes:
    latent_dims: (Z_1, .., Z_L), bottom to top. widths: (W_1, .., W_L), one per layer.
    image_shape: (H, W, P) of the decoder output (P = C but for discretized likelihoods).
    depth: dense layers per conditional. inference: 'bottom_up' | 'ladder'.
  """
  latent_dims: Sequence[int]
  widths: Sequence[int]
  image_shape: Sequence[int]
  depth: int = 2
  inference: str = "bottom_up"
  dense_init: str = "lecun_normal"

  def setup(self):
    n = len(self.latent_dims)
    self.q = [MLPEncoder((self.widths[l],) * self.depth, self.latent_dims[l], self.dense_init,
                         name=f"q_{l + 1}") for l in range(n)]
    self.p = [MLPEncoder((self.widths[l + 1],) * self.depth, self.latent_dims[l],
                         self.dense_init, name=f"p_{l + 1}") for l in range(n - 1)]
    self.decoder = MLPDecoder((self.widths[0],) * self.depth, self.image_shape, self.dense_init,
                              name="decoder")

  @property
  def latent_dim(self) -> int:
    return self.latent_dims[-1]

  @property
  def num_classes(self) -> int:
    return 0

  def _bottom_up_means(self, x):
    """[(mean^_l [B, Z_l], logvar^_l)] of every layer, each fed the mean of the one below."""
    out, h = [], x
    for q in self.q:
      mean, logvar = q(h)
      out.append((mean, logvar))
      h = mean
    return out

  def encode(self, x: jax.Array, label: jax.Array | None = None):
    """x [B, H, W, C] -> (mean [B, Z_L], logvar [B, Z_L]) of the top layer along the means (what
    figures and latent plots read); `label` is ignored."""
    del label
    return self._bottom_up_means(x)[-1]

  def decode_bottom(self, z1: jax.Array) -> jax.Array:
    """z_1 [B, Z_1] -> decoder output [B, H, W, P]: the parameters of p(x | z_1)."""
    return self.decoder(z1)

  def decode(self, z: jax.Array, label: jax.Array | None = None) -> jax.Array:
    """Top latents z_L [B, Z_L] -> decoder output [B, H, W, P], the layers between taken at the
    means of p(z_l | z_{l+1}); `label` is ignored."""
    del label
    for p in reversed(self.p):
      z = p(z)[0]
    return self.decoder(z)

  def sample_latents(self, x: jax.Array, key: jax.Array, n: int):
    """n posterior samples per image: (z_1 [n, B, Z_1], log p(z) - log q(z | x) [n, B]) summed
    over the layers (p(z) the hierarchical prior)."""
    b = x.shape[0]
    flat = lambda a: a.reshape(n * b, *a.shape[2:])  # noqa: E731
    keys = jax.random.split(key, len(self.latent_dims))
    log_q = log_p = 0.0
    if self.inference == "bottom_up":
      zs = []
      for l, q in enumerate(self.q):
        if l == 0:  # q(z_1 | x) once per image, its n samples drawn from it.
          mean, logvar = (jnp.broadcast_to(a, (n, *a.shape)) for a in q(x))
        else:
          mean, logvar = (a.reshape(n, b, -1) for a in q(flat(zs[-1])))
        zs.append(dist.reparameterize(keys[l], mean, logvar))
        log_q += dist.log_normal_diag(zs[-1], mean, logvar)
      for l, p in enumerate(self.p):
        mean_p, logvar_p = p(flat(zs[l + 1]))
        log_p += dist.log_normal_diag(zs[l], mean_p.reshape(n, b, -1), logvar_p.reshape(n, b, -1))
      return zs[0], log_p + dist.log_normal_standard(zs[-1]) - log_q
    hats = self._bottom_up_means(x)
    mean, logvar = (jnp.broadcast_to(a, (n, *a.shape)) for a in hats[-1])
    z = dist.reparameterize(keys[-1], mean, logvar)
    log_q, log_p = dist.log_normal_diag(z, mean, logvar), dist.log_normal_standard(z)
    for l in reversed(range(len(self.p))):
      mean_p, logvar_p = (a.reshape(n, b, -1) for a in self.p[l](flat(z)))
      mean, logvar = _merge(*hats[l], mean_p, logvar_p)
      z = dist.reparameterize(keys[l], mean, logvar)
      log_q += dist.log_normal_diag(z, mean, logvar)
      log_p += dist.log_normal_diag(z, mean_p, logvar_p)
    return z, log_p - log_q

  def __call__(self, x: jax.Array, key: jax.Array, label: jax.Array | None = None):
    """One posterior sample: (decoder output [B, H, W, P], log p(z) - log q(z | x) [B]); at init
    it creates every layer's params."""
    del label
    z1, log_ratio = self.sample_latents(x, key, 1)
    if self.is_initializing():
      self.decode(self.encode(x)[0])
    return self.decode_bottom(z1[0]), log_ratio[0]
