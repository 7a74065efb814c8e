"""Scoring a trained VAE / CVAE run by classifier-FID and classifier-IS (metrics.py) with the
references that give the numbers meaning: the FID floor (train vs test images of the dataset) and
the IS of real test images, both through the same classifier, named by the hash of its params.

`vae-jax score --workdir RUN [--n 10000] [--classifier DIR]` prints score_run's dict as JSON.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from vae_jax import data, evaluate, figures, metrics
from vae_jax.errors import ScoreError  # noqa: F401  # Raised here; the public name stays.

BATCH = 500


def default_classifier_dir(dataset: str) -> Path:
  """Where `vae-jax score` looks for the classifier of a dataset: checkpoints/classifier_<name>
  (the workdir `vae-jax train --config vae_jax/configs/classifier_<name>.py` uses)."""
  return Path("checkpoints") / f"classifier_{dataset}"


def load_classifier(workdir: str | Path):
  """(config, objective, params, summary) of a trained classifier run.

  Raises:
    ScoreError: no such run, or a run that is not a classifier.
  """
  workdir = Path(workdir)
  if not (workdir / "summary.json").is_file():
    raise ScoreError(f"no trained classifier in {workdir}; train one with vae-jax train "
                     f"--config vae_jax/configs/classifier_<dataset>.py --workdir {workdir}, "
                     "or pass --classifier DIR")
  config, objective, params, _, _ = evaluate.restore_run(workdir)
  if config.model.kind != "classifier":
    raise ScoreError(f"{workdir} holds a {config.model.kind} run, not a classifier; pass "
                     "--classifier with a run of vae_jax/configs/classifier_<dataset>.py")
  try:
    summary = json.loads((workdir / "summary.json").read_text())
  except ValueError:
    raise ScoreError(f"{workdir}/summary.json is unreadable; train the classifier again into "
                     f"{workdir} or pass --classifier DIR") from None
  return config, objective, params, summary


@functools.lru_cache(maxsize=4)
def _classify_program(objective):
  def run(params, x):
    features = objective.model.apply({"params": params}, x, method=objective.model.features)
    logits = objective.model.apply({"params": params}, x)
    return features, jax.nn.softmax(logits)
  return jax.jit(run)


def classifier_outputs(objective, params, images) -> tuple[np.ndarray, np.ndarray]:
  """Penultimate features [N, F] and class probabilities [N, K] (float64) of float images
  [N, H, W, C] in [0, 1], in batches."""
  fn = _classify_program(objective)
  parts = [fn(params, jnp.asarray(images[i:i + BATCH], jnp.float32))
           for i in range(0, len(images), BATCH)]
  return tuple(np.concatenate([np.asarray(p[j], np.float64) for p in parts]) for j in (0, 1))


def prior_samples(objective, params, n: int, key, latent_dim: int) -> np.ndarray:
  """n decoder means [n, H, W, C] in [0, 1] of z ~ p(z): N(0, I) or the model's learned prior
  (objective.sample_prior; labels 0..K-1 in turn for a CVAE)."""
  decode = figures.decode_program(objective)
  z = objective.sample_prior(params, key, n, latent_dim)
  labels = objective.prior_labels(n)
  return np.concatenate([np.asarray(decode(params, z[i:i + BATCH], labels[i:i + BATCH]))
                         for i in range(0, n, BATCH)])


def reconstructions(objective, params, images, labels, key) -> np.ndarray:
  """Decoder means [N, H, W, C] in [0, 1] of the latents of uint8 images [N, H, W, C] (the
  objective's `latent`: posterior means, codes, or a VQ-VAE's quantized codes)."""
  latent_fn, decode = figures._programs(objective)  # pylint: disable=protected-access
  parts = []
  for i in range(0, len(images), BATCH):
    batch = {"image": jnp.asarray(images[i:i + BATCH]), "label": jnp.asarray(labels[i:i + BATCH])}
    z = latent_fn(params, batch, jax.random.fold_in(key, i))
    parts.append(np.asarray(decode(params, z, batch["label"])))
  return np.concatenate(parts)


_REFERENCES = {}


def _references(classifier, dataset: str, n: int, data_dir) -> dict:
  """reference_scores, computed once per process for each classifier (by its params hash)."""
  key = (metrics.params_hash(classifier[2]), dataset, n, data_dir)
  if key not in _REFERENCES:
    _REFERENCES[key] = reference_scores(classifier, dataset, n, data_dir)
  return _REFERENCES[key]


def reference_scores(classifier, dataset: str, n: int, data_dir=None) -> dict:
  """The floor FID (first n train vs first n test images) and the IS of the first n test images,
  through `classifier` = load_classifier(...); 'f_test' holds the test features [n, F]."""
  _, objective, params, _ = classifier
  train_x = data.load_split(dataset, "train", data_dir)[0][:n] / 255.0
  test_x = data.load_split(dataset, "test", data_dir)[0][:n] / 255.0
  if len(test_x) < n:
    raise ScoreError(f"--n {n} exceeds the {len(test_x)} test images of {dataset} (FID compares "
                     f"n samples with the first n test images); pass --n {len(test_x)} or less")
  f_train, _ = classifier_outputs(objective, params, train_x)
  f_test, p_test = classifier_outputs(objective, params, test_x)
  return {"fid_floor_train_vs_test": metrics.fid(f_train, f_test),
          "is_real_test": metrics.inception_score(p_test), "f_test": f_test,
          "diversity_test": metrics.mean_pairwise_distance(f_test)}


def score_run(workdir: str | Path, n: int = 10000, classifier_dir: str | Path | None = None,
              seed: int = 0, classifier=None, of: str = "prior", epoch: int | None = None) -> dict:
  """Classifier-FID (n images vs the first n test images) and classifier-IS of a run's prior
  samples (of='prior') or of its reconstructions of the first n test images
  (of='reconstructions': any decoding run, e.g. a VQ-VAE or an AE, which have no prior), with
  the floor, the real-data IS and the classifier's hash and test accuracy; sample diversity:
  'diversity' (metrics.mean_pairwise_distance of the images' classifier features) beside
  'diversity_test' (of the first n test images), and 'label_histogram' (the classifier's class
  counts of the n images). `epoch`: score that kept checkpoint (default: the run's best or
  latest, as evaluate.restore_run).

  Raises:
    ScoreError: n < 2, no prior to sample (of='prior' on an AE, VQ-VAE or classifier run), no
      decoder (of='reconstructions' on a classifier), no classifier for the run's dataset, or a
      classifier trained on another image shape.
  classifier: load_classifier(classifier_dir) when the caller holds it already.
  """
  if n < 2:
    raise ScoreError(f"--n must be >= 2 (a covariance needs two points), got {n}")
  config, objective, params, _, epoch = evaluate.restore_run(workdir, epoch)
  if of == "prior" and not objective.has_posterior:
    raise ScoreError(f"{workdir} holds a model.kind={config.model.kind} run, which has no prior "
                     "to sample; score its reconstructions (--of reconstructions) or a VAE run")
  if not objective.can_decode:
    raise ScoreError(f"{workdir} holds a {config.model.kind} run, which decodes nothing; score "
                     "a VAE, AE or VQ-VAE run")
  dataset, data_dir = config.data.name, config.data.data_dir or None
  clf_dir = Path(classifier_dir) if classifier_dir else default_classifier_dir(dataset)
  classifier = classifier or load_classifier(clf_dir)
  clf_config = classifier[0]
  shape, clf_shape = data.image_shape(dataset), data.image_shape(clf_config.data.name)
  if tuple(shape) != tuple(clf_shape):
    raise ScoreError(f"the classifier in {clf_dir} reads {clf_config.data.name} images "
                     f"{tuple(clf_shape)}, the run {dataset} images {tuple(shape)}; train a "
                     f"classifier with --config.data.name={dataset} and pass it as --classifier")
  ref = _references(classifier, dataset, n, data_dir)
  if of == "prior":
    samples = prior_samples(objective, params, n, jax.random.key(seed),
                            objective.model.latent_dim)
  else:
    test_x, test_y = data.load_split(dataset, "test", data_dir)
    samples = reconstructions(objective, params, test_x[:n], test_y[:n], jax.random.key(seed))
  f_samples, p_samples = classifier_outputs(classifier[1], classifier[2], samples)
  return {"workdir": str(workdir), "epoch": epoch, "dataset": dataset, "n": n, "seed": seed,
          "of": of,
          "fid": metrics.fid(f_samples, ref["f_test"]),
          "is": metrics.inception_score(p_samples),
          "fid_floor_train_vs_test": ref["fid_floor_train_vs_test"],
          "is_real_test": ref["is_real_test"],
          "diversity": metrics.mean_pairwise_distance(f_samples),
          "diversity_test": ref["diversity_test"],
          "label_histogram": metrics.label_histogram(p_samples),
          "classifier": str(clf_dir),
          "classifier_hash": metrics.params_hash(classifier[2]),
          "classifier_test_accuracy": 1.0 - classifier[3]["eval/error"],
          "metric": "classifier-FID / classifier-IS (features and probabilities of the in-repo "
                    "CNN classifier, not Inception)"}


def score_over_training(workdir: str | Path, n: int = 10000,
                        classifier_dir: str | Path | None = None, seed: int = 0,
                        of: str = "prior", classifier=None) -> list[dict]:
  """score_run of every kept checkpoint of a run (checkpointing.all_epochs), oldest first: FID,
  IS and diversity over training (`--config.train.keep_checkpoints=0` keeps every epoch).
  classifier: load_classifier(classifier_dir) when the caller holds it already.

  Raises:
    ScoreError: as score_run. checkpointing.CheckpointError: no checkpoint.
  """
  from vae_jax import checkpointing  # pylint: disable=import-outside-toplevel
  epochs = sorted(checkpointing.all_epochs(workdir))
  if not epochs:
    raise checkpointing.CheckpointError(f"no checkpoint in {workdir}; train first")
  config = evaluate.run_config(workdir)
  clf_dir = classifier_dir or default_classifier_dir(config.data.name)
  classifier = classifier or load_classifier(clf_dir)
  return [score_run(workdir, n, clf_dir, seed, classifier=classifier, of=of, epoch=e)
          for e in epochs]
