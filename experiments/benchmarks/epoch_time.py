"""Benchmark: compile seconds, steady-state epoch seconds and images/s of the jitted scan epoch for
mnist_mlp (784-400-20, Adam 1e-3) at batch 128 and 1024; optionally the IW-NLL time at K = 5000.

  python experiments/benchmarks/epoch_time.py [--epochs 5] [--batch-sizes 128 1024] [--iw-k 5000]

Uses real MNIST from the TFDS data dir when it is prepared there, else random uint8 images of the
same shape (printed). A script that prints figures, not a timed test.
"""

import argparse
import json
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from vae_jax import config as config_lib, data, evaluate, models, train


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--epochs", type=int, default=5, help="timed epochs after the first")
  parser.add_argument("--batch-sizes", type=int, nargs="+", default=[128, 1024])
  parser.add_argument("--iw-k", type=int, default=0, help="also time IW-NLL with this K (0: skip)")
  args = parser.parse_args()

  try:
    (train_x, _), (test_x, _) = data.load_split("mnist", "train"), data.load_split("mnist", "test")
    source = "real MNIST"
  except data.DataError:
    rng = np.random.default_rng(0)
    train_x = rng.integers(0, 256, (60000, 28, 28, 1), dtype=np.uint8)
    test_x = train_x[:10000]
    source = "random uint8 images (MNIST not imported)"
  cfg = config_lib.load_config("experiments/configs/mnist_mlp.py")
  model = models.build_model(cfg.model, (28, 28, 1))
  tx = train.make_optimizer("adam", 1e-3)
  objective = train.Objective(model=model)
  images = jax.device_put(train_x)
  keys = train.RunKeys.from_seed(0)
  results = {"device": f"{jax.devices()[0].platform}:{jax.devices()[0].device_kind}",
             "data": source}
  for batch_size in args.batch_sizes:
    programs = train.make_programs(objective, tx, batch_size=batch_size, eval_batch_size=500)
    state = train.create_train_state(models.init_params(model, keys.init, (28, 28, 1)), tx)
    times = []
    for epoch in range(args.epochs + 1):
      start = time.perf_counter()
      state, metrics = programs["epoch"](state, images, keys, jnp.int32(epoch))
      jax.block_until_ready(metrics)
      times.append(time.perf_counter() - start)
    steady = statistics.median(times[1:])
    results[f"batch_{batch_size}"] = {
        "compile_seconds": round(programs["epoch"].compile_seconds, 2),
        "first_epoch_seconds_incl_compile": round(times[0], 2),
        "median_epoch_seconds": round(steady, 3),
        "images_per_second": round((len(train_x) // batch_size) * batch_size / steady),
    }
    print(json.dumps({f"batch_{batch_size}": results[f"batch_{batch_size}"]}), flush=True)
  if args.iw_k:
    start = time.perf_counter()
    nll, compile_seconds = evaluate.iw_nll(objective, state.params, jax.device_put(test_x),
                                           keys.eval, num_samples=args.iw_k, batch_size=100,
                                           chunk_size=100)
    results["iw_nll"] = {"k": args.iw_k, "images": len(test_x), "nll": round(nll, 2),
                         "compile_seconds": round(compile_seconds, 2),
                         "seconds": round(time.perf_counter() - start - compile_seconds, 1)}
  print(json.dumps(results, indent=2))


if __name__ == "__main__":
  main()
