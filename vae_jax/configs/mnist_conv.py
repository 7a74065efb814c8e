"""mnist_conv: a conv VAE on MNIST zero-padded to 32x32 (the conv model of the fc_vs_conv and
beta_cvae studies): encoder 4x4 stride-2 convs 1->32->64->128 (32->16->8->4) and a dense projection
to (mean, logvar) of a 20-D latent; decoder dense -> 4x4x128 -> transposed convs 128->64->32->1
(4->8->16->32). Bernoulli likelihood on grayscale pixels, Adam 1e-3, batch 128, 10 epochs.

Command:
  vae-jax train --config vae_jax/configs/mnist_conv.py --workdir checkpoints/mnist_conv

Numbers it produced (real MNIST, 2-core CPU, that command, seed 0): test loss 98.35 nats per
32x32 image, IW-NLL (K=100) 94.11, test KL 23.74; median epoch 47.99 s (1,248 images/s).
The decoder has no activation after its projection (vae_jax 0.2's default, PyTorch's reference
decoders'); vae_jax 0.1's decoder, with a ReLU there (--config.model.decoder.project_activation=
relu, the same model bit for bit), gave test loss 98.85, IW-NLL 94.40, test KL 24.26 (median
epoch 39.98 s), so the config follows the default and was re-run.

The transposed convs are computed as 'phase' convs (the same layer with the same params and
outputs, one 3x3 conv + depth-to-space; ~2.5x faster on XLA:CPU, whose ConvTranspose kernel
gradient is slow), and an epoch is driven from the host 4 unrolled steps per compiled call
(train.steps_per_call: XLA:CPU runs convolutions ~10x slower inside a compiled loop).

IW-NLL: a conv decoder pass costs about an order of magnitude more than the MLP's, so K = 100
where there is no accelerator (a few minutes on 2 CPU cores); pass
--config.eval.iw_samples=5000 on a GPU. Measured numbers are in the README (Results, Speed) with
the commands that made them.
"""

from pathlib import Path

from vae_jax.config import load_config


def get_config():
  config = load_config(Path(__file__).with_name("mnist_mlp.py"))  # Optimizer, batch, epochs, init.
  config.data.name = "mnist_32"
  config.model.latent_dim = 20
  config.model.encoder.kind = "conv"
  config.model.encoder.features = (32, 64, 128)
  config.model.decoder.kind = "conv"
  config.model.decoder.features = (128, 64, 32)
  config.model.decoder.upsample = "phase"
  config.train.steps_per_call = 4
  config.eval.iw_samples = 100
  config.eval.iw_chunk_size = 25  # Fastest of 25 / 100 samples per decoder call, measured.
  return config
