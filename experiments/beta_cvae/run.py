"""The beta_cvae study (a proposal: 22AIE304 Team A15, 'Image Generation and Representation
Learning with Variational Autoencoders'): a conv VAE on MNIST (latent 20, Bernoulli likelihood),
a β ablation with every (β, seed) in ONE compiled program, a latent-size ablation, a
class-conditional VAE and the latent-space analysis. Trains every group (or reuses / resumes it),
then writes experiments/beta_cvae/README.md, its tables and figures.

  python experiments/beta_cvae/run.py [--seeds 0 1 2] [--betas 0.25 0.5 1 2 4 8]
      [--latents 2 5 10 20 50] [--epochs 10] [--reuse] [--resume]
      [--train-only | --report-only] [--override KEY=VALUE ...]

Run directories (sweep layout, checkpoints/beta_cvae/<group>/<run>/):
  beta/objective.beta=<b>,seed=<s>/   every β and seed, one program (latent 20; β = 1 is the
                                       core model); keeps every epoch's checkpoint (samples over
                                       training)
  latent/model.latent_dim=<z>,seed=<s>/  the other latent sizes (β = 1), one program per size
  cvae/seed=<s>/                       the class-conditional VAE (β = 1, latent 20)
  solo/seed=<s>/                       β = 1, first seed, trained alone: the epoch time of one
                                       run against the β program's
--reuse keeps runs that hold a summary.json (a finished study re-renders without training);
--resume continues runs that hold a checkpoint.
"""

import argparse
import functools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # experiments/: `common`.
from common import study  # noqa: E402  # pylint: disable=wrong-import-position

HERE = Path(__file__).parent
CONFIG = HERE.resolve().parents[1] / "vae_jax" / "configs" / "beta_cvae.py"
RUNS = Path("checkpoints") / "beta_cvae"
GROUPS = ("beta", "solo", "cvae", "latent")


def _num(value: float) -> str:
  """A sweep value as written in run names: 1 -> '1.0', 0.25 -> '0.25'."""
  return repr(float(value))


def group_sweeps(group: str, args) -> tuple[list[str], list[str]]:
  """(config overrides, --sweep arguments) of one group of runs."""
  seeds = ",".join(map(str, args.seeds))
  if group == "beta":
    # Every epoch's checkpoint (samples and filters over training) and train.dynamics (per-layer
    # norms each epoch: the gradient flow; the steps are the same, the probe costs ~1% of an
    # epoch) of the core model's program.
    return (["train.keep_checkpoints=0", "train.dynamics=True"],
            [f"objective.beta={','.join(_num(b) for b in args.betas)}", f"seed={seeds}"])
  if group == "solo":
    return [], [f"seed={args.seeds[0]}"]
  if group == "cvae":
    return ["model.kind=cvae"], [f"seed={seeds}"]
  others = [z for z in args.latents if z != 20]  # Latent 20 is the β = 1 program's.
  return [], ([f"model.latent_dim={','.join(map(str, others))}", f"seed={seeds}"]
              if others else [])


def train_group(group: str, args) -> None:
  """Trains (or reuses / resumes) the runs of one group as one sweep."""
  overrides, sweeps = group_sweeps(group, args)
  if not sweeps:
    return
  results, seconds = study.train_sweep(CONFIG, [f"train.epochs={args.epochs}", *overrides],
                                       sweeps, args.runs / group, args)
  programs = sorted({r["summary"]["runs_in_program"] for r in results})
  print(f"{group}: {len(results)} runs, runs per program {programs}, test loss "
        + ", ".join(f"{r['summary']['eval/loss']:.2f}" for r in results)
        + f" ({seconds:.0f} s)", flush=True)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
  parser.add_argument("--betas", type=float, nargs="+", default=[0.25, 0.5, 1.0, 2.0, 4.0, 8.0],
                      help="objective.beta values of the β program (must include 1)")
  parser.add_argument("--latents", type=int, nargs="+", default=[2, 5, 10, 20, 50],
                      help="model.latent_dim values of the latent-size ablation (20 is the β = 1 "
                           "runs)")
  parser.add_argument("--epochs", type=int, default=10, help="train.epochs of every run")
  parser.add_argument("--groups", nargs="+", choices=GROUPS, default=list(GROUPS),
                      help="groups to train (all by default)")
  parser.add_argument("--tsne-points", type=int, default=2000,
                      help="t-SNE of the first N test posterior means (PCA uses all)")
  study.add_study_arguments(parser, RUNS, HERE)
  args = parser.parse_args(argv)
  if 1.0 not in args.betas or 20 not in args.latents:
    print("error: --betas must include 1 and --latents 20 (the core model: β = 1, latent 20); "
          "add them", file=sys.stderr)
    return 2
  import report  # pylint: disable=import-outside-toplevel
  return study.run_study(args, [functools.partial(train_group, g, args) for g in args.groups],
                         functools.partial(report.write, args))


if __name__ == "__main__":
  sys.exit(main())
