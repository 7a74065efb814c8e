"""Command-line overrides of a config (`--config.KEY=VALUE`) and dotted paths into it; the names
are re-exported by vae_jax.config."""

from __future__ import annotations

import ast

import ml_collections

from vae_jax.errors import ConfigError


def leaf_paths(config, prefix: str = "") -> set[str]:
  """Dotted paths of every leaf field of a (nested) ConfigDict."""
  out = set()
  for key, value in config.items():
    if isinstance(value, (ml_collections.ConfigDict, dict)):
      out |= leaf_paths(value, f"{prefix}{key}.")
    else:
      out.add(f"{prefix}{key}")
  return out


def _parse_value(key: str, raw: str, current):
  """Parses `raw` into the type of the current value of `key`."""
  bad = ConfigError(f"bad override --config.{key}={raw}: expected {type(current).__name__} "
                    f"like {current!r}")
  if isinstance(current, str):
    return raw
  try:
    value = ast.literal_eval(raw)
  except (ValueError, SyntaxError):
    raise bad from None
  if isinstance(current, bool):
    if isinstance(value, bool):
      return value
    raise bad
  if isinstance(current, int):
    if isinstance(value, int) and not isinstance(value, bool):
      return value
    raise bad
  if isinstance(current, float):
    if isinstance(value, (int, float)) and not isinstance(value, bool):
      return float(value)
    raise bad
  if isinstance(current, (tuple, list)):
    value = (value,) if isinstance(value, int) else value
    if isinstance(value, (tuple, list)) and all(
        isinstance(v, int) and not isinstance(v, bool) for v in value):
      return type(current)(value)
    raise bad
  raise bad


def apply_overrides(config: ml_collections.ConfigDict, overrides: list[str]):
  """Applies ["a.b=VALUE", ...] in place; values take the type of the existing field.

  Raises:
    ConfigError: unknown key, missing '=', or a value of the wrong type.
  """
  for item in overrides:
    key, sep, raw = item.partition("=")
    if not sep or not key:
      raise ConfigError(f"malformed override --config.{item}; write --config.KEY=VALUE")
    node = config
    parts = key.split(".")
    for part in parts[:-1]:
      node = node.get(part) if isinstance(node, ml_collections.ConfigDict) else None
      if not isinstance(node, ml_collections.ConfigDict):
        raise ConfigError(f"unknown config key {key!r}; known keys: {', '.join(flat_keys(config))}")
    leaf = parts[-1]
    if leaf not in node or isinstance(node[leaf], ml_collections.ConfigDict):
      raise ConfigError(f"unknown config key {key!r}; known keys: {', '.join(flat_keys(config))}")
    node[leaf] = _parse_value(key, raw, node[leaf])
  return config


def flat_keys(config, prefix="") -> list[str]:
  """Dotted names of all leaves."""
  keys = []
  for k, v in config.items():
    if isinstance(v, ml_collections.ConfigDict):
      keys += flat_keys(v, f"{prefix}{k}.")
    else:
      keys.append(f"{prefix}{k}")
  return keys


def get_path(config, dotted: str):
  """The value at a dotted key such as "train.early_stopping.patience".

  Raises:
    KeyError: no such key.
  """
  for part in dotted.split("."):
    config = config[part]
  return config
