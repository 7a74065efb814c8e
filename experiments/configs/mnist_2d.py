"""mnist_2d (study 5): 784-400-2 MLP VAE with 2-D latent plots; Bernoulli likelihood on grayscale
pixels (BCE), Adam 1e-3, batch 128, 20 epochs.

Command:
  vae-jax train --config experiments/configs/mnist_2d.py --workdir checkpoints/mnist_2d

Numbers it produced (seed 0, real MNIST, 2-core CPU): see the results table in README.md.
"""

from vae_jax.config import sibling_config


def get_config():
  config = sibling_config(__file__, "mnist_mlp")  # Same layers, init, optimizer and batch.
  config.model.latent_dim = 2
  config.train.epochs = 20
  return config
