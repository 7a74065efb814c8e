"""What the device-aware `auto` settings pick on each JAX backend, as data: the docs' table
(`python experiments/benchmarks/accelerator.py --defaults-table`) and the tests (under a faked
backend name) read the same resolvers the models and the loop use.
"""

from __future__ import annotations

from vae_jax import config as config_lib, models, runner, streaming

BACKENDS = ("cpu", "gpu", "tpu")


def defaults(backend: str, batch_size: int = 128, memory_bytes: int | None = None) -> list[dict]:
  """One row per device-aware setting: {"setting", "value", "why"} on `backend`.

  Args:
    backend: a JAX backend name, one of BACKENDS.
    batch_size: the training batch (model.conv_batch_chunks=0 depends on it).
    memory_bytes: the device's memory (its memory_stats() bytes_limit), None when it reports none
      (the CPU).
  Raises:
    ValueError: an unknown backend.
  """
  if backend not in BACKENDS:
    raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
  conv = config_lib.base_config()
  conv.model.encoder.kind = conv.model.decoder.kind = "conv"
  budget = (memory_bytes // 2 if memory_bytes else streaming.DEFAULT_BUDGET_MB * 2**20) // 2**20
  loop_runs = models.resolve_loop_runs("auto", backend)
  return [
      {"setting": "model.decoder.upsample=auto", "value": models.resolve_upsample("auto", backend),
       "why": "XLA:CPU's transposed conv is slow; GEMM + overlap-add (col2im) instead"},
      {"setting": "model.conv_runs=auto", "value": "loop" if loop_runs else "vmap",
       "why": "grouped convs (vmapped runs) measured 4-12x slower per run on the CPU"},
      {"setting": f"model.conv_batch_chunks=0 (batch {batch_size})",
       "value": str(models.resolve_batch_chunks(0, batch_size, backend)),
       "why": "slices of ~16 images keep a core's activations in cache on the CPU"},
      {"setting": "train.vmap_runs=auto (conv model)",
       "value": "one vmapped program" if runner.vmaps_runs(conv, backend) else "runs in turn",
       "why": "conv runs share a program unless their convs would be grouped on the CPU"},
      {"setting": "train.steps_per_call", "value": "0 (the epoch is one lax.scan)",
       "why": "the config's; not backend-dependent (beta_cvae pins 4 for the CPU)"},
      {"setting": "data.on_device=auto", "value": f"on the device up to {budget:,} MB",
       "why": "half the device's memory; 2,048 MB when the device reports none (the CPU)"},
      {"setting": "TensorFlow (tf.data, TFDS)", "value": "hidden from every GPU",
       "why": "TF only decodes data; JAX keeps the accelerator's memory"},
  ]


def markdown(batch_size: int = 128) -> str:
  """The table of `defaults` for every backend (GPU and TPU memory unknown: their budget row
  says 'half the device's memory')."""
  rows = {b: defaults(b, batch_size) for b in BACKENDS}
  lines = ["| setting | " + " | ".join(BACKENDS) + " |", "|---|" + "---|" * len(BACKENDS)]
  for i, row in enumerate(rows["cpu"]):
    values = [rows[b][i]["value"] for b in BACKENDS]
    if row["setting"].startswith("data.on_device"):
      values[1:] = ["on the device up to half its memory"] * (len(BACKENDS) - 1)
    lines.append(f"| `{row['setting']}` | " + " | ".join(values) + " |")
  lines += ["", "Why: " + "; ".join(f"`{r['setting'].split(' ')[0]}`: {r['why']}"
                                     for r in rows["cpu"]) + "."]
  return "\n".join(lines)
