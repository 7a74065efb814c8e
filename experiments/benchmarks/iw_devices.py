"""Benchmark: the IW-NLL of mnist_mlp's model (untrained params, random uint8 images) with each
batch sharded over N CPU devices of one process (`--xla_force_host_platform_device_count=N`)
against the same bound on one device: why evaluate.final_metrics computes it on one device when
the devices share the host's cores (parallel.shares_cores).

  python experiments/benchmarks/iw_devices.py [--images 800] [--k 500] [--devices 8]

Prints, for each layout, the bound (nats per image), compile seconds and evaluation seconds.
Each layout runs in a subprocess of its own (XLA_FLAGS is read when JAX starts). A script that
prints figures, not a test.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONFIG = Path(__file__).resolve().parents[2] / "vae_jax" / "configs" / "mnist_mlp.py"


def _worker(images: int, k: int, sharded: bool) -> None:
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  # pylint: disable-next=g-import-not-at-top
  from vae_jax import config as config_lib, evaluate, objectives, parallel
  config = config_lib.load_config(str(CONFIG))
  objective = objectives.from_config(config, (28, 28, 1), None, num_classes=10)
  params = objective.init_params(jax.random.key(0), (28, 28, 1))
  layout = parallel.layout_from_config(config) if sharded else parallel.Layout(None)
  rng = np.random.default_rng(0)
  test = {"image": rng.integers(0, 256, (images, 28, 28, 1), np.uint8),
          "label": np.zeros((images,), np.int32)}
  params, test = parallel.put((params, test), layout.replicated if sharded else None)
  start = time.perf_counter()
  nll, compile_seconds = evaluate.iw_nll(
      objective, params, test, jax.random.key(1), num_samples=k,
      batch_size=parallel.round_up(config.eval.iw_batch_size, layout),
      chunk_size=config.eval.iw_chunk_size, batch_sharding=layout.batch)
  print(json.dumps({"devices": jax.device_count(), "sharded": sharded, "nll_iw": nll,
                    "compile_seconds": compile_seconds,
                    "seconds": time.perf_counter() - start - compile_seconds}))


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--images", type=int, default=800)
  parser.add_argument("--k", type=int, default=500)
  parser.add_argument("--devices", type=int, default=8)
  parser.add_argument("--worker", choices=["sharded", "one"], help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.worker:
    _worker(args.images, args.k, args.worker == "sharded")
    return
  for devices, worker in ((args.devices, "sharded"), (1, "one")):
    env = os.environ | {"PYTHONPATH": str(REPO),
                        "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
    out = subprocess.run([sys.executable, __file__, "--worker", worker, "--images",
                          str(args.images), "--k", str(args.k)],
                         env=env, check=True, capture_output=True, text=True).stdout
    r = json.loads(out.strip().splitlines()[-1])
    where = f"sharded over {r['devices']} CPU devices" if r["sharded"] else "on one device"
    print(f"IW-NLL K={args.k}, {args.images} images, {where}: {r['nll_iw']:.3f} nats/image, "
          f"compile {r['compile_seconds']:.1f} s, evaluation {r['seconds']:.1f} s")
  print(f"on {os.cpu_count()} CPU cores")


if __name__ == "__main__":
  main()
