"""Benchmark: the epoch time of each model of the zoo on dynamically binarized MNIST beside the
plain VAE's, and the cost of an IWAE K = 50 step relative to K = 1.

  python experiments/benchmarks/zoo_speed.py [--epochs 3] [--train-images 12800]
      [--batch-size 100]

Every model is mnist_mlp's data and optimizer (Adam, batch 100 as in the IWAE paper) with the
overrides listed in MODELS; training images are the first --train-images of real MNIST when it is
prepared in the TFDS data dir, else random uint8 images (printed). Prints one JSON line per model
(params, compile seconds, median epoch seconds, images/s, time relative to the VAE) and then the
K = 50 / K = 1 ratio. A script that prints figures, not a test.
"""

import argparse
import json
import statistics
import sys
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from epoch_time import time_epochs  # noqa: E402  # pylint: disable=g-import-not-at-top

from vae_jax import config as config_lib, data, models, objectives, train  # noqa: E402

CONFIG = config_lib.CONFIG_DIR / "mnist_mlp.py"
MODELS = {  # name -> overrides of mnist_mlp (binarized, batch 100)
    "VAE": [],
    "IWAE K=1": ["objective.name=iwae", "objective.num_samples=1"],
    "IWAE K=5": ["objective.name=iwae", "objective.num_samples=5"],
    "IWAE K=50": ["objective.name=iwae", "objective.num_samples=50"],
    "IWAE K=50 DReG": ["objective.name=iwae", "objective.num_samples=50",
                       "objective.estimator=dreg"],
    "VampPrior (500 pseudo-inputs)": ["model.prior=vampprior"],
    "2-layer VAE": ["model.kind=hvae"],
    "2-layer IWAE K=50": ["model.kind=hvae", "objective.name=iwae", "objective.num_samples=50"],
    "Ladder VAE": ["model.kind=hvae", "model.hvae.inference=ladder"],
}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--epochs", type=int, default=3, help="timed epochs after the first")
  parser.add_argument("--train-images", type=int, default=12800)
  parser.add_argument("--batch-size", type=int, default=100)
  parser.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS))
  args = parser.parse_args()
  try:
    images = data.load_split("mnist", "train")[0][: args.train_images]
    source = "real MNIST"
  except data.DataError:
    images = np.random.default_rng(0).integers(0, 256, (args.train_images, 28, 28, 1), np.uint8)
    source = "random uint8 images (MNIST not prepared)"
  dataset = jax.device_put({"image": images, "label": np.zeros(len(images), np.int32)})
  print(json.dumps({"data": source, "train_images": len(images), "batch_size": args.batch_size,
                    "device": str(jax.devices()[0].device_kind)}), flush=True)
  seconds = {}
  for name in args.models:
    config = config_lib.load_config(str(CONFIG))
    config_lib.apply_overrides(config, ["data.preprocess=binarize_dynamic", "eval.iw_samples=0",
                                        *MODELS[name]])
    config_lib.validate(config)
    objective = objectives.from_config(config, (28, 28, 1))
    state, compile_seconds, times = time_epochs(
        objective, train.optimizer_from_config(config), train.hparams_from_config(config),
        dataset, (28, 28, 1), args.batch_size, args.epochs)
    seconds[name] = statistics.median(times[1:])
    print(json.dumps({
        "model": name, "params": models.param_count(state.params),
        "compile_seconds": round(compile_seconds, 2),
        "median_epoch_seconds": round(seconds[name], 3),
        "images_per_second": round(len(images) // args.batch_size * args.batch_size
                                   / seconds[name]),
        "vs_vae": round(seconds[name] / seconds["VAE"], 2) if "VAE" in seconds else None,
    }), flush=True)
  if {"IWAE K=1", "IWAE K=50"} <= seconds.keys():
    print(json.dumps({"iwae_k50_step_over_k1": round(seconds["IWAE K=50"]
                                                     / seconds["IWAE K=1"], 2)}))


if __name__ == "__main__":
  main()
