"""growth study, approach 1: the encoder starts at (32, 16) hidden units and gains (+32, +16)
after every 25 epochs (He-normal new weights, Adam state padded) -> (256, 128) from epoch 176.
Everything else as growth_fixed.py.

Command: vae-jax train --config vae_jax/configs/growth_approach1.py [--config.growth.every_epochs=N]
Numbers it produced: see experiments/growth/README.md (python experiments/growth/run.py).
"""

from pathlib import Path

from vae_jax.config import load_config


def get_config():
  config = load_config(Path(__file__).with_name("growth_fixed.py"))
  config.model.encoder.widths = (32, 16)
  config.growth.enabled = True
  return config
