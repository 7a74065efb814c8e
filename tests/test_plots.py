"""Fast tests for vae_jax.plots and the studies' figures: each is a PNG that shows something (ink
over the white page, the colors of the data it was given), and the image figures show the images."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.image  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from scipy.stats import norm  # noqa: E402

from vae_jax import curves, plots  # noqa: E402
from common import plots as study_plots  # noqa: E402  # experiments/common (conftest)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _picture(path) -> np.ndarray:
  """The written figure as floats [H, W, 3] in [0, 1]."""
  return matplotlib.image.imread(path)[..., :3]


def _assert_png(path, expected, *, colored: bool = False):
  """A PNG at `expected` that is not a blank page: some ink (pixels darker than the page), and
  with `colored`, some colored (non-gray) ink, as every curve or scatter figure draws."""
  assert path == expected.__class__(expected)
  assert path.exists()
  data = path.read_bytes()
  assert len(data) > 1000
  assert data[:8] == PNG_MAGIC
  rgb = _picture(path)
  assert (rgb.min(-1) < 0.5).mean() > 0.002, "the figure has (almost) no ink"
  if colored:
    assert (rgb.max(-1) - rgb.min(-1) > 0.3).mean() > 0.001, "the figure has no colored ink"


def _images(n, c, seed=0, h=28, w=28):
  return np.random.default_rng(seed).uniform(0, 1, (n, h, w, c)).astype(np.float32)


def _metrics(epochs=5, val=False):
  out = []
  for e in range(1, epochs + 1):
    m = {
        "epoch": e,
        "train/loss": 150.0 / e + 90,
        "eval/loss": 145.0 / e + 92,
        "eval/recon": 130.0 / e + 70,
        "eval/kl": 15.0 + 2 * e,
    }
    if val:
      m["val/loss"] = 146.0 / e + 92.5
    out.append(m)
  return out


@pytest.mark.parametrize("val", [False, True])
def test_loss_curves(tmp_path, val):
  p = tmp_path / "sub" / "dir" / "loss.png"  # parent created on demand
  out = curves.loss_curves(_metrics(val=val), p)
  _assert_png(out, p, colored=True)
  assert plt.get_fignums() == []  # figure closed


def test_loss_curves_single_epoch_and_str_path(tmp_path):
  p = str(tmp_path / "loss1.png")
  out = curves.loss_curves(_metrics(epochs=1), p)
  _assert_png(out, tmp_path / "loss1.png")


@pytest.mark.parametrize("c", [1, 3])
def test_image_rows(tmp_path, c):
  x = _images(8, c)
  r = np.clip(x + 0.1, 0, 1)
  p = tmp_path / f"rows{c}.png"
  out = plots.image_rows([x, r], p, row_labels=["original", "recon"], title="t")
  _assert_png(out, p)
  # without labels / title
  p2 = tmp_path / f"rows{c}_plain.png"
  _assert_png(plots.image_rows([x, r, x], p2), p2)


def test_image_rows_rejects_mismatched_labels(tmp_path):
  with pytest.raises(ValueError):
    plots.image_rows([_images(3, 1)], tmp_path / "x.png", row_labels=["a", "b"])


@pytest.mark.parametrize("c", [1, 3])
def test_image_grid(tmp_path, c):
  p = tmp_path / f"grid{c}.png"
  _assert_png(plots.image_grid(_images(10, c), p, title="samples"), p)
  p2 = tmp_path / f"grid{c}_cols.png"
  _assert_png(plots.image_grid(_images(6, c), p2, ncols=3), p2)


def test_image_grid_shows_the_images(tmp_path):
  """Black and white tiles come out as black and white areas in their proportion."""
  x = np.zeros((8, 16, 16, 1), np.float32)
  x[::2] = 1.0  # Every other tile white.
  p = tmp_path / "bw.png"
  rgb = _picture(plots.image_grid(x, p, ncols=4))
  dark = (rgb.max(-1) < 0.1).mean()
  assert 0.1 < dark < 0.6, dark  # The 4 black tiles: a good share of the page, not all of it.
  colored = (rgb.max(-1) - rgb.min(-1) > 0.1).mean()
  assert colored < 0.001  # Grayscale images stay gray.


def test_image_grid_accepts_out_of_range_and_no_channel(tmp_path):
  x = np.random.default_rng(0).normal(0.5, 1.0, (4, 16, 16))  # [n, H, W]
  p = tmp_path / "g.png"
  _assert_png(plots.image_grid(x, p), p)


@pytest.mark.parametrize("z_dim", [1, 2, 5])
def test_latent_scatter(tmp_path, z_dim):
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 10, 500)
  latents = rng.normal(size=(500, z_dim)) + labels[:, None] * 0.3
  p = tmp_path / f"latent{z_dim}.png"
  _assert_png(plots.latent_scatter(latents, labels, p, title="z"), p, colored=True)


def test_latent_scatter_rejects_mismatch(tmp_path):
  with pytest.raises(ValueError):
    plots.latent_scatter(np.zeros((5, 2)), np.zeros(4, int), tmp_path / "x.png")


def test_manifold_latents_shapes_and_order():
  n = 7
  z, gv = plots.manifold_latents(n, lo=0.05, hi=0.95)
  assert z.shape == (n * n, 2) and z.dtype == np.float32
  assert gv.shape == (n,)
  np.testing.assert_allclose(gv, norm.ppf(np.linspace(0.05, 0.95, n)), rtol=1e-6)
  assert np.all(np.diff(gv) > 0)
  zz = z.reshape(n, n, 2)  # [row i, col j, (z1, z2)]
  for i in range(n):
    for j in range(n):
      assert zz[i, j, 0] == gv[j]  # z1 ascends along columns
      assert zz[i, j, 1] == gv[n - 1 - i]  # z2 descends down rows
  assert np.all(np.diff(zz[..., 0], axis=1) > 0)
  assert np.all(np.diff(zz[..., 1], axis=0) < 0)
  assert np.all(np.diff(zz[..., 0], axis=0) == 0)
  assert np.all(np.diff(zz[..., 1], axis=1) == 0)


@pytest.mark.parametrize("c", [1, 3])
def test_manifold_grid_writes_png(tmp_path, c):
  n = 5
  z, gv = plots.manifold_latents(n)
  p = tmp_path / f"manifold{c}.png"
  _assert_png(plots.manifold_grid(_images(n * n, c), gv, p, title="m"), p)


def test_manifold_grid_rejects_wrong_count(tmp_path):
  _, gv = plots.manifold_latents(4)
  with pytest.raises(ValueError):
    plots.manifold_grid(_images(15, 1), gv, tmp_path / "x.png")


def test_manifold_grid_order_matches_latents(tmp_path):
  """Decode z -> constant tiles coloured (R=z1, G=0, B=z2); the rendered PNG
  must get redder left->right and less blue top->bottom."""
  n = 6
  z, gv = plots.manifold_latents(n)
  scale = lambda v: 0.2 + 0.8 * (v - gv.min()) / (gv.max() - gv.min())  # noqa: E731
  decoded = np.zeros((n * n, 8, 8, 3), np.float32)
  decoded[..., 0] = scale(z[:, 0])[:, None, None]
  decoded[..., 2] = scale(z[:, 1])[:, None, None]
  p = plots.manifold_grid(decoded, gv, tmp_path / "order.png")
  img = plt.imread(p)[..., :3]
  r, g, b = img[..., 0], img[..., 1], img[..., 2]
  mask = (g < 0.05) & ((r > 0.15) | (b > 0.15))  # tile pixels, not text/white
  rows, cols = np.nonzero(mask)
  r0, r1, c0, c1 = rows.min(), rows.max(), cols.min(), cols.max()
  mid_r, mid_c = (r0 + r1) // 2, (c0 + c1) // 2
  e = 3  # skip pixels anti-aliased with the axes frame
  red_line = r[mid_r, c0 + e : c1 + 1 - e][mask[mid_r, c0 + e : c1 + 1 - e]]
  blue_line = b[r0 + e : r1 + 1 - e, mid_c][mask[r0 + e : r1 + 1 - e, mid_c]]
  assert np.all(np.diff(red_line) >= -0.02) and red_line[-1] - red_line[0] > 0.5
  assert np.all(np.diff(blue_line) <= 0.02) and blue_line[0] - blue_line[-1] > 0.5


def test_per_class_lines(tmp_path):
  values = np.random.default_rng(0).uniform(10, 40, size=(3, 10))
  out = study_plots.per_class_lines(values, ["z=2", "z=5", "z=10"], tmp_path / "pc.png",
                                    ylabel="test MSE", sd=values / 10, title="per class")
  _assert_png(out, tmp_path / "pc.png", colored=True)
  with pytest.raises(ValueError, match="one label per line"):
    study_plots.per_class_lines(values, ["z=2"], tmp_path / "bad.png", ylabel="test MSE")


def test_stopping_curves_marks_best_and_stop(tmp_path):
  history = [{"epoch": e, "train/loss": 10.0 / e, "val/loss": 11.0 / e} for e in range(1, 8)]
  runs = [{"label": "a", "history": history, "best_epoch": 2, "stopped_epoch": 7},
          {"label": "b", "history": history, "best_epoch": 7, "stopped_epoch": None}]
  path = study_plots.stopping_curves({"p1": runs, "p2": runs[:1]}, tmp_path / "c.png",
                                     ylabel="loss")
  _assert_png(path, tmp_path / "c.png", colored=True)
  with pytest.raises(ValueError, match="empty"):
    study_plots.stopping_curves({}, tmp_path / "d.png", ylabel="loss")


def test_curve_panels_and_errors(tmp_path):
  runs = np.random.default_rng(0).uniform(1, 2, size=(3, 4))
  out = study_plots.curve_panels({"KL": {"β=1": runs, "β=4": runs / 2}, "recon": {"β=1": runs}},
                           [1, 2, 3, 4], tmp_path / "c.png")
  _assert_png(out, tmp_path / "c.png", colored=True)
  with pytest.raises(ValueError, match="3 epochs, expected 4"):
    study_plots.curve_panels({"KL": {"β=1": runs[:, :3]}}, [1, 2, 3, 4], tmp_path / "d.png")


def test_sorted_profiles_and_rate_distortion(tmp_path):
  kl = np.random.default_rng(0).exponential(1.0, size=(3, 20))
  out = study_plots.sorted_profiles({"β=1": kl, "β=8": np.zeros((3, 5))}, tmp_path / "k.png",
                              ylabel="KL", xlabel="dimension (sorted)", threshold=0.01)
  _assert_png(out, tmp_path / "k.png", colored=True)
  out = study_plots.rate_distortion({"β=1": ([25.0, 26.0], [70.0, 71.0]), "β=4": ([9.0], [95.0])},
                              tmp_path / "rd.png")
  _assert_png(out, tmp_path / "rd.png", colored=True)
  with pytest.raises(ValueError, match="differ"):
    study_plots.rate_distortion({"β=1": ([1.0, 2.0], [3.0])}, tmp_path / "bad.png")


def test_roc_curves(tmp_path):
  rng = np.random.default_rng(0)
  out = study_plots.roc_curves({"digit 1": {"NLL": (rng.normal(1, 1, 50), rng.normal(0, 1, 80))},
                          "OOD": {"a": ([3.0, 4.0], [1.0, 2.0]), "b": ([1.0], [2.0])}},
                         tmp_path / "roc.png")
  _assert_png(out, tmp_path / "roc.png", colored=True)
  with pytest.raises(ValueError, match="empty"):
    study_plots.roc_curves({}, tmp_path / "bad.png")
