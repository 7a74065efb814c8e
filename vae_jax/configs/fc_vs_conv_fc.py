"""fc_vs_conv_fc: the fully-connected VAE of the fc_vs_conv study (tyakovenko/vaeEncoders), set p1.

Model: flatten (32*32*C) -> Linear 1024 -> ReLU -> Linear 512 -> ReLU -> (mean, logvar) of a
128-D latent; decoder mirrored, 128 -> 512 -> 1024 -> 32*32*C. The write-up does not give the FC
widths; 1024-512 is our choice (a 3072-wide CIFAR input halved twice).
Everything else (objective, p1-p3, validation split, early stopping, data) as
fc_vs_conv_conv.py; the parameter sets are the same overrides:
  p1: --config.train.batch_size=64  --config.optim.lr=1e-3 --config.model.latent_dim=128
  p2: --config.train.batch_size=128 --config.optim.lr=5e-4 --config.model.latent_dim=128
  p3: --config.train.batch_size=64  --config.optim.lr=5e-4 --config.model.latent_dim=256

Command:
  vae-jax train --config vae_jax/configs/fc_vs_conv_fc.py --config.data.name=mnist_32 \
      --workdir checkpoints/fc_vs_conv/fc_p1
"""

from pathlib import Path

from vae_jax.config import load_config


def get_config():
  config = load_config(Path(__file__).with_name("fc_vs_conv_conv.py"))
  config.model.encoder.kind = "mlp"
  config.model.encoder.widths = (1024, 512)
  config.model.decoder.kind = "mlp"
  config.model.decoder.widths = (512, 1024)
  config.train.steps_per_call = 0  # One compiled scan per epoch (fastest for MLPs).
  return config
