"""Config files (ml_collections, one `get_config()` each), command-line overrides and validation.

Read the config only at the edges (CLI, train_and_evaluate, factories); pass plain values below.
"""

from __future__ import annotations

import difflib
import importlib.util
import json
import math
from pathlib import Path

import ml_collections


from vae_jax import (data, distributions, early_stopping, growth, models, objectives, optimizers,
                     schedules)
from vae_jax.configs import CONFIG_DIR, config_path, named_configs  # noqa: F401  # Re-exported.
from vae_jax.errors import ConfigError  # noqa: F401  # Raised here; the public name stays.
from vae_jax.overrides import (  # noqa: F401  # Re-exported: config.apply_overrides etc.
    apply_overrides, flat_keys, get_path, leaf_paths)


def base_config() -> ml_collections.ConfigDict:
  """Defaults every experiment config starts from (mnist_mlp: 784-400-20, Adam 1e-3, batch 128)."""
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.data = dict(
      name="mnist",
      data_dir="",  # "" = $TFDS_DATA_DIR or TFDS's default.
      preprocess="grayscale",  # grayscale | binarize_dynamic | binarize_threshold
      validation_size=0,  # images carved from train; 0 = no validation split.
      validation_fraction=0.0,  # or this fraction of train (rounded); 0 = use validation_size.
      validation_seed=0,  # seed of that split: the same split for every run seed.
      train_subset=0,  # use only the first N training images; 0 = all.
      test_subset=0,  # evaluate on only the first N test images (quick checks); 0 = all.
      # Train and validation images of these classes are dropped (held-out-class anomaly
      # detection); the test set keeps every class.
      exclude_classes=(),
      # Where the training set lives while training: always (device memory, sliced inside one
      # compiled epoch) | never (streamed from the host, batch chunks prefetched to the device) |
      # auto (on the device when the splits fit in data.device_budget_mb, else streamed).
      on_device="auto",
      device_budget_mb=0,  # auto's budget; 0 = half the device's memory (2048 MB if unknown).
  )
  c.model = dict(
      # vae | ae (deterministic autoencoder: no sampling, no KL) | cvae (label-conditioned VAE)
      # | classifier (CNN on model.encoder.features; its classifier_hidden features feed
      # classifier-FID).
      kind="vae",
      latent_dim=20,
      encoder=dict(
          kind="mlp",  # mlp | conv
          widths=(400,),  # mlp: hidden widths.
          features=(32, 64, 128),  # conv: channels of the 4x4 stride-2 convs (32x32 -> 4x4).
      ),
      decoder=dict(
          kind="mlp",  # mlp | conv
          widths=(400,),  # mlp: hidden widths.
          features=(128, 64, 32),  # conv: channels after the dense projection, then upsampling.
          # conv: each x2 step as nn.ConvTranspose ('transpose') or the same layer computed as one
          # 3x3 conv + depth-to-space ('phase': same params and outputs, ~2.5x faster on CPU);
          # 'auto': phase on the CPU, transpose on accelerators.
          upsample="transpose",
          # conv: activation after the dense projection: none (PyTorch's reference VAE decoders)
          # | relu (vae_jax before 0.2; collapsed the fc_vs_conv MSE VAE on MNIST).
          project_activation="none",
          # conv, torch_uniform init: a transposed conv's fan, out (PyTorch's ConvTranspose2d:
          # 16 * C_out) | in (16 * C_in, vae_jax before 0.2).
          transpose_fan="out",
      ),
      # Conv layers run on this many slices of each batch (same params and values; 0 = auto:
      # slices of about 16 examples on the CPU, else 1). Faster on XLA:CPU, see models/conv.py.
      conv_batch_chunks=1,
      # Conv layers under a vmapped runs axis (sweeps): auto (loop over the runs on the CPU,
      # where vmapped convs are 4-12x slower; vmap elsewhere) | loop | vmap. 'loop' supports
      # first-order reverse-mode gradients only.
      conv_runs="auto",
      # bernoulli (nats) | mse (squared error summed over pixels) | gaussian (discretized, with a
      # learned scale per pixel) | logistic_mixture (discretized, Salimans et al. 2017): the last
      # two are likelihoods of 8-bit images, nats per image and bits/dim.
      likelihood="bernoulli",
      mixture_components=5,  # logistic_mixture: M components per pixel.
      # vae: standard (N(0, I)) | vampprior (a mixture of the posteriors of pseudo_inputs learned
      # pseudo-inputs, Tomczak & Welling 2018).
      prior="standard",
      pseudo_inputs=500,
      # hvae: L Gaussian stochastic layers, bottom to top (the IWAE paper's 2-layer MNIST model:
      # 784-200-200-[100]-100-100-[50]); each conditional `depth` dense layers of the layer's
      # width; inference bottom_up | ladder (Sønderby et al. 2016). model.latent_dim is not read.
      hvae=dict(latent_dims=(100, 50), widths=(200, 100), depth=2, inference="bottom_up"),
      # vqvae: latent_dim codes per image of code_dim each, nearest of num_codes codebook vectors
      # that follow moving averages with this decay (van den Oord et al. 2017).
      vq=dict(num_codes=512, code_dim=16, decay=0.99),
      dense_init="lecun_normal",  # lecun_normal (flax default) | torch_uniform (nn.Linear default)
      classifier_hidden=128,  # classifier: width of its penultimate (feature) layer.
  )
  c.growth = dict(
      enabled=False,  # Grow/shrink the MLP encoder's hidden layers; start = model.encoder.widths.
      every_epochs=25,  # A growth event after every N epochs ...
      increments=(32, 16),  # ... adds these units per hidden layer,
      final_widths=(256, 128),  # capped here.
      narrow_at=0,  # After this epoch (> 0), cut the widths to narrow_to instead.
      narrow_to=(64, 32),
      keep="first",  # Units kept when narrowing: first | largest_norm
      outgoing_init="he",  # New outgoing weights: he (study) | zeros (function-preserving)
      optimizer="pad",  # Optimizer state at growth: pad (zero moments for new units) | reset
  )
  c.objective = dict(
      # elbo (the negative ELBO, or a model kind's own loss) | iwae (the importance-weighted bound
      # with num_samples samples, Burda et al. 2016; vae and cvae).
      name="elbo",
      commitment=0.25,  # vqvae: weight of the commitment term ||z_e - sg(z_q)||^2.
      label_weight=50.0,  # mvae: weight of log p(y | z) (Wu & Goodman 2018 used 50 on MNIST).
      num_samples=5,  # iwae: K, the importance samples of the training bound.
      estimator="iwae",  # iwae: the encoder's gradient, iwae (the bound's) | dreg (Tucker 2019)
      beta=1.0,
      # Schedules of the KL weight (vae_jax/schedules.py; epochs, 0 = off): linear warm-up from 0
      # to beta over kl_warmup_epochs; cycles of beta_cycle_epochs, each ramping 0 -> beta over
      # its first beta_cycle_ratio, then flat.
      kl_warmup_epochs=0.0,
      beta_cycle_epochs=0.0,
      beta_cycle_ratio=0.5,
      free_bits=0.0,  # > 0: nats per latent dimension below which the KL is not penalized.
  )
  c.optim = dict(
      name="adam", lr=1e-3, weight_decay=0.0,
      warmup_epochs=0.0,  # linear learning-rate warm-up from 0 over these epochs.
      schedule="constant",  # constant | cosine (decay to lr * final_lr_fraction at train.epochs)
      final_lr_fraction=0.0,
      clip_norm=0.0,  # > 0: gradients clipped to this global norm (optax.clip_by_global_norm).
      # > 0: evaluation, IW-NLL and figures use an EMA of the params with this decay (a
      # compile-time constant: optimizers.track_params_ema).
      ema_decay=0.0,
  )
  c.train = dict(
      epochs=10,
      batch_size=128,
      checkpoint_every=5,
      # Also checkpoint at the end of the first epoch after this many minutes without one (a
      # killed long run loses at most this plus one epoch); 0 = by epoch count only.
      checkpoint_minutes=10.0,
      keep_checkpoints=2,  # Newest checkpoints kept in <workdir>/ckpt; 0 = every one written.
      # 0: an epoch is one compiled lax.scan. N > 0: the host calls a compiled program of N
      # unrolled steps per call, and evaluation loops are unrolled (XLA:CPU runs convolutions
      # ~10x slower inside a compiled loop).
      steps_per_call=0,
      # Sweep runs differing only in traced fields share one vmapped program: auto (yes, except
      # growth and conv models with model.conv_runs=vmap on the CPU, where it is slower) | always
      # | never.
      vmap_runs="auto",
      tensorboard=True,  # TensorBoard event files in <workdir>/tensorboard.
      # Per-layer gradient norm (on a probe batch), parameter norm and update ratio in every
      # epoch's row (vae_jax/dynamics.py), and the gradient-flow figure.
      dynamics=False,
      # Reconstructions and prior samples of fixed inputs in TensorBoard at every epoch
      # (vae_jax/live.py).
      live_images=False,
      # A step with a non-finite loss or gradient is skipped; after this many in a row the run
      # fails (exit 2, last good checkpoint kept). 0 = never stop.
      max_nonfinite_steps=100,
      early_stopping=dict(
          patience=0,  # Stop after this many epochs without improvement; 0 = off.
          # A metrics.jsonl key, lower is better (val/* needs a validation split).
          metric="val/loss",
          min_delta=0.0,  # An improvement must lower the best value by more than this.
      ),
  )
  c.parallel = dict(
      data_devices=0,  # Devices each batch is sharded over; 0 = all (divided by runs_devices).
      runs_devices=1,  # Devices a sweep's vmapped runs axis is sharded over (divides the runs).
  )
  c.eval = dict(
      batch_size=500,
      iw_samples=5000,  # K of the final IW-NLL; 0 skips it.
      elbo_samples=0,  # L > 0: also report the test ELBO estimated with L latent samples.
      iw_batch_size=100,
      iw_chunk_size=100,  # 100 x 100 rows per decoder GEMM: fastest measured on 2 cores.
      figures=True,  # write the run's figures/*.png at its end; False skips them (quick checks).
  )
  return ml_collections.ConfigDict(c)


def load_config(path: str | Path) -> ml_collections.ConfigDict:
  """Imports a config file (or a shipped config by name, see config_path) and returns its
  `get_config()`.

  Raises:
    ConfigError: the file is missing, fails to import or has no get_config().
  """
  path = config_path(path)
  spec = importlib.util.spec_from_file_location(f"_vae_jax_config_{path.stem}", path)
  if spec is None or path.suffix != ".py":
    raise ConfigError(f"config file {path} is not a Python file; pass --config with a .py file "
                      "defining get_config(), such as vae_jax/configs/mnist_mlp.py")
  module = importlib.util.module_from_spec(spec)
  try:
    spec.loader.exec_module(module)
    config = module.get_config()
  except (Exception, SystemExit) as e:  # noqa: BLE001 - any failure in user code is the file's.
    raise ConfigError(f"config file {path} failed to load ({type(e).__name__}: {e}); "
                      "fix the file so that get_config() returns a ConfigDict") from None
  if not isinstance(config, ml_collections.ConfigDict):
    raise ConfigError(f"{path}: get_config() must return an ml_collections.ConfigDict")
  unknown = sorted(leaf_paths(config) - leaf_paths(base_config()))
  if unknown:
    known = sorted(leaf_paths(base_config()))
    near = difflib.get_close_matches(unknown[0], known, n=1)
    raise ConfigError(f"config file {path} sets {unknown[0]}, which is not a config field"
                      + (f" (did you mean {near[0]}?)" if near else "")
                      + "; fix the name (the fields: vae_jax/config.py base_config)")
  return config


def _kinds(kind: str) -> tuple[str, ...]:
  """The encoder / decoder kinds a config may name: ENCODER_KINDS, or this "package.module:Class"
  (an open registry: your own flax module; models.user_module imports it)."""
  return (*models.ENCODER_KINDS, *([kind] if models.is_user_kind(kind) else []))


def validate(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Checks sizes and names before anything is written.

  Raises:
    ConfigError: naming the first bad field and what it should be.
  """
  positive = {
      "model.latent_dim": config.model.latent_dim,
      "model.pseudo_inputs": config.model.pseudo_inputs,
      "model.mixture_components": config.model.mixture_components,
      "train.epochs": config.train.epochs,
      "train.batch_size": config.train.batch_size,
      "train.checkpoint_every": config.train.checkpoint_every,
      "eval.batch_size": config.eval.batch_size,
      "eval.iw_batch_size": config.eval.iw_batch_size,
      "eval.iw_chunk_size": config.eval.iw_chunk_size,
  }
  for part in ("encoder", "decoder"):
    field = "widths" if config.model[part].kind == "mlp" else "features"
    for i, w in enumerate(config.model[part][field]):
      positive[f"model.{part}.{field}[{i}]"] = w
  for name, value in positive.items():
    if value <= 0:
      raise ConfigError(f"{name} must be positive, got {value}; set --config.{name.split('[')[0]}")
  if not 0 <= config.objective.beta < math.inf:  # A bare Infinity is not JSON.
    raise ConfigError(f"objective.beta must be a finite number >= 0, got "
                      f"{config.objective.beta}; set --config.objective.beta")
  for name in ("data.validation_size", "data.validation_seed", "data.train_subset",
               "data.test_subset",
               "model.conv_batch_chunks", "train.keep_checkpoints",
               "parallel.data_devices", "parallel.runs_devices", "data.device_budget_mb",
               "train.max_nonfinite_steps", "train.checkpoint_minutes",
               "eval.iw_samples", "eval.elbo_samples", "train.steps_per_call",
               "train.early_stopping.patience",
               "train.early_stopping.min_delta"):
    value = get_path(config, name)
    if value < 0:
      raise ConfigError(f"{name} must be >= 0, got {value}; set --config.{name}")
  for name, value, known in (("model.kind", config.model.kind, models.MODEL_KINDS),
                             ("model.prior", config.model.prior, models.PRIORS),
                             ("model.encoder.kind", config.model.encoder.kind,
                              _kinds(config.model.encoder.kind)),
                             ("model.decoder.kind", config.model.decoder.kind,
                              _kinds(config.model.decoder.kind)),
                             ("model.decoder.upsample", config.model.decoder.upsample,
                              models.UPSAMPLE_MODES),
                             ("model.decoder.project_activation",
                              config.model.decoder.project_activation,
                              models.PROJECT_ACTIVATIONS),
                             ("model.decoder.transpose_fan", config.model.decoder.transpose_fan,
                              models.TRANSPOSE_FANS),
                             ("model.conv_runs", config.model.conv_runs,
                              models.CONV_RUNS_MODES),
                             ("train.vmap_runs", config.train.vmap_runs,
                              ("auto", "always", "never")),
                             ("model.dense_init", config.model.dense_init, models.DENSE_INITS),
                             ("optim.name", config.optim.name, optimizers.OPTIMIZERS),
                             ("model.likelihood", config.model.likelihood,
                              distributions.LIKELIHOODS)):
    if value not in known:
      raise ConfigError(f"unknown {name} {value!r}; choose one of {', '.join(sorted(known))}")
  data.validate_config(config)
  schedules.validate_config(config)
  objectives.validate_config(config)
  if config.model.kind in models.LABELLED_KINDS and data.num_classes(config.data.name) < 2:
    raise ConfigError(f"model.kind={config.model.kind} needs class labels, which data.name="
                      f"{config.data.name} does not have; pick a labelled dataset or "
                      "model.kind=vae")
  early_stopping.validate_config(config)
  growth.validate_config(config)
  try:  # Sizes that do not fit the images (e.g. a conv decoder on 28x28 with 3 stride-2 layers).
    conditional = config.model.kind in models.LABELLED_KINDS
    models.build_model(config.model, data.image_shape(config.data.name),
                       data.num_classes(config.data.name) if conditional else 0)
  except ValueError as e:
    raise ConfigError(f"{e}") from None
  if not (0 < config.optim.lr < math.inf and 0 <= config.optim.weight_decay < math.inf):
    raise ConfigError(f"optim.lr must be > 0 and optim.weight_decay >= 0, got "
                      f"{config.optim.lr}, {config.optim.weight_decay}")
  return config


def merged(base: dict, override: dict) -> dict:
  """`override` with the fields only `base` has filled in (recursively)."""
  out = dict(base)
  for k, v in override.items():
    out[k] = merged(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
  return out


def with_defaults(saved: dict) -> ml_collections.ConfigDict:
  """A saved config.json dict as a ConfigDict; fields added to the library after the run was
  written take their base_config defaults (tuples stay lists); the MLP widths of runs written
  before model.encoder/model.decoder existed move there.

  Raises:
    ConfigError: a conv-decoder run written before vae_jax 0.2 (its kernels are in flax's tap
      order, which the decoder no longer computes).
  """
  saved = json.loads(json.dumps(saved))  # A copy.
  model = saved.get("model", {})
  decoder = model.get("decoder", {})
  if decoder.get("kind") == "conv" and "project_activation" not in decoder:
    raise ConfigError("this run was made before vae_jax 0.2 changed the conv decoder (PyTorch's "
                      "transposed-conv tap order and fan, no ReLU after the projection), so its "
                      "checkpoints do not fit the model; retrain it in a new --workdir")
  for part in ("encoder", "decoder"):
    if f"{part}_widths" in model:
      model.setdefault(part, {})["widths"] = model.pop(f"{part}_widths")
  return ml_collections.ConfigDict(merged(json.loads(to_json(base_config())), saved))


def to_json(config: ml_collections.ConfigDict) -> str:
  """Resolved config as sorted JSON (tuples become lists)."""
  return json.dumps(config.to_dict(), indent=2, sort_keys=True)
