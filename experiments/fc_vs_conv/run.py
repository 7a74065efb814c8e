"""The fc_vs_conv study (tyakovenko/vaeEncoders): a fully-connected vs a convolutional VAE, the
study's parameter sets p1-p3, MSE (sum) + KL, 10% of train held out, early stopping on the
validation loss (patience 5, min_delta 0.5), best state kept. Trains every (model, set) with its
seeds vmapped in one compiled program (a `--sweep seed=...` of the configs), then writes
experiments/fc_vs_conv/README.md, its tables and figures.

  python experiments/fc_vs_conv/run.py [--dataset fashion_mnist_32 mnist_32] [--seeds 0 1 2]
      [--models fc conv] [--sets p1 p2 p3] [--reuse] [--resume] [--iw-k 100] [--iw-images 2000]
      [--train-only | --report-only]
      [--override KEY=VALUE ...]

Run directories: checkpoints/fc_vs_conv/<dataset>/<model>_<set>/seed=<s>/ (the sweep's layout).
--reuse keeps runs that hold a summary.json (so adding seeds trains only the new ones, and a
finished study re-renders without training); --resume continues runs that hold a checkpoint.
"""

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
CONFIGS = {m: HERE.parent / "configs" / f"fc_vs_conv_{m}.py" for m in ("fc", "conv")}
RUNS = Path("checkpoints") / "fc_vs_conv"
# The study's parameter sets: (batch size, learning rate, latent size).
SETS = {"p1": (64, 1e-3, 128), "p2": (128, 5e-4, 128), "p3": (64, 5e-4, 256)}


def set_overrides(name: str) -> list[str]:
  """The config overrides of parameter set `name` (p1, p2 or p3)."""
  batch, lr, latent = SETS[name]
  return [f"train.batch_size={batch}", f"optim.lr={lr}", f"model.latent_dim={latent}"]


def group_dir(runs: Path, dataset: str, model: str, pset: str) -> Path:
  """The sweep directory of one (dataset, model, set): its runs are seed=<s>/ below it."""
  return runs / dataset / f"{model}_{pset}"


def train_group(dataset, model, pset, args) -> None:
  """Trains (or reuses / resumes) the seeds of one (dataset, model, set) as one sweep."""
  from vae_jax import config as config_lib, sweep  # pylint: disable=import-outside-toplevel
  config = config_lib.load_config(CONFIGS[model])
  config_lib.apply_overrides(config, [f"data.name={dataset}", f"train.epochs={args.max_epochs}",
                                      *set_overrides(pset), *args.override])
  start = time.perf_counter()
  results = sweep.run_sweep(config, [f"seed={','.join(map(str, args.seeds))}"],
                            group_dir(args.runs, dataset, model, pset), resume=args.resume,
                            reuse=args.reuse, progress=False)
  losses = ", ".join(f"{r['summary']['eval/loss']:.2f}@{r['summary']['best_epoch']}"
                     for r in results)
  capped = [r["name"] for r in results if r["summary"]["stopped_epoch"] is None]
  print(f"{dataset} {model} {pset}: test loss@best epoch {losses} "
        f"({time.perf_counter() - start:.0f} s)"
        + (f"; the {args.max_epochs}-epoch cap bound for {', '.join(capped)}" if capped else ""),
        flush=True)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--dataset", nargs="+", default=["fashion_mnist_32", "mnist_32"],
                      help="data.name of the runs (cifar10 and celeb_a need TFDS data)")
  parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
  parser.add_argument("--models", nargs="+", choices=sorted(CONFIGS), default=["fc", "conv"])
  parser.add_argument("--sets", nargs="+", choices=sorted(SETS), default=sorted(SETS))
  parser.add_argument("--max-epochs", type=int, default=100,
                      help="train.epochs, the cap; the README says where it binds")
  parser.add_argument("--iw-k", type=int, default=100,
                      help="K of the normalized figure (Bernoulli IW-NLL; 0 skips it)")
  parser.add_argument("--iw-images", type=int, default=2000,
                      help="first N test images of the normalized figure")
  parser.add_argument("--reuse", action="store_true", help="keep runs that hold a summary.json")
  parser.add_argument("--resume", action="store_true", help="continue runs from a checkpoint")
  parser.add_argument("--train-only", action="store_true", help="skip the README")
  parser.add_argument("--report-only", action="store_true",
                      help="train nothing: write the README from the finished runs (the rest "
                           "are listed with the command that trains them)")
  parser.add_argument("--override", nargs="*", default=[],
                      help="KEY=VALUE config overrides for every run (quick checks)")
  parser.add_argument("--runs", type=Path, default=RUNS, help="parent of the run directories")
  parser.add_argument("--out", type=Path, default=HERE, help="where README.md and figures go")
  args = parser.parse_args(argv)
  from vae_jax import config as config_lib, data  # pylint: disable=import-outside-toplevel
  try:
    for dataset in [] if args.report_only else args.dataset:
      for model in args.models:
        for pset in args.sets:
          train_group(dataset, model, pset, args)
  except (config_lib.ConfigError, data.DataError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  if not args.train_only:
    import report  # pylint: disable=import-outside-toplevel
    report.write(args, group_dir, set_overrides)
  return 0


if __name__ == "__main__":
  sys.exit(main())
