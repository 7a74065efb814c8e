"""The ae_vs_vae study: vanilla autoencoder vs VAE on MNIST for latent sizes 2-100, MSE
reconstruction term, AdamW, a fixed 6k validation split; per-digit test MSE. Trains every
(model, latent size) with its seeds vmapped in one compiled program, then writes
experiments/ae_vs_vae/README.md and its figures.

  python experiments/ae_vs_vae/run.py [--seeds 0 1 2] [--latents 2 5 10 20 50 100] [--epochs 50]
      [--reuse] [--resume] [--flat 0.05] [--override KEY=VALUE ...]

Run directories: checkpoints/ae_vs_vae/<ae|vae>_z<latent>/seed<s>/ (the runner's contract).
--reuse keeps (model, latent) groups whose runs all have a summary.json and re-renders; --resume
continues a group whose runs all hold a checkpoint (others start afresh); each VAE
run's classifier-FID / IS is computed once (checkpoints/classifier_mnist, `vae-jax score`) and
cached in its eval/fid_is.json.
"""

import argparse
import sys
import json
import shutil
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # experiments/: `common`.

HERE = Path(__file__).parent
CONFIG = HERE.parent / "configs" / "ae_vs_vae.py"
RUNS = Path("checkpoints") / "ae_vs_vae"
KINDS = ("ae", "vae")
CLASSES = tuple(range(10))


def _dir(kind, latent, seed):
  return RUNS / f"{kind}_z{latent}" / f"seed{seed}"


def _train(kind, latent, args):
  # pylint: disable-next=import-outside-toplevel
  from vae_jax import checkpointing, config as config_lib, runner
  config = config_lib.load_config(CONFIG)
  config_lib.apply_overrides(config, [f"model.kind={kind}", f"model.latent_dim={latent}",
                                      f"train.epochs={args.epochs}", *args.override])
  dirs = [_dir(kind, latent, s) for s in args.seeds]
  resume = args.resume and all(checkpointing.latest_epoch(d) is not None for d in dirs)
  if not resume:
    for d in dirs:
      shutil.rmtree(d, ignore_errors=True)
  start = time.perf_counter()
  summaries = runner.train_and_evaluate_seeds(config, args.seeds, dirs, resume=resume,
                                              progress=False)
  print(f"{kind} z={latent}: test MSE "
        + ", ".join(f"{s['eval/mse']:.2f}" for s in summaries)
        + f" ({time.perf_counter() - start:.0f} s)", flush=True)


def _summary(kind, latent, seed):
  return json.loads((_dir(kind, latent, seed) / "summary.json").read_text())


def _rows(kind, latent, seed):
  path = _dir(kind, latent, seed) / "metrics.jsonl"
  return [json.loads(line) for line in path.read_text().splitlines()]


def main():
  global RUNS  # pylint: disable=global-statement
  import report  # pylint: disable=import-outside-toplevel
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
  parser.add_argument("--latents", type=int, nargs="+", default=[2, 5, 10, 20, 50, 100])
  parser.add_argument("--epochs", type=int, default=50)
  parser.add_argument("--reuse", action="store_true",
                      help="keep (model, latent) groups whose runs hold a summary.json")
  parser.add_argument("--resume", action="store_true",
                      help="continue unfinished groups from their latest checkpoint")
  parser.add_argument("--override", nargs="*", default=[],
                      help="KEY=VALUE config overrides for every run (quick checks)")
  parser.add_argument("--flat", type=float, default=report.FLAT,
                      help="the VAE's error counts as flat from the latent size that no larger "
                           "size beats by more than this fraction (the README's verdict)")
  parser.add_argument("--runs", type=Path, default=RUNS, help="parent of the run directories")
  parser.add_argument("--out", type=Path, default=HERE, help="where README.md and figures go")
  args = parser.parse_args()
  RUNS = args.runs
  args.out.mkdir(parents=True, exist_ok=True)
  for latent in args.latents:
    for kind in KINDS:
      done = all((_dir(kind, latent, s) / "summary.json").exists() for s in args.seeds)
      if not (args.reuse and done):
        _train(kind, latent, args)
  from common import study  # pylint: disable=import-outside-toplevel
  report.write(args, _summary, _rows, _dir, lambda z, s: study.run_score(_dir("vae", z, s)))


if __name__ == "__main__":
  main()
