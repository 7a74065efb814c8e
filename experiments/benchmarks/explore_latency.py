"""Benchmark: latency of `vae-jax explore`'s requests on trained runs, through the Flask app (JSON
in, JSON out, as the page sees them; no network), after one warm-up request of each kind.

  python experiments/benchmarks/explore_latency.py --workdirs checkpoints/mnist_mlp \
      checkpoints/beta_cvae_project_relu [--repeats 50]

Prints a markdown table of the median and 90th-percentile milliseconds per request kind: one
slider move (decode of one latent), a plane click, a 10-step interpolation and 16 prior samples.
A script that prints figures, not a test; the target is < 100 ms per decode on the CPU.
"""

import argparse
import time

import jax
import numpy as np

from vae_jax import explore, explore_app


def _requests(ex):
  zero = [0.0] * ex.latent_dim
  label = 0 if ex.num_classes else None
  return {
      "slider (1 latent)": ("/api/decode", {"z": [zero], "label": label}),
      "plane click": ("/api/plane", {"u": 0.3, "v": -0.2, "label": label}),
      "interpolation (10 steps)": ("/api/interpolate", {"i": 0, "j": 1, "steps": 10}),
      "prior samples (16)": ("/api/prior", {"n": 16, "temperature": 1.0, "label": label}),
  }


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--workdirs", nargs="+", required=True)
  parser.add_argument("--repeats", type=int, default=50)
  args = parser.parse_args()
  device = jax.devices()[0]
  print(f"device {device.platform}:{device.device_kind}; {args.repeats} requests of each kind "
        "after one warm-up\n")
  print("| run | model | request | median (ms) | p90 (ms) |\n|---|---|---|---|---|")
  for workdir in args.workdirs:
    ex = explore.Explorer(workdir, num_test=500)
    client = explore_app.create_app(ex).test_client()
    for what, (path, body) in _requests(ex).items():
      if what.startswith("prior") and not ex.has_posterior:
        continue
      assert client.post(path, json=body).status_code == 200  # Warm-up: compiles.
      ms = []
      for _ in range(args.repeats):
        start = time.perf_counter()
        client.post(path, json=body)
        ms.append(1e3 * (time.perf_counter() - start))
      print(f"| {workdir} | {ex.config.model.kind}, Z={ex.latent_dim} | {what} | "
            f"{np.median(ms):.1f} | {np.percentile(ms, 90):.1f} |", flush=True)


if __name__ == "__main__":
  main()
