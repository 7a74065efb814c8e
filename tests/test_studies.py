"""The study runners end to end on seconds-long settings: they train, write README and figures."""

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_ae_vs_vae_runner_writes_readme_and_figures(mnist_data_dir, tmp_path):
  tiny = ["data.train_subset=2048", "model.encoder.widths=16", "model.decoder.widths=16",
          "train.checkpoint_every=1", f"data.data_dir={mnist_data_dir}"]
  cmd = [sys.executable, str(REPO / "experiments" / "ae_vs_vae" / "run.py"), "--seeds", "0", "1",
         "--latents", "2", "3", "--epochs", "2", "--runs", str(tmp_path / "runs"),
         "--out", str(tmp_path / "out"), "--override", *tiny]
  proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=600,
                        env=os.environ | {"PYTHONPATH": str(REPO)})
  assert proc.returncode == 0, proc.stderr[-3000:]
  readme = (tmp_path / "out" / "README.md").read_text()
  assert "| 2 |" in readme and "| 3 |" in readme and "Model selection" in readme
  assert "AE error falls with latent size" in readme and "Digits 1/7 easiest" in readme
  assert "--latents 2 3 --epochs 2" in readme
  device = json.loads((tmp_path / "runs" / "vae_z2" / "seed0" / "summary.json").read_text())["device"]
  assert f"` on {device}." in readme and "shared/" not in readme  # From the data, in the repo.
  figures = {p.name for p in (tmp_path / "out").glob("*.png")}
  assert {"per_class_mse_ae.png", "per_class_mse_vae.png", "val_mse_ae.png", "val_mse_vae.png",
          "comparison.png", "reconstruction_grid.png", "manifold_vae_z2.png"} <= figures
  assert any(name.startswith("train_val_vae_z") for name in figures)
  assert (tmp_path / "runs" / "vae_z3" / "seed1" / "summary.json").exists()
