"""The model side of `vae-jax explore`: a trained VAE, CVAE or autoencoder run read back once, and
the decodes the explorer page asks for, each one jitted program on a fixed batch of DECODE_BATCH
latents (padded), so no request compiles after the first of its kind.

Shape letters: N test images, Z latent size, T interpolation steps, H/W/C image. Images leave as
uint8 [n, H, W, C]; latents are float32. The web server (explore_app.py) only forwards JSON here.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from vae_jax import analysis, data, errors, evaluate, figures

EXPLORABLE_KINDS = ("vae", "cvae", "ae")  # config.model.kind
DECODE_BATCH = 16  # Latents per decode program call; requests pad up to it.
SLIDER_SDS = 3.0  # Sliders and the plane span +- this many standard deviations.


ExploreError = errors.ExploreError


class Dimension(NamedTuple):
  """One latent dimension as a slider: its index, the nats of KL it carries (VAE, CVAE: mean over
  the test images of KL(q(z_u|x) || N(0, 1)); NaN for an autoencoder), the variance of its
  posterior mean (code) over the test images, whether that makes it an active unit (Burda et al.
  2016, variance > 0.01), and the slider's range."""
  index: int
  kl: float
  variance: float
  active: bool
  low: float
  high: float


def _check_kind(config, workdir: Path) -> None:
  if config.model.kind == "classifier":
    raise ExploreError(f"{workdir} holds a classifier (model.kind=classifier), which has no "
                       "decoder; pass --workdir of a VAE, CVAE or AE run")
  if config.model.kind not in EXPLORABLE_KINDS:
    raise ExploreError(f"{workdir} holds model.kind={config.model.kind}; the explorer shows "
                       f"{', '.join(EXPLORABLE_KINDS)} runs")


class Explorer:
  """A trained run and its test posterior, ready to decode latents.

  Attributes:
    workdir, config, objective, params, epoch: the run (its best checkpoint when it used early
      stopping, else its latest; see evaluate.restore_run).
    images_NxHxWxC (uint8), labels_N (int32): the first `num_test` test images.
    means_NxZ: their posterior means (codes of an autoencoder); logvars_NxZ or None (AE).
    dimensions: list[Dimension], by KL descending (VAE, CVAE) or variance descending (AE).
    plane_center_Z, plane_basis_2xZ, plane_extent_2: z = center + (u e0, v e1) . basis for a click
      (u, v) in [-1, 1]^2; the basis is the identity when Z = 2, else the first two principal
      directions of means_NxZ (scikit-learn PCA), e = SLIDER_SDS standard deviations along each.
  """

  def __init__(self, workdir: str | Path, num_test: int = 2000):
    """Reads the run and encodes its first `num_test` test images.

    Raises:
      checkpointing.CheckpointError: not a run directory, or no (readable) checkpoint.
      ExploreError: a classifier or a model kind the explorer does not show; num_test < 3.
      data.DataError: the run's test split is not prepared.
    """
    self.workdir = Path(workdir)
    if num_test < 3:
      raise ExploreError(f"num_test must be >= 3 for the PCA plane, got {num_test}")
    _check_kind(evaluate.run_config(self.workdir), self.workdir)  # Before the checkpoint.
    run = evaluate.restore_run(self.workdir)  # Raises a one-line CheckpointError.
    self.config, self.objective, self.params, self.epoch = (run.config, run.objective,
                                                          run.params, run.epoch)
    self.latent_dim = int(self.config.model.latent_dim)
    images, labels = data.test_split(self.config.data)
    self.images_NxHxWxC, self.labels_N = images[:num_test], labels[:num_test].astype(np.int32)
    self.means_NxZ, self.logvars_NxZ = self._encode_all()
    self.dimensions = self._dimensions()
    self.plane_center_Z, self.plane_basis_2xZ, self.plane_extent_2 = self._plane()

  @property
  def has_posterior(self) -> bool:
    return bool(self.objective.has_posterior)

  @property
  def num_classes(self) -> int:
    return int(self.objective.num_classes)

  @property
  def learned_prior(self) -> bool:
    """True for a VampPrior (prior samples come from its mixture; temperature is not applied)."""
    return self.objective.log_prior_fn() is not None

  def _encode_all(self):
    encode = _encode_program(self.objective)
    means, logvars = [], []
    for i in range(0, len(self.labels_N), 500):
      x = self.objective.images({"image": jnp.asarray(self.images_NxHxWxC[i:i + 500])})
      out = encode(self.params, x, jnp.asarray(self.labels_N[i:i + 500]))
      mean, logvar = out if self.has_posterior else (out, None)
      means.append(np.asarray(mean))
      logvars.append(None if logvar is None else np.asarray(logvar))
    return (np.concatenate(means),
            None if logvars[0] is None else np.concatenate(logvars))

  def _dimensions(self) -> list[Dimension]:
    _, variances = analysis.active_units(self.means_NxZ)
    if self.has_posterior:
      kl = analysis.kl_per_dimension(self.means_NxZ, self.logvars_NxZ)
      order = np.argsort(-kl, kind="stable")
      lows, highs = np.full(self.latent_dim, -SLIDER_SDS), np.full(self.latent_dim, SLIDER_SDS)
    else:
      kl = np.full(self.latent_dim, np.nan)
      order = np.argsort(-variances, kind="stable")
      center, sd = self.means_NxZ.mean(0), np.sqrt(variances)
      lows, highs = center - SLIDER_SDS * sd, center + SLIDER_SDS * sd
    return [Dimension(int(u), float(kl[u]), float(variances[u]),
                      bool(variances[u] > analysis.ACTIVE_UNIT_THRESHOLD),
                      float(lows[u]), float(highs[u])) for u in order]

  def _plane(self):
    if self.latent_dim == 2:
      center = np.zeros(2) if self.has_posterior else self.means_NxZ.mean(0)
      sd = np.ones(2) if self.has_posterior else self.means_NxZ.std(0)
      return center, np.eye(2), SLIDER_SDS * np.maximum(sd, 1e-6)
    from sklearn.decomposition import PCA  # pylint: disable=import-outside-toplevel
    pca = PCA(n_components=2).fit(np.asarray(self.means_NxZ, np.float64))
    return pca.mean_, pca.components_, SLIDER_SDS * np.sqrt(np.maximum(
        pca.explained_variance_, 1e-12))

  def plane_coordinates(self, n: int = 500) -> np.ndarray:
    """The first n test posterior means in plane coordinates (u, v), [n, 2] float64 (points
    inside [-1, 1]^2 lie within SLIDER_SDS standard deviations)."""
    offsets = self.means_NxZ[:n] - self.plane_center_Z
    return (offsets @ self.plane_basis_2xZ.T) / self.plane_extent_2

  def plane_latent(self, u: float, v: float) -> np.ndarray:
    """The latent [Z] at plane coordinates (u, v)."""
    return self.plane_center_Z + (np.array([u, v]) * self.plane_extent_2) @ self.plane_basis_2xZ

  def _label(self, label: int | None, n: int) -> np.ndarray:
    if not self.num_classes:
      return np.zeros(n, np.int32)
    if label is None or not 0 <= int(label) < self.num_classes:
      raise ExploreError(f"a conditional run needs a label in 0..{self.num_classes - 1}, got "
                         f"{label}")
    return np.full(n, int(label), np.int32)

  def decode(self, z_nxZ, label: int | None = None) -> np.ndarray:
    """Decoded means of latents [n, Z] (n <= DECODE_BATCH) as uint8 images [n, H, W, C].

    Raises:
      ExploreError: a shape other than [1..DECODE_BATCH, Z], non-finite values, or (CVAE) a label
        outside 0..K-1.
    """
    z = np.asarray(z_nxZ, np.float32)
    if z.ndim != 2 or z.shape[1] != self.latent_dim or not 1 <= len(z) <= DECODE_BATCH:
      raise ExploreError(f"latents must be [1..{DECODE_BATCH}, {self.latent_dim}], got "
                         f"{list(z.shape)}")
    if not np.all(np.isfinite(z)):
      raise ExploreError("latents must be finite numbers")
    n = len(z)
    padded = np.zeros((DECODE_BATCH, self.latent_dim), np.float32)
    padded[:n] = z
    labels = np.zeros(DECODE_BATCH, np.int32)
    labels[:n] = self._label(label, n)
    decoded = figures.decode_program(self.objective)(
        self.params, jnp.asarray(padded), jnp.asarray(labels) if self.num_classes else None)
    return to_uint8(np.asarray(decoded)[:n])

  def _index(self, index: int) -> int:
    if not 0 <= int(index) < len(self.labels_N):
      raise ExploreError(f"test image index must be in 0..{len(self.labels_N) - 1}, got {index}")
    return int(index)

  def interpolate(self, i: int, j: int, steps: int = 10, method: str = "linear",
                  label: int | None = None) -> np.ndarray:
    """Decodes the path between the posterior means of test images i and j: uint8 [T, H, W, C]
    (analysis.linear_path or spherical_path); a CVAE decodes with `label`, or image i's label.

    Raises:
      ExploreError: an index outside the test images, steps outside 2..DECODE_BATCH, or an
        unknown method.
    """
    i, j = self._index(i), self._index(j)
    if not 2 <= steps <= DECODE_BATCH or method not in ("linear", "spherical"):
      raise ExploreError(f"need 2 <= steps <= {DECODE_BATCH} and method linear or spherical, got "
                         f"{steps} and {method!r}")
    path = analysis.linear_path if method == "linear" else analysis.spherical_path
    z = path(self.means_NxZ[i][None], self.means_NxZ[j][None], steps)[0]
    return self.decode(z, self._default_label(label, i))

  def _default_label(self, label, i):
    return None if not self.num_classes else int(self.labels_N[i]) if label is None else label

  def prior_samples(self, n: int = 16, temperature: float = 1.0, seed: int = 0,
                    label: int | None = None) -> np.ndarray:
    """n decoded prior samples, z = temperature * eps with eps ~ N(0, I) (a VampPrior's samples
    come from its mixture, temperature ignored): uint8 [n, H, W, C].

    Raises:
      ExploreError: an autoencoder (no prior), n outside 1..DECODE_BATCH, temperature <= 0.
    """
    if not self.has_posterior:
      raise ExploreError("an autoencoder has no prior to sample; use the sliders or the plane")
    if not 1 <= n <= DECODE_BATCH or not temperature > 0:
      raise ExploreError(f"need 1 <= n <= {DECODE_BATCH} and temperature > 0, got {n} and "
                         f"{temperature}")
    key = jax.random.key(seed)
    if self.learned_prior:
      z = self.objective.sample_prior(self.params, key, n, self.latent_dim)
    else:
      z = temperature * jax.random.normal(key, (n, self.latent_dim))
    return self.decode(np.asarray(z), label if label is not None or not self.num_classes else 0)

  def test_image(self, index: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(uint8 image [H, W, C], its posterior mean [Z], its label) of test image `index`.

    Raises:
      ExploreError: index outside the test images.
    """
    i = self._index(index)
    return self.images_NxHxWxC[i], self.means_NxZ[i], int(self.labels_N[i])


def to_uint8(images) -> np.ndarray:
  """Images in [0, 1] (float, [n, H, W, C]) -> uint8, rounded."""
  return np.round(np.clip(np.asarray(images, np.float64), 0.0, 1.0) * 255).astype(np.uint8)


@functools.lru_cache(maxsize=8)
def _encode_program(objective):
  """Jitted (params, preprocessed x [B, H, W, C], labels [B]) -> the model's encode output."""
  def encode(params, x, labels):
    label = labels if objective.conditional else None
    return objective.model.apply({"params": params}, x, label, method=objective.model.encode)
  return jax.jit(encode)
