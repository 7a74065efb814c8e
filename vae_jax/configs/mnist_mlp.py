"""mnist_mlp: the MNIST VAE of pytorch/examples (examples/vae/main.py): 784-400-20-400-784,
Bernoulli likelihood on grayscale pixels in [0, 1] (BCE summed over pixels), Adam 1e-3, batch 128,
10 epochs. (The flax example's VAE differs: 784-500-20 on statically binarized MNIST, 30 epochs by
default.)

Command:
  vae-jax train --config mnist_mlp --workdir checkpoints/mnist_mlp

Numbers it produced (real MNIST, 2-core CPU, python experiments/mnist/run.py --seeds 0):
seed 0: test loss 105.49 nats, IW-NLL (K=5000) 100.51, test KL 25.09;
seeds 0, 1, 2: test loss 105.55 +- 0.06. Steady-state epoch 1.79 s, compile 1.7 s
(experiments/benchmarks/epoch_time.py).
"""

from vae_jax.config import base_config


def get_config():
  config = base_config()
  config.model.latent_dim = 20
  config.model.encoder.widths = (400,)
  config.model.decoder.widths = (400,)
  # PyTorch nn.Linear's default init, as in the reference implementation. With flax's default
  # (lecun_normal) mnist_mlp reaches 106.09 +- 0.15 instead (3 seeds; see README).
  config.model.dense_init = "torch_uniform"
  config.optim.name = "adam"
  config.optim.lr = 1e-3
  config.train.batch_size = 128
  config.train.epochs = 10
  return config
