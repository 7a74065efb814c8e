"""Likelihood-based anomaly detection with VAEs (the beta_cvae proposal's 'anomaly detection by
reconstruction / NLL'): (a) held-out digit: a VAE trained on nine MNIST digits scores the test set,
AUROC of the held-out digit against the rest; (b) Fashion-MNIST -> MNIST: a VAE trained on
Fashion-MNIST scores both test sets (Nalisnick et al., 2019), by the raw likelihood and by the
input-complexity correction of Serrà et al. (2020). Trains (or reuses / resumes) every run, then
writes experiments/anomaly/README.md and its figures.

  python experiments/anomaly/run.py [--digits 0 1 ... 9] [--seeded-digits 0 1 9]
      [--seeds 0 1 2] [--epochs 20] [--iw-k 1000] [--reuse] [--resume]
      [--train-only | --report-only] [--override KEY=VALUE ...]

Model: the mnist_mlp VAE (784-400-20, Bernoulli likelihood, Adam 1e-3, batch 128): the conv VAE's
IW-NLL with K = 1000 over 10k test images per run does not fit the 2-core CPU budget.
Run directories (sweep layout, checkpoints/anomaly/):
  heldout_<d>/seed=<s>/   trained without digit d (seeds --seeds for --seeded-digits, else the
                          first seed); eval/scores.npz: per-test-image scores
  fashion/seed=<s>/       trained on Fashion-MNIST; eval/scores.npz: scores of both test sets
"""

import argparse
import functools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # experiments/: `common`.
from common import study  # noqa: E402  # pylint: disable=wrong-import-position

HERE = Path(__file__).parent
CONFIG = HERE.resolve().parents[1] / "vae_jax" / "configs" / "mnist_mlp.py"
RUNS = Path("checkpoints") / "anomaly"


def groups(args) -> list[tuple[str, list[str], list[int]]]:
  """(group directory name, config overrides, seeds) of every group of runs."""
  out = [(f"heldout_{d}", [f"data.exclude_classes={d}"],
          args.seeds if d in args.seeded_digits else args.seeds[:1]) for d in args.digits]
  return out + [("fashion", ["data.name=fashion_mnist"], args.seeds)]


def train_group(name, overrides, seeds, args) -> None:
  results, seconds = study.train_sweep(
      CONFIG, [f"train.epochs={args.epochs}", "eval.iw_samples=0", *overrides],
      study.seed_sweep(seeds), args.runs / name, args)
  print(f"{name}: test loss " + ", ".join(f"{r['summary']['eval/loss']:.2f}" for r in results)
        + f" ({seconds:.0f} s)", flush=True)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--digits", type=int, nargs="+", default=list(range(10)),
                      help="held-out digits (one seed each)")
  parser.add_argument("--seeded-digits", type=int, nargs="*", default=[0, 1, 9],
                      help="held-out digits trained with every --seeds")
  parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
  parser.add_argument("--epochs", type=int, default=20)
  parser.add_argument("--iw-k", type=int, default=1000, help="K of the IW-NLL score")
  study.add_study_arguments(parser, RUNS, HERE)
  args = parser.parse_args(argv)
  bad = [d for d in args.digits + args.seeded_digits if not 0 <= d <= 9]
  if bad or not set(args.seeded_digits) <= set(args.digits) or args.iw_k < 1:
    print(f"error: --digits and --seeded-digits take digits 0-9 (--seeded-digits among "
          f"--digits) and --iw-k >= 1; got digits {args.digits}, seeded {args.seeded_digits}, "
          f"K {args.iw_k}", file=sys.stderr)
    return 2
  import report  # pylint: disable=import-outside-toplevel
  return study.run_study(args, [functools.partial(train_group, *g, args) for g in groups(args)],
                         functools.partial(report.write, args, groups(args)))


if __name__ == "__main__":
  sys.exit(main())
