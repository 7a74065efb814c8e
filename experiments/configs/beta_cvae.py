"""beta_cvae: the conv VAE of the beta_cvae study (a proposal, see experiments/beta_cvae), sized
for the 2-core CPU: MNIST at 28x28, encoder 4x4 stride-2 convs 1->32->64 (28->14->7) + ReLU and a
dense projection to (mean, logvar) of a 20-D latent; decoder dense -> 7x7x64 -> transposed convs
64->32->1 (7->14->28). Bernoulli likelihood on grayscale pixels (nats per image), loss =
reconstruction term + objective.beta * KL (Higgins et al., 2017), Adam 1e-3, batch 128.

Command (the study runner trains every beta, latent size and the CVAE:
experiments/beta_cvae/run.py):
  vae-jax train --config experiments/configs/beta_cvae.py --workdir checkpoints/beta_cvae/one

Variants are overrides: --config.objective.beta=4, --config.model.latent_dim=5,
--config.model.kind=cvae (label-conditioned encoder and decoder, Sohn et al., 2015).
The transposed convs are computed as GEMM + overlap-add on the CPU (model.decoder.upsample=auto).
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
