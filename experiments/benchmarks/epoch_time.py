"""Benchmark: compile seconds, steady-state epoch seconds and images/s of the jitted scan epoch of
a config (default mnist_mlp: 784-400-20, Adam 1e-3) at the given batch sizes; optionally the
IW-NLL time at K importance samples.

  python experiments/benchmarks/epoch_time.py [--config vae_jax/configs/mnist_mlp.py]
      [--epochs 5] [--batch-sizes 128 1024] [--iw-k 5000] [--config.KEY=VALUE ...]

Uses the config's real dataset from the TFDS data dir when it is prepared there, else random
uint8 images of the same shape (printed). A script that prints figures, not a timed test.
"""

import argparse
import json
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from vae_jax import cli, config as config_lib, data, evaluate, models, objectives, train


def time_epochs(objective, tx, hparams, dataset, shape, batch_size: int, epochs: int,
                steps_per_call: int = 0, seed: int = 0):
  """Trains 1 + `epochs` epochs of the jitted epoch program from a fresh state.

  Returns:
    (final state, compile seconds, seconds of each epoch, the first including the compile).
  """
  programs = evaluate.make_programs(objective, tx, batch_size=batch_size, eval_batch_size=500,
                                    steps_per_call=steps_per_call)
  keys = train.RunKeys.from_seed(seed)
  state = train.init_state(objective, tx, shape, keys.init, hparams)
  times = []
  for epoch in range(epochs + 1):
    start = time.perf_counter()
    state, metrics = programs["epoch"](state, dataset, keys, jnp.int32(epoch), hparams,
                                       jnp.asarray(True))
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - start)
  return state, getattr(programs["epoch"], "compile_seconds", float("nan")), times


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--config", default="vae_jax/configs/mnist_mlp.py")
  parser.add_argument("--epochs", type=int, default=5, help="timed epochs after the first")
  parser.add_argument("--batch-sizes", type=int, nargs="+", default=[128, 1024])
  parser.add_argument("--iw-k", type=int, default=0, help="also time IW-NLL with this K (0: skip)")
  argv, overrides = cli.split_config_overrides(sys.argv[1:])
  args = parser.parse_args(argv)

  cfg = config_lib.apply_overrides(config_lib.load_config(args.config), overrides)
  name, shape = cfg.data.name, data.image_shape(cfg.data.name)
  try:
    train_xy, test_xy = data.load_split(name, "train"), data.load_split(name, "test")
    source = f"real {name}"
  except data.DataError:
    rng = np.random.default_rng(0)
    train_xy = rng.integers(0, 256, (60000, *shape), dtype=np.uint8), np.zeros(60000, np.int32)
    test_xy = train_xy[0][:10000], train_xy[1][:10000]
    source = f"random uint8 images ({name} not prepared)"
  objective = objectives.from_config(cfg, shape, num_classes=data.num_classes(cfg.data.name))
  tx = train.optimizer_from_config(cfg)
  hparams = train.hparams_from_config(cfg)
  train_x = train_xy[0]
  dataset = jax.device_put({"image": train_xy[0], "label": train_xy[1]})
  keys = train.RunKeys.from_seed(0)
  results = {"device": f"{jax.devices()[0].platform}:{jax.devices()[0].device_kind}",
             "config": args.config, "overrides": overrides, "data": source}
  for batch_size in args.batch_sizes:
    state, compile_seconds, times = time_epochs(objective, tx, hparams, dataset, shape,
                                                batch_size, args.epochs, cfg.train.steps_per_call)
    results["param_count"] = models.param_count(state.params)
    steady = statistics.median(times[1:])
    results[f"batch_{batch_size}"] = {
        "compile_seconds": round(compile_seconds, 2),
        "first_epoch_seconds_incl_compile": round(times[0], 2),
        "median_epoch_seconds": round(steady, 3),
        "images_per_second": round((len(train_x) // batch_size) * batch_size / steady),
    }
    print(json.dumps({f"batch_{batch_size}": results[f"batch_{batch_size}"]}), flush=True)
  if args.iw_k:
    start = time.perf_counter()
    test = jax.device_put({"image": test_xy[0], "label": test_xy[1]})
    nll, compile_seconds = evaluate.iw_nll(objective, state.params, test, keys.eval,
                                           num_samples=args.iw_k, batch_size=cfg.eval.iw_batch_size,
                                           chunk_size=cfg.eval.iw_chunk_size, progress=True)
    results["iw_nll"] = {"k": args.iw_k, "images": len(test_xy[0]), "nll": round(nll, 2),
                         "compile_seconds": round(compile_seconds, 2),
                         "seconds": round(time.perf_counter() - start - compile_seconds, 1)}
  print(json.dumps(results, indent=2))


if __name__ == "__main__":
  main()
