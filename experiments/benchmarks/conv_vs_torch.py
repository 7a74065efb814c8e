"""Benchmark: training epoch time and images/s of the fc_vs_conv study's conv VAE in vae_jax vs a
PyTorch conv VAE of exactly the same shape, on MNIST / Fashion-MNIST zero-padded to 32x32.

  python experiments/benchmarks/conv_vs_torch.py [--dataset mnist_32|fashion_mnist_32]
      [--batch-sizes 64 128] [--epochs 2] [--train-images N] [--threads T] [--skip-transpose]

Compared (the study's p1: Adam lr 1e-3, latent 128; every batch size given):
  vae_jax: vae_jax/configs/fc_vs_conv_conv.py as the trainer runs it (epochs.ChunkedEpoch of
    train.steps_per_call steps per program, model.decoder.upsample='auto': 'col2im' transposed
    convs (GEMM + overlap-add) on the CPU, model.conv_batch_chunks=0: slices of about 16 images);
    vae_jax_phase: the same with the 3x3 'phase' transposed convs; vae_jax_unchunked: col2im on
    whole batches; and, unless --skip-transpose, vae_jax_transpose: plain lax.conv_transpose
    (layers.ConvTranspose) on whole batches, to show what each part of the fast path gains.
  torch: encoder Conv2d(C,32,4,2,1)-ReLU-Conv2d(32,64)-ReLU-Conv2d(64,128)-ReLU-flatten-
    Linear(2048,latent) x2 (mu, logvar); decoder Linear(latent,2048)-reshape(128,4,4)-
    ConvTranspose2d(128,64,4,2,1)-ReLU-ConvTranspose2d(64,32)-ReLU-ConvTranspose2d(32,C); loss
    F.mse_loss(sigmoid(out), x, reduction='sum') + KL (sum), divided by the batch size. The
    vae_jax objective is the per-image mean of the same terms, i.e. the same number. Data: a
    TensorDataset of float [0,1] NCHW tensors in memory, DataLoader(shuffle, drop_last, 0 workers).
Both: one warm-up epoch (for vae_jax it includes the compile), then --epochs timed whole epochs;
the median is reported. images/s counts the full batches of an epoch. Uses the real dataset when
it is prepared in the TFDS data dir, else random uint8 images of the same shape (printed).
A script that prints figures (JSON lines, then one JSON), not a timed test. Run on a quiet machine
(load_average_1min is printed): torch's threads slow down many times over when another process holds
the cores. XLA:CPU uses its own thread pool over all cores; --threads sets torch's only.
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

try:
  import torch
  import torch.nn.functional as F
  from torch import nn
except ImportError:
  print("conv_vs_torch.py needs torch: pip install torch (benchmark-only dependency)",
        file=sys.stderr)
  sys.exit(2)

import jax
import numpy as np

from vae_jax import config as config_lib, data, models, objectives, train

sys.path.insert(0, str(Path(__file__).resolve().parent))
import epoch_time  # noqa: E402  # pylint: disable=g-import-not-at-top

CONFIG = config_lib.CONFIG_DIR / "fc_vs_conv_conv.py"


class TorchConvVAE(nn.Module):
  """The PyTorch twin of the vae_jax conv VAE (features 32-64-128 / 128-64-32, 32x32xC)."""

  def __init__(self, channels: int, latent: int):
    super().__init__()
    self.encoder = nn.Sequential(
        nn.Conv2d(channels, 32, 4, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 4, 2, 1), nn.ReLU(),
        nn.Conv2d(64, 128, 4, 2, 1), nn.ReLU(), nn.Flatten())
    self.mu, self.logvar = nn.Linear(2048, latent), nn.Linear(2048, latent)
    self.project = nn.Linear(latent, 2048)
    self.decoder = nn.Sequential(
        nn.ConvTranspose2d(128, 64, 4, 2, 1), nn.ReLU(),
        nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(32, channels, 4, 2, 1))

  def forward(self, x):
    h = self.encoder(x)
    mu, logvar = self.mu(h), self.logvar(h)
    z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
    return self.decoder(self.project(z).view(-1, 128, 4, 4)), mu, logvar


def torch_loss(out, x, mu, logvar):
  recon = F.mse_loss(torch.sigmoid(out), x, reduction="sum")
  kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
  return (recon + kl) / x.shape[0]


def time_torch(images_u8, batch_size, epochs, latent, lr):
  """Warm-up epoch + `epochs` timed epochs of the torch VAE; (param count, epoch seconds)."""
  x = torch.from_numpy(np.array(images_u8)).permute(0, 3, 1, 2).float().div(255.0).contiguous()
  loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x), batch_size=batch_size,
                                       shuffle=True, drop_last=True, num_workers=0)
  torch.manual_seed(0)
  model = TorchConvVAE(x.shape[1], latent)
  opt = torch.optim.Adam(model.parameters(), lr=lr)
  times = []
  for _ in range(epochs + 1):
    start = time.perf_counter()
    for (batch,) in loader:
      out, mu, logvar = model(batch)
      loss = torch_loss(out, batch, mu, logvar)
      opt.zero_grad(set_to_none=True)
      loss.backward()
      opt.step()
    times.append(time.perf_counter() - start)
  return sum(p.numel() for p in model.parameters()), times


def time_jax(cfg, shape, dataset, epochs):
  """As experiments/benchmarks/epoch_time.py: (param count, compile seconds, epoch seconds)."""
  objective = objectives.from_config(cfg, shape, num_classes=data.num_classes(cfg.data.name))
  tx = train.optimizer_from_config(cfg)
  hparams = train.hparams_from_config(cfg)
  state, compile_seconds, times = epoch_time.time_epochs(
      objective, tx, hparams, dataset, shape, cfg.train.batch_size, epochs,
      cfg.train.steps_per_call)
  return models.param_count(state.params), compile_seconds, times


def summary(times, images_per_epoch):
  steady = statistics.median(times[1:])
  return {"first_epoch_seconds": round(times[0], 2), "median_epoch_seconds": round(steady, 3),
          "images_per_second": round(images_per_epoch / steady)}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--dataset", default="mnist_32", choices=["mnist_32", "fashion_mnist_32"])
  parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 128])
  parser.add_argument("--epochs", type=int, default=2, help="timed epochs after a warm-up epoch")
  parser.add_argument("--train-images", type=int, default=0, help="first N train images (0: all)")
  parser.add_argument("--threads", type=int, default=os.cpu_count(),
                      help="torch.set_num_threads (default: os.cpu_count())")
  parser.add_argument("--skip-transpose", action="store_true",
                      help="skip vae_jax with upsample=transpose (slow on the CPU)")
  args = parser.parse_args()
  if args.epochs < 1:
    parser.error("--epochs must be at least 1")
  torch.set_num_threads(args.threads)

  shape = data.image_shape(args.dataset)
  try:
    images, labels = data.load_split(args.dataset, "train")
    source = f"real {args.dataset}"
  except data.DataError as e:
    images = np.random.default_rng(0).integers(0, 256, (60000, *shape), dtype=np.uint8)
    labels = np.zeros(len(images), np.int32)
    source = f"random uint8 images ({args.dataset} not prepared: {str(e)[:200]})"
  if args.train_images:
    images, labels = images[:args.train_images], labels[:args.train_images]
  n = len(images)
  dataset = jax.device_put({"image": images, "label": labels})
  dev = jax.devices()[0]
  results = {"dataset": args.dataset, "data": source, "train_images": n,
             "timed_epochs": args.epochs, "jax_device": f"{dev.platform}:{dev.device_kind}",
             "jax_version": jax.__version__, "torch_version": torch.__version__,
             "torch_num_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
             "load_average_1min": round(os.getloadavg()[0], 2),
             "loss": "both: (sum-over-pixels MSE of sigmoid(out) + summed KL) / batch size "
                     "(vae_jax: per-image mean of the objective; the same number)"}
  print(json.dumps({k: results[k] for k in ("data", "train_images", "jax_device", "jax_version",
                                            "torch_version", "torch_num_threads",
                                            "load_average_1min")}), flush=True)
  variants = {"vae_jax": [],  # The config as the study runs it.
              "vae_jax_phase": ["model.decoder.upsample=phase"],
              "vae_jax_unchunked": ["model.conv_batch_chunks=1"],
              "vae_jax_transpose": ["model.conv_batch_chunks=1",
                                    "model.decoder.upsample=transpose"]}
  if args.skip_transpose:
    variants.pop("vae_jax_transpose")
  for batch_size in args.batch_sizes:
    per_epoch = (n // batch_size) * batch_size
    if per_epoch == 0:
      raise SystemExit(f"--train-images {n} is smaller than batch size {batch_size}")
    row = {}
    for name, overrides in variants.items():
      cfg = config_lib.apply_overrides(config_lib.load_config(CONFIG), [
          f"data.name={args.dataset}", f"train.batch_size={batch_size}", *overrides])
      count, compile_s, times = time_jax(cfg, shape, dataset, args.epochs)
      row[name] = {"param_count": count, "compile_seconds": round(compile_s, 2),
                   **summary(times, per_epoch)}
      print(json.dumps({f"batch_{batch_size}": {name: row[name]}}), flush=True)
    count, times = time_torch(images, batch_size, args.epochs, cfg.model.latent_dim, cfg.optim.lr)
    row["torch"] = {"param_count": count, **summary(times, per_epoch)}
    print(json.dumps({f"batch_{batch_size}": {"torch": row["torch"]}}), flush=True)
    counts = {k: v["param_count"] for k, v in row.items()}
    assert len(set(counts.values())) == 1, f"parameter counts differ: {counts}"
    jax_s = row["vae_jax"]["median_epoch_seconds"]
    row["vae_jax_speed_over_torch"] = round(row["torch"]["median_epoch_seconds"] / jax_s, 2)
    for name in variants:
      row[f"{name}_epoch_seconds_over_vae_jax"] = round(
          row[name]["median_epoch_seconds"] / jax_s, 2)
    results[f"batch_{batch_size}"] = row
  print(json.dumps(results, indent=2))


if __name__ == "__main__":
  main()
