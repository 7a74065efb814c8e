"""growth study, fixed arm: encoder 784-256-128-(mu, logvar 20), decoder 20-128-256-784, Bernoulli
likelihood on grayscale pixels (BCE), Adam 1e-3, batch 128, 200 epochs; test ELBO with L = 20
latent samples every epoch, IW-NLL (K = 5000) at the end. The growing arms import this config.

Command (one arm, one seed):
  vae-jax train --config vae_jax/configs/growth_fixed.py --config.seed=0
The paired study over seeds (all arms, README and figures): python experiments/growth/run.py
Numbers it produced: see experiments/growth/README.md.
"""

from vae_jax.config import base_config


def get_config():
  config = base_config()
  config.model.latent_dim = 20
  config.model.encoder.widths = (256, 128)
  config.model.decoder.widths = (128, 256)
  config.model.dense_init = "torch_uniform"  # The study's PyTorch nn.Linear layers.
  config.optim.name = "adam"
  config.optim.lr = 1e-3
  config.train.batch_size = 128
  config.train.epochs = 200
  config.train.checkpoint_every = 25
  config.eval.elbo_samples = 20
  config.growth.every_epochs = 25
  config.growth.increments = (32, 16)
  config.growth.final_widths = (256, 128)
  config.growth.narrow_to = (64, 32)
  return config
