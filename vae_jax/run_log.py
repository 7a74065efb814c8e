"""The files a run writes as it trains: config.json, metrics.jsonl, summary.json and TensorBoard
event files under <workdir>/tensorboard/ (flax.metrics.tensorboard: per-epoch scalars, the run's
figures as images at the last epoch). Only process 0 writes (locking.is_writer); on the other
processes of a multi-host run every method is a no-op. The JSON files are replaced atomically
(files.write_atomic): metrics.jsonl is rewritten whole each epoch, so a kill never tears a row.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from vae_jax import config as config_lib, files, locking

HISTOGRAM_BINS = 30  # Buckets of the TensorBoard histograms (tf.summary.histogram's default).
TENSORBOARD = "tensorboard"  # Subdirectory of the run directory holding the event files.
# Figures also logged to TensorBoard as images (file stem -> tag).
IMAGE_FIGURES = {"reconstructions": "images/reconstructions", "prior_samples": "images/samples",
                 "manifold": "images/manifold", "loss_curves": "images/loss_curves"}


class RunLog:
  """Writer of one run directory's logs; `tensorboard=False` (train.tensorboard) skips events."""

  def __init__(self, workdir: Path, tensorboard: bool = True):
    self.workdir, self.writer = Path(workdir), locking.is_writer()
    self._tb, self._rows, self.tensorboard = None, [], tensorboard

  def start(self, config, rows: list[dict], filename: str = "config.json") -> None:
    """`filename` (config.json: the resolved ConfigDict; a fit's fit.json: a dict) and
    metrics.jsonl (the rows kept from a resumed run's checkpoint epoch)."""
    if self.writer:
      files.remove_leftovers(self.workdir)
      text = (json.dumps(config, indent=2, sort_keys=True) if isinstance(config, dict)
              else config_lib.to_json(config))
      files.write_atomic(self.workdir / filename, text)
      self._rows = list(rows)
      files.write_jsonl(self.workdir / "metrics.jsonl", self._rows)
      if self.tensorboard:  # After config.json: the file that makes the directory a run's.
        from flax.metrics import tensorboard as tb  # pylint: disable=import-outside-toplevel
        self._tb = tb.SummaryWriter(self.workdir / TENSORBOARD, auto_flush=False)

  def epoch(self, row: dict) -> None:
    """Appends an epoch's row to metrics.jsonl; its metrics ('train/loss', ...) and epoch_seconds
    become TensorBoard scalars at step = epoch."""
    if not self.writer:
      return
    self._rows.append(row)
    files.write_jsonl(self.workdir / "metrics.jsonl", self._rows)
    if self._tb is not None:
      for key, value in row.items():
        if "/" in key or key == "epoch_seconds":
          self._tb.scalar(key, value, row["epoch"])
      files.fault_point("tensorboard")
      self._tb.flush()

  def images(self, images: dict, step: int) -> None:
    """TensorBoard images at `step`: {tag: float [H, W, C] in [0, 1]} (nothing without
    TensorBoard or on a process that does not write)."""
    if self.writer and self._tb is not None:
      for tag, image in images.items():
        self._tb.image(tag, np.clip(image, 0.0, 0.999), step, max_outputs=1)
      self._tb.flush()

  def histograms(self, values: dict, step: int, bins: int = HISTOGRAM_BINS) -> None:
    """TensorBoard histograms at `step`: {tag: array of any shape (its values)}. The buckets are
    counted by NumPy and written as the histogram plugin's [bins, 3] (left, right, count) tensor
    (about 20x faster than tf.summary.histogram's TF ops on the CPU)."""
    if not (self.writer and self._tb is not None):
      return
    from tensorboard.plugins.histogram import metadata  # pylint: disable=import-outside-toplevel
    for tag, array in values.items():
      x = np.asarray(array, np.float64).ravel()
      counts, edges = np.histogram(x[np.isfinite(x)], bins=bins)
      buckets = np.stack([edges[:-1], edges[1:], counts], axis=1)
      self._tb.write(tag, buckets, step,
                     metadata=metadata.create_summary_metadata(tag, None).SerializeToString())
    self._tb.flush()

  def finish(self, summary: dict, figure_dir: Path, figure_names: list[str]) -> None:
    """summary.json; the final metrics as scalars and the figures as images at the last epoch;
    closes the event file."""
    if not self.writer:
      return
    files.write_json(self.workdir / "summary.json", summary, indent=2)
    if self._tb is None:
      return
    import matplotlib.image  # pylint: disable=import-outside-toplevel
    step = summary["epoch"]
    for key in ("eval/nll_iw", "eval/nll_iw_bits_per_dim"):
      if key in summary:
        self._tb.scalar(key, summary[key], step)
    for name in figure_names:
      tag = IMAGE_FIGURES.get(Path(name).stem)
      if tag:
        rgba = matplotlib.image.imread(figure_dir / name)
        self._tb.image(tag, np.clip(rgba[..., :3], 0.0, 0.999), step, max_outputs=1)
    self.close()

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()
      self._tb = None
