"""A VAE on your own NumPy images through the public API: python examples/own_data.py"""
import numpy as np
import optax

import vae_jax
from vae_jax import models, objectives

rng = np.random.default_rng(0)  # Stand-in for your data: 512 RGB images of 12 x 10, in [0, 1].
images = (rng.random((512, 12, 10, 3)) < np.linspace(0.1, 0.9, 10)[:, None]).astype(np.float32)
train, test = vae_jax.data.from_arrays(images[:448]), vae_jax.data.from_arrays(images[448:])

model = models.VAE(models.MLPEncoder(widths=(64,), latent_dim=4),
                   models.MLPDecoder(widths=(64,), image_shape=(12, 10, 3)))
objective = objectives.VAEObjective(model, likelihood="bernoulli")
result = vae_jax.fit(objective, optax.adam(1e-3), train, eval_data=test, epochs=3,
                     batch_size=64, workdir=None, progress=False)
nll = vae_jax.iw_nll(objective, result.params, test, k=20)
print(f"test loss {result.summary['eval/loss']:.2f} nats/image, IW-NLL (K=20) {nll:.2f} nats")
