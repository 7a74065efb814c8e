"""mnist_conv: a conv VAE on MNIST zero-padded to 32x32 (the conv model of the fc_vs_conv and
beta_cvae studies): encoder 4x4 stride-2 convs 1->32->64->128 (32->16->8->4) and a dense projection
to (mean, logvar) of a 20-D latent; decoder dense -> 4x4x128 -> transposed convs 128->64->32->1
(4->8->16->32). Bernoulli likelihood on grayscale pixels, Adam 1e-3, batch 128, 10 epochs.

Command:
  vae-jax train --config experiments/configs/mnist_conv.py --workdir checkpoints/mnist_conv

IW-NLL: a conv decoder pass costs about an order of magnitude more than the MLP's, so K is lowered
where there is no accelerator; pass --config.eval.iw_samples=5000 on a GPU. Measured numbers are in
the README (Results, Speed) with the commands that made them.
"""

from pathlib import Path

from vae_jax.config import load_config


def get_config():
  config = load_config(Path(__file__).with_name("mnist_mlp.py"))  # Optimizer, batch, epochs, init.
  config.data.name = "mnist_32"
  config.model.latent_dim = 20
  config.model.encoder.kind = "conv"
  config.model.encoder.features = (32, 64, 128)
  config.model.decoder.kind = "conv"
  config.model.decoder.features = (128, 64, 32)
  config.eval.iw_samples = 500
  return config
