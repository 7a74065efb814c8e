"""Device-aware defaults under faked backend names (vae_jax/device_defaults.py and the resolvers
the models and the loop call), and the accelerator benchmark's smoke mode."""

import importlib.util
import json
from pathlib import Path

import jax
import pytest

from vae_jax import config as config_lib, data, device_defaults, models, runner

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("backend, upsample, loop_runs, chunks", [
    ("cpu", "col2im", True, 8), ("gpu", "transpose", False, 1), ("tpu", "transpose", False, 1)])
def test_auto_settings_follow_the_backend(monkeypatch, backend, upsample, loop_runs, chunks):
  monkeypatch.setattr(jax, "default_backend", lambda: backend)  # What the resolvers read.
  assert models.resolve_upsample("auto") == upsample
  assert models.resolve_upsample("phase") == "phase"  # An explicit choice is kept.
  assert models.resolve_loop_runs("auto") is loop_runs
  assert models.resolve_batch_chunks(0, 128) == chunks and models.resolve_batch_chunks(3, 128) == 3
  conv = config_lib.base_config()
  conv.model.encoder.kind = "conv"
  assert runner.vmaps_runs(conv)  # Looped convs on the CPU, grouped elsewhere: both share.
  conv.model.conv_runs = "vmap"
  assert runner.vmaps_runs(conv) is (backend != "cpu")  # Grouped convs on the CPU: in turn.
  rows = {r["setting"].split(" ")[0]: r["value"] for r in device_defaults.defaults(backend)}
  assert rows["model.decoder.upsample=auto"] == upsample
  assert rows["model.conv_runs=auto"] == ("loop" if loop_runs else "vmap")
  assert rows["model.conv_batch_chunks=0"] == str(chunks)


def test_the_on_device_budget_is_half_the_memory_or_2048_mb():
  by_memory = {r["setting"]: r["value"]
               for r in device_defaults.defaults("gpu", memory_bytes=8 * 2**30)}
  assert by_memory["data.on_device=auto"] == "on the device up to 4,096 MB"
  unknown = {r["setting"]: r["value"] for r in device_defaults.defaults("cpu")}
  assert unknown["data.on_device=auto"] == "on the device up to 2,048 MB"
  with pytest.raises(ValueError, match="unknown backend"):
    device_defaults.defaults("metal")
  table = device_defaults.markdown()
  assert table.splitlines()[0] == "| setting | cpu | gpu | tpu |"
  assert "| col2im | transpose |" in table


def test_tensorflow_sees_no_gpu():
  data.tfds_module()
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  assert tf.config.get_visible_devices("GPU") == []


@pytest.mark.slow  # Compiles two programs.
def test_the_accelerator_benchmark_smoke_writes_json_and_markdown(tmp_path):
  spec = importlib.util.spec_from_file_location(
      "accelerator", REPO / "experiments" / "benchmarks" / "accelerator.py")
  bench = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(bench)
  result = bench.main(["--smoke", "--out", str(tmp_path), "--sections", "mnist_mlp", "iw_nll"])
  written = json.loads((tmp_path / "cpu_cpu_smoke.json").read_text())
  assert written["device"] == "cpu:cpu" and written["smoke"] and set(written["sections"]) == {
      "mnist_mlp", "iw_nll"}
  assert [r["batch"] for r in written["sections"]["mnist_mlp"]["rows"]] == [128, 1024]
  iw = written["sections"]["iw_nll"]
  assert iw["seconds"] > 0 and iw["gflop"] > 0 and iw["fp32_peak_share"] is None  # CPU: no peak.
  assert result["sections"].keys() == written["sections"].keys()
  assert "SMOKE" in (tmp_path / "cpu_cpu_smoke.md").read_text()
