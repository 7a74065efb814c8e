"""mnist_2d (study 5): 784-400-2 MLP VAE with 2-D latent plots; Bernoulli likelihood on grayscale
pixels (BCE), Adam 1e-3, batch 128, 20 epochs.

Command:
  vae-jax train --config experiments/configs/mnist_2d.py --workdir checkpoints/mnist_2d

Numbers it produced (seed 0, real MNIST, 2-core CPU): see the results table in README.md.
"""

from vae_jax.config import base_config


def get_config():
  config = base_config()
  config.model.latent_dim = 2
  config.model.encoder_widths = (400,)
  config.model.decoder_widths = (400,)
  # PyTorch nn.Linear's default init, as in the reference implementation. With flax's default
  # (lecun_normal) mnist_mlp reaches 106.09 +- 0.15 instead (3 seeds; see README).
  config.model.dense_init = "torch_uniform"
  config.optim.name = "adam"
  config.optim.lr = 1e-3
  config.train.batch_size = 128
  config.train.epochs = 20
  return config
