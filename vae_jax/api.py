"""The public training API: `fit` a model on your own data, `load_run` it back, `iw_nll` it.

    import optax, vae_jax
    from vae_jax import models, objectives
    model = models.VAE(models.MLPEncoder(widths=(256,), latent_dim=8),
                       models.MLPDecoder(widths=(256,), image_shape=(16, 16, 1)))
    result = vae_jax.fit(objectives.VAEObjective(model), optax.adam(1e-3), images,
                         epochs=5, batch_size=64, workdir="runs/mine")
    nll = vae_jax.iw_nll(objectives.VAEObjective(model), result.params, test_images, k=100)

`fit` runs the one training loop (loop.py) with the hooks of hooks.py: the same programs, PRNG
streams, checkpoints and resume as `vae-jax train`, for any objective over any flax module.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
import contextlib
import hashlib
import json
from pathlib import Path
import shutil
import statistics
import time
from typing import Any, NamedTuple

import jax

from vae_jax import (checkpointing, evaluate, files, hooks as hooks_lib, locking,
                     loop as loop_lib, models, parallel, run_log, streaming, train)
from vae_jax.data import sources
from vae_jax.errors import CheckpointError, DataError, RunError

FIT_FILE = "fit.json"  # What a fit run directory was trained with (config.json for config runs).
CONFIG_FILE = "config.json"
# fit.json fields that may change between a run and its resumption.
RESUMABLE = ("epochs",)


class FitResult(NamedTuple):
  """What `fit` returns.

  params: the trained param pytree (of the last epoch; with early stopping of the best one).
  opt_state: the optimizer state that goes with them. With
  `vae_jax.optimizers.track_params_ema(decay)` last in the optimizer's chain, the metrics are of
  the params' EMA: `eval_params` gives it.
  history: one dict per epoch (metrics.jsonl's rows: 'train/loss', 'eval/loss', ... in nats per
  image for a normalized likelihood; 'epoch_seconds' in seconds). summary: the last epoch's
  metrics, sizes and timings (summary.json). workdir: the run directory, or None.
  """
  params: Any
  opt_state: Any
  history: list[dict]
  summary: dict
  workdir: Path | None

  @property
  def eval_params(self):
    """The params the metrics were computed with: the EMA when the optimizer tracks one."""
    return train.eval_params(self.params, self.opt_state)


def _describe(objective, image_shape) -> str:
  """What identifies an objective and its model in fit.json: class names, likelihood,
  preprocessing and the SHA-256 of the param tree's paths, shapes and dtypes (not `repr`, which
  may hold addresses of a user module's initializers)."""
  shape = tuple(int(s) for s in image_shape)
  shapes = jax.eval_shape(lambda key: objective.init_params(key, shape), jax.random.key(0))
  tree = ";".join(f"{jax.tree_util.keystr(path)}:{leaf.shape}:{leaf.dtype}"
                  for path, leaf in jax.tree_util.tree_leaves_with_path(shapes))
  return (f"{type(objective).__name__}({type(objective.model).__name__}, likelihood="
          f"{getattr(objective, 'likelihood', None)}, preprocess="
          f"{getattr(objective, 'preprocess', None)}, params sha256 "
          f"{hashlib.sha256(tree.encode()).hexdigest()[:16]})")


def _fit_spec(objective, source, *, epochs, batch_size, seed, hparams) -> dict:
  """fit.json: what identifies the run (a resumed fit must match it but for RESUMABLE)."""
  return {"objective": _describe(objective, source.image_shape),
          "image_shape": list(source.image_shape),
          "train_images": len(source), "epochs": epochs, "batch_size": batch_size,
          "seed": seed, "hparams": {k: float(v) for k, v in hparams._asdict().items()
                                      if k != "steps_per_epoch"}}  # Derived from the two above.


def _check_workdir(workdir: Path, spec: dict, resume: bool) -> bool:
  """Whether fit resumes from `workdir` (False: a fresh start).

  Raises:
    RunError: the directory holds something else (a config run, another fit, foreign files),
      a checkpoint without resume, or resume without a checkpoint.
  """
  if (workdir / CONFIG_FILE).exists():
    raise RunError(f"{workdir} holds a run made by vae-jax train; pass another workdir to fit")
  problem = files.not_ours(workdir, FIT_FILE)
  if problem:
    raise RunError(f"workdir {workdir}: {problem}; pass a new or empty directory you can write to")
  saved = workdir / FIT_FILE
  if not saved.exists():
    if resume:
      raise RunError(f"resume=True but {workdir} holds no run; drop resume to start fresh")
    return False
  try:
    old = json.loads(saved.read_text())
    defaults = {k: float(v) for k, v in train.Hparams()._asdict().items()}
    old["hparams"] = {k: old["hparams"].get(k, defaults[k])  # Fields added since: defaults.
                      for k in spec["hparams"]}
  except (ValueError, KeyError, TypeError):
    raise RunError(f"{saved} is unreadable; delete {workdir} or pass another workdir") from None
  if checkpointing.latest_epoch(workdir) is None:
    return False  # Killed before its first checkpoint: start afresh.
  changed = sorted(k for k in set(old) | set(spec)
                   if k not in RESUMABLE and old.get(k) != spec.get(k))
  if changed:
    raise RunError(f"{workdir} holds a fit of another model or data (differs in "
                   f"{', '.join(changed)}); pass another workdir or delete that one")
  if not resume:
    raise RunError(f"{workdir} already holds a checkpoint; pass resume=True to continue it or "
                   "use another workdir")
  return True


def _validate(objective, source, eval_source, epochs, batch_size):
  if not isinstance(epochs, int) or epochs < 1:
    raise RunError(f"epochs must be a positive int, got {epochs!r}; pass epochs=10")
  if not isinstance(batch_size, int) or not 1 <= batch_size <= len(source):
    raise RunError(f"batch_size={batch_size!r} must be an int in [1, {len(source)}] (the "
                   "training images); lower it")
  if eval_source is not None and eval_source.image_shape != source.image_shape:
    raise DataError(f"eval_data images are {eval_source.image_shape}, train_data images "
                    f"{source.image_shape}; pass images of one shape")
  k = objective.num_classes
  for name, s in (("train_data", source), ("eval_data", eval_source)):
    if s is not None and k and (s.labels.min() < 0 or s.labels.max() >= k):
      raise DataError(f"{type(objective.model).__name__} reads labels in [0, {k}) but "
                      f"{name} has labels in [{s.labels.min()}, {s.labels.max()}]; pass "
                      "labels=... with class ids")


def fit(objective, optimizer, train_data, *, eval_data=None, epochs: int, batch_size: int,
        seed: int = 0, workdir: str | Path | None = None, resume: bool = False,
        hooks: Sequence[loop_lib.Hook] | None = None, progress: bool = True,
        eval_batch_size: int = 500, early_stopping: hooks_lib.EarlyStopping | None = None,
        hparams: train.Hparams | Mapping[str, float] | None = None) -> FitResult:
  """Trains `objective`'s model with `optimizer` on `train_data`: the one training loop of
  vae_jax (a `lax.scan` epoch of jitted, pure steps; exact masked evaluation).

  Each epoch draws a fresh permutation (the last partial batch dropped) from `seed`, so a run
  is a function of (objective, optimizer, data, seed) and a resumed run continues exactly as an
  uninterrupted one. Steps with a non-finite loss or gradient are skipped; 100 in a row raise.

  Args:
    objective: e.g. objectives.VAEObjective(model) (any object with the objective protocol,
      objectives.Objective). optimizer: an optax.GradientTransformation.
    train_data, eval_data: images as sources.as_source takes them: a Source, an array
      [N, H, W(, C)] (uint8, or float in [0, 1]), an (images, labels) tuple, or an iterable of
      batches (tf.data.Dataset). eval_data, if given, is evaluated exactly after every epoch
      ('eval/loss', ... per image).
    epochs: the last epoch to train (a resumed run continues up to it). batch_size: images per
      step. seed: of init, data order and noise.
    workdir: a run directory (fit.json, metrics.jsonl, summary.json, TensorBoard events,
      checkpoints of the last two epochs) or None (nothing written). resume: continue the run
      in workdir from its newest good checkpoint.
    hooks: more loop.Hook objects, run after the built-in ones (hooks.py).
    early_stopping: e.g. hooks.EarlyStopping(patience=5, metric="eval/loss", min_delta=0.5):
      training stops `patience` epochs after the last improvement, the result holds the params
      of the best epoch, and with a workdir its checkpoint is kept in best/ (resume replays it).
    hparams: the traced hyperparameters (train.Hparams, or a mapping of some of its fields):
      beta (KL weight, default 1.0), and lr / weight_decay read by train.make_optimizer's
      optimizers only, and the schedules of vae_jax.schedules in epochs (kl_warmup_epochs,
      beta_cycle_epochs, free_bits, lr_warmup_epochs, lr_decay_epochs, clip_norm, ...);
      steps_per_epoch is set from the data and batch size.
  Returns:
    FitResult.
  Raises:
    DataError: bad images or labels. RunError: bad epochs / batch_size, a workdir that holds
      something else (or a checkpoint without resume), or 100 non-finite steps in a row.
    CheckpointError: resume finds no good checkpoint. LockedError: another live process trains
      in workdir.
  """
  source = sources.as_source(train_data)
  eval_source = None if eval_data is None else sources.as_source(eval_data)
  _validate(objective, source, eval_source, epochs, batch_size)
  given = hparams._asdict() if isinstance(hparams, train.Hparams) else dict(hparams or {})
  hp = train.Hparams.of(**given | {"steps_per_epoch": len(source) // batch_size})
  spec = _fit_spec(objective, source, epochs=epochs, batch_size=batch_size, seed=seed,
                   hparams=hp)
  if early_stopping is not None:
    spec["early_stopping"] = [early_stopping.patience, early_stopping.metric,
                              early_stopping.min_delta]
  workdir = None if workdir is None else Path(workdir)
  resumed = False
  if workdir is not None:
    locking.check_free(workdir)
    resumed = _check_workdir(workdir, spec, resume)
  host = {"train": source.as_dict()}
  if eval_source is not None:
    host["test"] = eval_source.as_dict()
  on_device = streaming.keeps_on_device("auto", host)
  layout = parallel.Layout(None)
  runs = loop_lib.Runs(1)
  programs = loop_lib.Programs(
      lambda widths: objective, optimizer, batch_size=batch_size,
      eval_batch_size=min(eval_batch_size, len(eval_source or source)),
      num_classes=objective.num_classes, on_device=on_device)
  loop = loop_lib.Loop(programs=programs, tx=optimizer, keys=train.RunKeys.from_seed(seed),
                       hparams=hp, runs=runs, layout=layout, image_shape=source.image_shape,
                       data=parallel.put(host, None) if on_device else host, epochs=epochs)
  created = workdir is not None and not workdir.exists()
  if workdir is not None:
    workdir.mkdir(parents=True, exist_ok=True)
  try:
    with locking.hold([workdir]) if workdir is not None else contextlib.nullcontext():
      return _fit(loop, spec, workdir, resumed, progress, list(hooks or ()), early_stopping)
  except BaseException:
    if created and checkpointing.latest_epoch(workdir) is None:
      shutil.rmtree(workdir, ignore_errors=True)  # Nothing worth keeping: no half-written run.
    raise


def _fit(loop, spec, workdir, resumed, progress, extra, stopping) -> FitResult:
  start = time.perf_counter()
  state = loop_lib.initial_state(loop, None, fresh=not resumed)
  if resumed:
    state = hooks_lib.resume_state(loop, state, [workdir], stopping)
  parts = [hooks_lib.NonFiniteGuard(100), *([stopping] if stopping else [])]
  logs = []
  if workdir is not None:
    logs = [run_log.RunLog(workdir)]
    parts.insert(0, hooks_lib.MetricsLog(logs, [spec], FIT_FILE))
    parts.append(hooks_lib.Checkpointer([workdir], stopping=stopping))
  parts += [hooks_lib.Progress(progress), *extra]
  try:
    state = loop_lib.run(loop, state, parts)
    return _fit_result(loop, state, spec, workdir, stopping, logs, start)
  finally:
    for log in logs:
      log.close()


def _fit_result(loop, state, spec, workdir, stopping, logs, start) -> FitResult:
  """The FitResult of the finished loop; its summary also goes to summary.json (and TensorBoard)
  through `logs`."""
  history = list(state.history[0])
  compile_seconds, compiles = loop.programs.totals()
  es = state.stopping[0]
  best_epoch, reported = loop_lib.reported_epoch(history, es, stopping is not None)
  final = state.best if stopping else state.train
  summary = {
      "epoch": state.epoch,
      "best_epoch": best_epoch,
      "stopped_epoch": es.stopped_epoch or None,
      **{k: v for k, v in reported.items() if "/" in k},
      "param_count": models.param_count(state.train.params),
      "median_epoch_seconds": (statistics.median(r["epoch_seconds"] for r in history)
                               if history else None),
      "compile_seconds": compile_seconds, "compiles": compiles,
      "seed": spec["seed"],
      "wall_seconds": state.elapsed + time.perf_counter() - start,
  }
  for log in logs:
    log.finish(summary, workdir / "figures", [])
  return FitResult(final.params, final.opt_state, history, summary, workdir)


def load_run(workdir: str | Path, objective=None, optimizer=None) -> evaluate.RestoredRun:
  """A trained run read back from its run directory.

  A run of `vae-jax train` (config.json) rebuilds its objective from its config (its best
  checkpoint with early stopping, else its latest); a run of `fit` (fit.json) needs the
  `objective` and `optimizer` it was trained with (its model is code, not config) and reads its
  latest checkpoint.

  Returns:
    evaluate.RestoredRun(config, objective, params, keys, epoch); config is fit.json's dict for
    a fit run.
  Raises:
    CheckpointError: not a run directory, no or unreadable checkpoint.
    RunError: a fit run without its objective and optimizer, or with another objective.
  """
  workdir = Path(workdir)
  if (workdir / CONFIG_FILE).is_file():
    return evaluate.restore_run(workdir)
  if not (workdir / FIT_FILE).is_file():
    raise CheckpointError(f"{workdir} is not a run directory (no {CONFIG_FILE} or {FIT_FILE}); "
                          "pass the workdir of a run made by vae_jax.fit or vae-jax train")
  spec = json.loads((workdir / FIT_FILE).read_text())
  if objective is None or optimizer is None:
    raise RunError(f"{workdir} was trained by vae_jax.fit; pass the objective and optimizer it "
                   "was trained with: load_run(workdir, objective, optimizer)")
  if _describe(objective, spec["image_shape"]) != spec["objective"]:
    raise RunError(f"{workdir} was trained with another objective ({spec['objective'][:80]}"
                   "...); pass the one it was trained with")
  epoch, meta = checkpointing.restore_meta(workdir)
  hparams = train.Hparams.of(**spec["hparams"])
  abstract = evaluate.abstract_state(objective, optimizer, tuple(spec["image_shape"]), hparams)
  state = checkpointing.restore_state(workdir, epoch, abstract,
                                      expected_digest=meta.get("digest"))
  return evaluate.RestoredRun(spec, objective, train.eval_params(state.params, state.opt_state),
                              train.RunKeys.from_seed(spec["seed"]), epoch)


def iw_nll(objective, params, data, *, k: int, seed: int = 0, batch_size: int = 100,
           chunk_size: int = 100, progress: bool = False) -> float:
  """The IW-NLL estimate -IWAE_K (Burda et al., 2016) of a trained VAE / CVAE over `data`
  (anything sources.as_source takes), in nats per image: an upper bound on -log p(x) that
  tightens as K grows (K = 5000 is the usual estimate).

  Raises:
    ValueError: k < 1, or an objective without a posterior (an autoencoder, a classifier).
    DataError: bad images (sources.from_arrays).
  """
  if not getattr(objective, "has_posterior", False):
    raise ValueError(f"{type(objective).__name__} has no posterior to importance-sample; "
                     "IW-NLL needs a VAE or CVAE objective")
  if k < 1:
    raise ValueError(f"k must be >= 1, got {k}")
  source = sources.as_source(data)
  dataset = jax.device_put(source.as_dict())
  nll, _ = evaluate.iw_nll(objective, params, dataset, jax.random.key(seed), num_samples=k,
                           batch_size=min(batch_size, len(source)),
                           chunk_size=min(chunk_size, k), progress=progress)
  return nll
