"""Data parallelism with JAX's own engine: a ("runs", "data") `jax.sharding.Mesh` over the visible
devices, batches sharded along "data" by sharding constraints inside the compiled programs,
parameters and optimizer state replicated (or sharded along "runs" when a vmapped runs axis is
spread over devices); XLA's SPMD partitioner inserts the gradient all-reduces. Several hosts join
through `jax.distributed` (see `initialize_distributed`).

Results equal the one-device run up to float summation order: the batch order, PRNG keys and
per-example noise do not depend on the device count (jax_threefry_partitionable, on by default,
draws the same numbers however an array is sharded).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from vae_jax.errors import ConfigError
from vae_jax.locking import is_writer  # noqa: F401  # Public here too.

RUNS, DATA = "runs", "data"  # Mesh axis names.

# Environment variables that mark a multi-process launch `initialize_distributed` recognizes:
# JAX's own (coordinator given explicitly), SLURM with several tasks, Open MPI, Kubernetes
# indexed jobs.
CLUSTER_MARKERS = ("JAX_COORDINATOR_ADDRESS", "SLURM_NTASKS", "OMPI_MCA_orte_hnp_uri",
                   "OMPI_COMM_WORLD_SIZE", "JOB_COMPLETION_INDEX")


@dataclass(frozen=True)
class Layout:
  """How one program's runs and batches map onto devices.

  mesh: the ("runs", "data") mesh, or None on one device (programs are then exactly the
  single-device ones). batch: NamedSharding of a batch's leading axis over "data" (None on one
  device). runs_devices, data_devices: the mesh's shape.
  """
  mesh: Mesh | None
  runs_devices: int = 1
  data_devices: int = 1

  @property
  def batch(self) -> NamedSharding | None:
    return None if self.mesh is None else NamedSharding(self.mesh, P(DATA))

  @property
  def spmd_axis_name(self) -> str | None:
    """vmap's spmd_axis_name for the runs axis: sharding constraints inside gain the "runs"
    axis, so each device group holds its own runs."""
    return None if self.mesh is None else RUNS

  def state(self, runs_axis: bool) -> NamedSharding | None:
    """Sharding of per-run arrays (state, keys, hparams): leading runs axis over "runs" (when
    there is a runs axis), otherwise replicated."""
    if self.mesh is None:
      return None
    return NamedSharding(self.mesh, P(RUNS) if runs_axis else P())

  @property
  def replicated(self) -> NamedSharding | None:
    return None if self.mesh is None else NamedSharding(self.mesh, P())

  def describe(self) -> dict:
    """summary.json's record of the layout."""
    return {"device_count": self.runs_devices * self.data_devices,
            "process_count": jax.process_count(),
            "mesh": {RUNS: self.runs_devices, DATA: self.data_devices},
            "platform": jax.devices()[0].platform}


def layout_from_config(config, num_runs: int = 1) -> Layout:
  """The Layout of `num_runs` runs of `config` (parallel.data_devices, parallel.runs_devices).

  parallel.runs_devices (default 1) must divide num_runs; parallel.data_devices = 0 means every
  visible device not used for runs. train.batch_size must divide evenly over the data devices;
  the evaluation batch sizes are rounded up to a multiple of them where they are used
  (`round_up`: evaluation is exact and masked, so only the padding changes).

  Raises:
    ConfigError: more devices than visible, or a size that does not divide, naming the fix.
  """
  p = config.get("parallel", {})
  runs_devices = p.get("runs_devices", 1)
  count = jax.device_count()
  if runs_devices < 1 or num_runs % runs_devices:
    raise ConfigError(f"parallel.runs_devices={runs_devices} must be >= 1 and divide the "
                      f"{num_runs} runs of this program; set --config.parallel.runs_devices=1")
  data_devices = p.get("data_devices", 0) or count // runs_devices
  if data_devices < 1 or runs_devices * data_devices > count:
    raise ConfigError(f"parallel.runs_devices={runs_devices} x parallel.data_devices="
                      f"{p.get('data_devices', 0)} needs more than the {count} visible devices; "
                      "lower them (data_devices=0 uses every device)")
  size = config.train.batch_size
  if size % data_devices:
    raise ConfigError(f"train.batch_size={size} is not divisible by the {data_devices} "
                      f"data-parallel devices; set --config.train.batch_size to a multiple of "
                      f"{data_devices} or --config.parallel.data_devices to a divisor of {size}")
  if runs_devices * data_devices == 1:
    return Layout(None)
  devices = np.asarray(jax.devices()[: runs_devices * data_devices]).reshape(runs_devices,
                                                                             data_devices)
  mesh = Mesh(devices, (RUNS, DATA), axis_types=(jax.sharding.AxisType.Auto,) * 2)
  return Layout(mesh, runs_devices, data_devices)


def shares_cores(layout: Layout) -> bool:
  """Whether the layout's devices are several CPU devices of this one process
  (`XLA_FLAGS=--xla_force_host_platform_device_count=N`): they run on the same host cores, so a
  compute-bound evaluation split over them is only slower (IW-NLL of 800 images, K = 500, on 2
  cores: 15.7 s sharded over 8 such devices, 2.0 s on one; experiments/benchmarks/iw_devices.py)."""
  return (layout.mesh is not None and jax.process_count() == 1
          and layout.mesh.devices.flat[0].platform == "cpu")


def round_up(batch_size: int, layout: Layout) -> int:
  """The smallest multiple of the layout's data devices >= batch_size (evaluation batches)."""
  return -(-batch_size // layout.data_devices) * layout.data_devices


def constrain(tree, sharding: NamedSharding | None):
  """Inside a compiled program: every array of `tree` sharded along its leading axis (a batch)
  as `sharding` says; identity when sharding is None (one device)."""
  if sharding is None:
    return tree
  return jax.lax.with_sharding_constraint(tree, sharding)


def put(tree, sharding: NamedSharding | None):
  """Host or device arrays placed with `sharding` (default device when None). With several
  processes, every process passes the same values and gets its shards of the global array
  (process-local device arrays go through the host; PRNG keys through their key data)."""
  if sharding is None:
    return jax.device_put(tree)
  if jax.process_count() == 1:
    return jax.device_put(tree, sharding)

  def one(x):
    if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
      return jax.random.wrap_key_data(one(jax.random.key_data(x)), impl=jax.random.key_impl(x))
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
      return jax.device_put(x, sharding)  # Already global: a reshard.
    return jax.device_put(np.asarray(x), sharding)
  return jax.tree.map(one, tree)


def cluster_detected(environ=None) -> bool:
  """Whether the environment is a multi-process launch (see CLUSTER_MARKERS): SLURM counts only
  with more than one task, Open MPI only with a world size above one."""
  env = os.environ if environ is None else environ
  if "JAX_COORDINATOR_ADDRESS" in env or "OMPI_MCA_orte_hnp_uri" in env:
    return True
  if "JOB_COMPLETION_INDEX" in env and "KUBERNETES_SERVICE_HOST" in env:
    return True
  return any(int(env.get(k, "1") or 1) > 1 for k in ("SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE"))


def initialize_distributed(force: bool = False) -> bool:
  """Calls `jax.distributed.initialize()` when `force` or `cluster_detected()`; JAX reads the
  cluster's variables itself (SLURM, Open MPI, Kubernetes, Cloud TPU). A manual launch sets
  JAX_COORDINATOR_ADDRESS=host:port plus JAX_NUM_PROCESSES and JAX_PROCESS_ID on every process.
  Must run before anything touches a device.

  Returns:
    whether it initialized.
  Raises:
    ConfigError: forced without a recognizable environment (names the variables to set).
  """
  if not (force or cluster_detected()):
    return False
  kwargs = {}
  if "JAX_NUM_PROCESSES" in os.environ:
    kwargs["num_processes"] = int(os.environ["JAX_NUM_PROCESSES"])
  if "JAX_PROCESS_ID" in os.environ:
    kwargs["process_id"] = int(os.environ["JAX_PROCESS_ID"])
  try:
    jax.distributed.initialize(**kwargs)
  except (ValueError, RuntimeError) as e:
    raise ConfigError(f"--distributed could not start jax.distributed ({str(e).splitlines()[0]});"
                      " launch under SLURM / Open MPI, or set JAX_COORDINATOR_ADDRESS=host:port, "
                      "JAX_NUM_PROCESSES and JAX_PROCESS_ID on every process") from None
  return True
