"""Benchmark: S seeds trained in one vmapped program vs one seed at a time, for a config (default
the ae_vs_vae VAE: 784-400-20, MSE term, AdamW, batch 1024, on the 54k training images of that
study).

  python experiments/benchmarks/vmap_seeds.py [--seeds 3] [--epochs 3] [--kind vae] [--latent 20]
      [--config FILE] [--config.KEY=VALUE ...]

e.g. the fc_vs_conv conv VAE with its convs looped over the runs axis or vmapped into grouped
convs: --config vae_jax/configs/fc_vs_conv_conv.py --config.data.name=mnist_32
--config.model.latent_dim=128 --config.data.train_subset=6400 --config.model.conv_runs=loop|vmap

Prints compile seconds, median steady-state epoch seconds of the vmapped program (all S seeds)
and of one seed, and the speed-up S * t_one / t_vmapped. A script that prints figures, not a test.
"""

import argparse
import json
import statistics
import sys
import time

import jax
import jax.numpy as jnp

from vae_jax import cli, config as config_lib, data, evaluate, objectives, runner, train

CONFIG = config_lib.CONFIG_DIR / "ae_vs_vae.py"


def _time(programs, state, dataset, keys, hparams, active, epochs):
  times = []
  for epoch in range(epochs + 1):
    start = time.perf_counter()
    state, metrics = programs["epoch"](state, dataset, keys, jnp.int32(epoch), hparams, active)
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - start)
  return programs["epoch"].compile_seconds, statistics.median(times[1:])


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--seeds", type=int, default=3)
  parser.add_argument("--epochs", type=int, default=3, help="timed epochs after the first")
  parser.add_argument("--kind", default="vae", choices=["vae", "ae"])
  parser.add_argument("--latent", type=int, default=20)
  parser.add_argument("--config", default=str(CONFIG))
  argv, overrides = cli.split_config_overrides(sys.argv[1:])
  args = parser.parse_args(argv)
  config = config_lib.load_config(args.config)
  config_lib.apply_overrides(config, [f"model.kind={args.kind}", f"model.latent_dim={args.latent}",
                                      *overrides])
  splits = runner.load_data(config)
  images = splits["train"][0]
  dataset = jax.device_put({"image": images, "label": splits["train"][1]})
  image_shape = images.shape[1:]
  objective = objectives.from_config(config, image_shape,
                                       num_classes=data.num_classes(config.data.name))
  tx = train.optimizer_from_config(config)
  hparams = train.hparams_from_config(config)
  init = lambda k, h: train.init_state(objective, tx, image_shape, k, h)  # noqa: E731
  kw = dict(batch_size=config.train.batch_size, eval_batch_size=config.eval.batch_size,
            steps_per_call=config.train.steps_per_call)

  keys = train.RunKeys.from_seed(0)
  one = _time(evaluate.make_programs(objective, tx, **kw), init(keys.init, hparams), dataset,
              keys, hparams, jnp.asarray(True), args.epochs)
  keys_s = jax.vmap(train.RunKeys.from_seed)(jnp.arange(args.seeds))
  hparams_s = jax.tree.map(lambda v: jnp.full((args.seeds,), v), hparams)
  vm = _time(evaluate.make_programs(objective, tx, runs_axis=True, **kw),
             jax.vmap(init)(keys_s.init, hparams_s), dataset, keys_s, hparams_s,
             jnp.ones((args.seeds,), bool), args.epochs)
  steps = len(images) // config.train.batch_size * config.train.batch_size
  print(json.dumps({
      "device": f"{jax.devices()[0].platform}:{jax.devices()[0].device_kind}",
      "config": args.config, "overrides": overrides,
      "model": f"{args.kind} z={args.latent}", "train_images": steps, "seeds": args.seeds,
      "one_seed": {"compile_seconds": round(one[0], 2), "median_epoch_seconds": round(one[1], 3),
                   "images_per_second": round(steps / one[1])},
      "vmapped": {"compile_seconds": round(vm[0], 2), "median_epoch_seconds": round(vm[1], 3),
                  "images_per_second": round(args.seeds * steps / vm[1])},
      "speedup_vs_sequential": round(args.seeds * one[1] / vm[1], 2),
  }, indent=2))


if __name__ == "__main__":
  main()
