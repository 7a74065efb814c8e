"""mnist_2d (study 5): 784-400-2 MLP VAE with 2-D latent plots; Bernoulli likelihood on grayscale
pixels (BCE), Adam 1e-3, batch 128, 20 epochs.

Command:
  vae-jax train --config vae_jax/configs/mnist_2d.py --workdir checkpoints/mnist_2d

Numbers it produced (real MNIST, 2-core CPU, python experiments/mnist/run.py --seeds 0):
seed 0: test loss 151.38 nats, IW-NLL (K=5000) 148.62, test KL 5.87;
seeds 0, 1, 2: test loss 151.24 +- 0.12 (the issue's target of <= 150 is not met).
"""

from pathlib import Path

from vae_jax.config import load_config


def get_config():
  config = load_config(Path(__file__).with_name("mnist_mlp.py"))  # Same layers, optimizer, batch.
  config.model.latent_dim = 2
  config.train.epochs = 20
  return config
