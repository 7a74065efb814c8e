"""README.md and figures of the ae_vs_vae study, from its run directories (called by run.py)."""

import statistics
from pathlib import Path

import numpy as np

KINDS = {"ae": "AE", "vae": "VAE"}
EASIEST, HARDEST = {1, 7}, {2, 8}  # The write-up's claim.
WRITEUP_CHOICE = 20  # The latent size the write-up selected for its VAE.
FLAT = 0.05  # Default of run.py --flat: "flat" = within this fraction of the best test MSE.
SOURCE = (
    "The original write-up is unpublished: a project README that names no author, repository or "
    "paper. It trains a vanilla autoencoder and a VAE (Linear+ReLU MLPs, sigmoid output, MSE "
    "reconstruction loss + KL for the VAE) in PyTorch on MNIST with 10% of the training set held "
    "out for validation, latent sizes 2, 5, 10, 20, 50 and 100, AdamW (lr 1e-3, default weight "
    "decay), batch 1024, 50 epochs on one V100 GPU. It reports that the AE's reconstruction error "
    "falls with latent size while the VAE's stays flat or gets slightly worse, that digits 1 and "
    "7 are the easiest to reconstruct and 2 and 8 the hardest, and selects latent size "
    f"{WRITEUP_CHOICE} for its VAE on the validation split.")


class _Study:
  """Reads summaries and metrics of every (kind, latent, seed)."""

  def __init__(self, args, summary, rows, run_dir):
    self.args, self.seeds, self.latents = args, args.seeds, args.latents
    self.summary, self.rows, self.run_dir = summary, rows, run_dir

  def final(self, kind, latent, key):
    """[S] final-summary values over seeds."""
    return np.array([self.summary(kind, latent, s)[key] for s in self.seeds], float)

  def mean(self, kind, key):
    """[L] means over seeds, one per latent size."""
    return np.array([self.final(kind, z, key).mean() for z in self.latents])

  def per_class(self, kind):
    """[L, S, C] per-class test MSE."""
    return np.array([[self.summary(kind, z, s)["eval/per_class/mse"] for s in self.seeds]
                     for z in self.latents], float)

  def curve(self, kind, latent, key):
    """[S, E] a metric per epoch."""
    return np.array([[r[key] for r in self.rows(kind, latent, s)] for s in self.seeds], float)


def _select(st, kind, key):
  values = st.mean(kind, key)
  return st.latents[int(np.argmin(values))], values


def _claim_ae(st):
  mse = st.mean("ae", "eval/mse")
  steps = np.diff(mse)
  per_seed = [np.all(np.diff([st.final("ae", z, "eval/mse")[i] for z in st.latents]) < 0)
              for i in range(len(st.seeds))]
  text = ", ".join(f"{a}→{b}: {d:+.2f}" for a, b, d in zip(st.latents, st.latents[1:], steps))
  holds = bool(np.all(steps < 0))
  first_rise = next((b for a, b, d in zip(st.latents, st.latents[1:], steps) if d >= 0), None)
  verdict = ("**holds**: the AE's test MSE falls at every step" if holds else
             f"**holds only up to {st.latents[list(steps >= 0).index(True)]}**: it stops falling "
             f"at latent size {first_rise}")
  return (f"- *AE error falls with latent size* — {verdict} (mean over seeds, step changes "
          f"{text}; strictly falling on {sum(per_seed)} of {len(st.seeds)} seeds).")


def _claim_vae(st, flat=FLAT):
  """Flat from latent index k on: no larger latent size improves the test MSE by more than the
  fraction `flat`."""
  mse = st.mean("vae", "eval/mse")
  n = len(mse)
  k = next(k for k in range(n) if all(mse[j] >= mse[k] * (1 - flat) for j in range(k + 1, n)))
  best = int(np.argmin(mse))
  ae = st.mean("ae", "eval/mse")
  steps = ", ".join(f"{a}→{b}: {100 * (y - x) / x:+.1f}%"
                    for a, b, x, y in zip(st.latents, st.latents[1:], mse, mse[1:]))
  if k == 0:
    verdict = (f"**holds**: no latent size beats latent size {st.latents[0]} by more than "
               f"{100 * flat:g}%")
  elif k == n - 1:
    verdict = ("**does not hold**: the VAE's error keeps falling by more than "
               f"{100 * flat:g}% up to the largest size")
  else:
    change = 100 * (mse[-1] - mse[k]) / mse[k]
    verdict = (f"**holds from latent size {st.latents[k]} on** (no larger size improves on it by "
               f"more than {100 * flat:g}%; latent size {st.latents[-1]} is {abs(change):.1f}% "
               f"{'worse' if change > 0 else 'better'}), not below it")
  return (f"- *VAE error is flat or slightly worse with latent size* — {verdict}. The VAE's test "
          f"MSE is lowest at latent size {st.latents[best]} ({mse[best]:.2f}); step changes "
          f"{steps}. VAE − AE test MSE per latent size: "
          + ", ".join(f"{z}: {v - a:+.2f}" for z, v, a in zip(st.latents, mse, ae)) + ".")


def _claim_digits(st):
  lines = []
  for kind, name in KINDS.items():
    pc = st.per_class(kind)  # [L, S, C]
    order = list(np.argsort(pc.mean(axis=(0, 1))))
    easiest, hardest = set(order[:2]), set(order[-2:])
    per_latent = [np.argsort(pc[i].mean(0)) for i in range(len(st.latents))]
    n_easy = sum(set(o[:2]) == EASIEST for o in per_latent)
    n_hard = sum(set(o[-2:]) == HARDEST for o in per_latent)
    verdict = ("holds" if easiest == EASIEST and hardest == HARDEST else
               "holds for the easiest digits only" if easiest == EASIEST else
               "holds for the hardest digits only" if hardest == HARDEST else "does not hold")
    means = pc.mean(axis=(0, 1))
    lines.append(
        f"- *Digits 1/7 easiest, 2/8 hardest* ({name}) — **{verdict}**: digits from easiest to "
        f"hardest (test MSE averaged over latent sizes and seeds): "
        + ", ".join(f"{c} ({means[c]:.1f})" for c in order)
        + f". Per latent size, {{1, 7}} are the two easiest at {n_easy} of {len(st.latents)} "
        f"sizes and {{2, 8}} the two hardest at {n_hard} of {len(st.latents)}.")
  return lines


class _Run:
  """Seed 0's trained model of one (kind, latent size), restored from its checkpoint."""

  def __init__(self, workdir):
    from vae_jax import evaluate  # pylint: disable=import-outside-toplevel
    self.config, self.objective, self.params, self.keys, _ = evaluate.restore_run(workdir)

  def decode(self, z):
    """Latents [N, Z] -> mean images [N, H, W, C] in [0, 1]."""
    return np.asarray(self.objective.decode_mean(self.params, z))

  def reconstruct(self, x):
    """Images [N, H, W, C] in [0, 1] -> reconstructions from the posterior mean / code."""
    return self.decode(self.objective.latent_of(self.params, x))


def study_inputs(images_uint8, preprocess, key):
  """Test images [N, H, W, C] as the runs see them: the run's config.data.preprocess; for
  binarize_dynamic one draw with the run's eval key (the same figure every time)."""
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from vae_jax import data  # pylint: disable=import-outside-toplevel
  return data.preprocess(jnp.asarray(images_uint8), preprocess,
                         key if preprocess == "binarize_dynamic" else None)


def _figures(st, out: Path, chosen):
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from vae_jax import data  # pylint: disable=import-outside-toplevel
  from common import plots  # pylint: disable=import-outside-toplevel
  for kind, name in KINDS.items():
    pc = st.per_class(kind)
    plots.per_class_lines(pc.mean(1), [f"latent {z}" for z in st.latents],
                          out / f"per_class_mse_{kind}.png", sd=pc.std(1),
                          ylabel="test MSE (squared error summed over pixels)",
                          title=f"{name}: per-digit test MSE "
                                f"(mean ± sd over {len(st.seeds)} seeds)")
    ep = np.arange(1, st.curve(kind, st.latents[0], "val/mse").shape[1] + 1)
    plots.growth_curves({f"latent {z}": st.curve(kind, z, "val/mse") for z in st.latents}, ep, [],
                        out / f"val_mse_{kind}.png", ylabel="validation MSE per image",
                        title=f"{name}: validation MSE per epoch by latent size")
  z = chosen["vae"]
  plots.growth_curves({"train": st.curve("vae", z, "train/loss"),
                       "validation": st.curve("vae", z, "val/loss")}, ep, [],
                      out / f"train_val_vae_z{z}.png", ylabel="MSE + KL per image",
                      title=f"VAE, latent {z} (chosen): train and validation loss "
                            f"(mean ± sd over {len(st.seeds)} seeds)")
  runs = {(k, latent): _Run(st.run_dir(k, latent, st.seeds[0])) for k in KINDS
          for latent in st.latents}
  cfg = runs["vae", z].config.data
  images, labels = data.test_split(cfg)
  idx = [int(np.flatnonzero(labels == c)[k]) for k in range(2) for c in range(10)]
  x = study_inputs(images[idx], cfg.preprocess, runs["vae", z].keys.eval)
  originals = np.asarray(x)
  rows = [originals, runs["ae", chosen["ae"]].reconstruct(x), runs["vae", z].reconstruct(x)]
  plots.image_rows(rows, out / "comparison.png",
                   row_labels=["original", f"AE z={chosen['ae']}", f"VAE z={z}"],
                   title="test digits and their reconstructions "
                         "(latent sizes chosen on validation)")
  rows, names = [originals[:10]], ["original"]
  for (kind, latent), run in runs.items():
    rows.append(run.reconstruct(x[:10]))
    names.append(f"{KINDS[kind]} z={latent}")
  plots.image_rows(rows, out / "reconstruction_grid.png", row_labels=names,
                   title="reconstructions by model and latent size (seed 0)")
  if 2 in st.latents:
    z_grid, values = plots.manifold_latents()
    plots.manifold_grid(runs["vae", 2].decode(jnp.asarray(z_grid)), values,
                        out / "manifold_vae_z2.png", title="VAE z=2: decoded latent grid (seed 0)")


def _joined(values):
  return "/".join(str(v) for v in sorted(set(values), key=str))


def readme_text(args, summary, rows, run_dir, score=None):
  """(README.md text, {kind: latent size chosen on validation}); summary/rows/run_dir(kind, latent,
  seed) read a run, score(latent, seed) gives a VAE run's classifier-FID / IS dict or None
  (study.run_score; None: no scores). args: seeds, latents, epochs, override, and optionally
  flat."""
  from common import study  # pylint: disable=import-outside-toplevel
  st = _Study(args, summary, rows, run_dir)
  scores = {z: [score(z, s) if score else None for s in st.seeds] for z in st.latents}
  flat = getattr(args, "flat", FLAT)
  chosen, val = {}, {}
  for kind in KINDS:
    chosen[kind], val[kind] = _select(st, kind, "val/mse")
  by_loss, _ = _select(st, "vae", "val/loss")
  groups = [(k, z) for k in KINDS for z in st.latents]
  runs = [summary(k, z, s) for k, z in groups for s in st.seeds]
  device = _joined(r["device"] for r in runs)
  seeds = " ".join(map(str, st.seeds))
  cmd = (f"python experiments/ae_vs_vae/run.py --seeds {seeds} --latents "
         f"{' '.join(map(str, st.latents))} --epochs {args.epochs}"
         + (f" --flat {flat:g}" if flat != FLAT else "")
         + (f" --override {' '.join(args.override)}" if args.override else ""))
  lines = [
      "# ae_vs_vae — vanilla autoencoder vs VAE across latent sizes",
      "",
      SOURCE,
      "",
      "This reproduction runs on real MNIST. Both models are 784-400-Z-400-784 "
      "Linear+ReLU MLPs with sigmoid outputs (the write-up gives no widths; we use mnist_mlp's) "
      "and PyTorch's nn.Linear init; the AE is deterministic (no sampling, no KL), the VAE has a "
      "Gaussian posterior and the standard normal prior. Loss: squared error summed over the 784 "
      "pixels (+ KL for the VAE). 6,000 of the 60,000 training images (split seed 0, identical for "
      "every run) are held out for validation. AdamW, lr 1e-3, weight decay 0.01 (PyTorch's "
      f"default), batch 1024, {_joined(r['epoch'] for r in runs)} epochs. Config: "
      "`vae_jax/configs/ae_vs_vae.py`. "
      f"The {len(st.seeds)} seeds of each (model, latent size) train together in one compiled "
      "program (`jax.vmap` over the seed axis, `runner.train_and_evaluate_seeds`).",
      "",
      f"Produced by `{cmd}` on {device}. Test MSE = squared error summed over pixels per "
      "test image, of the reconstruction decoded from the posterior mean (VAE) or code (AE), "
      f"mean ± sd over seeds {seeds}; {study.test_images(s.get('test_images') for s in runs)}.",
      "",
      "| latent size | AE test MSE | VAE test MSE | VAE test KL (nats) | VAE test loss (MSE of a "
      "sampled z + KL) | AE val MSE | VAE val MSE | VAE classifier-FID | VAE classifier-IS |",
      "|---|---|---|---|---|---|---|---|---|",
  ]
  for latent in st.latents:
    f = lambda k, key: study.mean_sd(st.final(k, latent, key))  # noqa: E731
    scored = [x for x in scores[latent] if x]
    lines.append(f"| {latent} | {f('ae', 'eval/mse')} | {f('vae', 'eval/mse')} | "
                 f"{f('vae', 'eval/kl')} | {f('vae', 'eval/loss')} | {f('ae', 'val/mse')} | "
                 f"{f('vae', 'val/mse')} | {study.mean_sd([x['fid'] for x in scored])} | "
                 f"{study.mean_sd([x['is'] for x in scored])} |")
  lines += ["", "The AE has no prior to sample, so only the VAE rows are scored. "
            + study.score_note([x for v in scores.values() for x in v], "mnist")]
  lines += [
      "",
      "## Model selection on the validation split",
      "",
      f"Lowest final validation MSE (mean over seeds): **VAE: latent size {chosen['vae']}** "
      f"({val['vae'].min():.2f}); AE: latent size {chosen['ae']} ({val['ae'].min():.2f}). "
      f"Selecting the VAE by its validation loss (MSE + KL) instead picks latent size {by_loss}. "
      f"The write-up chose {WRITEUP_CHOICE} for its VAE.",
      "",
      "## The write-up's claims, measured",
      "",
      _claim_ae(st),
      _claim_vae(st, flat),
      *_claim_digits(st),
      "",
  ]
  total = sum(summary(k, z, st.seeds[0])["wall_seconds"] for k, z in groups)
  epoch_s = [summary(k, z, st.seeds[0])["median_epoch_seconds"] for k, z in groups]
  rate = [summary(k, z, st.seeds[0])["images_per_second"] for k, z in groups]
  lines += [
      "## Benchmark: wall time of the sweep",
      "",
      f"{len(groups)} (model, latent size) programs × {len(st.seeds)} vmapped seeds × "
      f"{_joined(r['epoch'] for r in runs)} epochs: {total / 60:.0f} minutes of training and "
      f"evaluation (figures excluded) on {device}; one epoch of all {len(st.seeds)} seeds takes "
      f"{min(epoch_s):.2f}–{max(epoch_s):.2f} s (median per program), "
      f"{statistics.median(rate):,.0f} training images/s over all seeds (median over programs). "
      "These times include whatever else ran on the machine meanwhile; "
      "`python experiments/benchmarks/vmap_seeds.py` measures the vmapped program against one "
      "seed at a time on a quiet machine.",
      "",
      "## Figures",
      "",
      "Per-digit test MSE, one line per latent size (error bars: sd over seeds):",
      "",
      "![AE per-class](per_class_mse_ae.png) ![VAE per-class](per_class_mse_vae.png)",
      "",
      "Validation MSE per epoch by latent size:",
      "",
      "![AE val](val_mse_ae.png) ![VAE val](val_mse_vae.png)",
      "",
      f"Train and validation loss of the chosen VAE (latent {chosen['vae']}; train = mean over "
      "the epoch's steps, validation = after the epoch):",
      "",
      f"![train/val](train_val_vae_z{chosen['vae']}.png)",
      "",
      "Originals vs reconstructions (chosen latent sizes) and the reconstruction grid of every "
      "model and latent size:",
      "",
      "![comparison](comparison.png)",
      "",
      "![grid](reconstruction_grid.png)",
      "",
  ]
  if 2 in st.latents:
    lines += ["Decoded latent manifold of the 2-D VAE (grid over the prior's quantiles):", "",
              "![manifold](manifold_vae_z2.png)", ""]
  return "\n".join(lines) + "\n", chosen


def write(args, summary, rows, run_dir, score=None):
  """Writes args.out/README.md and the figures; summary/rows/run_dir(kind, latent, seed) read a
  run, score(latent, seed) scores a VAE run (see readme_text)."""
  text, chosen = readme_text(args, summary, rows, run_dir, score)
  _figures(_Study(args, summary, rows, run_dir), args.out, chosen)
  (args.out / "README.md").write_text(text)
  print(text)
