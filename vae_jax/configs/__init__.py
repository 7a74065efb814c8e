"""The named configs shipped with vae_jax: `vae-jax train --config NAME` finds NAME.py here
(`vae-jax configs` lists them with the first line of each docstring). Each module defines
get_config() -> ml_collections.ConfigDict; a path to a file of your own works the same way."""
