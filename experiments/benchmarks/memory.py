"""Benchmark: memory use of each config's compiled training epoch from XLA's memory analysis
(arguments, outputs, temporaries, generated code) and the device's peak where it reports one.

  python experiments/benchmarks/memory.py [--configs mnist_mlp mnist_2d zoo beta_cvae]
      [--train-images 6400]

Compiles (does not run) one epoch program per config on random uint8 images of the config's
dataset shape, --train-images of them (the arguments include the device-resident training set),
and prints a markdown table in MiB. A script that prints figures, not a test.
"""

import argparse

import jax
import jax.numpy as jnp
import numpy as np

from vae_jax import config as config_lib, data, evaluate, objectives, train

CONFIGS = config_lib.CONFIG_DIR
MIB = 2.0 ** 20


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--configs", nargs="+", default=["mnist_mlp", "mnist_2d", "zoo",
                                                       "beta_cvae"])
  parser.add_argument("--train-images", type=int, default=6400)
  args = parser.parse_args()
  device = jax.devices()[0]
  print(f"device {device.platform}:{device.device_kind}, {args.train_images} training images\n")
  print("| config | params (MiB) | arguments (MiB) | outputs (MiB) | temporaries (MiB) | "
        "code (MiB) |\n|---|---|---|---|---|---|")
  for name in args.configs:
    config = config_lib.load_config(str(CONFIGS / f"{name}.py"))
    shape = data.image_shape(config.data.name)
    objective = objectives.from_config(config, shape,
                                       num_classes=data.num_classes(config.data.name))
    tx, hparams = train.optimizer_from_config(config), train.hparams_from_config(config)
    keys = train.RunKeys.from_seed(0)
    state = train.init_state(objective, tx, shape, keys.init, hparams)
    images = np.random.default_rng(0).integers(0, 256, (args.train_images, *shape), np.uint8)
    dataset = jax.device_put({"image": images,
                              "label": np.zeros(args.train_images, np.int32)})
    programs = evaluate.make_programs(objective, tx, batch_size=config.train.batch_size,
                                      eval_batch_size=config.eval.batch_size,
                                      steps_per_call=config.train.steps_per_call)
    epoch = programs["epoch"]
    if not hasattr(epoch, "memory"):  # steps_per_call > 0: the host drives compiled chunks.
      print(f"| {name} | (train.steps_per_call={config.train.steps_per_call}: no single epoch "
            "program to analyse) | | | | |")
      continue
    m = epoch.memory(state, dataset, keys, jnp.int32(1), hparams, jnp.asarray(True))
    params = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(state.params)) / MIB
    print(f"| {name} | {params:.1f} | {m.get('arguments', 0) / MIB:.1f} | "
          f"{m.get('outputs', 0) / MIB:.1f} | {m.get('temporaries', 0) / MIB:.1f} | "
          f"{m.get('generated_code', 0) / MIB:.1f} |", flush=True)
  peak = (device.memory_stats() or {}).get("peak_bytes_in_use")
  print(f"\ndevice peak: {peak / MIB:.1f} MiB" if peak else "\ndevice peak: not reported by "
        f"{device.platform}")


if __name__ == "__main__":
  main()
