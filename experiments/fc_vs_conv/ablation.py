"""The conv decoder ablation of the fc_vs_conv study (run.py --ablation): projection ReLU on/off x
transposed-conv torch_uniform fan from C_in / C_out (PyTorch's), conv VAE set p1, a few epochs
per run, seeds vmapped; and where each input pixel of a 4x4 stride-2 transposed conv lands under
flax's SAME and PyTorch's padding=1. Writes ABLATION.md beside the study README.

Run directories: <runs>/<dataset>/ablation/project=<act>,fan=<fan>/seed=<s>/; their records
(study.save_record) go to <out>/runs/ the same way.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from common import study

README = "ABLATION.md"
ACTIVATIONS = ("relu", "none")
FANS = ("in", "out")
CELLS = tuple(itertools.product(ACTIVATIONS, FANS))
COLLAPSED_KL = 0.1  # nats per image: a run whose test KL is below this ignores its latent.


def cell_name(activation: str, fan: str) -> str:
  return f"project={activation},fan={fan}"


def cell_overrides(activation: str, fan: str) -> list[str]:
  return [f"model.decoder.project_activation={activation}", f"model.decoder.transpose_fan={fan}"]


def landing(size: int = 4) -> dict:
  """{(input row i, tap t): (output row under flax's SAME, under PyTorch's padding=1)} of a 4x4
  stride-2 transposed conv on a size x size input, found by running both layers on a one-hot
  input pixel through a one-hot kernel tap; None where the output falls outside the image."""
  import flax.linen as nn  # pylint: disable=import-outside-toplevel
  from vae_jax.models import layers  # pylint: disable=import-outside-toplevel
  out = {}
  for i in range(size):
    for t in range(4):
      x = jnp.zeros((1, size, size, 1)).at[0, i, 0, 0].set(1.0)
      params = {"params": {"kernel": jnp.zeros((4, 4, 1, 1)).at[t, 1, 0, 0].set(1.0),
                           "bias": jnp.zeros((1,))}}
      rows = [np.flatnonzero(np.asarray(m.apply(params, x))[0, :, :, 0].sum(axis=1))
              for m in (nn.ConvTranspose(1, (4, 4), strides=(2, 2), padding="SAME"),
                        layers.ConvTranspose(1))]
      out[i, t] = tuple(int(r[0]) if r.size else None for r in rows)
  return out


def _landing_lines(size: int = 4) -> list[str]:
  land = landing(size)
  show = lambda v: "outside" if v is None else str(v)  # noqa: E731
  lines = [f"Where input row i of a {size}-row input lands through kernel tap t (one-hot input, "
           "one-hot tap, both layers run):", "",
           "| input row i | " + " | ".join(f"tap {t}: flax SAME / PyTorch p=1" for t in range(4))
           + " |", "|---|" + "---|" * 4]
  for i in range(size):
    lines.append(f"| {i} | " + " | ".join(" / ".join(map(show, land[i, t])) for t in range(4))
                 + " |")
  reached = [{i: sorted(v[k] for (j, _), v in land.items() if j == i and v[k] is not None)
              for i in range(size)} for k in (0, 1)]
  reversed_taps = all(land[i, t][0] == land[i, 3 - t][1] for i, t in land)
  lines += ["", f"Each input row reaches {'the same' if reached[0] == reached[1] else 'different'}"
            " output rows under both; the taps come in "
            f"{'reverse' if reversed_taps else 'another'} order (flax's tap t is PyTorch's tap "
            "3 − t), so the two layers are the same family of maps with the kernel flipped, and "
            "an init that is symmetric in its taps draws equally likely kernels for both.", ""]
  return lines


def train(dataset: str, activation: str, fan: str, args, base_overrides: list[str]) -> None:
  """Trains one cell's seeds as one vmapped sweep for args.ablation_epochs epochs."""
  seeds = study.untrained_seeds(args.seeds, args.reuse,
                                lambda s: _record(args, dataset, activation, fan, s))
  if not seeds:
    return
  results, _ = study.train_sweep(
      args.conv_config, [f"data.name={dataset}", f"train.epochs={args.ablation_epochs}",
                         *base_overrides, *cell_overrides(activation, fan)],
      study.seed_sweep(seeds), _group(args.runs, dataset, activation, fan), args)
  print(f"ablation {dataset} {cell_name(activation, fan)}: test loss "
        + ", ".join(f"{r['summary']['eval/loss']:.2f}" for r in results), flush=True)


def _group(root: Path, dataset: str, activation: str, fan: str) -> Path:
  return root / dataset / "ablation" / cell_name(activation, fan)


def _record(args, dataset, activation, fan, seed) -> Path:
  return study.seed_dir(_group(args.out / "runs", dataset, activation, fan), seed)


def _findings(finished: dict) -> list[str]:
  """Per setting of each factor: runs collapsed, and the last epoch's mean test loss over the
  runs that did not collapse (from the cells' runs, {(activation, fan): [RunDir]})."""
  lines = []
  for index, factor, values in ((0, "projection activation", ACTIVATIONS),
                                (1, "transposed-conv fan", FANS)):
    parts = []
    for value in values:
      runs = [r for cell, rs in finished.items() if cell[index] == value for r in rs]
      if not runs:
        continue
      last = [r.history[-1] for r in runs]
      kept = [h["eval/loss"] for h in last if h["eval/kl"] >= COLLAPSED_KL]
      parts.append(f"`{value}`: {sum(h['eval/kl'] < COLLAPSED_KL for h in last)} of "
                   f"{len(runs)} runs collapsed"
                   + (f", mean test loss of the runs that did not, last epoch: {np.mean(kept):.2f}"
                      if kept else ""))
    if parts:
      lines.append(f"- By {factor}: " + "; ".join(parts) + ".")
  return lines


def write(args, set_name: str) -> Path:
  """ABLATION.md from the cells' run directories (or records): per dataset and cell, test loss
  and KL after each epoch (mean ± sd over seeds) and how many runs collapsed."""
  command = study.command_line("experiments/fc_vs_conv/run.py")
  lines = ["# fc_vs_conv: the conv decoder ablation", "",
           f"Made by `{command}` (`--reuse` re-renders from the run directories or the records "
           "in `runs/` without training).", "",
           "The conv VAE of this study (set "
           f"{set_name}) with the decoder's projection activation (`model.decoder."
           "project_activation`: `relu`, vae_jax before 0.2, or `none`, as PyTorch reference "
           "decoders) crossed with the torch_uniform fan of its transposed convs (`model.decoder."
           "transpose_fan`: `in`, 16·C_in, vae_jax before 0.2, or `out`, 16·C_out, PyTorch's "
           "ConvTranspose2d). The cell `relu` × `in` is the pre-0.2 model bit for bit "
           "(tests/test_torch_parity.py). Test loss: squared error + KL per image "
           f"(nats for the KL); a run with test KL below {COLLAPSED_KL} nats counts as "
           "collapsed.", ""]
  for dataset in args.dataset:
    rows, finished = [], {}
    for activation, fan in CELLS:
      runs = [r for r in (study.finished_run(
          study.seed_dir(_group(args.runs, dataset, activation, fan), s),
          _record(args, dataset, activation, fan, s)) for s in args.seeds) if r]
      if not runs:
        rows.append(f"| {activation} | {fan} | not run yet |" + " |" * 4)
        continue
      finished[activation, fan] = runs
      for r in runs:
        if r.has_checkpoint:
          study.save_record(r, _record(args, dataset, activation, fan, r.seed))
      epochs = min(len(r.history) for r in runs)
      cells = [activation, fan, str(len(runs))]
      cells += [study.mean_sd([r.history[e]["eval/loss"] for r in runs]) for e in range(epochs)]
      cells += [study.mean_sd([r.history[epochs - 1]["eval/kl"] for r in runs])]
      cells += [str(sum(r.history[epochs - 1]["eval/kl"] < COLLAPSED_KL for r in runs))]
      rows.append("| " + " | ".join(cells) + " |")
    n_epochs = args.ablation_epochs
    lines += [f"## {dataset}", "",
              "| projection activation | transposed-conv fan | seeds | "
              + " | ".join(f"test loss, epoch {e + 1}" for e in range(n_epochs))
              + f" | test KL, epoch {n_epochs} | collapsed |",
              "|---|---|---|" + "---|" * (n_epochs + 2), *rows, "", *_findings(finished), ""]
  lines += ["## flax SAME vs PyTorch padding=1", "", *_landing_lines()]
  path = args.out / README
  path.write_text("\n".join(lines))
  print(f"wrote {path}", flush=True)
  return path
