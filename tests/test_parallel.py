"""Scaling past one device: data parallelism on forced CPU devices, checkpoints across device
counts, two processes through jax.distributed, streaming input, TensorBoard event files."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import FAST_COMPILE, on_every_core
from vae_jax import cli, config as config_lib, parallel, run_log, runner, streaming

REPO = Path(__file__).resolve().parents[1]
MNIST_MLP = str(config_lib.CONFIG_DIR / "mnist_mlp.py")

# The 8-device process: an mnist_mlp run of 2 epochs, the compiled epoch's all-reduce, and the
# one-line refusal of a batch that does not divide over the devices.
EIGHT_DEVICES = """
import sys
from vae_jax import cli, config as config_lib, evaluate, objectives, parallel, train
workdir, *overrides = sys.argv[1:]
assert cli.main(["train", "--config", {config!r}, "--workdir", workdir, "--no-progress",
                 *overrides]) == 0
c = config_lib.apply_overrides(config_lib.load_config({config!r}),
                               [o[len("--config."):] for o in overrides])
layout = parallel.layout_from_config(c)
objective = objectives.from_config(c, (28, 28, 1))
tx = train.make_optimizer("adam")
programs = evaluate.make_programs(objective, tx, batch_size=128, eval_batch_size=400,
                                  layout=layout)
hparams = train.hparams_from_config(c)
state = parallel.put(train.init_state(objective, tx, (28, 28, 1), train.RunKeys.from_seed(0).init,
                                      hparams), layout.replicated)
import jax, jax.numpy as jnp
ds = parallel.put({{"image": jnp.zeros((256, 28, 28, 1), jnp.uint8),
                   "label": jnp.zeros((256,), jnp.int32)}}, layout.replicated)
text = programs["epoch"]._jitted.lower(state, ds, train.RunKeys.from_seed(0), jnp.int32(1),
                                       hparams, jnp.asarray(True)).compile().as_text()
print("ALL_REDUCE", "all-reduce" in text)
code = cli.main(["train", "--config", {config!r}, "--workdir", workdir + "_bad", *overrides,
                 "--config.train.batch_size=100"])
print("BAD_EXIT", code)
# The config's own evaluation sizes (500, 100) round up to the 8 devices: no flag needed. The
# run above otherwise, for 1 epoch: its training program is compiled already.
defaults = [o for o in overrides if not o.startswith(("--config.eval.batch_size=",
                                                      "--config.eval.iw_batch_size=",
                                                      "--config.train.epochs="))]
code = cli.main(["train", "--config", {config!r}, "--workdir", workdir + "_defaults",
                 "--no-progress", *defaults, "--config.train.epochs=1"])
print("DEFAULTS_EXIT", code)
"""


def _env(devices: int) -> dict:
  flags = f"{FAST_COMPILE} --xla_force_host_platform_device_count={devices}"
  return os.environ | {"PYTHONPATH": str(REPO), "XLA_FLAGS": flags}


def _rows(workdir: Path) -> list[dict]:
  return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def _assert_rows_close(a: list[dict], b: list[dict], rtol: float = 1e-5):
  assert len(a) == len(b)
  for ra, rb in zip(a, b):
    for key in ra:
      if "/" in key and not key.endswith("_seconds"):
        np.testing.assert_allclose(ra[key], rb[key], rtol=rtol, err_msg=key)


def _mnist_mlp_overrides(data_dir):
  # mnist_mlp's layers at a tenth of their width: the devices, not the model, are under test.
  return [f"--config.data.data_dir={data_dir}", "--config.data.train_subset=2048",
          "--config.model.encoder.widths=40", "--config.model.decoder.widths=40",
          "--config.data.test_subset=2000", "--config.eval.figures=False",
          "--config.train.epochs=2", "--config.eval.batch_size=400",
          "--config.eval.iw_batch_size=80", "--config.eval.iw_samples=4",
          "--config.train.tensorboard=False"]


def test_eight_devices_match_one_device_and_checkpoints_cross_device_counts(
    mnist_data_dir, tmp_path, capsys):
  overrides = _mnist_mlp_overrides(mnist_data_dir)
  eight, one = tmp_path / "eight", tmp_path / "one"
  proc = subprocess.run([sys.executable, "-c", EIGHT_DEVICES.format(config=MNIST_MLP),
                         str(eight), *overrides],
                        capture_output=True, text=True, env=_env(8), timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "ALL_REDUCE True" in proc.stdout  # The gradient is reduced across the data devices.
  assert "BAD_EXIT 2" in proc.stdout and "not divisible by the 8" in proc.stderr
  assert not (tmp_path / "eight_bad").exists()
  assert "DEFAULTS_EXIT 0" in proc.stdout
  # The same run on this process's one device.
  assert cli.main(["train", "--config", MNIST_MLP, "--workdir", str(one), "--no-progress",
                   *overrides]) == 0
  s8, s1 = (json.loads((d / "summary.json").read_text()) for d in (eight, one))
  assert s8["parallel"]["mesh"] == {"runs": 1, "data": 8} and s8["parallel"]["device_count"] == 8
  assert s1["parallel"]["device_count"] == 1
  _assert_rows_close(_rows(eight), _rows(one))
  for key in ("eval/nll_iw", "eval/per_class/loss", "eval/per_class/kl"):
    np.testing.assert_allclose(s8[key], s1[key], rtol=1e-5, err_msg=key)
  # Trained on 8 devices, resumed and evaluated on 1: equal to the 1-device run resumed alike.
  more = [o for o in overrides if "train.epochs" not in o] + ["--config.train.epochs=3"]
  for d in (eight, one):
    assert cli.main(["train", "--config", MNIST_MLP, "--workdir", str(d), "--no-progress",
                     "--resume", *more]) == 0
  _assert_rows_close(_rows(eight), _rows(one))
  capsys.readouterr()
  assert cli.main(["evaluate", "--workdir", str(eight), "--k", "4"]) == 0
  assert json.loads(capsys.readouterr().out)["epoch"] == 3


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def test_two_processes_train_one_run_like_two_local_devices(tiny, tmp_path):
  """jax.distributed on localhost: 2 processes x 1 CPU device; process 0 alone writes."""
  config = tiny(**{"train.epochs": 2, "eval.iw_samples": 8, "eval.iw_batch_size": 40,
                   "eval.batch_size": 200})
  cfg_file = tmp_path / "tiny.py"
  cfg_file.write_text("import ml_collections, json\ndef get_config():\n  return "
                      f"ml_collections.ConfigDict(json.loads({config_lib.to_json(config)!r}))\n")
  env = _env(1) | {"JAX_COORDINATOR_ADDRESS": f"localhost:{_free_port()}",
                   "JAX_NUM_PROCESSES": "2"}
  cmd = [sys.executable, "-m", "vae_jax.cli", "train", "--config", str(cfg_file), "--workdir",
         str(tmp_path / "multi"), "--distributed", "--no-progress"]
  procs = [subprocess.Popen(on_every_core(cmd), env=env | {"JAX_PROCESS_ID": str(i)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
           for i in range(2)]
  outs = [p.communicate(timeout=600) for p in procs]
  assert [p.returncode for p in procs] == [0, 0], outs[0][1][-2000:] + outs[1][1][-2000:]
  assert '"workdir"' in outs[0][0] and '"workdir"' not in outs[1][0]  # Only process 0 reports.
  multi = json.loads((tmp_path / "multi" / "summary.json").read_text())
  assert multi["parallel"]["process_count"] == 2 and multi["parallel"]["device_count"] == 2
  single = runner.train_and_evaluate(config, tmp_path / "single", progress=False)
  _assert_rows_close(_rows(tmp_path / "multi"), _rows(tmp_path / "single"))
  np.testing.assert_allclose(multi["eval/nll_iw"], single["eval/nll_iw"], rtol=1e-5)


def test_streamed_input_equals_on_device_input_with_a_runs_axis(tiny, tmp_path):
  rows = {}
  for mode in ("always", "never"):
    config = tiny(**{"train.epochs": 2, "eval.iw_samples": 4, "data.validation_size": 100,
                     "data.on_device": mode})
    dirs = [tmp_path / f"{mode}{s}" for s in (0, 1)]
    summaries = runner.train_and_evaluate_seeds(config, [0, 1], dirs, progress=False)
    assert [s["data_on_device"] for s in summaries] == [mode == "always"] * 2
    rows[mode] = [_rows(d) for d in dirs] + [[s] for s in summaries]
  for a, b in zip(rows["always"], rows["never"]):
    # The same batches, keys and steps: the training metrics (float32) agree to 1 ulp, far
    # tighter than the rest (bit-identical under XLA:CPU's fusion emitters; the tests compile
    # with its loop emitters, conftest.FAST_COMPILE, which put 1 ulp between a train/kl fused
    # with the on-device gather and one fed from the host). In ulps, not rtol: 1 ulp is a
    # relative 6e-8 to 1.2e-7 by where the value sits in its power of 2 (0.2547: 1.17e-7).
    for ra, rb in zip(a, b):
      for key in (k for k in ra if k.startswith("train/")):
        np.testing.assert_array_max_ulp(np.float32(ra[key]), np.float32(rb[key]), maxulp=1)
    _assert_rows_close(a, b)


def test_auto_streams_a_dataset_over_the_device_budget(tiny, tmp_path):
  host = {"train": {"image": np.zeros((1024, 1024), np.uint8)}}  # 1 MiB.
  assert streaming.keeps_on_device("auto", host, budget_mb=1)
  host["test"] = {"label": np.zeros((1,), np.int32)}
  assert not streaming.keeps_on_device("auto", host, budget_mb=1)
  assert streaming.keeps_on_device("always", host, 1) and not streaming.keeps_on_device("never",
                                                                                        host)
  summary = runner.train_and_evaluate(tiny(**{"data.device_budget_mb": 1, "eval.iw_samples": 0}),
                                      tmp_path / "r", progress=False)
  assert summary["data_on_device"] is False  # 512 + 1000 MNIST images: 1.1 MiB.


def test_tensorboard_event_files_read_back(tiny, tmp_path):
  # pylint: disable-next=g-import-not-at-top
  from tensorboard.backend.event_processing import event_accumulator
  summary = runner.train_and_evaluate(
      tiny(**{"train.epochs": 2, "eval.figures": True, "train.tensorboard": True}),
      tmp_path / "r", progress=False)
  events = event_accumulator.EventAccumulator(
      str(tmp_path / "r" / run_log.TENSORBOARD), size_guidance={"tensors": 0, "images": 0})
  events.Reload()
  tags = events.Tags()
  # tf.summary (TF2) stores scalars and images as tensors.
  assert {"train/loss", "eval/loss", "eval/kl", "epoch_seconds", "eval/nll_iw"} <= set(
      tags["tensors"])
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  loss = events.Tensors("eval/loss")
  history = _rows(tmp_path / "r")
  assert [e.step for e in loss] == [r["epoch"] for r in history]
  np.testing.assert_allclose([float(tf.make_ndarray(e.tensor_proto)) for e in loss],
                             [r["eval/loss"] for r in history], rtol=1e-6)
  assert {"images/reconstructions", "images/samples", "images/loss_curves"} <= set(
      tags["tensors"])
  assert summary["figures"]


def test_bad_layouts_are_one_line_config_errors(tiny):
  with pytest.raises(config_lib.ConfigError, match="visible devices"):
    parallel.layout_from_config(tiny(**{"parallel.data_devices": 2}))
  with pytest.raises(config_lib.ConfigError, match="divide the 1 runs"):
    parallel.layout_from_config(tiny(**{"parallel.runs_devices": 2}))
  assert parallel.layout_from_config(tiny()).mesh is None  # One device: the plain programs.


@pytest.mark.parametrize("environ, expected", [
    ({}, False), ({"SLURM_NTASKS": "1", "SLURM_JOB_ID": "7"}, False),
    ({"SLURM_NTASKS": "4"}, True), ({"OMPI_COMM_WORLD_SIZE": "2"}, True),
    ({"JAX_COORDINATOR_ADDRESS": "h:1234"}, True),
    ({"JOB_COMPLETION_INDEX": "0"}, False),
    ({"JOB_COMPLETION_INDEX": "0", "KUBERNETES_SERVICE_HOST": "k"}, True)])
def test_cluster_detection(environ, expected):
  assert parallel.cluster_detected(environ) is expected
