"""README.md and figures of the fc_vs_conv study, from its run directories (called by run.py)."""

import json
import math
import statistics
from pathlib import Path

import numpy as np

from vae_jax import config as config_lib
from common import study

import ablation as ablation_lib  # pylint: disable=wrong-import-order

SOURCE = (
    "tyakovenko/vaeEncoders (a PyTorch notebook) compares a fully-connected VAE (flatten, "
    "Linear/ReLU, (μ, log σ²), mirrored) with a convolutional VAE (strided convs 3→32→64→128 on "
    "32→16→8→4, transposed convs back) on CIFAR-10, and retrains the conv VAE on a 30% subset of "
    "CelebA (center-cropped, resized to 32×32). Loss: MSE summed over pixels + KL. Three "
    "parameter sets p1 (batch 64, lr 1e-3, latent 128), p2 (128, 5e-4, 128) and p3 (64, 5e-4, "
    "256), each trained with early stopping (patience 5, min_delta 0.5). Its table (CIFAR-10, "
    "epochs to stop / average loss): p1 conv 18 / 74.7, FC 40 / 80.7; p2 conv 21 / 74.9, FC 33 / "
    "78.2; p3 conv 15 / 75.4, FC 23 / 82.6. It concludes that the conv VAE 'consistently "
    "achieves lower loss and stops earlier'.")
MODELS = {"fc": "FC-VAE", "conv": "conv VAE"}
INTERP_STEPS = 10
COLLAPSED_KL = ablation_lib.COLLAPSED_KL  # nats per image: below it a run ignores its latent.
NUM_IMAGES = 12  # Images per row of the sample and reconstruction figures.


def _mean(values):
  return statistics.mean(values) if values else math.nan


_ms = study.mean_sd


class _Run(study.RunDir):
  """A finished run directory, with the Bernoulli IW-NLL of its trained decoder."""

  @property
  def stop(self):
    """Epoch at which early stopping fired, None when the epoch cap bound."""
    return self.summary["stopped_epoch"]

  def bernoulli_iw_nll(self, k: int, images: int) -> dict:
    """IW-NLL (K = k) of the first `images` test images under a Bernoulli likelihood with the
    decoder's means (sigmoid of its outputs): the 'iw_nll' evaluator, cached in eval/."""
    from vae_jax import evaluators  # pylint: disable=import-outside-toplevel
    return evaluators.evaluate_run(self.dir, "iw_nll", k=k, images=images,
                                   likelihood="bernoulli")


def record_dir(args, group_dir, dataset, model, pset, seed) -> Path:
  """Where the record of a run lives beside the README (study.save_record)."""
  return study.seed_dir(group_dir(args.out / "runs", dataset, model, pset), seed)


def _collect(args, group_dir):
  """{(dataset, model, set): [_Run per finished seed]} for the requested seeds: the run
  directory when it holds a summary, else the run's committed record."""
  runs = {}
  for dataset in args.dataset:
    for model in args.models:
      for pset in args.sets:
        found = [study.finished_run(study.seed_dir(group_dir(args.runs, dataset, model, pset), s),
                                    record_dir(args, group_dir, dataset, model, pset, s))
                 for s in args.seeds]
        runs[dataset, model, pset] = [_Run(r.dir) for r in found if r]
  return runs


def _row(model, pset, runs, args, iw):
  s = [r.summary for r in runs]
  stops = [r.stop for r in runs if r.stop]
  bound = len(runs) - len(stops)
  stop_txt = _ms(stops, 1) + (f" ({bound} hit the {args.max_epochs}-epoch cap)" if bound else "")
  collapsed = sum(x["eval/kl"] < COLLAPSED_KL for x in s)
  seeds_txt = str(len(runs)) + (f" ({collapsed} collapsed)" if collapsed else "")
  cells = [MODELS[model], pset, f"{s[0]['param_count']:,}", seeds_txt, stop_txt,
           _ms([x["best_epoch"] for x in s], 1), _ms([x["val/loss"] for x in s]),
           _ms([x["eval/loss"] for x in s]), _ms([x["eval/mse"] for x in s]),
           _ms([x["eval/kl"] for x in s])]
  if iw:
    cells += [_ms([v["nll"] for v in iw], 1), _ms([v["bits_per_dim"] for v in iw], 3)]
  cells += [f"{_mean([x['median_epoch_seconds'] for x in s]):.1f} "
            f"({', '.join(sorted({str(x['runs_in_program']) for x in s}))})",
            f"{sum(r.train_minutes for r in runs):.1f}"]
  return "| " + " | ".join(cells) + " |"


def _all_black_error(runs, dataset) -> float:
  """Mean over the test set of sum_i x_i^2: the squared error of a decoder that outputs 0."""
  from vae_jax import data  # pylint: disable=import-outside-toplevel
  run = next(r for (d, _, _), rs in runs.items() if d == dataset for r in rs)
  cfg = json.loads((run.dir / "config.json").read_text())
  x = data.load_split(dataset, "test", cfg["data"]["data_dir"] or None)[0] / 255.0
  return float(np.mean(np.sum(np.square(x.reshape(len(x), -1)), axis=1)))


def _claim(runs, dataset, sets) -> list[str]:
  """The write-up's claim, per set, answered from the means over seeds."""
  lines, held = [], []
  for pset in sets:
    fc, conv = runs[dataset, "fc", pset], runs[dataset, "conv", pset]
    if not fc or not conv:
      lines.append(f"- {pset}: not answered (a model has no finished run).")
      continue
    loss = [_mean([r.summary["eval/loss"] for r in rs]) for rs in (fc, conv)]
    stop = [_mean([r.stop or r.summary["epoch"] for r in rs]) for rs in (fc, conv)]
    lower, earlier = loss[1] < loss[0], stop[1] < stop[0]
    held.append(lower and earlier)
    lines.append(f"- {pset}: conv test loss {loss[1]:.2f} vs FC {loss[0]:.2f} "
                 f"({'lower' if lower else 'not lower'}); conv stops at epoch {stop[1]:.1f} vs "
                 f"FC {stop[0]:.1f} ({'earlier' if earlier else 'not earlier'}).")
  collapsed = [(f"{MODELS[m]} {p} seed {r.summary['seed']}", r.summary["eval/recon"])
               for (d, m, p), rs in runs.items() if d == dataset for r in rs
               if r.summary["eval/kl"] < COLLAPSED_KL]
  if collapsed:
    black = _all_black_error(runs, dataset)
    lines.append(f"- Posterior collapse (test KL below {COLLAPSED_KL} nats, so the decoder "
                 "draws the same image whatever z is; the write-up warns of it): "
                 + ", ".join(f"{name} (test squared error {recon:.2f})"
                             for name, recon in collapsed)
                 + f". A decoder that outputs 0 everywhere scores {black:.2f} on this test set: "
                 "where the two agree, the decoder's sigmoid has saturated at 0, where the "
                 "squared error has (almost) no gradient. Such a run stops early at a high loss.")
  answered = (f" (answered on {len(held)} of {len(sets)} sets)" if len(held) < len(sets)
              else "")
  verdict = ("is not answered on any set" if not held else
             f"holds on every set answered{answered}" if all(held) else
             f"holds on no set answered{answered}" if not any(held) else
             f"holds on {sum(held)} of {len(held)} sets answered{answered}")
  return [f"The claim \"conv reaches lower loss and stops earlier than FC on every set\" "
          f"{verdict} here:", "", *lines]


def _figures(runs, dataset, args, out: Path) -> list[str]:
  """Interpolation, prior samples, reconstructions and curves of the first finished seed."""
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from vae_jax import analysis, data  # pylint: disable=import-outside-toplevel
  from common import plots  # pylint: disable=import-outside-toplevel
  first = {(m, p): next(r for r in rs if r.has_checkpoint) for (d, m, p), rs in runs.items()
           if d == dataset and any(r.has_checkpoint for r in rs)}
  if not first:
    return []
  config = next(iter(first.values())).restored()[0]
  x, y = data.test_split(config.data, dataset)
  # Pairs of test images of different classes: the first image of class 2c and of 2c + 1.
  pairs = [(int(np.argmax(y == 2 * c)), int(np.argmax(y == 2 * c + 1))) for c in range(3)]
  shown = np.arange(NUM_IMAGES)
  interp = {i: [] for i in range(len(pairs))}
  labels, samples, recons = [], [], []
  for (model, pset), run in first.items():
    _, objective, params, keys, _ = run.restored()
    encode = jax.jit(lambda p, xs: objective.latent_of(p, objective.images({"image": xs})))
    decode = jax.jit(lambda p, z: objective.decode_mean(p, z))
    labels.append(f"{MODELS[model]} {pset}")
    for i, (a, b) in enumerate(pairs):
      z = encode(params, jnp.asarray(x[[a, b]]))
      path = analysis.linear_path(z[:1], z[1:], INTERP_STEPS)[0]
      interp[i].append(np.concatenate([x[[a]] / 255.0, np.asarray(decode(params, path)),
                                       x[[b]] / 255.0]))
    z = jax.random.normal(jax.random.fold_in(keys.eval, 7), (NUM_IMAGES, z.shape[-1]))
    samples.append(np.asarray(decode(params, z)))
    recons.append(np.asarray(decode(params, encode(params, jnp.asarray(x[shown])))))
  written = []
  for i, rows in interp.items():
    name = f"{dataset}_interpolation_{i}.png"
    plots.image_rows(rows, out / name, labels, title=f"{INTERP_STEPS}-step linear interpolation "
                     f"between the posterior means of test images {pairs[i][0]} and "
                     f"{pairs[i][1]} (originals at the ends)")
    written.append(name)
  plots.image_rows(samples, out / f"{dataset}_samples.png", labels,
                   title="prior samples z ~ N(0, I), decoder means")
  plots.image_rows([x[shown] / 255.0, *recons], out / f"{dataset}_reconstructions.png",
                   ["original", *labels], title="test reconstructions (posterior means)")
  panels = {pset: [{"label": MODELS[m], "history": r.history,
                    "best_epoch": r.summary["best_epoch"], "stopped_epoch": r.stop}
                   for (m, p), r in first.items() if p == pset] for pset in args.sets}
  plots.stopping_curves({p: v for p, v in panels.items() if v}, out / f"{dataset}_curves.png",
                        ylabel="loss (squared error + KL per image)",
                        title=f"{dataset}: train and validation loss")
  return written + [f"{dataset}_samples.png", f"{dataset}_reconstructions.png",
                    f"{dataset}_curves.png"]


def write(args, group_dir, set_overrides) -> Path:
  runs = _collect(args, group_dir)
  finished = [r for rs in runs.values() for r in rs]
  if not finished:
    raise SystemExit("no finished runs to report; train them first (drop --train-only)")
  command = study.command_line("experiments/fc_vs_conv/run.py")
  any_summary = finished[0].summary
  cfg = json.loads((finished[0].dir / "config.json").read_text())
  conv_run = next((r for (_, m, _), rs in runs.items() if m == "conv" for r in rs), finished[0])
  conv_cfg = config_lib.with_defaults(json.loads((conv_run.dir / "config.json").read_text()))
  es = cfg["train"]["early_stopping"]
  iw_head = (f" Bernoulli IW-NLL K={args.iw_k} (nats) | bits/dim |" if args.iw_k else "")
  lines = [
      *study.readme_head("fc_vs_conv: fully-connected vs convolutional VAE", command, SOURCE),
      f"Datasets of the runs below: {', '.join(args.dataset)}"
      + (" (MNIST / Fashion-MNIST zero-padded to 32×32×1, so that real numbers exist where "
         "CIFAR-10 and CelebA are not at hand; the study's own datasets run with the commands "
         "under 'CIFAR-10 and CelebA')" if not {"cifar10", "celeb_a"} & set(args.dataset)
         else "") + ".", "",
      "- Models (`vae_jax/configs/fc_vs_conv_fc.py`, `fc_vs_conv_conv.py`): FC-VAE "
      f"flatten → {' → '.join(map(str, cfg['model']['encoder']['widths']))} → (μ, log σ²) and "
      "mirrored (the write-up gives no widths: ours); conv VAE 4×4 stride-2 convs "
      f"C→{'→'.join(map(str, cfg['model']['encoder']['features']))} (32→16→8→4), dense to "
      f"(μ, log σ²), dense → 4×4×{cfg['model']['decoder']['features'][0]} "
      f"(activation: {conv_cfg['model']['decoder']['project_activation']}) → transposed convs "
      f"{'→'.join(map(str, cfg['model']['decoder']['features']))}→C (PyTorch's "
      "ConvTranspose2d(k=4, stride=2, padding=1) map). Init "
      f"`{cfg['model']['dense_init']}`"
      + (f" (transposed convs: fan from the {conv_cfg['model']['decoder']['transpose_fan']}put "
         "channels)" if conv_cfg['model']['dense_init'] == "torch_uniform" else "")
      + ". Parameter counts per run are in the tables (they depend on the latent size and C).",
      "- Objective: squared error between x ∈ [0, 1] and sigmoid(decoder output), summed over "
      "pixels, + KL(q(z|x) ‖ N(0, I)), per image (the study's `reduction='sum'`); "
      f"{cfg['optim']['name']}.",
      f"- Parameter sets: {'; '.join(f'{p} ' + ', '.join(set_overrides(p)) for p in args.sets)}. "
      f"{cfg['data']['validation_fraction']:.0%} of train held out for validation (one split, "
      f"seed {cfg['data']['validation_seed']}, the same for every run); early stopping on "
      f"`{es['metric']}`, patience {es['patience']}, min_delta {es['min_delta']}: the best "
      "epoch is the last one that lowered the best validation loss by more than min_delta (so "
      "a later epoch may be slightly lower without counting, as in Keras' EarlyStopping), and "
      "training stops patience epochs after it; the best state is restored for the test "
      f"numbers and figures; at most {cfg['train']['epochs']} epochs (a run that reaches the "
      "cap is reported as such).",
      "- Normalized figure: the loss above is not a likelihood (it is a Gaussian with σ² = 1/2 "
      "minus its constant), so per run we also report the IW-NLL (Burda et al., 2016) of the "
      "first test images under a Bernoulli likelihood whose means are the trained decoder's "
      "outputs, with the trained encoder as proposal, in nats per image and in bits/dim "
      "(nats / (H·W·C · ln 2)). It bounds that Bernoulli model's likelihood; on grayscale "
      "targets the Bernoulli is the field's usual convention (as our MNIST results use), not a "
      "normalized density over [0, 1], and it compares runs across the two gray datasets.",
      "",
  ]
  devices = sorted({r.summary["device"] for r in finished})
  lines += [f"Device: {', '.join(devices)}. Training time of the runs reported: "
            f"{sum(r.train_minutes for r in finished) / 60:.2f} h (epochs only; s/epoch is the "
            "median epoch of a run's program, all its runs together, as the runs recorded it; "
            "speed figures measured on a quiet machine are in docs/performance.md).", ""]
  figures = []
  for dataset in args.dataset:
    iw = {}
    if args.iw_k:
      for key, rs in runs.items():
        if key[0] == dataset:
          iw[key] = [r.bernoulli_iw_nll(args.iw_k, args.iw_images) for r in rs]
    n_images = next((v[0]["images"] for v in iw.values() if v), 0)
    lines += [f"## {dataset}", "",
              "Mean ± sd over the seeds of each row; the loss is squared error + KL per image "
              "(the MSE column is the test squared error of reconstructions from the posterior "
              "mean, per image). Validation and test values are those of the best epoch."
              + (f" IW-NLL over the first {n_images} test images." if n_images else ""), "",
              "| model | set | params | seeds | epochs to stop | best epoch | val loss | "
              "test loss | test MSE | test KL |" + iw_head + " s/epoch (runs per program) | "
              "training (min, all seeds) |",
              "|" + "---|" * (12 + (2 if args.iw_k else 0))]
    for model in args.models:
      for pset in args.sets:
        rs = runs[dataset, model, pset]
        if rs:
          lines.append(_row(model, pset, rs, args, iw.get((dataset, model, pset))))
        else:
          lines.append(f"| {MODELS[model]} | {pset} | not run yet |" + " |" * 9)
    lines += ["", *_claim(runs, dataset, args.sets), ""]
    names = _figures(runs, dataset, args, args.out)
    figures += names
    if names:
      absent = [f"{MODELS[m]} {p}" for (d, m, p), rs in runs.items()
                if d == dataset and rs and not any(r.has_checkpoint for r in rs)]
      lines += [f"Figures (first seed with a checkpoint of each row; `{command}`"
                + (f"; rows whose runs are only records here, not drawn: {', '.join(absent)}"
                   if absent else "") + "):", ""]
      lines += [f"![{n}]({n})" for n in names] + [""]
  missing = []
  for (d, m, p), rs in runs.items():
    done = {r.summary["seed"] for r in rs}
    if len(done) < len(args.seeds):
      left = ", ".join(str(x) for x in args.seeds if x not in done)
      missing.append(f"{d} {MODELS[m]} {p} (seed{'s' if ', ' in left else ''} {left})")
  if missing:
    seeds = " ".join(map(str, args.seeds))
    lines += ["## Not run yet", "",
              f"Runs of seeds {seeds} without a summary: {'; '.join(missing)}. One command "
              "trains only them (continuing any that hold a checkpoint) and re-renders this "
              "README:", "",
              f"    python experiments/fc_vs_conv/run.py --dataset {' '.join(args.dataset)} "
              f"--seeds {seeds} --reuse --resume", ""]
  lines += [
      "## CIFAR-10 and CelebA", "",
      "On a machine where TFDS can download (or with a prepared TFDS data dir), the same runner "
      "trains the study's own datasets:", "",
      "    python experiments/fc_vs_conv/run.py --dataset cifar10 --seeds 0 1 2",
      "    python experiments/fc_vs_conv/run.py --dataset celeb_a --models conv --seeds 0 1 2",
      "",
      "CIFAR-10 also imports offline from the official `cifar-10-binary.tar.gz`: `vae-jax data "
      "import cifar10 --from DIR`. CelebA has no offline import: it needs network access (TFDS "
      "downloads it) or a TFDS data dir where `celeb_a` is already prepared (`--config.data."
      "data_dir` or `TFDS_DATA_DIR`). `celeb_a` is center-cropped to 140×140 and resized to "
      "32×32 with TensorFlow's area filter, then a seeded 30% subset of train is kept (see "
      "`vae_jax/data/specs.py`). Both pipelines are tested on `tfds.testing.mock_data`.", "",
      f"Versions: {json.dumps(any_summary['versions'])}.", ""]
  ablation = args.out / ablation_lib.README
  if ablation.is_file():
    lines += [f"Why the conv decoder has no activation after its projection and PyTorch's "
              f"transposed-conv fan (an ablation on MNIST and Fashion-MNIST, and where each "
              f"input pixel lands under flax's SAME and PyTorch's padding=1): "
              f"[{ablation.name}]({ablation.name}).", ""]
  for (dataset, model, pset), rs in runs.items():
    for r in rs:
      if r.has_checkpoint:
        study.save_record(r, record_dir(args, group_dir, dataset, model, pset, r.seed))
  readme = args.out / "README.md"
  readme.write_text("\n".join(lines))
  print(f"wrote {readme} and {len(figures)} figures", flush=True)
  return readme
