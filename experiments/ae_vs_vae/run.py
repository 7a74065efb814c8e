"""The ae_vs_vae study: vanilla autoencoder vs VAE on MNIST for latent sizes 2-100, MSE
reconstruction term, AdamW, a fixed 6k validation split; per-digit test MSE. Trains every
(model, latent size) with its seeds vmapped in one compiled program, then writes
experiments/ae_vs_vae/README.md and its figures.

  python experiments/ae_vs_vae/run.py [--seeds 0 1 2] [--latents 2 5 10 20 50 100] [--epochs 50]
      [--reuse] [--resume] [--flat 0.05] [--override KEY=VALUE ...] [--jobs N]
      [--train-only | --report-only] [--runs DIR] [--out DIR]

Run directories: checkpoints/ae_vs_vae/<ae|vae>_z<latent>/seed=<s>/ (the studies' one layout).
--reuse keeps runs that have a summary.json and re-renders; --resume continues runs that hold a
checkpoint (the others start afresh; without --resume a run directory holding a checkpoint is
refused, nothing is deleted); each VAE
run's classifier-FID / IS is computed once (checkpoints/classifier_mnist, `vae-jax score`) and
cached in its eval/fid_is.json.
"""

import argparse
import functools
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # experiments/: `common`.

from common import study  # noqa: E402  pylint: disable=wrong-import-position

HERE = Path(__file__).parent
CONFIG = HERE.resolve().parents[1] / "vae_jax" / "configs" / "ae_vs_vae.py"
RUNS = Path("checkpoints") / "ae_vs_vae"
KINDS = ("ae", "vae")
CLASSES = tuple(range(10))


def _dir(kind, latent, seed):
  return study.seed_dir(RUNS / f"{kind}_z{latent}", seed)


def train_group(kind, latent, args):
  """The seeds of one (model, latent size), vmapped in one program (study.train_sweep)."""
  results, seconds = study.train_sweep(
      CONFIG, [f"model.kind={kind}", f"model.latent_dim={latent}", f"train.epochs={args.epochs}"],
      study.seed_sweep(args.seeds), args.runs / f"{kind}_z{latent}", args)
  print(f"{kind} z={latent}: test MSE "
        + ", ".join(f"{r['summary']['eval/mse']:.2f}" for r in results)
        + f" ({seconds:.0f} s)", flush=True)


def _summary(kind, latent, seed):
  return json.loads((_dir(kind, latent, seed) / "summary.json").read_text())


def _rows(kind, latent, seed):
  path = _dir(kind, latent, seed) / "metrics.jsonl"
  return [json.loads(line) for line in path.read_text().splitlines()]


def main(argv=None):
  global RUNS  # pylint: disable=global-statement
  import report  # pylint: disable=import-outside-toplevel
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
  parser.add_argument("--latents", type=int, nargs="+", default=[2, 5, 10, 20, 50, 100])
  parser.add_argument("--epochs", type=int, default=50)
  parser.add_argument("--flat", type=float, default=report.FLAT,
                      help="the VAE's error counts as flat from the latent size that no larger "
                           "size beats by more than this fraction (the README's verdict)")
  study.add_study_arguments(parser, RUNS, HERE)
  args = parser.parse_args(argv)
  RUNS = args.runs
  steps = [functools.partial(train_group, kind, latent, args)
           for latent in args.latents for kind in KINDS
           if study.untrained_seeds(args.seeds, args.reuse,
                                    lambda s, k=kind, z=latent: _dir(k, z, s))]

  def write_report():
    args.out.mkdir(parents=True, exist_ok=True)
    report.write(args, _summary, _rows, _dir, lambda z, s: study.run_score(_dir("vae", z, s)))
  return study.run_study(args, steps, write_report)


if __name__ == "__main__":
  sys.exit(main())
