"""Foundation results: trains mnist_mlp and mnist_2d on real MNIST over seeds, scores each run's
prior samples (classifier-FID / IS, `vae-jax score`, cached in the run's eval/fid_is.json) when
checkpoints/classifier_mnist exists, then writes experiments/mnist/results.md (mean +- sd over
seeds) and copies the first seed's figures here.

  python experiments/mnist/run.py [--seeds 0 1 2] [--configs mnist_mlp mnist_2d] [--reuse]

Run directories: checkpoints/<config>-s<seed>/. --reuse keeps finished runs (summary.json present)
and re-renders without retraining (or rescoring, while the classifier is the same).
"""

import argparse
import sys
import json
import shutil
import statistics
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # experiments/: `common`.

HERE = Path(__file__).parent
CONFIGS = HERE.parent / "configs"


def results_text(seeds, summaries, scores):
  """results.md from {config name: [summary per seed]} and {config name: [score dict or None per
  seed]}; K, the device and the FID references come from the runs."""
  from common import study  # pylint: disable=import-outside-toplevel
  lines = ["| config | seeds | epochs | test loss (−ELBO) | IW-NLL (K) | test KL | classifier-FID | "
           "classifier-IS | params | median epoch s | images/s |", "|" + "---|" * 11]
  for name, runs in summaries.items():
    col = lambda k: [s[k] for s in runs]  # noqa: E731
    scored = [s for s in scores[name] if s]
    lines.append(
        f"| {name} | {len(runs)} | {runs[0]['epoch']} | {study.mean_sd(col('eval/loss'))} | "
        f"{study.mean_sd(col('eval/nll_iw'))} ({runs[0]['eval/nll_iw_k']}) | "
        f"{study.mean_sd(col('eval/kl'))} | {study.mean_sd([s['fid'] for s in scored])} | "
        f"{study.mean_sd([s['is'] for s in scored])} | {runs[0]['param_count']:,} | "
        f"{statistics.median(col('median_epoch_seconds')):.2f} | "
        f"{statistics.median(col('images_per_second')):,.0f} |")
  devices = sorted({s["device"] for runs in summaries.values() for s in runs})
  every = [s for runs in scores.values() for s in runs]
  return "\n".join([f"Produced by `python experiments/mnist/run.py --seeds "
                    f"{' '.join(map(str, seeds))}` on {', '.join(devices)}; nats per image on the "
                    "10k MNIST test images, mean ± sd over seeds.", "", *lines, "",
                    study.score_note(every, "mnist"), ""])


def main():
  from vae_jax import config as config_lib, runner  # pylint: disable=import-outside-toplevel
  from common import study  # pylint: disable=import-outside-toplevel
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
  parser.add_argument("--configs", nargs="+", default=["mnist_mlp", "mnist_2d"])
  parser.add_argument("--reuse", action="store_true")
  args = parser.parse_args()

  summaries, scores = {}, {}
  for name in args.configs:
    summaries[name], scores[name] = [], []
    for seed in args.seeds:
      workdir = Path("checkpoints") / f"{name}-s{seed}"
      if not (args.reuse and (workdir / "summary.json").exists()):
        shutil.rmtree(workdir, ignore_errors=True)
        config = config_lib.load_config(CONFIGS / f"{name}.py")
        config.seed = seed
        runner.train_and_evaluate(config, workdir, progress=False)
      summaries[name].append(json.loads((workdir / "summary.json").read_text()))
      scores[name].append(study.run_score(workdir))
      print(name, seed, {k: summaries[name][-1][k] for k in ("eval/loss", "eval/nll_iw")},
            flush=True)
    figures = HERE / "figures" / name
    shutil.rmtree(figures, ignore_errors=True)
    shutil.copytree(Path("checkpoints") / f"{name}-s{args.seeds[0]}" / "figures", figures)
  text = results_text(args.seeds, summaries, scores)
  (HERE / "results.md").write_text(text)
  print(text)


if __name__ == "__main__":
  main()
