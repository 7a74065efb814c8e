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
                                                              config.seed)
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
    old = json.loads(saved.read_text())
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
  config_lib.validate(config)
  workdir = Path(workdir)
  start_epoch = _check_workdir(config, workdir, resume)
  splits = load_data(config)
  image_shape = splits["train"][0].shape[1:]
  model = models.build_model(config.model, image_shape)

  created = not workdir.exists()
  workdir.mkdir(parents=True, exist_ok=True)
  try:
    return _run(config, workdir, model, splits, start_epoch, progress)
  except BaseException:
    if created and checkpointing.latest_epoch(workdir) is None:
      shutil.rmtree(workdir, ignore_errors=True)  # Nothing worth keeping: no half-written run.
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

  def __init__(self, config, image_shape, tx):
    self.config, self.image_shape, self.tx, self.cache = config, image_shape, tx, {}

  def __call__(self, widths):
    if widths not in self.cache:
      c = self.config
      model = models.build_model(c.model, self.image_shape, widths)
      objective = train.Objective(model=model, preprocess=c.data.preprocess,
                                  beta=c.objective.beta, likelihood=c.model.likelihood)
      programs = train.make_programs(objective, self.tx, batch_size=c.train.batch_size,
                                     eval_batch_size=c.eval.batch_size,
                                     elbo_samples=c.eval.elbo_samples)
      self.cache[widths] = (objective, programs)
    return self.cache[widths]

  def totals(self):
    programs = [p for _, ps in self.cache.values() for p in ps.values()]
    return sum(p.compile_seconds for p in programs), sum(p.compiles for p in programs)


def _run(config, workdir: Path, model, splits, start_epoch, progress) -> dict:
  run_start = time.perf_counter()
  (workdir / "config.json").write_text(config_lib.to_json(config))
  keys = train.RunKeys.from_seed(config.seed)
  tx = train.make_optimizer(config.optim.name, config.optim.lr, config.optim.weight_decay)
  image_shape = splits["train"][0].shape[1:]
  device = {name: jax.device_put(x) for name, (x, _) in splits.items()}
  schedule = widths_by_epoch(config)
  build = _Programs(config, image_shape, tx)

  widths = schedule[1]
  state = train.create_train_state(models.init_params(model, keys.init, image_shape), tx)
  metrics_path = workdir / "metrics.jsonl"
  history: list[dict] = []
  epoch = 0
  if start_epoch is not None:
    epoch, meta = checkpointing.restore_meta(workdir, start_epoch)
    widths = tuple(meta.get("encoder_widths", widths))
    objective = build(widths)[0]
    abstract = jax.eval_shape(lambda: train.create_train_state(
        models.init_params(objective.model, keys.init, image_shape), tx))
    state = checkpointing.restore_state(workdir, epoch, abstract)
    history = _read_metrics(metrics_path, epoch)
  _write_lines(metrics_path, history)

  mngr = checkpointing.manager(workdir)
  g = config.growth
  bar = tqdm.tqdm(range(epoch + 1, config.train.epochs + 1), desc="train", unit="epoch",
                  disable=not progress, dynamic_ncols=True)
  for epoch in bar:
    row = {"epoch": epoch}
    if schedule[epoch] != widths:  # A growth event: pytree surgery on params and optimizer state.
      widths = schedule[epoch]
      params, opt_state = growth.resize_encoder(
          state.params, state.opt_state, widths, jax.random.fold_in(keys.init, epoch), tx=tx,
          outgoing_init=g.outgoing_init, keep=g.keep, optimizer=g.optimizer)
      state = state.replace(params=params, opt_state=opt_state)
      # Test loss right after the surgery, before any step: the jump the growth step itself causes.
      values = build(widths)[1]["eval"](state.params, device["test"], keys.eval)
      row["eval/loss_at_growth"] = float(values["loss"])
    objective, programs = build(widths)
    compiled_before = programs["epoch"].compile_seconds
    start = time.perf_counter()
    state, train_metrics = programs["epoch"](state, device["train"], keys, jnp.int32(epoch))
    train_metrics = jax.device_get(train_metrics)
    epoch_seconds = (time.perf_counter() - start
                     - (programs["epoch"].compile_seconds - compiled_before))
    row |= {f"train/{k}": float(v) for k, v in train_metrics.items()}
    for split in ("val", "test") if "val" in device else ("test",):
      prefix = "eval" if split == "test" else "val"
      values = jax.device_get(programs["eval"](state.params, device[split], keys.eval))
      row |= {f"{prefix}/{k}": float(v) for k, v in values.items()}
    row |= {"encoder_widths": list(widths), "param_count": models.param_count(state.params),
            "epoch_seconds": epoch_seconds}
    history.append(row)
    with metrics_path.open("a") as f:
      f.write(json.dumps(row) + "\n")
    bar.set_postfix(train=f"{row['train/loss']:.2f}", test=f"{row['eval/loss']:.2f}")
    if epoch % config.train.checkpoint_every == 0 or epoch == config.train.epochs:
      checkpointing.save(mngr, epoch, state, {"epoch": epoch, "encoder_widths": list(widths)})
  mngr.wait_until_finished()
  mngr.close()
  objective = build(widths)[0]
  model = objective.model

  final = evaluate.final_metrics(config, objective, state.params, device["test"], keys)
  compile_seconds, compiles = build.totals()
  compile_seconds += final.pop("compile_seconds")
  compiles += final.pop("compiles")
  median_epoch = statistics.median(r["epoch_seconds"] for r in history)
  num_batches = len(splits["train"][0]) // config.train.batch_size
  summary = {
      "epoch": config.train.epochs,
      **{k: v for k, v in (history[-1] if history else {}).items() if "/" in k},
      "encoder_widths": list(widths),
      **final,
      "param_count": models.param_count(state.params),
      "compile_seconds": compile_seconds,
      "compiles": compiles,
      "median_epoch_seconds": median_epoch,
      "images_per_second": num_batches * config.train.batch_size / median_epoch,
      "device": f"{jax.devices()[0].platform}:{jax.devices()[0].device_kind}",
      "versions": _versions(),
      "seed": config.seed,
      "wall_seconds": time.perf_counter() - run_start,  # This invocation, figures excluded.
  }
  (workdir / "summary.json").write_text(json.dumps(summary, indent=2))
  evaluate.write_figures(model, state.params, splits["test"], history, workdir / "figures",
                         keys.eval, config.model.likelihood)
  return summary
