"""ae_vs_vae (study 2): vanilla autoencoder vs VAE on MNIST across latent sizes 2-100.

Linear + ReLU MLPs with sigmoid outputs. The write-up gives no widths; we use one hidden layer of
400 units in encoder and decoder (784-400-Z-400-784, as mnist_mlp), PyTorch's nn.Linear init (the
study is a PyTorch code base). MSE reconstruction term summed over pixels (+ KL for the VAE).
10% of the 60k training images (6,000, split seed 0, the same for every run) for validation.
AdamW lr 1e-3 with PyTorch's default weight decay 0.01 (optax's default would be 1e-4); batch 1024;
50 epochs. No IW-NLL: the MSE term is not a normalized likelihood.

Commands:
  vae-jax train --config vae_jax/configs/ae_vs_vae.py --config.model.kind=ae \
      --config.model.latent_dim=20 --workdir checkpoints/ae_vs_vae/ae_z20/seed0
  python experiments/ae_vs_vae/run.py        # the whole sweep (seeds vmapped) and its README
"""

from vae_jax.config import base_config


def get_config():
  config = base_config()
  config.data.validation_size = 6000
  config.data.validation_seed = 0
  config.model.kind = "vae"  # vae | ae
  config.model.latent_dim = 20  # The study sweeps 2, 5, 10, 20, 50, 100.
  config.model.encoder.widths = (400,)
  config.model.decoder.widths = (400,)
  config.model.likelihood = "mse"
  config.model.dense_init = "torch_uniform"
  config.optim.name = "adamw"
  config.optim.lr = 1e-3
  config.optim.weight_decay = 0.01
  config.train.batch_size = 1024
  config.train.epochs = 50
  config.train.checkpoint_every = 10
  config.eval.batch_size = 1000
  config.eval.iw_samples = 0
  return config
