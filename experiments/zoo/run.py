"""The model zoo on dynamically binarized MNIST with the IWAE paper's protocol (60k training
images, IW-NLL with K = 5000 on the 10k test images): VAE and IWAE (K = 5, 50) with one and two
stochastic layers, the ladder VAE, the VAE with a VampPrior, and a VAE with KL warm-up and a
cosine learning rate; the published numbers beside ours; and a bits/dim table of three
likelihoods on 8-bit Fashion-MNIST. Trains (or reuses / resumes) every row, then writes
experiments/zoo/README.md, the records beside it and the first seed's figures.

  python experiments/zoo/run.py [--seeds 0] [--epochs 10] [--rows NAME ...] [--reuse]
      [--resume] [--jobs N] [--train-only | --report-only] [--runs DIR] [--out DIR]

Run directories: checkpoints/zoo/<row>/seed=<s>/; each finished run's record (config, summary,
metrics) is copied to experiments/zoo/runs/<row>/seed=<s>/, so --reuse re-renders the README
from the records alone. More epochs later: the same command with a larger --epochs and --resume
continues every run from its checkpoint (train.epochs may grow on resume).
"""

import argparse
import functools
import shutil
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # experiments/: `common`.

HERE = Path(__file__).parent
CONFIG = HERE.resolve().parents[1] / "vae_jax" / "configs" / "zoo.py"
RUNS = Path("checkpoints") / "zoo"
IWAE = ["objective.name=iwae"]
# name -> (overrides of vae_jax/configs/zoo.py, published IW-NLL or None, its source)
ROWS = {
    "VAE, 1 layer": ([], 86.76, "Burda et al. 2016, Table 1"),
    "IWAE K=5, 1 layer": ([*IWAE, "objective.num_samples=5"], None, ""),
    "IWAE K=50, 1 layer": ([*IWAE, "objective.num_samples=50"], 84.78,
                           "Burda et al. 2016, Table 1"),
    "VAE, 2 layers": (["model.kind=hvae"], 85.33, "Burda et al. 2016, Table 1"),
    "IWAE K=50, 2 layers": (["model.kind=hvae", *IWAE, "objective.num_samples=50"], 82.90,
                            "Burda et al. 2016, Table 1"),
    "Ladder VAE, 2 layers": (["model.kind=hvae", "model.hvae.inference=ladder"], 81.74,
                             "Sønderby et al. 2016 (5 layers, their Table 1)"),
    "VAE + VampPrior": (["model.prior=vampprior"], 85.57, "Tomczak & Welling 2018, Table 2"),
    "VAE, KL warm-up + cosine lr": (["objective.kl_warmup_epochs=2", "optim.schedule=cosine",
                                     "optim.warmup_epochs=0.5"], None, ""),
}

FASHION = ["data.name=fashion_mnist", "data.preprocess=grayscale"]
# The bits/dim table: the 1-layer VAE on 8-bit Fashion-MNIST under three likelihoods.
BITS_ROWS = {
    "Fashion-MNIST, Bernoulli (grayscale targets)": ([*FASHION], None, ""),
    "Fashion-MNIST, discretized Gaussian": ([*FASHION, "model.likelihood=gaussian"], None, ""),
    # K = 200 importance samples: this decoder's 11,760 outputs per sample (784 pixels x 3 x 5
    # components) make K = 5000 about 4.3 h on 2 CPU cores (measured: K = 200 took 625 s on the
    # 10k test images); a smaller K gives a looser, higher bound, and the table states each K.
    "Fashion-MNIST, discretized logistic mixture (M=5)": (
        [*FASHION, "model.likelihood=logistic_mixture", "model.mixture_components=5",
         "eval.iw_samples=200"], None, ""),
}
ALL_ROWS = ROWS | BITS_ROWS


def slug(name: str) -> str:
  """A row's directory name: 'IWAE K=50, 1 layer' -> 'iwae_k50_1_layer'."""
  return "".join(c if c.isalnum() else "_" for c in name.lower().replace("=", "")).strip(
      "_").replace("__", "_")


def _run_dir(args, name, seed):
  from common import study  # pylint: disable=import-outside-toplevel
  return study.seed_dir(args.runs / slug(name), seed)


def _record_dir(args, name, seed):
  from common import study  # pylint: disable=import-outside-toplevel
  return study.seed_dir(args.out / "runs" / slug(name), seed)


def train_row(name, args):
  """The seeds of one row as one sweep (vmapped seeds); records saved beside the README."""
  from common import study  # pylint: disable=import-outside-toplevel
  overrides = [*ALL_ROWS[name][0], f"train.epochs={args.epochs}"]
  results, seconds = study.train_sweep(CONFIG, overrides, study.seed_sweep(args.seeds),
                                       args.runs / slug(name), args)
  for r in results:
    study.save_record(study.RunDir(Path(r["workdir"])),
                      _record_dir(args, name, int(r["name"].split("=")[1])))
  print(f"{name}: IW-NLL " + ", ".join(f"{r['summary']['eval/nll_iw']:.2f}" for r in results)
        + f" ({seconds:.0f} s)", flush=True)


def readme_text(rows, command):
  """The README from {row name: [study.RunDir per seed]}; every sentence from the runs."""
  from common import study  # pylint: disable=import-outside-toplevel
  lines = study.readme_head(
      "Model zoo: VAE, IWAE, two-layer, ladder and VampPrior on binarized MNIST", command,
      "The IWAE paper (Burda, Grosse & Salakhutdinov, 2016, \"Importance weighted "
      "autoencoders\", arXiv:1509.00519) trains VAEs and IWAEs with one and two stochastic "
      "layers on dynamically binarized MNIST and reports the test negative log-likelihood "
      "estimated with K = 5000 importance samples (their Table 1); the Ladder VAE (Sønderby et "
      "al. 2016) and the VampPrior (Tomczak & Welling 2018) report the same number.",
      " or the records in runs/")
  runs_flat = [r for runs in rows.values() for r in runs]
  epochs = sorted({r.summary["epoch"] for r in runs_flat})
  devices = sorted({r.summary["device"] for r in runs_flat})
  lines += [
      f"Every row: `vae_jax/configs/zoo.py` with the overrides in "
      f"`experiments/zoo/run.py`, trained {', '.join(map(str, epochs))} epoch(s) of MNIST's "
      f"training split on {', '.join(devices)}; the published models trained 3,280 passes "
      "(Burda et al.), so "
      "the gap in the last column is what the remaining epochs would have to close, not a "
      "verdict on the model. IW-NLL and the test loss in nats per image on the "
      f"{study.test_images(r.summary.get('test_images') for r in runs_flat)}, mean ± sd over "
      "seeds.", "",
      "| model | seeds | epochs | test IW-NLL (K) | test loss (training bound) | test KL | "
      "params | median epoch s | published IW-NLL | ours − published |", "|" + "---|" * 10]
  for name, runs in rows.items():
    if not runs or name not in ROWS:
      continue
    s = [r.summary for r in runs]
    nll = [x["eval/nll_iw"] for x in s]
    published, source = ALL_ROWS[name][1], ALL_ROWS[name][2]
    gap = f"{statistics.mean(nll) - published:+.2f}" if published else "—"
    lines.append(
        f"| {name} | {len(s)} | {s[0]['epoch']} | {study.mean_sd(nll)} ({s[0]['eval/nll_iw_k']})"
        f" | {study.mean_sd([x['eval/loss'] for x in s])} | "
        f"{study.mean_sd([x['eval/kl'] for x in s])} | {s[0]['param_count']:,} | "
        f"{statistics.median(x['median_epoch_seconds'] for x in s):.2f} | "
        f"{f'{published:.2f} ({source})' if published else '—'} | {gap} |")
  zoo = [n for n in rows if rows[n] and n in ROWS]
  if zoo:
    best = min(zoo, key=lambda n: statistics.mean(r.summary["eval/nll_iw"] for r in rows[n]))
    lines += ["", f"Lowest IW-NLL here: {best}.", ""]
  bits = [n for n in rows if rows[n] and n in BITS_ROWS]
  if bits:
    lines += [
        "## Bits/dim on Fashion-MNIST", "",
        "The 1-layer model on 8-bit Fashion-MNIST under three likelihoods; bits/dim = IW-NLL / "
        "(H·W·C ln 2). The discretized Gaussian and logistic mixture give each of a pixel's 256 "
        "levels the mass of its bin of width 1/255 (edge bins to ±∞), so theirs are bits/dim of "
        "the 8-bit images; the Bernoulli row is the usual convention on grayscale targets in "
        "[0, 1], not a likelihood of the 8-bit images, and its number is not comparable. "
        "K is the number of importance samples of the IW-NLL; a smaller K gives a looser "
        "(higher) bound.", "",
        "| likelihood | seeds | epochs | K | bits/dim | IW-NLL (nats per image) |",
        "|---|---|---|---|---|---|"]
    for name in bits:
      s = [r.summary for r in rows[name]]
      lines.append(f"| {name.split(', ', 1)[1]} | {len(s)} | {s[0]['epoch']} | "
                   f"{s[0]['eval/nll_iw_k']} | "
                   f"{study.mean_sd([x['eval/nll_iw_bits_per_dim'] for x in s], 3)} | "
                   f"{study.mean_sd([x['eval/nll_iw'] for x in s])} |")
    lines.append("")
  missing = [n for n in rows if not rows[n]]
  if missing:
    lines += ["## Not run yet", "",
              "No finished run of these rows here: " + "; ".join(missing) + ". The same "
              "training command with `--resume` continues every row from its checkpoint "
              "(`python experiments/zoo/run.py --seeds 0 --epochs 5 --reuse --resume`).", ""]
  return "\n".join(lines)


def write_readme(args):
  """README.md from the run directories or records; the first seed's figures of each row under
  figures/<row>/ (when its run directory is here)."""
  from common import study  # pylint: disable=import-outside-toplevel
  rows = {}
  for name in args.rows:
    found = [study.finished_run(_run_dir(args, name, s), _record_dir(args, name, s))
             for s in args.seeds]
    rows[name] = [r for r in found if r is not None]
    figures = _run_dir(args, name, args.seeds[0]) / "figures"
    if figures.is_dir():
      shutil.rmtree(args.out / "figures" / slug(name), ignore_errors=True)
      shutil.copytree(figures, args.out / "figures" / slug(name))
  text = readme_text(rows, study.command_line("experiments/zoo/run.py"))
  (args.out / "README.md").write_text(text)
  print(text)


def main(argv=None):
  from common import study  # pylint: disable=import-outside-toplevel
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--seeds", type=int, nargs="+", default=[0])
  parser.add_argument("--epochs", type=int, default=10)
  parser.add_argument("--rows", nargs="+", default=list(ALL_ROWS), choices=list(ALL_ROWS))
  study.add_study_arguments(parser, RUNS, HERE)
  args = parser.parse_args(argv)
  steps = [functools.partial(train_row, name, args) for name in args.rows
           if study.untrained_seeds(args.seeds, args.reuse,
                                    lambda s, n=name: _record_dir(args, n, s))]
  return study.run_study(args, steps, functools.partial(write_readme, args))


if __name__ == "__main__":
  sys.exit(main())
