"""fc_vs_conv_conv: the convolutional VAE of the fc_vs_conv study (tyakovenko/vaeEncoders), set p1.

Model: encoder 4x4 stride-2 convs C->32->64->128 (32->16->8->4) + ReLU, dense to (mean, logvar) of
a 128-D latent; decoder dense -> 4x4x128 (no activation, model.decoder.project_activation='none')
-> PyTorch's ConvTranspose2d(k=4, stride=2, padding=1) 128->64->32->C (4->8->16->32).
Objective: the study's MSE summed over pixels (between x and sigmoid(decoder output)) + KL.
PyTorch's default init for every layer, transposed convs included (the study is a PyTorch
notebook). Adam. vae_jax 0.1 put a ReLU after the projection: on mnist_32 every run then
collapsed to an all-black decoder in epoch 1 (run.py --ablation, experiments/fc_vs_conv/
ABLATION.md).

Parameter sets (the study's p1-p3; p1 is this file's default):
  p1: --config.train.batch_size=64  --config.optim.lr=1e-3 --config.model.latent_dim=128
  p2: --config.train.batch_size=128 --config.optim.lr=5e-4 --config.model.latent_dim=128
  p3: --config.train.batch_size=64  --config.optim.lr=5e-4 --config.model.latent_dim=256
10% of train held out for validation; early stopping on val/loss, patience 5, min_delta 0.5, the
best state kept; train.epochs is the cap (the summary's stopped_epoch is null when it binds).

Data: cifar10 by default; --config.data.name=celeb_a | mnist_32 | fashion_mnist_32.

Command (the study runner runs every set and seed: experiments/fc_vs_conv/run.py):
  vae-jax train --config vae_jax/configs/fc_vs_conv_conv.py --config.data.name=mnist_32 \
      --workdir checkpoints/fc_vs_conv/conv_p1

The transposed convs are computed as one GEMM + overlap-add on the CPU (the same layer and
params; see vae_jax/kernels/col2im.py) and as nn.ConvTranspose elsewhere
(model.decoder.upsample='auto').
"""

from vae_jax.config import base_config


def get_config():
  config = base_config()
  config.data.name = "cifar10"
  config.data.validation_fraction = 0.1
  config.model.latent_dim = 128
  config.model.encoder.kind = "conv"
  config.model.encoder.features = (32, 64, 128)
  config.model.decoder.kind = "conv"
  config.model.decoder.features = (128, 64, 32)
  config.model.decoder.upsample = "auto"
  config.model.conv_batch_chunks = 0  # auto: slices of about 16 images on the CPU.
  config.model.likelihood = "mse"
  config.model.dense_init = "torch_uniform"
  config.optim.name = "adam"
  config.optim.lr = 1e-3
  config.train.batch_size = 64
  config.train.epochs = 100
  config.train.steps_per_call = 4
  config.train.early_stopping.patience = 5
  config.train.early_stopping.metric = "val/loss"
  config.train.early_stopping.min_delta = 0.5
  config.eval.iw_samples = 0
  return config
