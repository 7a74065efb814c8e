"""Sample-quality and detection metrics on features of an in-repo classifier: the Fréchet
distance (FID, Heusel et al., 2017) and the inception score (IS, Salimans et al., 2016), computed
as TF-GAN's `mnist_frechet_distance` / `mnist_score` do — over a trained digit classifier's
penultimate features and class probabilities instead of Inception's, so they are labelled
classifier-FID / classifier-IS and only compare runs scored by the same classifier (its params
hash travels with every score) — and AUROC (scikit-learn).

Shape letters: N points, D feature size, K classes.
"""

from __future__ import annotations

import hashlib
import warnings

import jax
import numpy as np
import scipy.linalg


def feature_statistics(features_NxD) -> tuple[np.ndarray, np.ndarray]:
  """(mean [D], covariance [D, D]) in float64 (covariance with N - 1 in the denominator).

  Raises:
    ValueError: not [N >= 2, D].
  """
  x = np.asarray(features_NxD, np.float64)
  if x.ndim != 2 or len(x) < 2:
    raise ValueError(f"need features [N >= 2, D], got shape {x.shape}")
  return x.mean(axis=0), np.cov(x, rowvar=False).reshape(x.shape[1], x.shape[1])


def frechet_distance(mean1_D, cov1_DxD, mean2_D, cov2_DxD, eps: float = 1e-6) -> float:
  """Fréchet distance between N(mean1, cov1) and N(mean2, cov2) (Dowson & Landau, 1982; the FID
  of Heusel et al., 2017): |m1 - m2|^2 + tr(C1 + C2 - 2 (C1 C2)^(1/2)), in float64.

  The matrix square root is scipy.linalg.sqrtm; where C1 C2 is singular (scipy warns, e.g. a
  feature that never fires) or the root is not finite, eps is added to both diagonals first, and
  a negligible imaginary part from rounding is dropped, as in pytorch-fid.

  Raises:
    ValueError: shapes that do not match, or an imaginary part that is not negligible.
  """
  m1, m2 = np.asarray(mean1_D, np.float64), np.asarray(mean2_D, np.float64)
  c1, c2 = np.asarray(cov1_DxD, np.float64), np.asarray(cov2_DxD, np.float64)
  d = m1.shape[0]
  if m1.shape != (d,) or m2.shape != (d,) or c1.shape != (d, d) or c2.shape != (d, d):
    raise ValueError(f"need means [D] and covariances [D, D] of one D, got {m1.shape}, "
                     f"{c1.shape}, {m2.shape}, {c2.shape}")
  with warnings.catch_warnings():
    warnings.simplefilter("error", scipy.linalg.LinAlgWarning)
    try:
      root = scipy.linalg.sqrtm(c1 @ c2)
    except scipy.linalg.LinAlgWarning:  # Singular: e.g. a feature that never fires.
      root = np.full((d, d), np.nan)
  if not np.all(np.isfinite(root)):
    offset = np.eye(d) * eps
    with warnings.catch_warnings():
      warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
      root = scipy.linalg.sqrtm((c1 + offset) @ (c2 + offset))
  if np.iscomplexobj(root):
    if not np.allclose(np.diagonal(root).imag, 0, atol=1e-3):
      raise ValueError(f"the matrix square root has an imaginary part of "
                       f"{np.max(np.abs(root.imag)):.3g}; the covariances are ill-conditioned "
                       "(use more points)")
    root = root.real
  diff = m1 - m2
  return float(diff @ diff + np.trace(c1) + np.trace(c2) - 2.0 * np.trace(root))


def fid(features1_NxD, features2_MxD) -> float:
  """Fréchet distance between the Gaussians fitted to two feature sets (frechet_distance)."""
  return frechet_distance(*feature_statistics(features1_NxD), *feature_statistics(features2_MxD))


def inception_score(probs_NxK) -> float:
  """exp(E_x KL(p(y|x) || p(y))) with p(y) the mean of p(y|x) over the N points (Salimans et
  al., 2016), in float64, over all points at once (TF-GAN's mnist_score with one split). It lies
  in [1, K]: K when every prediction is one-hot and the classes are equally used.

  Raises:
    ValueError: not [N, K] non-negative rows summing to 1.
  """
  p = np.asarray(probs_NxK, np.float64)
  if p.ndim != 2 or np.any(p < 0) or not np.allclose(p.sum(axis=1), 1.0, atol=1e-4):
    raise ValueError(f"need class probabilities [N, K] whose rows sum to 1, got shape {p.shape}")
  marginal = p.mean(axis=0)
  with np.errstate(divide="ignore", invalid="ignore"):
    kl = np.where(p > 0, p * (np.log(p) - np.log(marginal)), 0.0).sum(axis=1)
  return float(np.exp(kl.mean()))


def mean_pairwise_distance(features_NxD, max_points: int = 2000, seed: int = 0) -> float:
  """Mean Euclidean distance between distinct pairs of feature vectors (scipy's pdist), float64,
  over a seeded subset of at most `max_points` of them: a sample-diversity measure (compare the
  samples' value with the test images' through the same classifier features).

  Raises:
    ValueError: not [N >= 2, D].
  """
  from scipy.spatial.distance import pdist  # pylint: disable=import-outside-toplevel
  x = np.asarray(features_NxD, np.float64)
  if x.ndim != 2 or len(x) < 2:
    raise ValueError(f"need features [N >= 2, D], got shape {x.shape}")
  if len(x) > max_points:
    x = x[np.random.default_rng(seed).choice(len(x), max_points, replace=False)]
  return float(pdist(x).mean())


def label_histogram(probs_NxK) -> list[int]:
  """How many of the N points the classifier assigns to each of the K classes (argmax): [K]."""
  p = np.asarray(probs_NxK)
  return np.bincount(p.argmax(axis=1), minlength=p.shape[1]).tolist()


def auroc(scores_positive, scores_negative) -> float:
  """Area under the ROC curve of a score that should be higher on the positives (e.g. anomalies
  scored by −ELBO), by scikit-learn's roc_auc_score: 1 when every positive outscores every
  negative, 0.5 for a score that does not separate them.

  Raises:
    ValueError: an empty set.
  """
  from sklearn.metrics import roc_auc_score  # pylint: disable=import-outside-toplevel
  pos, neg = np.ravel(scores_positive), np.ravel(scores_negative)
  if not len(pos) or not len(neg):
    raise ValueError(f"need positives and negatives, got {len(pos)} and {len(neg)}")
  labels = np.concatenate([np.ones(len(pos)), np.zeros(len(neg))])
  return float(roc_auc_score(labels, np.concatenate([pos, neg]).astype(np.float64)))


def png_bits(images_u8) -> np.ndarray:
  """Length in bits of each uint8 image [N, H, W, C] (C = 1 or 3) compressed losslessly as PNG
  (Pillow, optimize=True): L(x), the input complexity of Serrà et al. (2020), whose anomaly score
  is S(x) = -log2 p(x) - L(x) (bits). float64 [N]."""
  import io  # pylint: disable=import-outside-toplevel
  from PIL import Image  # pylint: disable=import-outside-toplevel
  x = np.asarray(images_u8)
  if x.dtype != np.uint8 or x.ndim != 4 or x.shape[-1] not in (1, 3):
    raise ValueError(f"need uint8 images [N, H, W, 1 or 3], got {x.dtype} {x.shape}")
  out = np.empty(len(x))
  for i, img in enumerate(x):
    buf = io.BytesIO()
    Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img).save(buf, format="PNG",
                                                                      optimize=True)
    out[i] = 8.0 * buf.tell()
  return out


def params_hash(params) -> str:
  """First 12 hex digits of the SHA-256 of a param pytree (its leaves' paths, shapes, dtypes and
  bytes, in tree order): names the classifier a score was computed with."""
  digest = hashlib.sha256()
  for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
    a = np.asarray(leaf)
    digest.update(f"{jax.tree_util.keystr(path)}:{a.shape}:{a.dtype}".encode())
    digest.update(np.ascontiguousarray(a).tobytes())
  return digest.hexdigest()[:12]
