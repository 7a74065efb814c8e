"""The fc_vs_conv study (tyakovenko/vaeEncoders): a fully-connected vs a convolutional VAE, the
study's parameter sets p1-p3, MSE (sum) + KL, 10% of train held out, early stopping on the
validation loss (patience 5, min_delta 0.5), best state kept. Trains every (model, set) with its
seeds vmapped in one compiled program (a `--sweep seed=...` of the configs), then writes
experiments/fc_vs_conv/README.md, its tables and figures.

  python experiments/fc_vs_conv/run.py [--dataset fashion_mnist_32 mnist_32] [--seeds 0 1 2]
      [--models fc conv] [--sets p1 p2 p3] [--reuse] [--resume] [--iw-k 100] [--iw-images 2000]
      [--train-only | --report-only]
      [--override KEY=VALUE ...]
  python experiments/fc_vs_conv/run.py --ablation [--dataset ...] [--seeds ...]
      [--ablation-set p1] [--ablation-epochs 2] [--reuse] [--resume]

--ablation trains and reports the conv decoder ablation instead (ablation.py, ABLATION.md):
projection ReLU on/off x transposed-conv fan C_in / C_out, one set, a few epochs per run.

Run directories: checkpoints/fc_vs_conv/<dataset>/<model>_<set>/seed=<s>/ (the sweep's layout).
--reuse keeps runs that hold a summary.json in their run directory or a record beside the README
(<out>/runs/..., written by the report: summary, metrics, config, IW-NLL; so a study spans
checkouts, adding seeds trains only the new ones, and a finished study re-renders without
training; figures are drawn from runs with checkpoints); --resume continues runs that hold a
checkpoint.
"""

import argparse
import functools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # experiments/: `common`.
from common import study  # noqa: E402  # pylint: disable=wrong-import-position

HERE = Path(__file__).parent
CONFIGS = {m: HERE.resolve().parents[1] / "vae_jax" / "configs" / f"fc_vs_conv_{m}.py"
           for m in ("fc", "conv")}
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
  """Trains (or reuses / resumes) the seeds of one (dataset, model, set) as one sweep; with
  --reuse, seeds whose record is committed beside the README are not trained again."""
  import report  # pylint: disable=import-outside-toplevel
  seeds = study.untrained_seeds(
      args.seeds, args.reuse, lambda s: report.record_dir(args, group_dir, dataset, model, pset, s))
  if not seeds:
    return
  results, seconds = study.train_sweep(
      CONFIGS[model], [f"data.name={dataset}", f"train.epochs={args.max_epochs}",
                       *set_overrides(pset)],
      study.seed_sweep(seeds), group_dir(args.runs, dataset, model, pset), args)
  losses = ", ".join(f"{r['summary']['eval/loss']:.2f}@{r['summary']['best_epoch']}"
                     for r in results)
  capped = [r["name"] for r in results if r["summary"]["stopped_epoch"] is None]
  print(f"{dataset} {model} {pset}: test loss@best epoch {losses} "
        f"({seconds:.0f} s)"
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
  parser.add_argument("--ablation", action="store_true",
                      help="train and report the conv decoder ablation (ABLATION.md) instead")
  parser.add_argument("--ablation-set", choices=sorted(SETS), default="p1")
  parser.add_argument("--ablation-epochs", type=int, default=2)
  study.add_study_arguments(parser, RUNS, HERE)
  args = parser.parse_args(argv)
  args.conv_config = CONFIGS["conv"]
  import ablation  # pylint: disable=import-outside-toplevel
  import report  # pylint: disable=import-outside-toplevel
  if args.ablation:
    return study.run_study(
        args, [functools.partial(ablation.train, d, act, fan, args,
                                 set_overrides(args.ablation_set))
               for d in args.dataset for act, fan in ablation.CELLS],
        functools.partial(ablation.write, args, args.ablation_set))
  return study.run_study(
      args, [functools.partial(train_group, d, m, p, args)
             for d in args.dataset for m in args.models for p in args.sets],
      functools.partial(report.write, args, group_dir, set_overrides))


if __name__ == "__main__":
  sys.exit(main())
