"""Shared pytest fixtures."""

from __future__ import annotations

import atexit
import os
from pathlib import Path
import shutil
import sys
import tempfile

import pytest

# One XLA compilation cache for the whole test session, its subprocesses and pytest-xdist's
# workers (they inherit the environment): the suite compiles the same tiny programs many times
# (every study runner's --reuse re-render, every "alone" run of the equivalences). Compiled
# programs are keyed by their HLO, flags and devices, so a hit runs the identical executable.
# Set before anything imports jax; a fresh directory per session, removed at its end.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  _CACHE = tempfile.mkdtemp(prefix="vae_jax_test_xla_cache_")
  atexit.register(shutil.rmtree, _CACHE, True)
  os.environ.update(JAX_COMPILATION_CACHE_DIR=_CACHE,
                    JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                    JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")

# Likewise one cache of decoded TFDS splits (vae_jax.data.cache): each worker and subprocess that
# trains on MNIST would otherwise import TensorFlow and decode its 60,000 training images (~10 s).
if "VAE_JAX_DATA_CACHE" not in os.environ:
  _DATA_CACHE = tempfile.mkdtemp(prefix="vae_jax_test_data_cache_")
  atexit.register(shutil.rmtree, _DATA_CACHE, True)
  os.environ["VAE_JAX_DATA_CACHE"] = _DATA_CACHE

# The suite compiles hundreds of tiny programs, and on the CPU compiling dominates their time:
# XLA's CPU backend at optimization level 0 compiles them faster (measured: the fc_vs_conv
# ablation test 41 s -> 31 s), and so do its older loop emitters in place of the fusion emitters
# (measured: a tiny MLP run 5.3-6.0 s -> 3.5-4.0 s, a tiny conv run 8.1 s -> 5.9-7.0 s, cold
# compilation cache). Both change float rounding, not what the tests compare (runs against runs
# of the same process settings). The golden-numbers test runs in a process of its own with the
# default flags: the numbers users get (test_runner.py), as do the golden digests of the models
# (test_models.py).
FAST_COMPILE = "--xla_backend_optimization_level=0 --xla_cpu_use_fusion_emitters=false"
if FAST_COMPILE not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {FAST_COMPILE}".strip()

# A CPU core of its own for each pytest-xdist worker where there are as many workers as cores
# (`-n 2` on 2 cores), taken before JAX sizes its thread pools by the cores it may use: each
# worker then runs XLA on one thread, as the study runners' --jobs do (common/jobs.py), instead of
# two workers' thread pools competing for both cores. The processes a test starts inherit the
# core, except a command wrapped in `on_every_core`. Measured on 2 cores, fresh caches, runs
# alternating: the faults, equivalences and runs-axis tests 151.6 / 121.5 / 161.9 s unpinned,
# 129.0 / 133.0 / 135.3 s pinned; the studies, parallel, reliability, scoring and zoo-config
# tests 189.0 / 164.3 s unpinned, 149.3 / 139.9 s pinned.
HOST_CORES = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []


def _pin_worker() -> bool:
  worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # "gw0", "gw1", ...
  if not worker.startswith("gw") or len(HOST_CORES) < 2:
    return False
  if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0")) != len(HOST_CORES):
    return False
  os.sched_setaffinity(0, {HOST_CORES[int(worker[2:]) % len(HOST_CORES)]})
  return True


PINNED = _pin_worker()


def on_every_core(cmd: list[str]) -> list[str]:
  """`cmd` (an absolute executable first) as a command that runs on every core of the host, for
  the processes a test starts that must: the golden numbers (XLA:CPU's thread pools, sized by
  the cores, set how a matmul splits its sums) and processes that work together (two
  `--distributed` processes on one core wait on each other). A launcher, not preexec_fn: JAX
  warns of os.fork in a threaded process."""
  if not PINNED:
    return cmd
  return [sys.executable, "-c", "import os, sys; os.sched_setaffinity(0, "
          f"{set(HOST_CORES)}); os.execv(sys.argv[1], sys.argv[1:])", *cmd]

# The study runners' shared package (experiments/common), importable as `common` as they do.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))

# Real IDX datasets live beside the repo: <X>/main (this repo) and <X>/shared/datasets.
SHARED_DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def host_isa() -> str:
  """The widest vector instruction set XLA:CPU compiles for here: 'avx512', 'avx2' or 'other'.
  It sets the order of float sums, so golden numbers of compiled programs hold per set."""
  try:
    flags = next((line.split(":", 1)[1].split() for line in
                  Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")), [])
  except OSError:
    flags = []
  return "avx512" if "avx512f" in flags else "avx2" if "avx2" in flags else "other"


def golden_for_host(by_isa: dict, what: str):
  """by_isa[host_isa()], or a skip naming why (no golden value recorded for this host's set)."""
  if host_isa() not in by_isa:
    pytest.skip(f"no {what} for a host with {host_isa()} vectors (tests/golden.json has "
                f"{', '.join(by_isa)}); XLA:CPU's float sums differ by instruction set")
  return by_isa[host_isa()]


def _prepared(name: str, tmp_path_factory) -> str:
  """A TFDS data dir holding the standard dataset `name`: $TFDS_DATA_DIR when it holds it
  already, else a session tmp dir it is imported into from SHARED_DATASETS/<name> (~20 s).
  Its train and test splits are decoded into $VAE_JAX_DATA_CACHE here, once for all workers
  (the first decodes, the others wait for its entries): the subprocesses of the tests that
  train on them then read the cache instead of importing TensorFlow and decoding them again."""
  from vae_jax import data  # pylint: disable=g-import-not-at-top

  def decoded(data_dir):
    for split in ("train", "test"):
      data.load_split(name, split, data_dir)
    return data_dir

  env_dir = os.environ.get("TFDS_DATA_DIR")
  if env_dir:
    try:
      return decoded(env_dir)
    except data.DataError:
      pass
  data_dir = str(tmp_path_factory.mktemp(f"tfds_{name}"))
  data.import_idx(name, str(SHARED_DATASETS / name), data_dir)
  return decoded(data_dir)


@pytest.fixture(scope="session")
def mnist_data_dir(tmp_path_factory) -> str:
  """A TFDS data dir holding the standard `mnist` dataset, prepared offline once per session."""
  return _prepared("mnist", tmp_path_factory)


@pytest.fixture(scope="session")
def fashion_mnist_data_dir(tmp_path_factory) -> str:
  """A TFDS data dir holding `fashion_mnist`, prepared offline once per session."""
  return _prepared("fashion_mnist", tmp_path_factory)


# A quarter of tiny_config's 1000 test images, each evaluation in one batch: for tests that
# compare runs with runs (vmapped against alone, resumed against uninterrupted), where 250 test
# images set every metric as well and cost a quarter of the evaluation.
SMALL_TEST_SET = {"data.test_subset": 250, "eval.batch_size": 250, "eval.iw_batch_size": 125}


def tiny_config(data_dir: str, **overrides):
  """A seconds-long config on a real-MNIST subset: 784-32-4 VAE, 1 epoch of 512 images,
  evaluated on the first 1000 test images, no figures and no TensorBoard event files."""
  from vae_jax import config as config_lib  # pylint: disable=g-import-not-at-top

  config = config_lib.base_config()
  config.data.data_dir = data_dir
  config.data.train_subset = 512
  config.data.test_subset = 1000
  config.model.latent_dim = 4
  config.model.encoder.widths = (32,)
  config.model.decoder.widths = (32,)
  config.train.epochs = 1
  config.train.batch_size = 64
  config.train.checkpoint_every = 1
  config.eval.iw_samples = 8
  config.eval.iw_chunk_size = 3
  config.eval.figures = False  # Tests of the figures turn them on.
  config.train.tensorboard = False  # Likewise the tests of the event files (they cost a process
  # that writes them ~7 s of importing TensorFlow).
  config_lib.apply_overrides(config, [f"{k}={v}" for k, v in overrides.items()])
  return config


@pytest.fixture
def tiny(mnist_data_dir):
  """Factory: tiny(**{"train.epochs": 2}) -> ConfigDict."""
  return lambda **overrides: tiny_config(mnist_data_dir, **overrides)


@pytest.fixture(scope="session")
def tiny_vae():
  """(model, params) of a 12-pixel VAE with latent 3, initialised with a jitted init."""
  import jax  # pylint: disable=g-import-not-at-top
  from vae_jax import config as config_lib, models  # pylint: disable=g-import-not-at-top

  c = config_lib.base_config().model
  c.latent_dim, c.encoder.widths, c.decoder.widths = 3, (16,), (16,)
  model = models.build_model(c, (3, 4, 1))
  return model, models.init_params(model, jax.random.key(0), (3, 4, 1))


# -- Two lanes: `pytest -m "not slow"` (unit and small integration, minutes) and the full suite.
# A test is slow when it trains or reads real data (it asks for mnist_data_dir or
# fashion_mnist_data_dir, directly or through `tiny`), or starts processes; the rest run in the
# fast lane.
# Also slow: conv programs that take > 9 s each to compile and run on 2 cores (measured with
# --durations), whose plain-layer or MLP twins stay in the fast lane.
SLOW_FIXTURES = {"mnist_data_dir", "fashion_mnist_data_dir"}
SLOW_MODULES = {"test_fuzz_cli", "test_studies", "test_parallel", "test_fc_vs_conv_configs"}
SLOW_TESTS = (
    "test_study_reports.py::test_run_steps_gives_each_job_a_core_of_its_own",
    "test_study_reports.py::test_growth_runner_refuses_a_conflicting_override_before_training",
    "test_models.py::test_conv_batch_chunks_change_the_computation_not_the_model",
    "test_models.py::test_conv_runs_loop_equals_vmapped_grouped_convs",
    "test_gradients.py::test_negative_elbo_gradients_match_finite_differences[conv",
    "test_protocol.py::test_conv_config_trains_one_epoch_on_mock_cifar10",
    "test_protocol.py::test_protocol_for_every_kind[vae-conv-conv",
    "test_protocol.py::test_protocol_for_every_kind[cvae-conv-mlp",
    "test_train.py::test_vmapped_beta_and_lr_runs_equal_separate_runs",
    "test_train.py::test_host_loop_epoch_equals_scan_epoch_when_steps_do_not_divide",
    "test_analysis.py::test_project_2d_separates_two_clusters[tsne]",
    "test_growth.py::test_narrow_then_widen_keeps_params_and_optimizer_state_consistent",
    "test_models.py::test_fast_upsampling_equals_conv_transpose[phase]",
    "test_torch_parity.py::test_torch_uniform_bounds_per_layer_kind",
    "test_objectives.py::test_iwae_at_least_elbo_and_rises_with_k",
    "test_models.py::test_mlp_models_bit_identical_to_single_file_models",  # A process of its own.
)


# Longest first (a scheduling hint, from --durations): with pytest-xdist's worksteal the last
# tests of each worker are then short, so no worker idles beside a 30-s test at the end.
LONG_FIRST = (
    "test_parallel.py::test_eight_devices", "test_parallel.py::test_two_processes",
    "test_studies.py::", "test_zoo_runs_axis.py::test_zoo_model_trains",
    "test_runner.py::test_mnist_mlp_reproduces", "test_equivalences.py::",
)


def _node(item) -> str:
  """'test_file.py::test_name[params]': the node id without its directories (a parameter id
  may hold a '/' too, e.g. [vae/torch_uniform])."""
  path, name = item.nodeid.split("::", 1)
  return f"{Path(path).name}::{name}"


def pytest_collection_modifyitems(config, items):
  del config
  for item in items:
    module = item.module.__name__.rsplit(".", 1)[-1]
    node = _node(item)
    if (SLOW_FIXTURES & set(getattr(item, "fixturenames", ())) or module in SLOW_MODULES
        or node.startswith(SLOW_TESTS)):
      item.add_marker(pytest.mark.slow)

  def rank(item):
    node = _node(item)
    return next((i for i, prefix in enumerate(LONG_FIRST) if node.startswith(prefix)),
                len(LONG_FIRST))
  items.sort(key=rank)  # Stable: the rest keep their order.


@pytest.fixture(scope="session")
def tfds():
  """tensorflow_datasets, imported the way vae_jax.data does (TF sees no GPU): for
  tfds.testing.mock_data (cifar10, celeb_a)."""
  from vae_jax import data  # pylint: disable=g-import-not-at-top
  data.tfds_module()
  import tensorflow_datasets  # pylint: disable=g-import-not-at-top

  return tensorflow_datasets


def jittered(params, dtype=None, scale: float = 0.3, seed: int = 3):
  """params (cast to dtype, e.g. float64 for gradient checks) plus N(0, scale^2) noise on every
  leaf: zero-initialized biases would put ReLUs on their kink, where autodiff and finite
  differences rightly disagree."""
  import jax  # pylint: disable=g-import-not-at-top

  leaves, tree = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.key(seed), len(leaves))
  return jax.tree.unflatten(tree, [
      p.astype(dtype or p.dtype) + scale * jax.random.normal(k, p.shape, dtype or p.dtype)
      for p, k in zip(leaves, keys)])
