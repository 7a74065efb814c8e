"""Foundation results: trains mnist_mlp and mnist_2d on real MNIST over seeds, scores each run's
prior samples (classifier-FID / IS, `vae-jax score`, cached in the run's eval/fid_is.json) when
checkpoints/classifier_mnist exists, then writes experiments/mnist/results.md (mean +- sd over
seeds) and copies the first seed's figures here.

  python experiments/mnist/run.py [--seeds 0 1 2] [--configs mnist_mlp mnist_2d] [--reuse]
      [--resume] [--jobs N] [--train-only | --report-only] [--runs DIR] [--out DIR]

Run directories: checkpoints/mnist/<config>/seed=<s>/ (the studies' one layout). --reuse keeps
finished runs (summary.json present) and re-renders without retraining (or rescoring, while the
classifier is the same); --resume continues runs that hold a checkpoint (without it such a run
directory is refused; nothing is deleted).
"""

import argparse
import functools
import shutil
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # experiments/: `common`.

HERE = Path(__file__).parent
CONFIGS = HERE.resolve().parents[1] / "vae_jax" / "configs"
RUNS = Path("checkpoints") / "mnist"


def results_text(seeds, summaries, scores, command=None):
  """results.md from {config name: [summary per seed]} and {config name: [score dict or None per
  seed]}; K, the device and the FID references come from the runs; `command` made it (default:
  the runner with --seeds)."""
  from common import study  # pylint: disable=import-outside-toplevel
  lines = ["| config | seeds | epochs | test loss (−ELBO) | IW-NLL (K) | test KL | "
           "classifier-FID | classifier-IS | params | median epoch s | images/s |",
           "|" + "---|" * 11]
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
  every_run = [s for runs in summaries.values() for s in runs]
  command = command or f"python experiments/mnist/run.py --seeds {' '.join(map(str, seeds))}"
  return "\n".join([f"Produced by `{command}` on {', '.join(devices)}; nats per image on the "
                    f"MNIST {study.test_images(s.get('test_images') for s in every_run)}, mean ± "
                    "sd over seeds.", "", *lines, "",
                    study.score_note(every, "mnist"), ""])


def _dir(runs, name, seed):
  from common import study  # pylint: disable=import-outside-toplevel
  return study.seed_dir(runs / name, seed)


def train_group(name, args):
  """The seeds of one config, each trained alone (train.vmap_runs=never: the results are those of
  `vae-jax train --config vae_jax/configs/<name>.py`, which vmapped seeds equal only up to
  float rounding)."""
  from common import study  # pylint: disable=import-outside-toplevel
  results, seconds = study.train_sweep(CONFIGS / f"{name}.py", ["train.vmap_runs=never"],
                                       study.seed_sweep(args.seeds), args.runs / name, args)
  print(f"{name}: test loss " + ", ".join(f"{r['summary']['eval/loss']:.2f}" for r in results)
        + f" ({seconds:.0f} s)", flush=True)


def write_results(args):
  """results.md (args.out) from the runs, and the first seed's figures under figures/<config>/."""
  from common import study  # pylint: disable=import-outside-toplevel
  summaries = {name: [study.RunDir(_dir(args.runs, name, s)).summary for s in args.seeds]
               for name in args.configs}
  scores = {name: [study.run_score(_dir(args.runs, name, s)) for s in args.seeds]
            for name in args.configs}
  for name in args.configs:
    figures = args.out / "figures" / name
    shutil.rmtree(figures, ignore_errors=True)
    shutil.copytree(_dir(args.runs, name, args.seeds[0]) / "figures", figures)
  text = results_text(args.seeds, summaries, scores,
                      study.command_line("experiments/mnist/run.py"))
  (args.out / "results.md").write_text(text)
  print(text)


def main(argv=None):
  from common import study  # pylint: disable=import-outside-toplevel
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
  parser.add_argument("--configs", nargs="+", default=["mnist_mlp", "mnist_2d"])
  study.add_study_arguments(parser, RUNS, HERE)
  args = parser.parse_args(argv)
  steps = [functools.partial(train_group, name, args) for name in args.configs
           if study.untrained_seeds(args.seeds, args.reuse,
                                    lambda s, n=name: _dir(args.runs, n, s))]
  return study.run_study(args, steps, functools.partial(write_results, args))


if __name__ == "__main__":
  sys.exit(main())
