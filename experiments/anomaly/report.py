"""Scores, AUROC tables, README.md and ROC figures of the anomaly study (called by run.py)."""

import json
import math
import statistics
from pathlib import Path

import numpy as np

from common import study

SOURCE = (
    "The beta_cvae seed (a course-project proposal, 'Image Generation and Representation "
    "Learning with Variational Autoencoders', 22AIE304 Deep Learning, Team A15) lists "
    "'anomaly detection: reconstruction-based outlier detection' among its extensions without "
    "results. We measure it two ways from the literature: a held-out class (train on nine "
    "digits, detect the tenth; as in An & Cho, 2015), and out-of-distribution detection across "
    "datasets, where Nalisnick et al. (2019, 'Do Deep Generative Models Know What They Don't "
    "Know?') found that likelihood models trained on Fashion-MNIST assign MNIST a *higher* "
    "likelihood, and Serrà et al. (2020, 'Input Complexity and Out-of-distribution Detection "
    "with Likelihood-based Generative Models') corrected the likelihood by the image's "
    "compressed length.")
SCORES = {"nll_iw": "IW-NLL", "neg_elbo": "−ELBO", "recon": "reconstruction term",
          "complexity": "IW-NLL − PNG bits (Serrà)"}


DATASETS = {"mnist": "mnist", "fashion": "fashion_mnist"}  # Test set name -> data.name.


def _scores(run: study.RunDir, sets: list[str], k: int) -> dict:
  """{set name: {score: float64 [N]}} of the run's best state on each test set (names of
  DATASETS): the 'scores' evaluator, cached in the run's eval/scores.npz."""
  from vae_jax import evaluators  # pylint: disable=import-outside-toplevel
  saved = evaluators.evaluate_run(run.dir, "scores", k=k, sets=[DATASETS[s] for s in sets])
  return {name: {s: saved[f"{DATASETS[name]}/{s}"] for s in ("nll_iw", "neg_elbo", "recon")}
          for name in sets}


def _scoring_seconds(run: study.RunDir) -> float:
  """Seconds the run's cached scores took to compute (all its test sets)."""
  from vae_jax import evaluators  # pylint: disable=import-outside-toplevel
  return float(np.load(evaluators.cache_path(run.dir, "scores"))["seconds"])


def _ms(values, digits=3):
  return study.mean_sd(values, digits)


def _heldout(args, groups, mnist):
  """Rows of the held-out-digit table and the ROC panel data of the first seed."""
  from vae_jax import metrics  # pylint: disable=import-outside-toplevel
  x, y = mnist
  rows, roc, by_digit = [], {}, {}
  for name, _, seeds in groups:
    if not name.startswith("heldout_"):
      continue
    d = int(name.split("_")[1])
    runs = [study.RunDir(study.seed_dir(args.runs / name, s)) for s in seeds
            if (study.seed_dir(args.runs / name, s) / "summary.json").is_file()]
    if not runs:
      rows.append(f"| {d} | not run yet |" + " |" * 4)
      continue
    auc = {s: [] for s in ("nll_iw", "neg_elbo", "recon")}
    for r in runs:
      sc = _scores(r, ["mnist"], args.iw_k)["mnist"]
      for s in auc:
        auc[s].append(metrics.auroc(sc[s][y == d], sc[s][y != d]))
      if r is runs[0]:
        roc[f"held-out {d}"] = sc
    by_digit[d] = {s: statistics.mean(v) for s, v in auc.items()}
    rows.append(f"| {d} | {len(runs)} | {_ms(auc['nll_iw'])} | {_ms(auc['neg_elbo'])} | "
                f"{_ms(auc['recon'])} | {_ms([r.summary['eval/loss'] for r in runs], 2)} |")
  return rows, roc, by_digit


def _fashion(args, groups, mnist, fashion):
  """Per-seed AUROCs of MNIST (positive) vs Fashion-MNIST test, mean NLLs, ROC data."""
  from vae_jax import metrics  # pylint: disable=import-outside-toplevel
  seeds = next(s for name, _, s in groups if name == "fashion")
  runs = [study.RunDir(study.seed_dir(args.runs / "fashion", s)) for s in seeds
          if (study.seed_dir(args.runs / "fashion", s) / "summary.json").is_file()]
  if not runs:
    return None
  bits = {"mnist": metrics.png_bits(mnist[0]), "fashion": metrics.png_bits(fashion[0])}
  pixels = math.prod(mnist[0].shape[1:])
  auc, nll, first = {s: [] for s in SCORES}, {"mnist": [], "fashion": []}, None
  for r in runs:
    sc = _scores(r, ["mnist", "fashion"], args.iw_k)
    for name in sc:
      sc[name]["complexity"] = sc[name]["nll_iw"] / math.log(2.0) - bits[name]
      nll[name].append(float(np.mean(sc[name]["nll_iw"])))
    for s in SCORES:
      auc[s].append(metrics.auroc(sc["mnist"][s], sc["fashion"][s]))
    first = first or sc
  return {"runs": runs, "auc": auc, "nll": nll, "first": first, "pixels": pixels,
          "bits": {k: float(np.mean(v)) for k, v in bits.items()}}


def write(args, groups) -> Path:
  from vae_jax import data  # pylint: disable=import-outside-toplevel
  from common import plots  # pylint: disable=import-outside-toplevel
  any_run = next((study.seed_dir(args.runs / name, s[0]) for name, _, s in groups
                  if (study.seed_dir(args.runs / name, s[0]) / "summary.json").is_file()), None)
  if any_run is None:
    raise SystemExit("no finished runs to report; train them first (drop --report-only)")
  cfg = study.RunDir(any_run).restored()[0]  # The runs' test splits: what their scores cover.
  mnist, fashion = data.test_split(cfg.data, "mnist"), data.test_split(cfg.data, "fashion_mnist")
  rows, roc_heldout, by_digit = _heldout(args, groups, mnist)
  ood = _fashion(args, groups, mnist, fashion)
  args.out.mkdir(parents=True, exist_ok=True)
  command = study.command_line("experiments/anomaly/run.py")
  summary = json.loads((any_run / "summary.json").read_text())
  lines = [
      *study.readme_head("Anomaly detection with VAE likelihoods", command, SOURCE,
                         " and their cached scores"),
      f"- Model: the mnist_mlp VAE (`vae_jax/configs/mnist_mlp.py`: 784-"
      f"{'-'.join(map(str, cfg.model.encoder.widths))}-{cfg.model.latent_dim}, Bernoulli "
      f"likelihood on grayscale pixels, {cfg.optim.name} lr {cfg.optim.lr:g}, batch "
      f"{cfg.train.batch_size}, {cfg.train.epochs} epoch{'s' if cfg.train.epochs > 1 else ''}, "
      f"{summary['param_count']:,} params). The MLP VAE and not the conv VAE: every run scores "
      f"each test image by an IW-NLL with K = {args.iw_k}, and the conv decoder's passes would "
      "not fit the study's 2-hour CPU budget (scoring time per run below).",
      f"- Scores (higher = more anomalous), per test image: IW-NLL (−IWAE bound, K = "
      f"{args.iw_k}, Burda et al., 2016), −ELBO and the reconstruction term (one z each), and "
      "for the cross-dataset task the input-complexity score S(x) = −log2 p(x) − L(x) of Serrà "
      "et al. (2020) with L(x) the bits of the image losslessly compressed as PNG.",
      "- AUROC by scikit-learn; 1 = every anomaly scores above every normal image, 0.5 = no "
      "separation, below 0.5 = the score ranks anomalies as *more* typical.", ""]
  lines += ["## (a) Held-out digit", "",
            "Trained on the other nine digits (train split without the digit, "
            "`data.exclude_classes`), scored on the whole MNIST test set; AUROC of the held-out "
            "digit against the other nine. Mean ± sd over seeds.", "",
            "| held-out digit | seeds | AUROC by IW-NLL | AUROC by −ELBO | AUROC by "
            "reconstruction term | test −ELBO (all ten digits) |", "|---|---|---|---|---|---|",
            *rows, ""]
  if by_digit:
    ranked = sorted(by_digit, key=lambda d: by_digit[d]["nll_iw"])
    lines += [f"Over the {len(by_digit)} digits the IW-NLL's AUROC averages "
              f"{statistics.mean(v['nll_iw'] for v in by_digit.values()):.3f} (−ELBO: "
              f"{statistics.mean(v['neg_elbo'] for v in by_digit.values()):.3f}); hardest to "
              f"detect: digit {ranked[0]} ({by_digit[ranked[0]]['nll_iw']:.3f}), easiest: digit "
              f"{ranked[-1]} ({by_digit[ranked[-1]]['nll_iw']:.3f}).", ""]
  figures = []
  if roc_heldout:
    x, y = mnist
    panels = {"held-out digit (first seed), IW-NLL": {
        name.replace("held-out ", "digit "): (sc["nll_iw"][y == int(name.split()[-1])],
                                              sc["nll_iw"][y != int(name.split()[-1])])
        for name, sc in roc_heldout.items()}}
    plots.roc_curves(panels, args.out / "roc_heldout.png",
                     title="ROC: held-out digit vs the nine training digits")
    figures.append("roc_heldout.png")
  lines += ["## (b) Fashion-MNIST → MNIST", ""]
  if ood is None:
    lines += ["Not run yet.", ""]
  else:
    n = len(ood["runs"])
    nll_m, nll_f = statistics.mean(ood["nll"]["mnist"]), statistics.mean(ood["nll"]["fashion"])
    auc_nll = statistics.mean(ood["auc"]["nll_iw"])
    lines += [f"Trained on Fashion-MNIST ({n} seed{'s' if n > 1 else ''}); positives: the MNIST "
              f"{study.test_images([len(mnist[0])])} (out of distribution), negatives: the "
              f"Fashion-MNIST {study.test_images([len(fashion[0])])}. Mean ± sd over seeds.", "",
              "| score | AUROC (MNIST = anomaly) |", "|---|---|",
              *[f"| {label} | {_ms(ood['auc'][s])} |" for s, label in SCORES.items()], "",
              f"Mean IW-NLL: MNIST test {nll_m:.2f} nats, Fashion-MNIST test {nll_f:.2f} nats "
              f"per image ({nll_m / (ood['pixels'] * math.log(2)):.3f} vs "
              f"{nll_f / (ood['pixels'] * math.log(2)):.3f} bits/dim); mean PNG length "
              f"{ood['bits']['mnist']:.0f} vs {ood['bits']['fashion']:.0f} bits.", "",
              ("Nalisnick et al.'s finding is reproduced: the Fashion-MNIST VAE gives the MNIST "
               f"digits a higher likelihood than its own test set (lower NLL, AUROC {auc_nll:.3f} "
               "< 0.5)." if nll_m < nll_f and auc_nll < 0.5 else
               "Nalisnick et al.'s finding is not reproduced here: MNIST does not get the "
               f"higher likelihood on average (AUROC of the IW-NLL {auc_nll:.3f}).")
              + f" The input-complexity score reaches AUROC "
              f"{statistics.mean(ood['auc']['complexity']):.3f}"
              + (": subtracting what a generic compressor already explains removes the bias "
                 "toward simple images." if statistics.mean(ood["auc"]["complexity"]) > 0.5
                 else "."), ""]
    first = ood["first"]
    plots.roc_curves({"Fashion-MNIST → MNIST (first seed)": {
        SCORES[s]: (first["mnist"][s], first["fashion"][s]) for s in SCORES}},
        args.out / "roc_fashion_mnist.png", title="ROC: MNIST as anomalies for a Fashion VAE")
    figures.append("roc_fashion_mnist.png")
  every = [study.RunDir(study.seed_dir(args.runs / name, s)) for name, _, seeds in groups
           for s in seeds if (study.seed_dir(args.runs / name, s) / "summary.json").is_file()]
  lines += ["## Figures", "", f"Made by `{command}`.", "",
            *[f"![{f}]({f})" for f in figures], "",
            "## Cost", "",
            f"{len(every)} runs; training (epochs only) "
            f"{sum(r.train_minutes for r in every):.1f} min on "
            f"{', '.join(sorted({r.summary['device'] for r in every}))}. Scoring (K = "
            f"{args.iw_k}) took {statistics.median(_scoring_seconds(r) for r in every):.0f} s per "
            "run (median; a held-out-digit run scores the MNIST "
            f"{study.test_images([len(mnist[0])])}, a Fashion-MNIST run those and the "
            f"Fashion-MNIST {study.test_images([len(fashion[0])])}).", ""]
  readme = args.out / "README.md"
  readme.write_text("\n".join(lines))
  print(f"wrote {readme} and {len(figures)} figures", flush=True)
  return readme
