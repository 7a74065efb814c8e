"""`train_and_evaluate(config, workdir)`: the run directory contract shared by every study.

<workdir>/config.json     resolved config, written first
<workdir>/metrics.jsonl   one line per epoch (nats per image; epoch_seconds in seconds)
<workdir>/summary.json    final metrics, IW-NLL and its K, sizes, timings, device, versions, seed
<workdir>/figures/*.png   loss curves, reconstructions, prior samples, latent scatter, manifold
<workdir>/ckpt/<epoch>/   orbax checkpoints (params, optimizer state, epoch)
"""

from __future__ import annotations

import json
import platform
import shutil
import statistics
import time
from importlib import metadata
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import tqdm

from vae_jax import checkpointing, config as config_lib, data, evaluate, growth, models, train

# Config fields that may change between a run and its resumption.
RESUMABLE_CHANGES = ("train.epochs",)


class RunError(RuntimeError):
  """A run cannot start; str(e) is one line naming the problem and the fix."""


def load_data(config) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """{'train', 'test'[, 'val']} -> (uint8 images [N, H, W, C], int32 labels [N]) on the host.

  Raises:
    data.DataError: dataset missing or bad sizes.
  """
  d = config.data
  train_x, train_y = data.load_split(d.name, "train", d.data_dir or None)
  splits = {}
  if d.validation_size:
    if d.validation_size >= len(train_x):
      raise data.DataError(f"data.validation_size={d.validation_size} must be below the "
                           f"{len(train_x)} training images; lower --config.data.validation_size")
    (train_x, train_y), splits["val"] = data.validation_split(train_x, train_y, d.validation_size,
                                                              d.validation_seed)
  if d.train_subset:
    train_x, train_y = train_x[: d.train_subset], train_y[: d.train_subset]
  if len(train_x) < config.train.batch_size:
    raise data.DataError(f"train.batch_size={config.train.batch_size} exceeds the "
                         f"{len(train_x)} training images; lower --config.train.batch_size")
  splits["train"] = (train_x, train_y)
  splits["test"] = data.load_split(d.name, "test", d.data_dir or None)
  return splits


def _check_workdir(config, workdir: Path, resume: bool) -> int | None:
  """Returns the epoch to resume from (None = fresh start). Raises RunError on conflicts."""
  saved = workdir / "config.json"
  latest = checkpointing.latest_epoch(workdir)
  if saved.exists() and latest is not None:
    # Fields added to the library after the run was written count as their defaults.
    old = _merged(json.loads(config_lib.to_json(config_lib.base_config())),
                  json.loads(saved.read_text()))
    new = json.loads(config_lib.to_json(config))
    changed = [k for k in _diff(old, new) if k not in RESUMABLE_CHANGES]
    if changed:
      raise RunError(f"{workdir} holds a checkpoint of another config (differs in "
                     f"{', '.join(changed)}); use another --workdir or delete that one")
    if not resume:
      raise RunError(f"{workdir} already holds a checkpoint (epoch {latest}); pass --resume to "
                     "continue it or use another --workdir")
    return latest
  if resume:
    raise RunError(f"--resume given but {workdir} has no checkpoint; drop --resume to start fresh")
  return None


def _merged(base: dict, override: dict) -> dict:
  """`override` with the fields only `base` has filled in (recursively)."""
  out = dict(base)
  for k, v in override.items():
    out[k] = _merged(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
  return out


def _diff(old: dict, new: dict, prefix: str = "") -> list[str]:
  keys = []
  for k in sorted(set(old) | set(new)):
    a, b = old.get(k), new.get(k)
    if isinstance(a, dict) and isinstance(b, dict):
      keys += _diff(a, b, f"{prefix}{k}.")
    elif a != b:
      keys.append(f"{prefix}{k}")
  return keys


def _versions() -> dict[str, str]:
  names = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "tensorflow-datasets", "numpy")
  return {n: metadata.version(n) for n in names} | {"python": platform.python_version()}


def _read_metrics(path: Path, upto_epoch: int) -> list[dict]:
  if not path.exists():
    return []
  rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
  return [r for r in rows if r["epoch"] <= upto_epoch]


def _write_lines(path: Path, rows: list[dict]) -> None:
  path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def train_and_evaluate(config, workdir: str | Path, *, resume: bool = False,
                       progress: bool = True) -> dict:
  """Trains and evaluates one run; returns the summary dict (also written to summary.json).

  Everything the user can get wrong is checked before the run directory is created.

  Raises:
    config_lib.ConfigError, data.DataError, RunError, checkpointing.CheckpointError.
  """
  return _train_group(config, [config.seed], [Path(workdir)], resume, progress, False)[0]


def train_and_evaluate_seeds(config, seeds, workdirs, *, resume: bool = False,
                             progress: bool = True) -> list[dict]:
  """Trains one run per seed, all seeds in ONE compiled program (`jax.vmap` over a leading seed
  axis of params, optimizer state and PRNG keys; the device-resident data is shared).

  Each run still gets its own run directory with the contract above (config.json with its seed,
  metrics.jsonl, summary.json, figures, checkpoints), so `vae-jax evaluate` / `sample` / resume
  work on each, and the results equal `train_and_evaluate` seed by seed up to float rounding.
  epoch_seconds is the time of the whole vmapped epoch (all seeds).

  Args:
    seeds: distinct ints; config.seed is ignored. workdirs: one distinct directory per seed.
  Returns:
    the summaries, in the order of `seeds`.
  Raises:
    as train_and_evaluate; RunError also for growth (shapes change during training, so seeds
    cannot share a program), mismatched seeds/workdirs, or checkpoints at different epochs.
  """
  seeds, workdirs = [int(s) for s in seeds], [Path(w) for w in workdirs]
  if not seeds or len(seeds) != len(workdirs) or len(set(seeds)) != len(seeds) or len(
      {w.absolute() for w in workdirs}) != len(workdirs):
    raise RunError(f"need one distinct workdir per distinct seed, got seeds {seeds} and "
                   f"{len(workdirs)} workdirs; pass as many distinct --workdirs as seeds")
  if config.growth.enabled:
    raise RunError("growth.enabled changes shapes during training, so seeds cannot share one "
                   "vmapped program; train each seed with train_and_evaluate")
  return _train_group(config, seeds, workdirs, resume, progress, True)


def _train_group(config, seeds, workdirs, resume, progress, seeds_axis) -> list[dict]:
  config_lib.validate(config)
  configs = []
  for seed in seeds:
    c = config.copy_and_resolve_references()
    c.seed = seed
    configs.append(c)
  starts = {_check_workdir(c, w, resume) for c, w in zip(configs, workdirs)}
  if len(starts) > 1:
    raise RunError(f"the run directories hold checkpoints of different epochs "
                   f"({sorted(starts, key=str)}); resume them one seed at a time or delete them")
  splits = load_data(config)
  created = [not w.exists() for w in workdirs]
  for w in workdirs:
    w.mkdir(parents=True, exist_ok=True)
  try:
    return _run(configs, workdirs, splits, starts.pop(), progress, seeds_axis)
  except BaseException:
    for w, new in zip(workdirs, created):
      if new and checkpointing.latest_epoch(w) is None:
        shutil.rmtree(w, ignore_errors=True)  # Nothing worth keeping: no half-written run.
    raise


def widths_by_epoch(config) -> dict[int, tuple[int, ...]]:
  """Encoder hidden widths used in each epoch 1..train.epochs (constant unless growth.enabled)."""
  start = tuple(config.model.encoder_widths)
  g = config.growth
  if not g.enabled:
    return {e: start for e in range(1, config.train.epochs + 1)}
  return growth.schedule(start, config.train.epochs, every_epochs=g.every_epochs,
                         increments=g.increments, final=g.final_widths, narrow_at=g.narrow_at,
                         narrow_to=g.narrow_to)


class _Programs:
  """Model, objective and compiled programs per encoder-width configuration (built on demand)."""

  def __init__(self, config, image_shape, tx, num_classes, seeds_axis):
    self.config, self.image_shape, self.tx, self.cache = config, image_shape, tx, {}
    self.num_classes, self.seeds_axis = num_classes, seeds_axis

  def __call__(self, widths):
    if widths not in self.cache:
      c = self.config
      objective = train.objective_from_config(c, self.image_shape, widths)
      programs = train.make_programs(objective, self.tx, batch_size=c.train.batch_size,
                                     eval_batch_size=c.eval.batch_size,
                                     elbo_samples=c.eval.elbo_samples,
                                     num_classes=self.num_classes, seeds_axis=self.seeds_axis)
      self.cache[widths] = (objective, programs)
    return self.cache[widths]

  def totals(self):
    programs = [p for _, ps in self.cache.values() for p in ps.values()]
    return sum(p.compile_seconds for p in programs), sum(p.compiles for p in programs)


def _seed_slice(tree, i: int, seeds_axis: bool):
  """Run i of a seed-stacked pytree (the tree itself when there is no seed axis)."""
  return jax.tree.map(lambda a: a[i], tree) if seeds_axis else tree


def _num_classes(labels: np.ndarray) -> int:
  """Classes for per-class metrics: max label + 1, or 0 when the data has no labels (-1)."""
  return int(labels.max()) + 1 if len(labels) and labels.min() >= 0 else 0


def _run(configs, workdirs, splits, start_epoch, progress, seeds_axis) -> list[dict]:
  """The training loop of every study: S = len(configs) runs (S = 1 unless seeds_axis)."""
  run_start = time.perf_counter()
  config = configs[0]  # The runs differ only in seed.
  for c, w in zip(configs, workdirs):
    (w / "config.json").write_text(config_lib.to_json(c))
  seeds = jnp.asarray([c.seed for c in configs])
  keys = jax.vmap(train.RunKeys.from_seed)(seeds) if seeds_axis else train.RunKeys.from_seed(
      config.seed)
  tx = train.make_optimizer(config.optim.name, config.optim.lr, config.optim.weight_decay)
  image_shape = splits["train"][0].shape[1:]
  device = {name: jax.device_put(x) for name, (x, _) in splits.items()}
  test_labels = splits["test"][1]
  num_classes = _num_classes(test_labels)
  schedule = widths_by_epoch(config)
  build = _Programs(config, image_shape, tx, max(num_classes, 1), seeds_axis)

  widths = schedule[1]
  history: list[list[dict]] = [[] for _ in workdirs]
  epoch = 0
  if start_epoch is None:
    init = lambda k: train.create_train_state(  # noqa: E731
        models.init_params(build(widths)[0].model, k, image_shape), tx)
    state = jax.vmap(init)(keys.init) if seeds_axis else init(keys.init)
  else:
    epoch, meta = checkpointing.restore_meta(workdirs[0], start_epoch)
    widths = tuple(meta.get("encoder_widths", widths))
    model = build(widths)[0].model
    abstract = jax.eval_shape(lambda: train.create_train_state(
        models.init_params(model, jax.random.key(0), image_shape), tx))
    states = [checkpointing.restore_state(w, epoch, abstract) for w in workdirs]
    state = jax.tree.map(lambda *xs: jnp.stack(xs), *states) if seeds_axis else states[0]
    history = [_read_metrics(w / "metrics.jsonl", epoch) for w in workdirs]
  for w, rows in zip(workdirs, history):
    _write_lines(w / "metrics.jsonl", rows)

  mngrs = [checkpointing.manager(w) for w in workdirs]
  g = config.growth
  bar = tqdm.tqdm(range(epoch + 1, config.train.epochs + 1), desc="train", unit="epoch",
                  disable=not progress, dynamic_ncols=True)
  for epoch in bar:
    row = {}  # Values are [S] arrays with a seed axis, scalars without.
    if schedule[epoch] != widths:  # A growth event: pytree surgery on params and optimizer state.
      widths = schedule[epoch]
      params, opt_state = growth.resize_encoder(
          state.params, state.opt_state, widths, jax.random.fold_in(keys.init, epoch), tx=tx,
          outgoing_init=g.outgoing_init, keep=g.keep, optimizer=g.optimizer)
      state = state.replace(params=params, opt_state=opt_state)
      # Test loss right after the surgery, before any step: the jump the growth step itself causes.
      values = build(widths)[1]["eval"](state.params, device["test"], keys.eval)
      row["eval/loss_at_growth"] = values["loss"]
    objective, programs = build(widths)
    compiled_before = programs["epoch"].compile_seconds
    start = time.perf_counter()
    state, train_metrics = programs["epoch"](state, device["train"], keys, jnp.int32(epoch))
    train_metrics = jax.device_get(train_metrics)
    epoch_seconds = (time.perf_counter() - start
                     - (programs["epoch"].compile_seconds - compiled_before))
    row |= {f"train/{k}": v for k, v in train_metrics.items()}
    for split in ("val", "test") if "val" in device else ("test",):
      prefix = "eval" if split == "test" else "val"
      values = jax.device_get(programs["eval"](state.params, device[split], keys.eval))
      row |= {f"{prefix}/{k}": v for k, v in values.items()}
    param_count = models.param_count(state.params) // len(workdirs)  # Per run (shapes only).
    for i, w in enumerate(workdirs):
      row_i = {"epoch": epoch}
      row_i |= {k: float(_seed_slice(v, i, seeds_axis)) for k, v in row.items()}
      row_i |= {"encoder_widths": list(widths), "param_count": param_count,
                "epoch_seconds": epoch_seconds, "seeds_in_program": len(workdirs)}
      history[i].append(row_i)
      with (w / "metrics.jsonl").open("a") as f:
        f.write(json.dumps(row_i) + "\n")
    bar.set_postfix(train=f"{np.mean(row['train/loss']):.2f}",
                    test=f"{np.mean(row['eval/loss']):.2f}")
    if epoch % config.train.checkpoint_every == 0 or epoch == config.train.epochs:
      for i, mngr in enumerate(mngrs):
        checkpointing.save(mngr, epoch, _seed_slice(state, i, seeds_axis),
                           {"epoch": epoch, "encoder_widths": list(widths)})
  for mngr in mngrs:
    mngr.wait_until_finished()
    mngr.close()
  objective, programs = build(widths)
  per_class = {}
  if num_classes:
    per_class = jax.device_get(programs["eval_by_class"](
        state.params, device["test"], jnp.asarray(test_labels), keys.eval)[1])
  num_batches = len(splits["train"][0]) // config.train.batch_size
  compile_seconds, compiles = build.totals()
  summaries = []
  for i, (c, w) in enumerate(zip(configs, workdirs)):
    params, keys_i = _seed_slice(state.params, i, seeds_axis), _seed_slice(keys, i, seeds_axis)
    final = evaluate.final_metrics(c, objective, params, device["test"], keys_i)
    median_epoch = statistics.median(r["epoch_seconds"] for r in history[i])
    summary = {
        "epoch": config.train.epochs,
        **{k: v for k, v in (history[i][-1] if history[i] else {}).items() if "/" in k},
        **{f"eval/per_class/{k}": np.asarray(_seed_slice(v, i, seeds_axis)).tolist()
           for k, v in per_class.items()},
        "encoder_widths": list(widths),
        **{k: v for k, v in final.items() if k not in ("compile_seconds", "compiles")},
        "param_count": models.param_count(params),
        "compile_seconds": compile_seconds + final["compile_seconds"],
        "compiles": compiles + final["compiles"],
        "median_epoch_seconds": median_epoch,
        "images_per_second": len(workdirs) * num_batches * config.train.batch_size / median_epoch,
        "seeds_in_program": len(workdirs),
        "device": f"{jax.devices()[0].platform}:{jax.devices()[0].device_kind}",
        "versions": _versions(),
        "seed": c.seed,
        "wall_seconds": time.perf_counter() - run_start,  # This invocation, figures excluded.
    }
    (w / "summary.json").write_text(json.dumps(summary, indent=2))
    evaluate.write_figures(objective.model, params, splits["test"], history[i], w / "figures",
                           keys_i.eval, config.model.likelihood)
    summaries.append(summary)
  return summaries
