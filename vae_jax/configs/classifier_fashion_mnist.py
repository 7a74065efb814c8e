"""classifier_fashion_mnist: the classifier_mnist CNN trained on Fashion-MNIST, for
classifier-FID / IS of Fashion-MNIST samples.

Command (the workdir `vae-jax score` looks in by default):
  vae-jax train --config vae_jax/configs/classifier_fashion_mnist.py \
      --workdir checkpoints/classifier_fashion_mnist
"""

from pathlib import Path

from vae_jax.config import load_config


def get_config():
  config = load_config(Path(__file__).with_name("classifier_mnist.py"))
  config.data.name = "fashion_mnist"
  return config
