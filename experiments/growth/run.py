"""The growth study, paired over seeds: fixed vs approach 1 (grow) vs approach 2 (shrink, then
grow), plus the ablations of approach 1 (Adam state reset at growth; zero outgoing init). Writes
experiments/growth/README.md and its figures.

  python experiments/growth/run.py [--seeds 0 1 2] [--epochs 200] [--jobs 2] [--reuse] [--resume]
      [--ablation-seeds 0 1 2] [--train-only | --report-only] [--runs DIR] [--out DIR]

For each seed every arm uses the same RunKeys (init, data order, noise): arms are paired. Run
directories: checkpoints/growth/<arm>/seed=<s>/ (the studies' one layout, study.seed_dir); each
seed is trained alone (train.vmap_runs=never). --jobs N trains N arms at a time, each process
pinned to its own CPU core. --reuse keeps finished runs; --resume continues unfinished runs
from their latest checkpoint; a run directory that holds a checkpoint is refused without one of
them (nothing is deleted). --override KEY=VALUE applies to every arm
and ablation (an override of a key an ablation sets to another value, or of seed / train.epochs,
is refused). Each invocation that trains runs records its --jobs and CPU core count in
checkpoints/growth/study.json (the README's benchmark sentence reads it).
"""

import argparse
import functools
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # experiments/: `common`.

HERE = Path(__file__).parent
CONFIGS = HERE.resolve().parents[1] / "vae_jax" / "configs"
RUNS = Path("checkpoints") / "growth"

ARMS = {  # name -> (config file, overrides)
    "fixed": ("growth_fixed", []),
    "approach1": ("growth_approach1", []),
    "approach2": ("growth_approach2", []),
}
ABLATIONS = {
    "approach1_reset": ("growth_approach1", ["growth.optimizer=reset"]),
    "approach1_zeros": ("growth_approach1", ["growth.outgoing_init=zeros"]),
}
# Ablations compare losses and spikes, so they skip the IW-NLL; a user's --override still wins.
ABLATION_DEFAULTS = ["eval.iw_samples=0"]
RESERVED = {"seed": "--seeds / --ablation-seeds", "train.epochs": "--epochs"}
LIKELIHOODS = {"bernoulli": "Bernoulli likelihood", "mse": "squared-error reconstruction term"}
PREPROCESS = {"grayscale": "grayscale pixels",
              "binarize_dynamic": "dynamically binarized pixels (a fresh draw per batch)",
              "binarize_threshold": "pixels binarized at 0.5"}


def overrides(name, epochs, user=()):
  """The config overrides of arm or ablation `name` (its seeds come from the seed sweep), in the
  order they apply: the ablations' defaults, the user's --override, the arm's or ablation's own
  settings, then epochs and train.vmap_runs=never (the README's numbers come from runs trained
  alone; vmapped seeds equal them only up to float rounding).

  Raises:
    ValueError: a user override sets seed or train.epochs (use the flags), or a key that this
      arm or ablation sets to another value (the run would silently not be that ablation).
  """
  own = (ARMS | ABLATIONS)[name][1]
  own_values = dict(item.partition("=")[::2] for item in own)
  for item in user:
    key, _, value = item.partition("=")
    if key in RESERVED:
      raise ValueError(f"--override {item}: set {key} with {RESERVED[key]}")
    if key in own_values and value != own_values[key]:
      raise ValueError(f"--override {item} conflicts with run {name!r}, which sets "
                       f"{key}={own_values[key]}; drop the override (for approach 1 with "
                       f"{key}={value}, train vae_jax/configs/growth_approach1.py with "
                       "vae-jax train)")
  defaults = ABLATION_DEFAULTS if name in ABLATIONS else []
  return [*defaults, *user, *own, f"train.epochs={epochs}", "train.vmap_runs=never"]


def build_config(name, seed, epochs, user=()):
  """The config of run (name, seed): its config file with `overrides(...)` and the seed."""
  from vae_jax import config as config_lib  # pylint: disable=import-outside-toplevel
  config = config_lib.load_config(CONFIGS / f"{(ARMS | ABLATIONS)[name][0]}.py")
  return config_lib.apply_overrides(config, [*overrides(name, epochs, user), f"seed={seed}"])


def train_group(name, seeds, args):
  """The seeds of one arm or ablation (study.train_sweep; the user's --override is applied
  there, after the group's own overrides, which it cannot contradict)."""
  from common import study  # pylint: disable=import-outside-toplevel
  results, seconds = study.train_sweep(
      CONFIGS / f"{(ARMS | ABLATIONS)[name][0]}.py", overrides(name, args.epochs),
      study.seed_sweep(seeds), args.runs / name, args)
  print(f"{name}: test loss " + ", ".join(f"{r['summary']['eval/loss']:.2f}" for r in results)
        + f" ({seconds:.0f} s)", flush=True)


def _dir(name, seed):
  from common import study  # pylint: disable=import-outside-toplevel
  return study.seed_dir(RUNS / name, seed)


def _rows(name, seed):
  path = _dir(name, seed) / "metrics.jsonl"
  return [json.loads(line) for line in path.read_text().splitlines()]


def _summary(name, seed):
  return json.loads((_dir(name, seed) / "summary.json").read_text())


def score(name, seed):
  """The run's classifier-FID / IS (study.run_score; None without an MNIST classifier)."""
  from common import study  # pylint: disable=import-outside-toplevel
  return study.run_score(_dir(name, seed))


def _ms(values, digits=2):
  """study.mean_sd (vae_jax is imported inside functions: workers set XLA flags first)."""
  from common import study  # pylint: disable=import-outside-toplevel
  return study.mean_sd(list(values), digits)


def _series(name, seeds, key):
  return np.array([[r[key] for r in _rows(name, s)] for s in seeds])


def _events(name, seed):
  rows = _rows(name, seed)
  return [r["epoch"] - 1 for r in rows if "eval/loss_at_growth" in r]


def _spikes(name, seeds):
  """Per growth event: the test-loss jump at the surgery, and the change of the epoch-mean train
  loss across the event (epoch after minus epoch before) minus the fixed arm's change over the
  same two epochs of the same seed (paired; removes ordinary learning progress)."""
  at_step, excess = [], []
  for s in seeds:
    rows = {r["epoch"]: r for r in _rows(name, s)}
    fixed = {r["epoch"]: r for r in _rows("fixed", s)}
    for e, r in rows.items():
      if "eval/loss_at_growth" in r:
        at_step.append(r["eval/loss_at_growth"] - rows[e - 1]["eval/loss"])
        excess.append((r["train/loss"] - rows[e - 1]["train/loss"])
                      - (fixed[e]["train/loss"] - fixed[e - 1]["train/loss"]))
  return at_step, excess


def _paired(a, b, seeds, key):
  """Paired differences a - b over seeds of a final-summary metric, with a paired t-test."""
  from scipy import stats  # pylint: disable=import-outside-toplevel
  x = np.array([_summary(a, s)[key] for s in seeds])
  y = np.array([_summary(b, s)[key] for s in seeds])
  d = x - y
  p = stats.ttest_rel(x, y).pvalue if len(seeds) > 1 and np.any(d != d[0]) else float("nan")
  return d, p


def _p_text(p: float) -> str:
  """A p-value with 3 decimals; '–' where the test is undefined (one seed, or every paired
  difference the same, e.g. an arm that never differs from fixed)."""
  return f"{p:.3f}" if np.isfinite(p) else "–"


def _figures(seeds, epochs):
  from common import plots  # pylint: disable=import-outside-toplevel
  ep = np.arange(1, epochs + 1)
  elbo_key = next(k for k in _rows("fixed", seeds[0])[0] if k.startswith("eval/elbo_l"))
  for arm in ("approach1", "approach2"):
    events = _events(arm, seeds[0])
    plots.growth_curves({"fixed test": _series("fixed", seeds, "eval/loss"),
                         f"{arm} test": _series(arm, seeds, "eval/loss"),
                         f"{arm} train": _series(arm, seeds, "train/loss")}, ep, events,
                        HERE / f"{arm}_loss.png", baseline="fixed test",
                        ylabel="negative ELBO (nats per image)",
                        title=f"{arm} vs fixed: loss (mean ± sd over {len(seeds)} seeds)")
    plots.growth_curves({"fixed": _series("fixed", seeds, elbo_key),
                         arm: _series(arm, seeds, elbo_key)}, ep, events,
                        HERE / f"{arm}_elbo.png", baseline="fixed",
                        ylabel=f"test ELBO, L = {elbo_key.split('_l')[1]} (nats per image)",
                        title=f"{arm} vs fixed: test ELBO")
  plots.growth_curves({arm: _series(arm, seeds, "param_count") for arm in ARMS}, ep,
                      _events("approach1", seeds[0]), HERE / "param_count.png",
                      ylabel="parameters", title="parameter count per epoch")
  for arm in ARMS:
    for fig in ("reconstructions", "prior_samples"):
      shutil.copy(_dir(arm, seeds[0]) / "figures" / f"{fig}.png", HERE / f"{arm}_{fig}.png")


SOURCE = (
    "The original write-up is unpublished: a project README that names no author, repository or "
    "paper of its own. It trains a PyTorch VAE on MNIST (BCE + KL, Adam 1e-3, batch 128, 200 "
    "epochs, latent 20) whose two encoder hidden layers gain He-initialised neurons during "
    "training: approach 1 starts at (32, 16) and adds (32, 16) every 25 epochs up to (256, 128); "
    "approach 2 starts at (256, 128), is cut to (64, 32) at epoch 25 and then grows the same way. "
    "It reports transient loss spikes after each expansion and “no significant difference” "
    "between the growing and the fixed model, judged from training-loss curves and samples.")


def _config(name, seed):
  """The run's config.json as a dict (fields it lacks count as their defaults)."""
  return json.loads((_dir(name, seed) / "config.json").read_text())


def _study_record():
  """What the last training invocation recorded in RUNS/study.json ({} for older runs)."""
  path = RUNS / "study.json"
  return json.loads(path.read_text()) if path.exists() else {}


def _joined(values):
  return "/".join(str(v) for v in sorted(set(values), key=str))


def data_sentence(config):
  """'Bernoulli likelihood on grayscale pixels' from a run's config dict."""
  likelihood = config.get("model", {}).get("likelihood", "bernoulli")
  preprocess = config.get("data", {}).get("preprocess", "grayscale")
  return (f"{LIKELIHOODS.get(likelihood, f'{likelihood} likelihood')} on "
          f"{PREPROCESS.get(preprocess, f'{preprocess} pixels')}")


def benchmark_sentences(n_arms, epochs, n_seeds, main_seconds, total_seconds, devices, jobs,
                        cpu_cores=None):
  """The wall-time paragraph: units and wording follow the devices and the job layout."""
  cpu_only = all(d.startswith("cpu") for d in devices)
  if cpu_only and jobs > 1:  # Each run pinned to one core: run seconds are core-seconds.
    amount, how = "core-minutes", f"run as {jobs} single-core jobs at a time"
  else:
    amount = "minutes (summed over runs)"
    how = ("one run at a time" if jobs == 1 else
           f"run as {jobs} concurrent jobs, each process pinned to one CPU core")
  machine = f" with {cpu_cores} CPU cores" if cpu_cores else ""
  text = (f"The {n_arms} arms × {epochs} epochs × {n_seeds} seeds took {main_seconds / 60:.0f} "
          f"{amount} of training and evaluation on {_joined(devices)}{machine} "
          f"({total_seconds / 60:.0f} with the ablations), {how}; per-run times are in the table "
          "above.")
  if not any(d.startswith("gpu") for d in devices):
    text += " No run of the study used a GPU, so there is no GPU timing."
  return text


def readme_text(args):
  """README.md of the study from the run directories under RUNS (scores: `score`)."""
  from common import study  # pylint: disable=import-outside-toplevel
  seeds, ab_seeds = args.seeds, args.ablation_seeds
  first = _summary("fixed", seeds[0])
  elbo_key = next(k for k in first if k.startswith("eval/elbo_l"))
  arm_summaries = [_summary(a, s) for a in ARMS for s in seeds]
  iw_k = _joined(x["eval/nll_iw_k"] for x in arm_summaries)
  lines = [
      "# growth — progressive expansion of the encoder MLP",
      "",
      SOURCE,
      "",
      f"This reproduction runs on real MNIST: {data_sentence(_config('fixed', seeds[0]))}, "
      "encoder 784-h1-h2-(μ, log σ², latent 20), decoder 20-128-256-784, Adam 1e-3, "
      f"batch 128, {_joined(x['epoch'] for x in arm_summaries)} epochs, PyTorch's nn.Linear init. "
      "Growth is pytree surgery on the "
      "parameters and on Adam's moments (padded with zeros; `count` kept); new units are "
      "He-normal. Arms are paired: for each seed they share the data order and the PRNG keys.",
      "",
      f"Produced by `python experiments/growth/run.py --seeds {' '.join(map(str, seeds))} "
      f"--epochs {args.epochs} --ablation-seeds {' '.join(map(str, ab_seeds))} "
      f"--jobs {args.jobs}"
      + (f" --override {' '.join(args.override)}" if args.override else "")
      + f"` on {first['device']}. "
      "Numbers are nats per image on the "
      f"{study.test_images(x.get('test_images') for x in arm_summaries)}, mean ± sd over seeds.",
      "",
      f"| arm | final encoder | final test loss | final test ELBO (L={elbo_key.split('_l')[1]}) | "
      f"IW-NLL (K={iw_k}) | classifier-FID | classifier-IS | final params | "
      "wall time per run (s) |",
      "|---|---|---|---|---|---|---|---|---|",
  ]
  scores = {arm: [score(arm, s) for s in seeds] for arm in ARMS}
  for arm in ARMS:
    ss = [_summary(arm, s) for s in seeds]
    scored = [x for x in scores[arm] if x]
    elbo_key = next(k for k in ss[0] if k.startswith("eval/elbo_l"))
    lines.append(f"| {arm} | {tuple(ss[0]['encoder_widths'])} | "
                 f"{_ms(x['eval/loss'] for x in ss)} | {_ms(x[elbo_key] for x in ss)} | "
                 f"{_ms(x['eval/nll_iw'] for x in ss)} | "
                 f"{study.mean_sd([x['fid'] for x in scored])} | "
                 f"{study.mean_sd([x['is'] for x in scored])} | {ss[0]['param_count']:,} | "
                 f"{_ms((x['wall_seconds'] for x in ss), 0)} |")
  lines += ["", study.score_note([x for v in scores.values() for x in v], "mnist")]
  lines += ["", "## The claim: “no significant difference between growing and fixed”", "",
            "Paired differences (arm − fixed) over seeds, with a paired t-test:", "",
            "| comparison | Δ final test loss | p | Δ IW-NLL | p |", "|---|---|---|---|---|"]
  verdicts = []
  for arm in ("approach1", "approach2"):
    d_loss, p_loss = _paired(arm, "fixed", seeds, "eval/loss")
    d_nll, p_nll = _paired(arm, "fixed", seeds, "eval/nll_iw")
    lines.append(f"| {arm} − fixed | {_ms(d_loss)} | {_p_text(p_loss)} | {_ms(d_nll)} | "
                 f"{_p_text(p_nll)} |")
    same_sign = bool(np.all(d_nll > 0) or np.all(d_nll < 0))
    verdicts.append(
        f"- **{arm}**: IW-NLL differs from fixed by {np.mean(d_nll):+.2f} nats on average "
        f"(per seed: {', '.join(f'{v:+.2f}' for v in d_nll)}); "
        + ("the sign is the same for every seed" if same_sign else
           "it is zero for every seed" if not np.any(d_nll) else "the sign changes across seeds")
        + (f", paired t-test p = {p_nll:.3f}." if np.isfinite(p_nll) else "."))
  lines += ["", *verdicts, "",
            f"With {len(seeds)} seeds a paired t-test has little power: p > 0.05 does not show the "
            "arms equal, it only fails to show them different; the size of Δ (in nats) is the "
            "informative number.", ""]
  all_runs = [(a, s) for a in ARMS for s in seeds] + [(a, s) for a in ABLATIONS for s in ab_seeds]
  total = sum(_summary(a, s)["wall_seconds"] for a, s in all_runs)
  main = sum(_summary(a, s)["wall_seconds"] for a in ARMS for s in seeds)
  devices = [_summary(a, s)["device"] for a, s in all_runs]
  record = _study_record()
  lines += ["## Benchmark: wall time of the study", "",
            benchmark_sentences(len(ARMS), _joined(x["epoch"] for x in arm_summaries), len(seeds),
                                main, total, devices, record.get("jobs", args.jobs),
                                record.get("cpu_cores")), ""]
  lines += ["## Ablations (approach 1)", "",
            "Spike at the growth step = test loss right after the surgery minus the test loss "
            "before it. Excess train-loss change = (mean train loss of the epoch after the event "
            "− the epoch before) − (the same difference of the fixed arm, same seed, same epochs); "
            f"positive = the event costs training progress. Both averaged over the "
            f"{len(_events('approach1', seeds[0]))} events and the seeds.", "",
            "| variant | seeds | spike at growth step | excess train-loss change after event | "
            "final test loss |", "|---|---|---|---|---|"]
  for name, label in (("approach1", "pad + He (default)"),
                      ("approach1_reset", "reset Adam (original study)"),
                      ("approach1_zeros", "pad + zero outgoing (function-preserving)")):
    use = seeds if name == "approach1" else ab_seeds
    at_step, jump = _spikes(name, use)
    lines.append(f"| {label} | {len(use)} | {_ms(at_step, 3)} | {_ms(jump, 3)} | "
                 f"{_ms(_summary(name, s)['eval/loss'] for s in use)} |")
  lines += ["", "## Figures", "",
            "Loss and test ELBO vs epoch (dashed vertical lines: growth events; fixed arm in "
            "grey):",
            "", "![approach 1 loss](approach1_loss.png) ![approach 1 ELBO](approach1_elbo.png)", "",
            "![approach 2 loss](approach2_loss.png) ![approach 2 ELBO](approach2_elbo.png)", "",
            "Parameter count per epoch: ![params](param_count.png)", "",
            f"Reconstructions (top: test images) and prior samples, seed {seeds[0]}:", ""]
  lines += [f"{arm}: ![{arm} reconstructions]({arm}_reconstructions.png) "
            f"![{arm} samples]({arm}_prior_samples.png)" for arm in ARMS]
  return "\n".join(lines) + "\n"


def _readme(args):
  (HERE / "README.md").write_text(readme_text(args))


def main(argv=None):
  global HERE, RUNS  # pylint: disable=global-statement
  from common import study  # pylint: disable=import-outside-toplevel
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
  parser.add_argument("--ablation-seeds", type=int, nargs="+", default=[0, 1, 2])
  parser.add_argument("--epochs", type=int, default=200)
  study.add_study_arguments(parser, RUNS, HERE)
  args = parser.parse_args(argv)
  HERE, RUNS = args.out, args.runs
  groups = [(n, args.seeds) for n in ARMS] + [(n, args.ablation_seeds) for n in ABLATIONS]
  try:  # Refuse conflicting overrides before anything trains.
    for n, _ in groups:
      overrides(n, args.epochs, args.override)
  except ValueError as e:
    parser.error(str(e))
  steps = [functools.partial(train_group, n, seeds, args) for n, seeds in groups
           if study.untrained_seeds(seeds, args.reuse, lambda s, n=n: _dir(n, s))]

  def record_invocation():
    RUNS.mkdir(parents=True, exist_ok=True)
    (RUNS / "study.json").write_text(json.dumps(
        {"jobs": args.jobs, "cpu_cores": len(os.sched_getaffinity(0))}, indent=2))

  def write_report():
    HERE.mkdir(parents=True, exist_ok=True)
    _figures(args.seeds, args.epochs)
    _readme(args)
    print((HERE / "README.md").read_text())
  return study.run_study(args, steps, write_report, record_invocation)


if __name__ == "__main__":
  sys.exit(main())
