"""Benchmark: scaling past one device, on whatever devices run it. Three tables (markdown):

  devices    mnist_mlp epoch time and images/s with the batch sharded over 1, 2, 4, 8 devices
             (on the CPU: forced host devices, --xla_force_host_platform_device_count, each count
             in its own process; elsewhere: counts up to the visible devices)
  streaming  the same run with the training set on the device (data.on_device=always) and
             streamed from the host (never)
  growth     the growth study's 3 arms x S seeds: each seed alone vs the seeds vmapped in one
             program (the growth surgery vmapped too), wall time of training + evaluation

  python experiments/benchmarks/scaling.py [--sections devices streaming growth]
      [--counts 1 2 4 8] [--epochs 3] [--train-images 12800] [--growth-epochs 8]
      [--growth-seeds 0 1 2] [--growth-train-images 12800]

Full-size growth study on an accelerator: --sections growth --growth-epochs 200
--growth-train-images 0 (0 = all 60k images; growth every 25 epochs as in the study). With fewer
epochs the growth events come every growth-epochs // 8 epochs, so every run still has them.
A script that prints figures, not a test.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIGS = Path(__file__).resolve().parents[2] / "vae_jax" / "configs"
ARMS = ("growth_fixed", "growth_approach1", "growth_approach2")


def _device_run(args, count: int, on_device: str = "always") -> dict:
  """One mnist_mlp run on `count` devices (this process); its timing summary."""
  from vae_jax import config as config_lib, runner  # pylint: disable=import-outside-toplevel
  config = config_lib.load_config(CONFIGS / "mnist_mlp.py")
  config_lib.apply_overrides(config, [
      f"train.epochs={args.epochs}", f"data.train_subset={args.train_images}",
      "eval.iw_samples=0", "eval.batch_size=400", f"parallel.data_devices={count}",
      f"data.on_device={on_device}", "train.tensorboard=False"])
  with tempfile.TemporaryDirectory() as tmp:
    start = time.perf_counter()
    s = runner.train_and_evaluate(config, Path(tmp) / "run", progress=False)
  return {"devices": s["parallel"]["device_count"], "device": s["device"],
          "on_device": s["data_on_device"], "median_epoch_seconds": s["median_epoch_seconds"],
          "images_per_second": s["images_per_second"], "compile_seconds": s["compile_seconds"],
          "wall_seconds": time.perf_counter() - start, "eval/loss": s["eval/loss"]}


def _child(args):
  """--_child COUNT: one device count, forced before JAX starts; prints JSON."""
  print("RESULT " + json.dumps(_device_run(args, args._child)), flush=True)


def devices_table(args) -> list[str]:
  import jax  # pylint: disable=import-outside-toplevel
  cpu = jax.default_backend() == "cpu"
  rows = []
  for count in args.counts:
    if cpu:  # Forced host devices must be set before JAX starts: one process per count.
      env = os.environ | {"XLA_FLAGS": f"--xla_force_host_platform_device_count={count}"}
      cmd = [sys.executable, __file__, "--_child", str(count), "--epochs", str(args.epochs),
             "--train-images", str(args.train_images)]
      out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
      rows.append(json.loads(out.split("RESULT ", 1)[1]))
    elif count <= jax.device_count():
      rows.append(_device_run(args, count))
  base = rows[0]["median_epoch_seconds"]
  lines = [f"mnist_mlp, batch 128, {args.train_images or 60000} training images, "
           f"{args.epochs} epochs, on {rows[0]['device']}"
           + (" (forced host devices sharing this machine's cores)" if cpu else "") + ":", "",
           "| devices | median epoch (s) | images/s | vs 1 device | compile (s) | test loss |",
           "|---|---|---|---|---|---|"]
  for r in rows:
    lines.append(f"| {r['devices']} | {r['median_epoch_seconds']:.3f} | "
                 f"{r['images_per_second']:,.0f} | {base / r['median_epoch_seconds']:.2f}x | "
                 f"{r['compile_seconds']:.1f} | {r['eval/loss']:.4f} |")
  return lines


def streaming_table(args) -> list[str]:
  rows = [_device_run(args, 1, mode) for mode in ("always", "never")]
  lines = [f"mnist_mlp on one {rows[0]['device']} device, {args.train_images or 60000} training "
           f"images, {args.epochs} epochs:", "",
           "| data.on_device | median epoch (s) | images/s | wall (s) | test loss |",
           "|---|---|---|---|---|"]
  for mode, r in zip(("always", "never"), rows):
    lines.append(f"| {mode} | {r['median_epoch_seconds']:.3f} | {r['images_per_second']:,.0f} | "
                 f"{r['wall_seconds']:.1f} | {r['eval/loss']:.4f} |")
  return lines


def _growth_config(name: str, args):
  from vae_jax import config as config_lib  # pylint: disable=import-outside-toplevel
  config = config_lib.load_config(CONFIGS / f"{name}.py")
  every = 25 if args.growth_epochs >= 200 else max(1, args.growth_epochs // 8)
  overrides = [f"train.epochs={args.growth_epochs}",
               f"data.train_subset={args.growth_train_images}",
               "eval.iw_samples=0", "train.tensorboard=False", f"growth.every_epochs={every}"]
  if config.growth.narrow_at:
    overrides.append(f"growth.narrow_at={every}")
  return config_lib.apply_overrides(config, overrides)


def growth_table(args) -> list[str]:
  from vae_jax import runner  # pylint: disable=import-outside-toplevel
  seeds = args.growth_seeds
  timings = {"alone": 0.0, "vmapped": 0.0}
  device = ""
  with tempfile.TemporaryDirectory() as tmp:
    for name in ARMS:
      config = _growth_config(name, args)
      start = time.perf_counter()
      for seed in seeds:
        c = config.copy_and_resolve_references()
        c.seed = seed
        device = runner.train_and_evaluate(c, Path(tmp) / f"{name}-alone{seed}",
                                           progress=False)["device"]
      timings["alone"] += time.perf_counter() - start
      start = time.perf_counter()
      runner.train_and_evaluate_seeds(config, seeds, [Path(tmp) / f"{name}-v{s}" for s in seeds],
                                      progress=False)
      timings["vmapped"] += time.perf_counter() - start
  lines = [f"growth study, {len(ARMS)} arms x {len(seeds)} seeds x {args.growth_epochs} epochs, "
           f"{args.growth_train_images or 60000} training images, no IW-NLL, on {device}:", "",
           "| seeds | wall time of the study (s) |", "|---|---|"]
  lines += [f"| one at a time | {timings['alone']:.1f} |",
            f"| vmapped in one program per arm | {timings['vmapped']:.1f} "
            f"({timings['alone'] / timings['vmapped']:.2f}x) |"]
  return lines


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--sections", nargs="+", default=["devices", "streaming", "growth"],
                      choices=["devices", "streaming", "growth"])
  parser.add_argument("--counts", type=int, nargs="+", default=[1, 2, 4, 8])
  parser.add_argument("--epochs", type=int, default=3)
  parser.add_argument("--train-images", type=int, default=12800)
  parser.add_argument("--growth-epochs", type=int, default=8)
  parser.add_argument("--growth-seeds", type=int, nargs="+", default=[0, 1, 2])
  parser.add_argument("--growth-train-images", type=int, default=12800)
  parser.add_argument("--_child", type=int, default=0, help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args._child:
    _child(args)
    return
  tables = {"devices": devices_table, "streaming": streaming_table, "growth": growth_table}
  for section in args.sections:
    print("\n".join(tables[section](args)) + "\n", flush=True)


if __name__ == "__main__":
  main()
