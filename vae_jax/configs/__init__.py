"""The named configs shipped with vae_jax: `vae-jax train --config NAME` finds NAME.py here
(`vae-jax configs` lists them with a one-line summary from each docstring). Each module defines
get_config() -> ml_collections.ConfigDict; a path to a file of your own works the same way."""

import ast
import difflib
import re
from pathlib import Path

from vae_jax.errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parent  # The named configs (package data).


def named_configs() -> dict[str, str]:
  """{name: a one-line summary} of the configs shipped in vae_jax/configs/: the first clause of
  each docstring (up to its first ': ', '. ' or '; '), without a leading 'name:'."""
  out = {}
  for path in sorted(CONFIG_DIR.glob("*.py")):
    if path.stem != "__init__":
      doc = " ".join((ast.get_docstring(ast.parse(path.read_text())) or "").split())
      doc = re.sub(rf"^{re.escape(path.stem)}( \([^)]*\))?: ", "", doc)
      out[path.stem] = re.split(r"(?<=\S)(?:: |\. |; )", doc, maxsplit=1)[0].rstrip(".")
  return out


def config_path(name_or_path: str | Path) -> Path:
  """The file of a config: a path as given, or a name of named_configs() (`mnist_mlp`).

  Raises:
    ConfigError: neither an existing file nor a shipped config's name.
  """
  path = Path(name_or_path)
  if path.is_file() or path.suffix == ".py" or len(path.parts) > 1:
    if not path.is_file():
      raise ConfigError(f"config file {path} not found; pass --config with a file such as "
                        "my_config.py or a shipped config's name (vae-jax configs lists them)")
    return path
  if (CONFIG_DIR / f"{path.name}.py").is_file() and path.name != "__init__":
    return CONFIG_DIR / f"{path.name}.py"
  near = difflib.get_close_matches(path.name, list(named_configs()), n=1)
  raise ConfigError(f"no config named {path.name}" + (f" (did you mean {near[0]}?)" if near else "")
                    + "; pass a shipped config's name (vae-jax configs lists them) or a .py file")
