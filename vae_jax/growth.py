"""Growing and shrinking MLP hidden layers as pure pytree surgery on params AND optimizer state.

Widening hidden layer i by n units appends n kernel columns and bias entries to layer i and n
kernel rows to every consumer of layer i (layer i+1, or the mean/logvar heads after the last
hidden layer). Every optimizer-state subtree that mirrors the params (same tree structure and
shapes: Adam's mu and nu, momentum traces, ...) gets the same surgery with zeros, found by
structure so that chains, adamw and inject_hyperparams work; scalars such as `count` are untouched.

New incoming weights are He-normal, N(0, 2 / fan_in) (He et al., 2015), new biases zero. New
outgoing weights are He-normal too ('he', the growth study's choice) or zero ('zeros': the
network's function is unchanged at the growth step, as in Net2Net-style function-preserving
growth, Chen et al., 2016).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from vae_jax.errors import ConfigError

OUTGOING_INITS = ("he", "zeros")
OPTIMIZER_POLICIES = ("pad", "reset")
KEEP_POLICIES = ("first", "largest_norm")

Path = tuple[str, ...]


def _get(tree, path: Path):
  for p in path:
    tree = tree[p]
  return tree


def _set(tree, path: Path, value):
  """Copy-on-write update of a nested dict."""
  if not path:
    return value
  new = dict(tree)
  new[path[0]] = _set(tree[path[0]], path[1:], value)
  return new


def encoder_layer(params, i: int) -> tuple[Path, list[Path]]:
  """(path of encoder hidden layer i, paths of its consumers) in a models.VAE param tree.

  Raises:
    IndexError: i is not a hidden layer index.
  """
  mlp = params["encoder"]["mlp"]
  if not 0 <= i < len(mlp):
    raise IndexError(f"encoder has hidden layers 0..{len(mlp) - 1}, got {i}")
  if i + 1 < len(mlp):
    return ("encoder", "mlp", f"hidden_{i}"), [("encoder", "mlp", f"hidden_{i + 1}")]
  heads = [h for h in ("mean", "logvar", "code") if h in params["encoder"]]  # VAE | Autoencoder
  return ("encoder", "mlp", f"hidden_{i}"), [("encoder", h) for h in heads]


def encoder_widths(params) -> tuple[int, ...]:
  mlp = params["encoder"]["mlp"]
  return tuple(mlp[f"hidden_{i}"]["bias"].shape[0] for i in range(len(mlp)))


def _pad(tree, layer: Path, consumers: Sequence[Path], cols, bias, rows: Sequence):
  """Appends `cols` [in, n] to layer kernel, `bias` [n] to its bias, rows[j] [n, out] to
  consumer j."""
  kernel = layer + ("kernel",)
  tree = _set(tree, kernel, jnp.concatenate([_get(tree, kernel), cols], 1))
  tree = _set(tree, layer + ("bias",), jnp.concatenate([_get(tree, layer + ("bias",)), bias]))
  for path, r in zip(consumers, rows):
    tree = _set(tree, path + ("kernel",), jnp.concatenate([_get(tree, path + ("kernel",)), r], 0))
  return tree


def _take(tree, layer: Path, consumers: Sequence[Path], keep):
  """Keeps units `keep` (int indices) of the layer: kernel columns, bias, consumer rows."""
  tree = _set(tree, layer + ("kernel",), _get(tree, layer + ("kernel",))[:, keep])
  tree = _set(tree, layer + ("bias",), _get(tree, layer + ("bias",))[keep])
  for path in consumers:
    tree = _set(tree, path + ("kernel",), _get(tree, path + ("kernel",))[keep, :])
  return tree


def map_param_mirrors(opt_state, params, fn):
  """Applies fn to every subtree of opt_state with the tree structure and shapes of `params`."""
  treedef = jax.tree.structure(params)
  shapes = [jnp.shape(x) for x in jax.tree.leaves(params)]

  def is_mirror(x):
    return (jax.tree.structure(x) == treedef
            and [jnp.shape(leaf) for leaf in jax.tree.leaves(x)] == shapes)

  return jax.tree.map(lambda x: fn(x) if is_mirror(x) else x, opt_state, is_leaf=is_mirror)


def _he(key, shape, fan_in, dtype):
  return jax.random.normal(key, shape, dtype) * np.sqrt(2.0 / fan_in)


def widen(params, opt_state, layer: Path, consumers: Sequence[Path], n: int, key, *,
          outgoing_init: str = "he"):
  """Adds n units to `layer`; returns (params, opt_state) with optimizer mirrors zero-padded.

  Old slices are kept bit-identical; new optimizer moments are zero.

  Raises:
    ValueError: n < 1 or unknown outgoing_init.
  """
  if n < 1 or outgoing_init not in OUTGOING_INITS:
    raise ValueError(f"need n >= 1 and outgoing_init in {OUTGOING_INITS}, got {n}, {outgoing_init}")
  kernel = _get(params, layer + ("kernel",))
  fan_in, width = kernel.shape
  k_in, *k_out = jax.random.split(key, 1 + len(consumers))
  cols = _he(k_in, (fan_in, n), fan_in, kernel.dtype)
  rows = []
  for k, path in zip(k_out, consumers):
    out = _get(params, path + ("kernel",)).shape[1]
    rows.append(_he(k, (n, out), width + n, kernel.dtype) if outgoing_init == "he"
                else jnp.zeros((n, out), kernel.dtype))
  new_params = _pad(params, layer, consumers, cols, jnp.zeros((n,), kernel.dtype), rows)

  def pad_zeros(tree):
    return _pad(tree, layer, consumers, jnp.zeros_like(cols), jnp.zeros((n,), kernel.dtype),
                [jnp.zeros_like(r) for r in rows])

  return new_params, map_param_mirrors(opt_state, params, pad_zeros)


def narrow(params, opt_state, layer: Path, consumers: Sequence[Path], k: int, *,
           keep: str = "first"):
  """Keeps k units of `layer` ('first' k, or the k with the 'largest_norm' incoming weights and
  bias), in their original order; the same units are kept in every optimizer mirror.

  Raises:
    ValueError: k not in [1, width] or unknown keep policy.
  """
  kernel = _get(params, layer + ("kernel",))
  width = kernel.shape[1]
  if not 1 <= k <= width or keep not in KEEP_POLICIES:
    raise ValueError(f"need 1 <= k <= {width} and keep in {KEEP_POLICIES}, got {k}, {keep}")
  if keep == "first":
    idx = np.arange(k)
  else:  # jnp, not numpy: the surgery also runs under jax.vmap over a runs axis.
    norms = jnp.sqrt(jnp.sum(jnp.square(kernel), 0)
                     + jnp.square(_get(params, layer + ("bias",))))
    idx = jnp.sort(jnp.argsort(-norms, stable=True)[:k])
  take = lambda tree: _take(tree, layer, consumers, idx)
  return take(params), map_param_mirrors(opt_state, params, take)


def resize_encoder(params, opt_state, widths: Sequence[int], key, *, tx=None,
                   outgoing_init: str = "he", keep: str = "first", optimizer: str = "pad"):
  """Widens or narrows each encoder hidden layer to `widths`; returns (params, opt_state).

  optimizer='pad' keeps old optimizer state and zero-pads it; 'reset' re-creates it with
  tx.init (the original study re-created Adam at every growth, resetting its step count too).

  Raises:
    ValueError: wrong number of widths, non-positive width, unknown policy, or 'reset' without tx.
  """
  current = encoder_widths(params)
  if len(widths) != len(current) or min(widths) < 1 or optimizer not in OPTIMIZER_POLICIES:
    raise ValueError(f"cannot resize encoder {current} to {tuple(widths)} with optimizer policy "
                     f"{optimizer!r}; give {len(current)} positive widths and one of "
                     f"{OPTIMIZER_POLICIES}")
  if optimizer == "reset" and tx is None:
    raise ValueError("optimizer='reset' needs the optax transformation `tx`")
  for i, (old, new) in enumerate(zip(current, widths)):
    layer, consumers = encoder_layer(params, i)
    if new > old:
      params, opt_state = widen(params, opt_state, layer, consumers, new - old,
                                jax.random.fold_in(key, i), outgoing_init=outgoing_init)
    elif new < old:
      params, opt_state = narrow(params, opt_state, layer, consumers, new, keep=keep)
  if optimizer == "reset":
    opt_state = tx.init(params)
  return params, opt_state


class Schedule(Mapping):
  """{epoch: encoder widths} for epochs 1..num_epochs of a growth schedule, each computed when
  asked (closed form), so its memory does not grow with num_epochs.

  After every `every_epochs` epochs (0: never) the widths grow by `increments`, capped at
  `final`, except that after epoch `narrow_at` (if > 0) they are cut to `narrow_to` instead and
  grow again from there.
  """

  def __init__(self, start: Sequence[int], num_epochs: int, *, every_epochs: int = 0,
               increments: Sequence[int] = (), final: Sequence[int] = (), narrow_at: int = 0,
               narrow_to: Sequence[int] = ()):
    self.start, self.num_epochs, self.every = tuple(start), int(num_epochs), every_epochs
    self.increments, self.final = tuple(increments), tuple(final)
    self.narrow_at, self.narrow_to = narrow_at, tuple(narrow_to)

  def __getitem__(self, epoch: int) -> tuple[int, ...]:
    if not 1 <= epoch <= self.num_epochs:
      raise KeyError(epoch)
    passed = epoch - 1  # Epoch boundaries passed; growth or narrowing happens at one.
    base, after = self.start, 0
    if self.narrow_at and passed >= self.narrow_at:
      base, after = self.narrow_to, self.narrow_at
    grows = passed // self.every - after // self.every if self.every else 0
    if not grows:
      return base
    return tuple(min(w + grows * d, f) for w, d, f in zip(base, self.increments, self.final))

  def __iter__(self):
    return iter(range(1, self.num_epochs + 1))

  def __len__(self) -> int:
    return self.num_epochs


def schedule(start: Sequence[int], num_epochs: int, *, every_epochs: int,
             increments: Sequence[int], final: Sequence[int], narrow_at: int = 0,
             narrow_to: Sequence[int] = ()) -> Schedule:
  """Encoder widths per epoch (1-based) of a growth schedule (see Schedule). Approach 1 of the
  growth study: start (32, 16), +(32, 16) every 25 epochs -> (256, 128) from epoch 176.

  Returns:
    {epoch: widths} for epochs 1..num_epochs, a Mapping computed on demand.
  """
  return Schedule(start, num_epochs, every_epochs=every_epochs, increments=increments,
                  final=final, narrow_at=narrow_at, narrow_to=narrow_to)


def validate_config(config) -> None:
  """Checks the config's growth section against its MLP encoder (growth.enabled only).

  Raises:
    ConfigError: naming the bad field and the fix.
  """
  g = config.growth
  if not g.enabled:
    return
  if config.model.encoder.kind != "mlp":
    raise ConfigError(f"growth.enabled needs model.encoder.kind=mlp (growth widens MLP hidden "
                      f"layers), got {config.model.encoder.kind}; set "
                      "--config.growth.enabled=False")
  n = len(config.model.encoder.widths)
  for name in ("increments", "final_widths", "narrow_to"):
    if len(g[name]) != n or min(g[name]) < (0 if name == "increments" else 1):
      raise ConfigError(f"growth.{name}={tuple(g[name])} needs {n} entries (one per encoder "
                        "hidden layer), positive; set --config.growth." + name)
  if g.every_epochs < 1 or g.narrow_at < 0:
    raise ConfigError(f"growth.every_epochs must be >= 1 and growth.narrow_at >= 0, got "
                      f"{g.every_epochs}, {g.narrow_at}")
  for name, known in (("keep", KEEP_POLICIES), ("outgoing_init", OUTGOING_INITS),
                      ("optimizer", OPTIMIZER_POLICIES)):
    if g[name] not in known:
      raise ConfigError(f"unknown growth.{name} {g[name]!r}; choose one of {', '.join(known)}")
