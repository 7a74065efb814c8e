"""growth study, approach 2: the encoder starts at the target (256, 128), is cut to (64, 32)
after epoch 25 (first units kept), then gains (+32, +16) after every 25 epochs -> (256, 128) from
epoch 176. Everything else as growth_fixed.py.

Command: vae-jax train --config vae_jax/configs/growth_approach2.py
Numbers it produced: see experiments/growth/README.md (python experiments/growth/run.py).
"""

from pathlib import Path

from vae_jax.config import load_config


def get_config():
  config = load_config(Path(__file__).with_name("growth_fixed.py"))
  config.growth.enabled = True
  config.growth.narrow_at = 25
  return config
