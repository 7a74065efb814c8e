"""README.md, tables and figures of the beta_cvae study, from its run directories (called by
run.py)."""

import json
import math
import statistics
from pathlib import Path

import numpy as np

from common import study
import inside

SOURCE = (
    "The seed is a course-project proposal, 'Image Generation and Representation Learning with "
    "Variational Autoencoders' (22AIE304 Deep Learning, Team A15). It proposes a conv VAE on "
    "MNIST with a 20-D latent (Kingma & Welling, 2014), written from scratch; a β-VAE "
    "(loss = reconstruction + β·KL, Higgins et al., 2017) and latent-size ablation; a "
    "conditional VAE (Sohn et al., 2015); and an analysis of the latent space: loss curves, "
    "PCA / t-SNE projections, interpolation, latent arithmetic, posterior-uncertainty maps, "
    "samples over training, FID / IS and anomaly detection, and gradient checks of the "
    "objective. It reports no results of its own: every number below is ours. 'From scratch' "
    "means here: our own pure-functional modules and objectives, gradient-checked "
    "(tests/test_gradients.py), on flax / optax primitives.")
CORE_LATENT = 20
STEPS = 10  # Interpolation points between two test images.
SHOWN = 12  # Images per row of the sample, uncertainty and arithmetic figures.
UNCERTAINTY_SAMPLES = 64
ARITHMETIC_PAIRS = ((1, 7), (3, 8), (4, 9), (0, 6))


def _num(value) -> str:
  return repr(float(value))


def run_dir(runs: Path, group: str, seed: int, beta=1.0, latent=CORE_LATENT) -> Path:
  """The directory run.py's sweeps give a run (latent 20 at β = 1 is the β program's run)."""
  if group == "latent" and latent == CORE_LATENT:
    group = "beta"
  if group == "beta":
    return runs / "beta" / f"objective.beta={_num(beta)},seed={seed}"
  if group == "latent":
    return runs / "latent" / f"model.latent_dim={latent},seed={seed}"
  return study.seed_dir(runs / group, seed)


def _finished(dirs):
  return [study.RunDir(d) for d in dirs if (d / "summary.json").is_file()]


class _Stats:
  """Per-run numbers of a table row, the test posterior included."""

  def __init__(self, run, test):
    from vae_jax import analysis  # pylint: disable=import-outside-toplevel
    _, objective, params, _, _ = run.restored()
    s = run.summary
    self.run, self.objective, self.params = run, objective, params
    self.recon, self.kl = s["eval/recon"], s["eval/kl"]
    self.neg_elbo = self.recon + self.kl
    self.loss = s["eval/loss"]
    self.nll, self.k = s.get("eval/nll_iw", math.nan), s.get("eval/nll_iw_k", 0)
    self.bits = s.get("eval/nll_iw_bits_per_dim", math.nan)
    self.mean, self.logvar = study.posterior(objective, params, test[0], test[1])
    self.active, self.variances = analysis.active_units(self.mean)
    self.kl_dims = analysis.kl_per_dimension(self.mean, self.logvar)
    self.score = study.run_score(run.dir)


def _row(label, stats):
  mean_sd = study.mean_sd
  if not stats:
    return f"| {label} | not run yet |" + " |" * 10
  s = [x.run.summary for x in stats]
  z = stats[0].mean.shape[1]
  return "| " + " | ".join([
      label, str(len(stats)), f"{s[0]['param_count']:,}", mean_sd([x.recon for x in stats]),
      mean_sd([x.kl for x in stats]), mean_sd([x.neg_elbo for x in stats]),
      mean_sd([x.loss for x in stats]), mean_sd([x.nll for x in stats]),
      mean_sd([x.bits for x in stats], 4),
      mean_sd([x.active for x in stats], 1) + f" / {z}",
      mean_sd([x.score["fid"] for x in stats if x.score]),
      mean_sd([x.score["is"] for x in stats if x.score]),
      f"{statistics.median(x['median_epoch_seconds'] for x in s):.1f} "
      f"({', '.join(sorted({str(x['runs_in_program']) for x in s}))})"]) + " |"


HEADER = ["| setting | seeds | params | test reconstruction term | test KL | test −ELBO (β = 1) | "
          "test objective (recon + β·KL) | IW-NLL | bits/dim | active units | classifier-FID | "
          "classifier-IS | s/epoch (runs per program) |", "|" + "---|" * 13]


def _means(stats, attr):
  return statistics.mean(getattr(x, attr) for x in stats) if stats else math.nan


def _trend(settings, values, name, unit=""):
  """'name goes from a (setting s0) to b (s1), monotonically / not monotonically'."""
  pairs = [(s, v) for s, v in zip(settings, values) if not math.isnan(v)]
  if len(pairs) < 2:
    return f"{name}: too few settings to compare"
  diffs = np.diff([v for _, v in pairs])
  shape = ("monotonically" if np.all(diffs > 0) or np.all(diffs < 0) else
           "never rising" if np.all(diffs <= 0) else "never falling" if np.all(diffs >= 0) else
           "not monotonically")
  return (f"{name} goes from {pairs[0][1]:.2f}{unit} at {pairs[0][0]} to {pairs[-1][1]:.2f}{unit} "
          f"at {pairs[-1][0]} ({shape})")


def _best(settings, values, name):
  i = int(np.nanargmin(values))
  return f"{name} is lowest at {settings[i]} ({values[i]:.2f})"


def _beta_section(beta_stats, betas):
  labels = [f"β = {b:g}" for b in betas]
  present = [(lab, st) for lab, st in zip(labels, beta_stats) if st]
  settings = [lab for lab, _ in present]
  kl = [_means(st, "kl") for _, st in present]
  recon = [_means(st, "recon") for _, st in present]
  au = [_means(st, "active") for _, st in present]
  elbo = [_means(st, "neg_elbo") for _, st in present]
  nll = [_means(st, "nll") for _, st in present]
  lines = [*HEADER, *[_row(lab, st) for lab, st in zip(labels, beta_stats)], ""]
  if len(present) >= 2:
    kl_falls, recon_rises = np.all(np.diff(kl) < 0), np.all(np.diff(recon) > 0)
    lines += ["What the numbers say (means over seeds):", "",
              f"- Rate–distortion: {_trend(settings, kl, 'the KL (rate)')}, while "
              f"{_trend(settings, recon, 'the reconstruction term (distortion)')}"
              + (": each larger β buys a lower rate with a higher distortion, a move along the "
                 "rate–distortion curve (Alemi et al., 2018), see `rate_distortion.png`."
                 if kl_falls and recon_rises
                 else "; see `rate_distortion.png`."),
              f"- {_trend(settings, au, 'The number of active units', ' of ' + str(CORE_LATENT))}"
              + (": a larger β pays more for each nat a latent dimension carries and switches "
                 "dimensions off (their posterior stays at the prior; `kl_per_dimension.png`)."
                 if np.all(np.diff(au) <= 0) and au[-1] < au[0] else
                 "; see `kl_per_dimension.png`."),
              f"- {_best(settings, elbo, 'The test −ELBO (β = 1, the bound on −log p(x))')}; "
              f"{_best(settings, nll, 'the IW-NLL')}.", ""]
  return lines


def _latent_section(latent_stats, latents):
  labels = [f"Z = {z}" for z in latents]
  present = [(lab, st) for lab, st in zip(labels, latent_stats) if st]
  settings = [lab for lab, _ in present]
  lines = [*HEADER, *[_row(lab, st) for lab, st in zip(labels, latent_stats)], ""]
  if len(present) >= 2:
    used = ", ".join(f"{_means(st, 'active'):.1f} of {st[0].mean.shape[1]} at {lab}"
                     for lab, st in present)
    idle = present[-1][1][0].mean.shape[1] - _means(present[-1][1], "active")
    neg_elbo = [_means(st, "neg_elbo") for _, st in present]
    lines += ["What the numbers say (means over seeds):", "",
              f"- Active units: {used}; the largest latent leaves {idle:.1f} of its dimensions "
              "inactive" + (" (their posterior stays at the prior: the KL term makes an unused "
                            "dimension free and a used one cost nats)." if idle >= 0.5 else "."),
              f"- {_best(settings, neg_elbo, 'The test −ELBO')}"
              f"; {_best(settings, [_means(st, 'nll') for _, st in present], 'the IW-NLL')}.",
              ""]
  return lines


def _cvae_section(core, cvae, test_labels):
  lines = [*HEADER, _row("VAE (β = 1, Z = 20)", core), _row("CVAE (β = 1, Z = 20)", cvae), ""]
  if core and cvae:
    freq = np.bincount(np.asarray(test_labels), minlength=10) / len(test_labels)
    entropy = float(-np.sum(freq[freq > 0] * np.log(freq[freq > 0])))
    gap = _means(core, "nll") - _means(cvae, "nll")
    lines += [
        "The CVAE's IW-NLL bounds −log p(x | y), the VAE's −log p(x). Their difference is, for "
        "exact likelihoods, the mutual information I(x; y) = E[log p(y | x) − log p(y)], at "
        f"most the label entropy H(y) = {entropy:.3f} nats on this test set. Measured: the VAE's "
        f"IW-NLL exceeds the CVAE's by {gap:.2f} nats, "
        + ("within that bound, as the two models' likelihoods should be."
           if 0 <= gap <= entropy else
           "outside [0, H(y)]: the two bounds are not tight enough (or the models not equally "
           "good) to read the difference as I(x; y).")
        + f" The CVAE's test KL is {_means(cvae, 'kl'):.2f} nats against the VAE's "
        f"{_means(core, 'kl'):.2f}"
        + (": with the class given, the latent carries less." if _means(cvae, "kl")
           < _means(core, "kl") else "."), ""]
  return lines


def _score_line(stats):
  """The references of the FID / IS columns (or how to get the columns)."""
  return ["- " + study.score_note([x.score for x in stats], "mnist")]


def _fig_curves(out, beta_runs, betas, core):
  from common import plots  # pylint: disable=import-outside-toplevel
  panels = {"test −ELBO (recon + KL)": {}, "test reconstruction term": {}, "test KL": {}}
  epochs = None
  for b, runs in zip(betas, beta_runs):
    if not runs:
      continue
    n = min(len(r.history) for r in runs)
    epochs = [row["epoch"] for row in runs[0].history[:n]]
    recon = np.array([[row["eval/recon"] for row in r.history[:n]] for r in runs])
    kl = np.array([[row["eval/kl"] for row in r.history[:n]] for r in runs])
    for panel, values in zip(panels, (recon + kl, recon, kl)):
      panels[panel][f"β = {b:g}"] = values
  plots.curve_panels(panels, epochs, out / "loss_curves_by_beta.png",
                     title="test loss terms per epoch, mean ± sd over seeds")
  plots.loss_curves(core.history, out / "loss_curves.png")
  return ["loss_curves.png", "loss_curves_by_beta.png"]


def _fig_dims(out, beta_stats, betas, latent_stats, latents):
  from vae_jax import analysis  # pylint: disable=import-outside-toplevel
  from common import plots  # pylint: disable=import-outside-toplevel
  by_beta = {f"β = {b:g}": st for b, st in zip(betas, beta_stats) if st}
  plots.sorted_profiles({k: np.stack([x.kl_dims for x in st]) for k, st in by_beta.items()},
                        out / "kl_per_dimension.png", ylabel="test KL per dimension (nats)",
                        xlabel="latent dimension, sorted by its KL (per run)",
                        title="KL per latent dimension, mean ± sd over seeds")
  plots.sorted_profiles({k: np.stack([x.variances for x in st]) for k, st in by_beta.items()},
                        out / "active_units.png", threshold=analysis.ACTIVE_UNIT_THRESHOLD,
                        ylabel="Var over test x of E[z_u | x]",
                        xlabel="latent dimension, sorted (per run)",
                        title="active units: dimensions above the dashed line")
  plots.rate_distortion({k: ([x.kl for x in st], [x.recon for x in st])
                         for k, st in by_beta.items()}, out / "rate_distortion.png",
                        title="β ablation: test rate and distortion (dots: seeds)")
  plots.rate_distortion({f"Z = {z}": ([x.kl for x in st], [x.recon for x in st])
                         for z, st in zip(latents, latent_stats) if st},
                        out / "rate_distortion_latent.png",
                        title="latent-size ablation (β = 1): rate and distortion")
  return ["kl_per_dimension.png", "active_units.png", "rate_distortion.png",
          "rate_distortion_latent.png"]


def _fig_latent_space(out, core, test, tsne_points):
  """PCA / t-SNE, interpolation, arithmetic and uncertainty of the core run."""
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from vae_jax import analysis  # pylint: disable=import-outside-toplevel
  from common import plots  # pylint: disable=import-outside-toplevel
  x, y = test
  objective, params = core.objective, core.params
  decode = jax.jit(lambda z: objective.decode_mean(params, z))
  mean = core.mean
  plots.latent_scatter(analysis.project_2d(mean, "pca"), y, out / "latent_pca.png",
                       title=f"test posterior means (Z = {mean.shape[1]}), PCA")
  plots.latent_scatter(analysis.project_2d(mean[:tsne_points], "tsne"), y[:tsne_points],
                       out / "latent_tsne.png",
                       title=f"first {tsne_points} test posterior means, t-SNE")
  pairs = [(int(np.argmax(y == a)), int(np.argmax(y == b))) for a, b in ((0, 1), (2, 7), (4, 9))]
  rows, labels = [], []
  for a, b in pairs:
    z0, z1 = jnp.asarray(mean[[a]], jnp.float32), jnp.asarray(mean[[b]], jnp.float32)
    for name, path in (("linear", analysis.linear_path), ("spherical", analysis.spherical_path)):
      rows.append(np.concatenate([x[[a]] / 255.0, np.asarray(decode(path(z0, z1, STEPS)[0])),
                                  x[[b]] / 255.0]))
      labels.append(f"{y[a]}→{y[b]} {name}")
  plots.image_rows(rows, out / "interpolation.png", labels,
                   title=f"{STEPS}-step linear and spherical interpolation between posterior "
                   "means (test images at the ends)")
  centers = analysis.class_means(mean, y, 10)
  rows, labels = [], []
  for a, b in ARITHMETIC_PAIRS:
    idx = np.flatnonzero(y == a)[:SHOWN]
    moved = analysis.latent_arithmetic(jnp.asarray(mean[idx], jnp.float32),
                                       jnp.asarray(centers[a], jnp.float32),
                                       jnp.asarray(centers[b], jnp.float32))
    rows += [x[idx] / 255.0, np.asarray(decode(moved))]
    labels += [f"test {a}s", f"− z̄({a}) + z̄({b})"]
  plots.image_rows(rows, out / "latent_arithmetic.png", labels,
                   title="latent arithmetic: z(x) − mean z(class a) + mean z(class b), decoded")
  key = jax.random.fold_in(core.run.restored()[3].eval, 11)
  avg, sd = analysis.uncertainty_maps(decode, key, jnp.asarray(mean[:SHOWN], jnp.float32),
                                      jnp.asarray(core.logvar[:SHOWN], jnp.float32),
                                      UNCERTAINTY_SAMPLES)
  sd = np.asarray(sd)
  top = float(sd.max())
  plots.image_rows([x[:SHOWN] / 255.0, np.asarray(decode(jnp.asarray(mean[:SHOWN],
                                                                     jnp.float32))),
                    np.asarray(avg), sd / top], out / "uncertainty.png",
                   ["test image", "decoded E[z|x]", "mean of samples", "sd of samples"],
                   title=f"posterior uncertainty: sd over {UNCERTAINTY_SAMPLES} decoded draws "
                   f"z ~ q(z|x), shown scaled so white = {top:.2f}")
  return ["latent_pca.png", "latent_tsne.png", "interpolation.png", "latent_arithmetic.png",
          "uncertainty.png"]


def _fig_samples(out, core, beta_first, betas):
  """Prior samples of one fixed z over training (core run) and across β (first seed)."""
  import jax  # pylint: disable=import-outside-toplevel
  from common import plots  # pylint: disable=import-outside-toplevel
  objective = core.objective
  z = jax.random.normal(jax.random.key(0), (SHOWN, core.mean.shape[1]))
  decode = jax.jit(lambda p, z: objective.decode_mean(p, z))
  kept = core.run.kept_epochs()
  last = kept[-1] if kept else 0
  epochs = sorted({e for e in (1, 2, 3, 5, last) if e in kept} | {e for e in kept
                                                                   if e % 5 == 0})
  plots.image_rows([np.asarray(decode(core.run.params_at(e), z)) for e in epochs],
                   out / "samples_over_training.png", [f"epoch {e}" for e in epochs],
                   title="the same prior draws z ~ N(0, I) decoded after each epoch (β = 1)")
  rows = [(f"β = {b:g}", np.asarray(decode(r.restored()[2], z)))
          for b, r in zip(betas, beta_first) if r]
  plots.image_rows([r for _, r in rows], out / "samples_by_beta.png", [n for n, _ in rows],
                   title="the same prior draws decoded by each β's model (first seed)")
  return ["samples_over_training.png", "samples_by_beta.png"], epochs


def _fig_cvae(out, cvae, test):
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from common import plots  # pylint: disable=import-outside-toplevel
  x, y = test
  objective, params = cvae.objective, cvae.params
  decode = jax.jit(lambda z, label: objective.decode_mean(params, z, label))
  z = jnp.asarray(cvae.mean[:SHOWN], jnp.float32)  # The style of 12 test images.
  rows = [x[:SHOWN] / 255.0] + [np.asarray(decode(z, jnp.full((SHOWN,), d, jnp.int32)))
                                for d in range(10)]
  plots.image_rows(rows, out / "cvae_style.png", ["test image"] + [f"y = {d}" for d in range(10)],
                   title="CVAE: each column decodes one test image's E[z | x, y] with every "
                   "label (style held, class changed)")
  prior = jax.random.normal(jax.random.key(1), (10, cvae.mean.shape[1]))
  grid = [np.asarray(decode(prior, jnp.full((10,), d, jnp.int32))) for d in range(10)]
  plots.image_grid(np.concatenate(grid), out / "cvae_samples.png", ncols=10,
                   title="CVAE samples: row d decodes the same 10 prior draws with y = d")
  return ["cvae_style.png", "cvae_samples.png"]


def _speed(beta_runs, solo):
  """Epoch time of the β program against one run alone, from the runs' own records."""
  program = [r for runs in beta_runs for r in runs]
  if not program or not solo:
    return ["The epoch-time comparison needs the β program and the solo run; train them "
            "(drop --report-only)."]
  n = program[0].summary["runs_in_program"]
  # Fastest epochs (as timeit's minimum): other work on the machine, a pause or a compile only
  # ever add wall-clock time, so they compare the program and the run alone undisturbed.
  times, times_one = program[0].epoch_seconds, solo.epoch_seconds
  t_program, t_one = min(times), min(times_one)
  twin = next((r for runs in beta_runs for r in runs
               if r.summary["seed"] == solo.summary["seed"]
               and json.loads((r.dir / "config.json").read_text())["objective"]["beta"] == 1.0),
              None)
  lines = [f"The β program trains {n} runs ({program[0].summary['device']}): fastest epoch "
           f"{t_program:.1f} s (median {np.median(times):.1f} s, slowest {max(times):.1f} s over "
           f"its {len(times)} epochs), {t_program / n:.2f} s per run; one run alone (`solo/`, "
           f"β = 1, seed {solo.summary['seed']}): fastest epoch {t_one:.1f} s (median "
           f"{np.median(times_one):.1f} s). By fastest epochs (other work on the machine only "
           f"adds time), {n} runs in one program take {t_program / (n * t_one):.2f}× the time "
           f"of {n} runs one after another ({n * t_one / t_program:.2f}× their throughput)."]
  config = program[0].restored()[0]
  if program[0].summary["device"].startswith("cpu") and config.model.conv_runs in ("auto",
                                                                                   "loop"):
    lines[0] += (f" Its convs loop over the runs axis (`model.conv_runs={config.model.conv_runs}`,"
                 " `vae_jax/kernels/runs_conv.py`; vmapped convs become grouped convs, which "
                 "XLA:CPU runs slower than one conv per run), so on the CPU one program saves "
                 "compiles and passes over the data, not conv time.")
  if twin:
    d = abs(twin.summary["eval/loss"] - solo.summary["eval/loss"])
    lines.append(f"The same run trained alone and inside the program ends at test loss "
                 f"{solo.summary['eval/loss']:.4f} and {twin.summary['eval/loss']:.4f} "
                 f"(|difference| {d:.2g} nats)"
                 + (": vmapping over runs does not change a run." if d < 1e-3 else "."))
  return lines


def write(args) -> Path:
  from vae_jax import data  # pylint: disable=import-outside-toplevel
  runs, seeds = args.runs, args.seeds
  beta_runs = [_finished([run_dir(runs, "beta", s, beta=b) for s in seeds]) for b in args.betas]
  latent_runs = [_finished([run_dir(runs, "latent", s, latent=z) for s in seeds])
                 for z in args.latents]
  cvae_runs = _finished([run_dir(runs, "cvae", s) for s in seeds])
  solo = next(iter(_finished([run_dir(runs, "solo", seeds[0])])), None)
  core_runs = beta_runs[args.betas.index(1.0)]
  if not core_runs:
    raise SystemExit("no finished β = 1 run to report; train first (drop --report-only)")
  config = core_runs[0].restored()[0]
  test = data.test_split(config.data)
  cache = {}

  def stats(rs):
    out = []
    for r in rs:
      if r.dir not in cache:
        cache[r.dir] = _Stats(r, test)
      out.append(cache[r.dir])
    return out

  beta_stats = [stats(rs) for rs in beta_runs]
  latent_stats = [stats(rs) for rs in latent_runs]
  cvae_stats = stats(cvae_runs)
  core = beta_stats[args.betas.index(1.0)]
  out = args.out
  out.mkdir(parents=True, exist_ok=True)
  figures = _fig_curves(out, beta_runs, args.betas, core_runs[0])
  figures += _fig_dims(out, beta_stats, args.betas, latent_stats, args.latents)
  figures += _fig_latent_space(out, core[0], test, args.tsne_points)
  names, sample_epochs = _fig_samples(out, core[0], [rs[0] if rs else None for rs in beta_runs],
                                      args.betas)
  figures += names
  if cvae_stats:
    figures += _fig_cvae(out, cvae_stats[0], test)
  command = study.command_line("experiments/beta_cvae/run.py")
  cfg = config
  every = [r for rs in beta_runs + latent_runs + [cvae_runs] for r in rs] + ([solo] if solo else [])
  every = list({r.dir: r for r in every}.values())
  k = core[0].k
  h = test[0].shape[1]
  sizes = [h // 2 ** i for i in range(len(cfg.model.encoder.features) + 1)]
  down, up = "→".join(map(str, sizes)), "→".join(map(str, sizes[::-1]))
  lines = [
      *study.readme_head("beta_cvae: β-VAE, latent-size ablation, conditional VAE and "
                         "latent-space analysis", command, SOURCE),
      f"- Model (`vae_jax/configs/beta_cvae.py`): a VAE on {cfg.data.name} "
      f"{'×'.join(map(str, test[0].shape[1:]))}: "
      + (f"4×4 stride-2 convs 1→{'→'.join(map(str, cfg.model.encoder.features))} ({down}) + "
         "ReLU" if cfg.model.encoder.kind == "conv" else
         f"MLP {'-'.join(map(str, cfg.model.encoder.widths))}")
      + f", dense to (μ, log σ²) of a {CORE_LATENT}-D latent; "
      + (f"dense → {sizes[-1]}×{sizes[-1]}×{cfg.model.decoder.features[0]}"
         + (" + ReLU" if cfg.model.decoder.project_activation == "relu" else "")
         + f" → transposed convs {'→'.join(map(str, cfg.model.decoder.features))}→1 ({up})"
         + (" (the ReLU after the projection is pinned in the config, where vae_jax's default "
            "has none since 0.2; its docstring gives both settings measured on one seed)"
            if cfg.model.decoder.project_activation == "relu" else "")
         if cfg.model.decoder.kind == "conv" else
         f"MLP decoder {'-'.join(map(str, cfg.model.decoder.widths))}")
      + f"; {core[0].run.summary['param_count']:,} params. Bernoulli likelihood on the grayscale "
      f"pixels, {cfg.optim.name} lr {cfg.optim.lr:g}, batch {cfg.train.batch_size}, "
      f"{cfg.train.epochs} epochs, no early stopping, test numbers at the last epoch. Sized so "
      f"that the whole study trains within about 3 hours on {core[0].run.summary['device']} "
      "(see Cost): two stride-2 layers on the 28×28 images instead of `mnist_conv.py`'s three on "
      "32×32"
      + (f"; one run alone trained at {solo.summary['images_per_second']:,.0f} images/s here."
         if solo else "."),
      f"- β ablation: β ∈ {{{', '.join(f'{b:g}' for b in args.betas)}}} × seeds "
      f"{{{', '.join(map(str, seeds))}}}, every run in ONE compiled program (a runs axis: "
      "`--sweep objective.beta=... seed=...`, β and the seed are traced). β = 1 is the core "
      "model.",
      f"- Latent-size ablation: Z ∈ {{{', '.join(map(str, args.latents))}}} at β = 1 (one "
      "program per size; Z = 20 is the β = 1 runs).",
      "- Conditional VAE: the one-hot label is appended to the image as 10 constant channels "
      "(encoder) and to z (decoder); β = 1, Z = 20.",
      f"- Columns: test reconstruction term E_q[−log p(x|z)] and KL(q(z|x) ‖ N(0, I)) in nats "
      "per image (one z per image); −ELBO = their sum (the β = 1 bound, whatever β trained "
      f"the model); the training objective recon + β·KL; IW-NLL = −IWAE bound with K = {k} "
      "(Burda et al., 2016) over the whole test set, in nats and bits/dim. For β ≠ 1 the "
      "IW-NLL is still an upper bound on −log p(x) of that run's generative model (prior and "
      "decoder), with its encoder as the proposal: β only changed how the model was trained, "
      "so the column compares the likelihood the models reach (a β far from 1 gives a worse "
      "proposal, so a looser bound at fixed K). Active units: dimensions whose posterior mean "
      "varies over the test set by more than 0.01 (Burda et al., 2016). s/epoch: median "
      "epoch of the run's program, all its runs together.", *_score_line(core), ""]
  lines += ["## β ablation", "", *_beta_section(beta_stats, args.betas),
            "## Epoch time: the β program vs one run", "", *_speed(beta_runs, solo), "",
            "## Latent-size ablation", "", *_latent_section(latent_stats, args.latents),
            "## Conditional VAE", "", *_cvae_section(core, cvae_stats, test[1])]
  inside_lines, inside_figures = inside.section(out, core[0], test)
  lines += ["## Inside the core model", "",
            f"Made by `{command}` from the first seed's β = 1 run (every epoch's checkpoint "
            "kept, `train.dynamics=True`); the figures are at the end of the next section.", "",
            *inside_lines]
  figures += inside_figures
  lines += ["## Figures", "",
            f"Made by `{command}` from the first seed's β = 1 run unless the title says "
            f"otherwise. Samples over training: epochs {', '.join(map(str, sample_epochs))}.", ""]
  lines += [f"![{n}]({n})" for n in figures] + [""]
  expected = (len(args.betas) * len(seeds) + (len(args.latents) - 1) * len(seeds) + len(seeds)
              + 1)
  total_min = sum(r.train_minutes for r in every)
  iw_seconds = [r.summary["phase_seconds"]["iw_nll"] for r in every]
  lines += ["## Cost", "",
            f"{len(every)} of {expected} runs finished; training (epochs only) "
            f"{total_min:.1f} min, IW-NLL {sum(iw_seconds) / 60:.1f} min "
            f"({min(iw_seconds):.0f}–{max(iw_seconds):.0f} s per run, median "
            f"{np.median(iw_seconds):.0f} s), on "
            f"{', '.join(sorted({r.summary['device'] for r in every}))}: wall-clock times, "
            "which include whatever else ran on the machine meanwhile.", "",
            f"Versions: {json.dumps(core[0].run.summary['versions'])}.", ""]
  if len(every) < expected:
    lines += ["Runs not finished yet train (or continue) with:", "",
              f"    python experiments/beta_cvae/run.py --seeds {' '.join(map(str, seeds))} "
              "--reuse --resume", ""]
  readme = out / "README.md"
  readme.write_text("\n".join(lines))
  print(f"wrote {readme} and {len(figures)} figures", flush=True)
  return readme
