"""growth study, approach 1: the encoder starts at (32, 16) hidden units and gains (+32, +16)
after every 25 epochs (He-normal new weights, Adam state padded) -> (256, 128) from epoch 176.
Everything else as growth_fixed.py.

Command: vae-jax train --config experiments/configs/growth_approach1.py [--config.growth.every_epochs=N]
Numbers it produced: see experiments/growth/README.md (python experiments/growth/run.py).
"""

import importlib.util
import pathlib

_spec = importlib.util.spec_from_file_location(
    "growth_fixed", pathlib.Path(__file__).with_name("growth_fixed.py"))
_fixed = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_fixed)


def get_config():
  config = _fixed.get_config()
  config.model.encoder_widths = (32, 16)
  config.growth.enabled = True
  return config
