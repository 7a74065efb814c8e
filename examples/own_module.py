"""Your own flax encoder and decoder in a vae_jax VAE, with a run directory, resume and IW-NLL:
python examples/own_module.py [WORKDIR]"""
import sys
import tempfile

import flax.linen as nn
import numpy as np
import optax

import vae_jax
from vae_jax import models, objectives


class Encoder(nn.Module):
  """images [B, H, W, C] float in [0, 1] -> (mean [B, Z], logvar [B, Z])."""
  latent_dim: int

  @nn.compact
  def __call__(self, x):
    h = nn.relu(nn.Conv(8, (3, 3), strides=2)(x))
    h = nn.relu(nn.Dense(32)(h.reshape(h.shape[0], -1)))
    return nn.Dense(self.latent_dim)(h), nn.Dense(self.latent_dim)(h)


class Decoder(nn.Module):
  """z [B, Z] -> Bernoulli logits [B, H, W, C]."""
  image_shape: tuple

  @nn.compact
  def __call__(self, z):
    h = nn.relu(nn.Dense(32)(z))
    return nn.Dense(int(np.prod(self.image_shape)))(h).reshape(-1, *self.image_shape)


def main(workdir):
  rng = np.random.default_rng(1)
  images = (rng.random((256, 8, 8, 1)) * 255).astype(np.uint8)  # Your uint8 images.
  objective = objectives.VAEObjective(models.VAE(Encoder(latent_dim=3), Decoder((8, 8, 1))))
  optimizer = optax.adam(1e-3)
  first = vae_jax.fit(objective, optimizer, images[:192], eval_data=images[192:], epochs=2,
                      batch_size=32, workdir=workdir, progress=False)
  resumed = vae_jax.fit(objective, optimizer, images[:192], eval_data=images[192:], epochs=4,
                        batch_size=32, workdir=workdir, resume=True, progress=False)
  run = vae_jax.load_run(workdir, objective, optimizer)
  nll = vae_jax.iw_nll(objective, run.params, images[192:], k=10)
  print(f"epochs {len(first.history)} + {len(resumed.history) - len(first.history)} (resumed); "
        f"test loss {resumed.summary['eval/loss']:.2f}, IW-NLL (K=10) {nll:.2f} nats/image")
  return first, resumed, run, nll


if __name__ == "__main__":
  main(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp() + "/run")
