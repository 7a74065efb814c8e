"""Named evaluators of a trained run, each with one cache under <run>/eval/<name>.json (or .npz for
per-example arrays): `vae-jax evaluate` / `score`, the study reports and your own code ask
`evaluate_run(workdir, name, **params)` and get the cached result while the params and the
checkpoint are the same, else a fresh one (written atomically).

  test_means   exact per-image means of the objective's terms over the test set (nats per image)
  iw_nll       IW-NLL (Burda et al., 2016) of the first `images` test images, nats per image and
               bits/dim; `likelihood` evaluates the trained decoder's means under another one
  scores       per-image anomaly scores (-ELBO, reconstruction term, IW-NLL) on named test sets
  fid_is       classifier-FID / IS of prior samples (scoring.score_run)
  fid_is_over_training  the same at every kept checkpoint (scoring.score_over_training)

Register more with `@register(name)`: fn(workdir, **params) -> dict (floats, or float arrays
when registered with arrays=True).
"""

from __future__ import annotations

from collections.abc import Callable
import dataclasses
import json
import math
from pathlib import Path
import time

import jax
import numpy as np

from vae_jax import checkpointing, data, evaluate, files, metrics, scoring, train

EVAL_DIR = "eval"


@dataclasses.dataclass(frozen=True)
class Evaluator:
  """name; fn(workdir, **params) -> dict; arrays: the result holds per-example arrays (.npz)."""
  name: str
  fn: Callable[..., dict]
  arrays: bool = False


REGISTRY: dict[str, Evaluator] = {}


def register(name: str, *, arrays: bool = False):
  """Decorator: adds fn(workdir, **params) -> dict to REGISTRY under `name`."""
  def add(fn):
    REGISTRY[name] = Evaluator(name, fn, arrays)
    return fn
  return add


def cache_path(workdir: str | Path, name: str) -> Path:
  """<workdir>/eval/<name>.json, or .npz for an evaluator of arrays."""
  return Path(workdir) / EVAL_DIR / f"{name}.{'npz' if REGISTRY[name].arrays else 'json'}"


def _checkpoint_digest(workdir: Path) -> str | None:
  """Digest of the checkpoint a run's results come from (None: a record without checkpoints,
  whose cache is trusted as it is)."""
  directory = checkpointing.BEST if checkpointing.latest_epoch(
      workdir, checkpointing.BEST) is not None else checkpointing.LATEST
  if checkpointing.latest_epoch(workdir, directory) is None:
    return None
  return checkpointing.restore_meta(workdir, directory=directory)[1].get("digest")


def _read(path: Path, arrays: bool) -> tuple[dict, dict] | None:
  """(key, result) of a cache file, None when there is none or it is unreadable."""
  try:
    if arrays:
      with np.load(path) as saved:
        key = json.loads(str(saved["__key__"]))
        return key, {k: saved[k] for k in saved.files if k != "__key__"}
    saved = json.loads(path.read_text())
    return saved["key"], saved["result"]
  except (OSError, ValueError, KeyError):
    return None


def _write(path: Path, key: dict, result: dict, arrays: bool) -> None:
  """Writes the cache to a temporary file and renames it: a reader sees the old or the new."""
  path.parent.mkdir(parents=True, exist_ok=True)
  if arrays:
    files.write_npz(path, __key__=json.dumps(key), **result)
  else:
    files.write_json(path, {"key": key, "result": result}, indent=2)


def evaluate_run(workdir: str | Path, name: str, *, options: dict | None = None,
                 **params) -> dict:
  """Evaluator `name`'s result for the run in `workdir` with `params` (JSON values): from
  <workdir>/eval/ when it was computed with the same params on the same checkpoint, else
  computed now and cached. `options` go to the evaluator but not into the cache key (e.g.
  progress=True).

  Raises:
    ValueError: unknown evaluator. The evaluator's own errors (e.g. CheckpointError: no run).
  """
  if name not in REGISTRY:
    raise ValueError(f"unknown evaluator {name!r}; choose one of {', '.join(sorted(REGISTRY))}")
  workdir, evaluator = Path(workdir), REGISTRY[name]
  path = cache_path(workdir, name)
  key = {"params": json.loads(json.dumps(params)), "checkpoint": _checkpoint_digest(workdir)}
  saved = _read(path, evaluator.arrays) if path.is_file() else None
  if saved is not None and saved[0]["params"] == key["params"] and (
      key["checkpoint"] is None or saved[0]["checkpoint"] == key["checkpoint"]):
    return saved[1]
  result = evaluator.fn(workdir, **params, **(options or {}))
  _write(path, key, result, evaluator.arrays)
  return result


def _test_set(config, images: int | None = None):
  """The run's test split, first `images` rows, on the device."""
  x, y = data.test_split(config.data)
  return jax.device_put({"image": x[:images], "label": y[:images]})


@register("test_means")
def test_means(workdir: Path, run: evaluate.RestoredRun | None = None) -> dict:
  """{'epoch', 'eval/<term>'}: exact per-image means of the objective's eval terms over the whole
  test set (nats per image for a normalized likelihood), batch b keyed fold_in(keys.eval, b).
  `run`: the workdir's evaluate.restore_run, when the caller restored it already."""
  run = evaluate.restore_run(workdir) if run is None else run
  config = run.config
  values = jax.jit(lambda p, ds: evaluate.evaluate_dataset(
      evaluate.eval_per_example(run.objective), p, ds, run.keys.eval,
      train.hparams_from_config(config), batch_size=config.eval.batch_size,
      unroll=config.train.steps_per_call > 0))(run.params, _test_set(config))
  return {"epoch": run.epoch, **{f"eval/{k}": float(v) for k, v in values.items()}}


@register("iw_nll")
def iw_nll(workdir: Path, k: int, images: int | None = None, likelihood: str | None = None,
           progress: bool = False, run: evaluate.RestoredRun | None = None) -> dict:
  """{'k', 'images', 'nll' (nats per image), 'bits_per_dim', 'seconds'}: the IW-NLL with K = k
  of the first `images` test images (None: all), noise fold_in(keys.eval, 1) as the run's own;
  `likelihood` (e.g. 'bernoulli') scores the trained decoder's means under another likelihood.
  `run`: the workdir's evaluate.restore_run, when the caller restored it already.

  Raises:
    ValueError: k < 1 or a run without a posterior.
  """
  run = evaluate.restore_run(workdir) if run is None else run
  config, objective = run.config, run.objective
  if not objective.has_posterior:
    raise ValueError(f"{workdir} holds a model.kind={config.model.kind} run: no posterior")
  if likelihood:
    objective = objective.replace(likelihood=likelihood)
  test = _test_set(config, images)
  start = time.perf_counter()
  nll, compile_seconds = evaluate.iw_nll(
      objective, run.params, test, jax.random.fold_in(run.keys.eval, 1), num_samples=k,
      batch_size=config.eval.iw_batch_size, chunk_size=config.eval.iw_chunk_size,
      unroll=config.train.steps_per_call > 0, progress=progress)
  n = len(test["image"])
  return {"k": k, "images": n, "nll": nll,
          "bits_per_dim": nll / (math.prod(test["image"].shape[1:]) * math.log(2.0)),
          "seconds": time.perf_counter() - start - compile_seconds}


@register("scores", arrays=True)
def scores(workdir: Path, k: int, sets: list[str]) -> dict:
  """{'<set>/<score>': float64 [N], 'seconds'}: per-image scores (evaluate.per_example_scores:
  'neg_elbo', 'recon', 'nll_iw' with K = k) of the whole test split of each dataset variant in
  `sets` (set i keyed fold_in(keys.eval, 100 + i))."""
  run = evaluate.restore_run(workdir)
  start, out = time.perf_counter(), {}
  for i, name in enumerate(sets):
    x, y = data.test_split(run.config.data, name)
    values = evaluate.per_example_scores(run.objective, run.params, x, y,
                                         jax.random.fold_in(run.keys.eval, 100 + i),
                                         iw_samples=k, chunk_size=run.config.eval.iw_chunk_size)
    out |= {f"{name}/{s}": values[s] for s in ("nll_iw", "neg_elbo", "recon")}
  return out | {"seconds": np.float64(time.perf_counter() - start)}


@register("fid_is")
def fid_is(workdir: Path, n: int = 10000, seed: int = 0, classifier: str | None = None,
           classifier_hash: str | None = None, of: str = "prior", loaded=None) -> dict:
  """scoring.score_run's dict (classifier-FID / IS of n prior samples, or of='reconstructions');
  `classifier_hash` (the classifier's metrics.params_hash) only keys the cache; `loaded`:
  scoring.load_classifier(classifier) when the caller holds it already."""
  del classifier_hash
  return scoring.score_run(workdir, n, classifier, seed, classifier=loaded, of=of)


@register("fid_is_over_training")
def fid_is_over_training(workdir: Path, n: int = 10000, seed: int = 0,
                         classifier: str | None = None, classifier_hash: str | None = None,
                         of: str = "prior", loaded=None) -> dict:
  """{'scores': scoring.score_over_training's dicts, oldest epoch first}; `classifier_hash` and
  `loaded` as fid_is."""
  del classifier_hash
  return {"scores": scoring.score_over_training(workdir, n, classifier, seed, of=of,
                                                classifier=loaded)}


def _score(workdir: str | Path, name: str, classifier_dir: str | Path | None, **params):
  """Evaluator `name` ('fid_is' or 'fid_is_over_training') keyed by the classifier's directory
  (default: the run's dataset's) and params hash; the classifier is loaded once, for the hash
  and, when the cache misses, for the scores.

  Raises:
    checkpointing.CheckpointError: `workdir` is not a run directory (or, over training, holds no
      checkpoint). ScoreError: as scoring.score_run.
  """
  clf_dir = Path(classifier_dir) if classifier_dir else scoring.default_classifier_dir(
      evaluate.run_config(workdir).data.name)
  loaded = scoring.load_classifier(clf_dir)
  return evaluate_run(workdir, name, options={"loaded": loaded}, classifier=str(clf_dir),
                      classifier_hash=metrics.params_hash(loaded[2]), **params)


def cached_score(workdir: str | Path, n: int = 10000, classifier_dir: str | Path | None = None,
                 seed: int = 0, of: str = "prior") -> dict:
  """The 'fid_is' evaluator (scoring.score_run's dict), reused while the classifier (by its
  params hash), n, seed and `of` are the same: study reports and `vae-jax score` repeat without
  rescoring.

  Raises:
    ScoreError: as scoring.score_run. checkpointing.CheckpointError: no run in `workdir`.
  """
  return _score(workdir, "fid_is", classifier_dir, n=n, seed=seed, of=of)


def cached_scores_over_training(workdir: str | Path, n: int = 10000,
                                classifier_dir: str | Path | None = None, seed: int = 0,
                                of: str = "prior") -> list[dict]:
  """The 'fid_is_over_training' evaluator's dicts (one per kept checkpoint, oldest first),
  cached as cached_score.

  Raises:
    ScoreError: as scoring.score_run. checkpointing.CheckpointError: no run or no checkpoint.
  """
  return _score(workdir, "fid_is_over_training", classifier_dir, n=n, seed=seed, of=of)["scores"]
