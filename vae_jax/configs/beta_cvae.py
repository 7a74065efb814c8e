"""beta_cvae: the conv VAE of the beta_cvae study (a proposal, see experiments/beta_cvae), sized
for the 2-core CPU: MNIST at 28x28, encoder 4x4 stride-2 convs 1->32->64 (28->14->7) + ReLU and a
dense projection to (mean, logvar) of a 20-D latent; decoder dense -> 7x7x64 -> transposed convs
64->32->1 (7->14->28). Bernoulli likelihood on grayscale pixels (nats per image), loss =
reconstruction term + objective.beta * KL (Higgins et al., 2017), Adam 1e-3, batch 128.

Command (the study runner trains every beta, latent size and the CVAE:
experiments/beta_cvae/run.py):
  vae-jax train --config vae_jax/configs/beta_cvae.py --workdir checkpoints/beta_cvae/one

Variants are overrides: --config.objective.beta=4, --config.model.latent_dim=5,
--config.model.kind=cvae (label-conditioned encoder and decoder, Sohn et al., 2015).
The transposed convs are computed as GEMM + overlap-add on the CPU (model.decoder.upsample=auto).

The decoder keeps a ReLU after its dense projection (model.decoder.project_activation='relu',
pinned; vae_jax 0.2's default is 'none', the PyTorch reference decoders'), so the published
numbers in experiments/beta_cvae/README.md stay this config's, bit for bit (the 0.2 transposed
convs store flax's draw in PyTorch's tap order: tests/test_torch_parity.py). Measured for the
choice, beta = 1, seed 0, one run each (vae-jax train --config vae_jax/configs/beta_cvae.py
--workdir DIR [--config.model.decoder.project_activation=none]): relu test -ELBO 102.34,
IW-NLL (K = 100) 97.56 nats; none 102.91, 98.35. Neither collapses (test KL 25.74 / 25.76); the
ReLU is slightly better under this Bernoulli likelihood, so there is nothing to re-run.
"""

from vae_jax.config import base_config


def get_config():
  config = base_config()
  config.data.name = "mnist"
  config.model.latent_dim = 20
  config.model.encoder.kind = "conv"
  config.model.encoder.features = (32, 64)
  config.model.decoder.kind = "conv"
  config.model.decoder.features = (64, 32)
  config.model.decoder.upsample = "auto"
  config.model.decoder.project_activation = "relu"  # Pinned: see the docstring.
  config.model.conv_batch_chunks = 0  # auto: slices of about 16 images on the CPU.
  config.model.likelihood = "bernoulli"
  config.optim.lr = 1e-3
  config.train.batch_size = 128
  config.train.epochs = 10
  config.train.steps_per_call = 4
  config.train.checkpoint_every = 1
  config.eval.iw_samples = 100
  config.eval.iw_chunk_size = 25
  return config
