"""growth study, approach 1: the encoder starts at (32, 16) hidden units and gains (+32, +16)
after every 25 epochs (He-normal new weights, Adam state padded) -> (256, 128) from epoch 176.
Everything else as growth_fixed.py.

Command: vae-jax train --config experiments/configs/growth_approach1.py [--config.growth.every_epochs=N]
Numbers it produced: see experiments/growth/README.md (python experiments/growth/run.py).
"""

from vae_jax.config import sibling_config


def get_config():
  config = sibling_config(__file__, "growth_fixed")
  config.model.encoder_widths = (32, 16)
  config.growth.enabled = True
  return config
