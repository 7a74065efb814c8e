"""zoo: the one-stochastic-layer MNIST model of the IWAE paper (Burda, Grosse & Salakhutdinov,
2016, section 5) on dynamically binarized MNIST: 784-200-200-[50]-200-200-784 with a Bernoulli
likelihood, Adam; the other zoo rows (experiments/zoo/run.py) are overrides of it (IWAE K, the
two-layer and ladder models, the VampPrior).

What differs from the paper here: ReLU units (theirs tanh), batch 100 (theirs 20), a constant
learning rate 1e-3 over train.epochs (theirs 1e-3 * 10^(-i/7) over 3^i epochs, i = 0..7: 3,280
passes), no early stopping. IW-NLL with K = 5000 on the 10k test images, as theirs.

Command:
  vae-jax train --config vae_jax/configs/zoo.py --workdir checkpoints/zoo_vae
"""

from vae_jax.config import base_config


def get_config():
  config = base_config()
  config.data.preprocess = "binarize_dynamic"
  config.model.latent_dim = 50
  config.model.encoder.widths = (200, 200)
  config.model.decoder.widths = (200, 200)
  config.model.hvae.latent_dims = (100, 50)  # The two-layer rows: 784-200-200-[100]-100-100-[50].
  config.model.hvae.widths = (200, 100)
  config.model.hvae.depth = 2
  config.model.pseudo_inputs = 500  # VampPrior row: K = 500 pseudo-inputs (Tomczak & Welling).
  config.optim.lr = 1e-3
  config.train.batch_size = 100
  config.train.epochs = 10
  config.train.checkpoint_every = 1
  config.eval.iw_samples = 5000
  return config
