"""The 'Inside the core model' section of the beta_cvae README (called by report.py): the posterior
histograms, gradient flow and parameter evolution (train.dynamics), the first-layer filters over
the kept epochs, one test image's feature maps, and classifier-FID / IS / diversity at every kept
epoch; each figure with sentences computed from the run."""

from pathlib import Path

import numpy as np

HISTOGRAM_DIMS = 8  # Posterior dimensions drawn, highest KL first.


def _posterior(out: Path, core) -> tuple[list[str], list[str]]:
  from vae_jax import analysis, curves  # pylint: disable=import-outside-toplevel
  order = np.argsort(-core.kl_dims)[:HISTOGRAM_DIMS]
  curves.posterior_histograms(core.mean, core.logvar, out / "posterior_histograms.png",
                              dims=order)
  spread = core.mean[:, order].std(0)
  sigma = np.median(np.exp(core.logvar[:, order] / 2), axis=0)
  inactive = [d for d in range(core.mean.shape[1])
              if core.variances[d] <= analysis.ACTIVE_UNIT_THRESHOLD]
  text = (f"Posterior (`posterior_histograms.png`): the {len(order)} dimensions of highest KL; "
          f"their means spread over the {len(core.mean):,} test images with sd "
          f"{spread.min():.2f}–{spread.max():.2f} and median σ {sigma.min():.3f}–"
          f"{sigma.max():.3f} (the prior: sd 1, σ 1). ")
  if inactive:
    rest = np.median(np.exp(core.logvar[:, inactive] / 2))
    text += (f"The {len(inactive)} inactive dimensions keep median σ {rest:.3f}: they stay at "
             "the prior.")
  else:
    text += f"All {core.mean.shape[1]} dimensions are active units."
  return [text, ""], ["posterior_histograms.png"]


def _dynamics(out: Path, core) -> tuple[list[str], list[str]]:
  from vae_jax import curves, dynamics  # pylint: disable=import-outside-toplevel
  history = core.run.history
  if not curves.has_dynamics(history):
    return [f"Gradient flow and parameter evolution: the run in `{core.run.dir.name}` was "
            "trained without `train.dynamics=True`; train the study again to draw them.", ""], []
  curves.gradient_flow(history, out / "gradient_flow.png")
  curves.parameter_evolution(history, out / "parameter_evolution.png")
  first, last = history[0], history[-1]
  prefix = dynamics.PREFIX + "grad_norm/"
  layers = [k[len(prefix):] for k in first if k.startswith(prefix)]
  change = {layer: last[prefix + layer] / first[prefix + layer] for layer in layers}
  ratio = {layer: last[f"{dynamics.PREFIX}update_ratio/{layer}"] for layer in layers}
  low, high = min(change, key=change.get), max(change, key=change.get)
  slow, fast = min(ratio, key=ratio.get), max(ratio, key=ratio.get)
  seconds = np.median([r[dynamics.PREFIX + "seconds"] for r in history])
  return [f"Gradient flow (`gradient_flow.png`, `parameter_evolution.png`): the probe-batch "
          f"gradient norm of each of the {len(layers)} layers from epoch {first['epoch']} to "
          f"{last['epoch']} changes by a factor of {change[low]:.2f} (`{low}`) to "
          f"{change[high]:.2f} (`{high}`); in the last epoch the update moved the parameters by "
          f"{ratio[slow]:.2e} (`{slow}`) to {ratio[fast]:.2e} (`{fast}`) of their norm. The "
          f"probe took {seconds:.3f} s per epoch (median) of every run in the program.", ""], [
              "gradient_flow.png", "parameter_evolution.png"]


def _filters(out: Path, core, test) -> tuple[list[str], list[str]]:
  from vae_jax import conv_views  # pylint: disable=import-outside-toplevel
  if not conv_views.conv_kernels(core.params):
    return ["Filters and feature maps: the encoder has no conv layer.", ""], []
  epochs = core.run.kept_epochs()
  by_epoch = {e: conv_views.first_layer_filters(core.run.params_at(e)) for e in epochs}
  conv_views.filter_evolution(by_epoch, out / "filter_evolution.png")  # Each checkpoint read once.
  kernels = [by_epoch[e] for e in epochs]
  steps = [float(np.linalg.norm(b - a) / np.linalg.norm(a)) for a, b in zip(kernels, kernels[1:])]
  image = test[0][0].astype(np.float32) / 255.0
  label = int(test[1][0]) if core.objective.conditional else None
  maps = conv_views.feature_maps(core.objective.model, core.params, image, label)
  conv_views.feature_map_figure(image, maps, out / "feature_maps.png")
  shapes = ", ".join(f"`{name.rsplit('/', 1)[-1]}` {'×'.join(map(str, m.shape))}"
                     for name, m in maps.items())
  moved = (f"; the first-layer kernel moves by {steps[0]:.1%} of its norm between epochs "
           f"{epochs[0]} and {epochs[1]}" if steps else "")
  if len(steps) > 1:
    moved += f" and by {steps[-1]:.1%} between epochs {epochs[-2]} and {epochs[-1]}"
  return [f"Filters (`filter_evolution.png`): the first conv layer's filters at the "
          f"{len(epochs)} kept epochs ({', '.join(map(str, epochs))}){moved}. Feature maps "
          f"(`feature_maps.png`) of the first test image (a {int(test[1][0])}) through the "
          f"encoder's conv layers: {shapes} (height×width×channels).", ""], [
              "filter_evolution.png", "feature_maps.png"]


def _scores(out: Path, core) -> tuple[list[str], list[str]]:
  from vae_jax import curves, evaluators  # pylint: disable=import-outside-toplevel
  if core.score is None:
    return ["Scores over training: no classifier for the dataset (see the classifier-FID note "
            "above).", ""], []
  scores = evaluators.cached_scores_over_training(core.run.dir, n=core.score["n"])
  curves.scores_over_training(scores, out / "scores_over_training.png")
  fid = [s["fid"] for s in scores]
  best = int(np.argmin(fid))
  last = scores[-1]
  counts = np.asarray(last["label_histogram"])
  return [f"Scores over training (`scores_over_training.png`, n = {last['n']:,} prior samples "
          f"per kept epoch): classifier-FID {fid[0]:.2f} at epoch {scores[0]['epoch']}, "
          f"{fid[-1]:.2f} at epoch {last['epoch']} (lowest {fid[best]:.2f} at epoch "
          f"{scores[best]['epoch']}; train-vs-test floor {last['fid_floor_train_vs_test']:.2f}); "
          f"classifier-IS {scores[0]['is']:.2f} → {last['is']:.2f} (real test images "
          f"{last['is_real_test']:.2f}); sample diversity {last['diversity']:.2f} against the "
          f"test images' {last['diversity_test']:.2f}. At the last epoch the classifier labels "
          f"{counts.max() / counts.sum():.1%} of the samples {int(counts.argmax())} (most) and "
          f"{counts.min() / counts.sum():.1%} {int(counts.argmin())} (fewest); uniform is "
          f"{1 / len(counts):.1%}.", ""], ["scores_over_training.png"]


def section(out: Path, core, test) -> tuple[list[str], list[str]]:
  """(README lines, figure names) of the core run (report._Stats of the first seed's β = 1
  run, which keeps every epoch's checkpoint); test: (uint8 images [N, H, W, 1], labels [N])."""
  lines, names = [], []
  for part in (_posterior(out, core), _dynamics(out, core), _filters(out, core, test),
               _scores(out, core)):
    lines += part[0]
    names += part[1]
  return lines, names

