"""Benchmark: every accelerator figure in one short command (≤ 8 minutes on one GPU, compiles
included), written as JSON and Markdown.

  python experiments/benchmarks/accelerator.py [--smoke] [--out DIR] [--sections NAME ...]
  python experiments/benchmarks/accelerator.py --defaults-table

Sections (random uint8 images of each dataset's shape: the machine needs no prepared dataset):
  mnist_mlp    steady epoch of mnist_mlp at batch 128 and 1024 on 60k images: seconds, images/s
  iw_nll       IW-NLL with K = 5000 over 10k test images: seconds, GFLOP/s (XLA's cost analysis
               of the compiled bound) and the share of the device's fp32 peak where it is known
  beta_cvae    the 18-run β program of beta_cvae (6 β × 3 seeds, one vmapped program) against
               one run: images/s per run (its config as it is: train.steps_per_call=4)
  conv_cifar   the fc_vs_conv conv VAE on CIFAR-10-shaped images (32×32×3), batch 64 and 128
  growth       the growth study's vmapped program (3 seeds, the fixed arm's full width) per epoch,
               and the study's projected wall time (3 arms × 200 epochs; an upper bound: the
               growing arms are narrower for most epochs)
and, over all, the compile seconds of every program and the device's peak memory.

--smoke runs every section at toy sizes and toy conv widths, 2 β runs for the 18, at XLA's CPU
optimization level 0 (CI runs it on the CPU); the figures are then meaningless, the code path is
the point. --out (default
experiments/benchmarks/accelerator/) receives <device>.json and <device>.md, the device named in
the data. --defaults-table prints what the device-aware `auto` settings pick per backend.
A script that prints figures, not a test.
"""

import argparse
import json
import os
import re
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from epoch_time import time_epochs  # noqa: E402  # pylint: disable=wrong-import-position

from vae_jax import (  # noqa: E402  # pylint: disable=wrong-import-position
    config as config_lib, data, device_defaults, evaluate, objectives, train)

HERE = Path(__file__).resolve().parent
SECTIONS = ("mnist_mlp", "iw_nll", "beta_cvae", "conv_cifar", "growth")
# Dense fp32 (non-tensor-core) peaks from the vendors' datasheets, FLOP/s, by device_kind text.
FP32_PEAK = {"H200": 67e12, "H100": 67e12, "A100": 19.5e12, "L40S": 91.6e12, "L4": 30.3e12,
             "A10": 31.2e12, "V100": 15.7e12, "T4": 8.1e12}
FULL = dict(train_images=60000, test_images=10000, epochs=2, iw_k=5000, beta_images=60000,
            conv_images=50000, growth_images=60000)
SMOKE = dict(train_images=2048, test_images=64, epochs=1, iw_k=16, beta_images=256,
             conv_images=256, growth_images=512, betas=(1.0, 4.0), seeds=(0,),
             beta_cvae=["model.encoder.features=4,8", "model.decoder.features=8,4",
                        "train.steps_per_call=0"],
             fc_vs_conv_conv=["model.encoder.features=4,4,8", "model.decoder.features=8,4,4"])
FULL |= dict(betas=(0.25, 0.5, 1.0, 2.0, 4.0, 8.0), seeds=(0, 1, 2))


def _config(name: str, overrides=()):
  config = config_lib.load_config(name)
  return config_lib.apply_overrides(config, list(overrides))


def _images(n: int, shape, seed: int = 0) -> dict:
  rng = np.random.default_rng(seed)
  return {"image": rng.integers(0, 256, (n, *shape), dtype=np.uint8),
          "label": rng.integers(0, 10, n).astype(np.int32)}


def _parts(config, shape):
  objective = objectives.from_config(config, shape, num_classes=data.num_classes(config.data.name))
  return objective, train.optimizer_from_config(config), train.hparams_from_config(config)


def _epochs(config, shape, n: int, batch: int, epochs: int, seed: int = 0) -> dict:
  objective, tx, hparams = _parts(config, shape)
  dataset = jax.device_put(_images(n, shape, seed))
  state, compile_s, times = time_epochs(objective, tx, hparams, dataset, shape, batch, epochs,
                                        config.train.steps_per_call)
  steady = statistics.median(times[1:])
  return {"batch": batch, "train_images": n, "compile_seconds": round(compile_s, 2),
          "median_epoch_seconds": round(steady, 4),
          "images_per_second": round(n // batch * batch / steady)}, state


def mnist_mlp(sizes) -> dict:
  config = _config("mnist_mlp")
  rows = [_epochs(config, (28, 28, 1), sizes["train_images"], b, sizes["epochs"])[0]
          for b in (128, 1024)]
  return {"config": "mnist_mlp", "rows": rows}


def _flops(compiled) -> float:
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float((cost or {}).get("flops", float("nan")))


def iw_nll(sizes) -> dict:
  config = _config("mnist_mlp")
  objective, tx, hparams = _parts(config, (28, 28, 1))
  state = train.init_state(objective, tx, (28, 28, 1), jax.random.key(0), hparams)
  test = jax.device_put(_images(sizes["test_images"], (28, 28, 1), 1))
  k, batch = sizes["iw_k"], min(config.eval.iw_batch_size, sizes["test_images"])
  chunk = min(config.eval.iw_chunk_size, k)
  start = time.perf_counter()
  nll, compile_s = evaluate.iw_nll(objective, state.params, test, jax.random.key(1),
                                   num_samples=k, batch_size=batch, chunk_size=chunk)
  seconds = time.perf_counter() - start - compile_s
  bound = jax.jit(lambda p, b, key: objective.iw_bound(p, b, key, k, chunk))
  one = jax.tree.map(lambda a: a[:batch], test)
  flops = _flops(bound.lower(state.params, one, jax.random.key(2)).compile())
  flops *= sizes["test_images"] / batch
  kind = jax.devices()[0].device_kind
  peak = next((v for name, v in FP32_PEAK.items() if name in kind), None)
  gflops = flops / seconds / 1e9
  return {"k": k, "test_images": sizes["test_images"], "nll_random_params": round(nll, 2),
          "compile_seconds": round(compile_s, 2), "seconds": round(seconds, 2),
          "gflop": round(flops / 1e9, 1), "gflop_per_second": round(gflops, 1),
          "fp32_peak_share": round(gflops * 1e9 / peak, 4) if peak else None,
          "fp32_peak_source": "vendor datasheet (FP32 FLOP/s)" if peak else "unknown device"}


def _runs_epoch(config, shape, n, betas, seeds, epochs) -> dict:
  """One vmapped program over len(betas) * len(seeds) runs; its steady epoch."""
  objective, tx, hparams = _parts(config, shape)
  grid = [(b, s) for b in betas for s in seeds]
  keys = jax.vmap(train.RunKeys.from_seed)(jnp.asarray([s for _, s in grid]))
  hparams_r = hparams._replace(beta=jnp.asarray([b for b, _ in grid], jnp.float32))
  hparams_r = jax.tree.map(lambda v: jnp.broadcast_to(v, (len(grid),)) if jnp.ndim(v) == 0 else v,
                           hparams_r)
  programs = evaluate.make_programs(objective, tx, batch_size=config.train.batch_size,
                                    eval_batch_size=config.eval.batch_size,
                                    steps_per_call=config.train.steps_per_call, runs_axis=True)
  state = jax.vmap(lambda k, h: train.init_state(objective, tx, shape, k, h))(keys.init, hparams_r)
  dataset = jax.device_put(_images(n, shape))
  active, times = jnp.ones((len(grid),), bool), []
  for epoch in range(epochs + 1):
    start = time.perf_counter()
    state, metrics = programs["epoch"](state, dataset, keys, jnp.int32(epoch), hparams_r, active)
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - start)
  steady = statistics.median(times[1:])
  images = n // config.train.batch_size * config.train.batch_size
  return {"runs": len(grid), "train_images": n,
          "compile_seconds": round(getattr(programs["epoch"], "compile_seconds", float("nan")), 2),
          "median_epoch_seconds": round(steady, 4),
          "images_per_second_per_run": round(images / steady)}


def beta_cvae(sizes) -> dict:
  config = _config("beta_cvae", sizes.get("beta_cvae", ()))
  one, _ = _epochs(config, (28, 28, 1), sizes["beta_images"], config.train.batch_size,
                   sizes["epochs"])
  many = _runs_epoch(config, (28, 28, 1), sizes["beta_images"], sizes["betas"], sizes["seeds"],
                     sizes["epochs"])
  return {"config": "beta_cvae", "steps_per_call": config.train.steps_per_call, "one_run": one,
          "program_18_runs": many,
          "per_run_speedup": round(many["images_per_second_per_run"] * many["runs"]
                                   / one["images_per_second"], 2)}


def conv_cifar(sizes) -> dict:
  config = _config("fc_vs_conv_conv", ["data.name=cifar10", *sizes.get("fc_vs_conv_conv", ())])
  rows = [_epochs(config, (32, 32, 3), sizes["conv_images"], b, sizes["epochs"])[0]
          for b in (64, 128)]
  return {"config": "fc_vs_conv_conv on cifar10-shaped images", "rows": rows}


def growth(sizes) -> dict:
  config = _config("growth_fixed")
  row = _runs_epoch(config, (28, 28, 1), sizes["growth_images"], (1.0,), (0, 1, 2),
                    sizes["epochs"])
  epochs = config.train.epochs
  projected = 3 * epochs * row["median_epoch_seconds"] * FULL["growth_images"] / row["train_images"]
  return {"config": "growth_fixed, 3 seeds vmapped", **row, "study_epochs": epochs,
          "projected_study_hours_upper_bound": round(projected / 3600, 2)}


def _markdown(result: dict) -> str:
  lines = [f"# Accelerator benchmark: {result['device']}", "",
           f"`{result['command']}`, {result['date']}, jax {result['jax']}"
           + (" (SMOKE sizes: the figures are meaningless)" if result["smoke"] else ""), ""]
  for name in SECTIONS:
    if name in result["sections"]:
      lines += [f"## {name}", "", "```json", json.dumps(result["sections"][name], indent=2),
                "```", ""]
  lines += [f"Total wall time {result['wall_seconds']:.0f} s; peak device memory "
            + (f"{result['peak_memory_mib']:.0f} MiB." if result["peak_memory_mib"] is not None
               else "not reported by this device.")]
  return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--smoke", action="store_true", help="toy sizes: every code path, quickly")
  parser.add_argument("--out", default=str(HERE / "accelerator"))
  parser.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=SECTIONS)
  parser.add_argument("--defaults-table", action="store_true",
                      help="print what the device-aware auto settings pick per backend and exit")
  args = parser.parse_args(argv)
  if args.defaults_table:
    print(device_defaults.markdown())
    return {}
  sizes = SMOKE if args.smoke else FULL
  device = jax.devices()[0]
  start = time.perf_counter()
  sections = {}
  for name in args.sections:
    t = time.perf_counter()
    sections[name] = globals()[name](sizes) | {"section_seconds": 0.0}
    sections[name]["section_seconds"] = round(time.perf_counter() - t, 1)
    print(json.dumps({name: sections[name]}), flush=True)
  stats = device.memory_stats() or {}
  result = {"device": f"{device.platform}:{device.device_kind}", "devices": jax.device_count(),
            "jax": jax.__version__, "smoke": args.smoke, "sizes": sizes,
            "command": "python experiments/benchmarks/accelerator.py "
                       + " ".join(sys.argv[1:] if argv is None else argv),
            "date": time.strftime("%Y-%m-%d"), "sections": sections,
            "wall_seconds": round(time.perf_counter() - start, 1),
            "peak_memory_mib": (stats["peak_bytes_in_use"] / 2**20
                                if "peak_bytes_in_use" in stats else None),
            "defaults": device_defaults.defaults(device.platform if device.platform in
                                                 device_defaults.BACKENDS else "gpu",
                                                 memory_bytes=stats.get("bytes_limit"))}
  out = Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  stem = re.sub(r"[^A-Za-z0-9]+", "_", result["device"]).strip("_") + ("_smoke" if args.smoke
                                                                         else "")
  (out / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
  (out / f"{stem}.md").write_text(_markdown(result))
  print(f"wrote {out / stem}.json and .md ({result['wall_seconds']:.0f} s)")
  return result


if __name__ == "__main__":
  if "--smoke" in sys.argv and "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS",
                                                                                      ""):
    # Before the backend starts (jax is imported, not initialized): smoke compiles dominate.
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                               + " --xla_backend_optimization_level=0").strip()
  main()
