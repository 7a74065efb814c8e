"""`vae-jax explore`: the Explorer's decodes against the objective's own, its refusals, the JSON
API, and the page driven in a real headless Chromium (Selenium) when one is installed."""

from __future__ import annotations

import json
import os
import re
import shutil
import threading

import jax.numpy as jnp
import numpy as np
import pytest

from vae_jax import analysis, cli, errors, explore, explore_app, runner


@pytest.fixture(scope="module")
def runs(tmp_path_factory, mnist_data_dir):
  """Workdirs of a tiny VAE, CVAE and AE trained for one epoch on real MNIST."""
  from conftest import tiny_config  # pylint: disable=import-outside-toplevel
  root = tmp_path_factory.mktemp("explore")
  for kind in ("vae", "cvae", "ae"):
    overrides = {"model.kind": kind, "train.batch_size": 128, "data.train_subset": 1024}
    if kind == "ae":
      overrides["eval.iw_samples"] = 0
    runner.train_and_evaluate(tiny_config(mnist_data_dir, **overrides), root / kind,
                              progress=False)
  return {kind: root / kind for kind in ("vae", "cvae", "ae")}


@pytest.fixture(scope="module")
def vae(runs):
  return explore.Explorer(runs["vae"], num_test=300)


def test_explorer_orders_dimensions_by_kl_and_decodes_like_the_objective(vae):
  kl = analysis.kl_per_dimension(vae.means_NxZ, vae.logvars_NxZ)
  assert [d.index for d in vae.dimensions] == list(np.argsort(-kl, kind="stable"))
  assert [d.kl for d in vae.dimensions] == pytest.approx(sorted(kl, reverse=True))
  assert all(d.low == -explore.SLIDER_SDS and d.high == explore.SLIDER_SDS for d in vae.dimensions)
  z = vae.means_NxZ[:3]
  images = vae.decode(z)
  assert images.dtype == np.uint8 and images.shape == (3, 28, 28, 1)
  want = vae.objective.decode_mean(vae.params, jnp.asarray(z))
  np.testing.assert_allclose(images, explore.to_uint8(want), atol=1)
  assert images.std() > 0  # Decoded digits, not a blank.


def test_the_plane_is_the_pca_of_the_posterior_means_and_inverts(vae):
  uv = vae.plane_coordinates(50)
  z = np.stack([vae.plane_latent(u, v) for u, v in uv])
  offsets = vae.means_NxZ[:50] - vae.plane_center_Z
  in_plane = offsets @ vae.plane_basis_2xZ.T @ vae.plane_basis_2xZ + vae.plane_center_Z
  np.testing.assert_allclose(z, in_plane, atol=1e-5)  # The projection onto the plane.
  np.testing.assert_allclose(vae.plane_basis_2xZ @ vae.plane_basis_2xZ.T, np.eye(2), atol=1e-6)
  spread = (offsets @ vae.plane_basis_2xZ.T).var(0)
  assert spread[0] >= spread[1]  # First principal direction first.


def test_interpolation_prior_samples_and_test_images(vae):
  for method in ("linear", "spherical"):
    path = vae.interpolate(3, 7, steps=5, method=method)
    assert path.shape == (5, 28, 28, 1)
    np.testing.assert_array_equal(path[[0, -1]], vae.decode(vae.means_NxZ[[3, 7]]))
  cold, warm = vae.prior_samples(8, 0.1, seed=1), vae.prior_samples(8, 1.0, seed=1)
  assert cold.shape == warm.shape == (8, 28, 28, 1)
  # At temperature 0.1 the samples sit near z = 0: they differ less from one another.
  assert cold.astype(float).std(0).mean() < warm.astype(float).std(0).mean()
  image, z, label = vae.test_image(4)
  np.testing.assert_array_equal(image, vae.images_NxHxWxC[4])
  assert z.shape == (vae.latent_dim,) and label == vae.labels_N[4]


@pytest.mark.parametrize("call, match", [
    (lambda ex: ex.decode(np.zeros((1, 3))), r"\[1\.\.16, 4\]"),
    (lambda ex: ex.decode(np.full((1, 4), np.nan)), "finite"),
    (lambda ex: ex.interpolate(0, 10_000), "index"),
    (lambda ex: ex.interpolate(0, 1, steps=1), "steps"),
    (lambda ex: ex.prior_samples(4, temperature=0.0), "temperature"),
])
def test_bad_requests_are_refused_in_one_line(vae, call, match):
  with pytest.raises(errors.ExploreError, match=match) as e:
    call(vae)
  assert "\n" not in str(e.value)


def test_a_cvae_decodes_the_chosen_class(runs):
  ex = explore.Explorer(runs["cvae"], num_test=100)
  z = np.zeros((2, ex.latent_dim))
  assert not np.array_equal(ex.decode(z, label=1), ex.decode(z, label=7))
  with pytest.raises(errors.ExploreError, match="label in 0..9"):
    ex.decode(z)
  assert ex.interpolate(0, 1, steps=3).shape == (3, 28, 28, 1)  # Image 0's label by default.


def test_an_autoencoder_orders_its_codes_by_variance_and_has_no_prior(runs):
  ex = explore.Explorer(runs["ae"], num_test=100)
  variances = ex.means_NxZ.astype(np.float64).var(0)
  assert [d.index for d in ex.dimensions] == list(np.argsort(-variances, kind="stable"))
  for d in ex.dimensions:  # Sliders span the codes' mean +- 3 sd; no KL without a posterior.
    mean, sd = ex.means_NxZ[:, d.index].mean(), np.sqrt(variances[d.index])
    assert np.isnan(d.kl) and (d.low, d.high) == pytest.approx(
        (mean - explore.SLIDER_SDS * sd, mean + explore.SLIDER_SDS * sd), rel=1e-4)
  assert ex.decode(ex.means_NxZ[:2]).shape == (2, 28, 28, 1)
  with pytest.raises(errors.ExploreError, match="no prior"):
    ex.prior_samples(4)
  info = explore_app.info(ex)
  assert not info["has_posterior"] and all(d["kl"] is None for d in info["dimensions"])


def _copy_config(run, workdir, **fields):
  config = json.loads((run / "config.json").read_text())
  config["model"].update(fields)
  workdir.mkdir()
  (workdir / "config.json").write_text(json.dumps(config))


def test_cli_refuses_a_classifier_and_a_run_without_a_checkpoint(runs, tmp_path, capsys):
  _copy_config(runs["vae"], tmp_path / "classifier", kind="classifier")  # Refused by its
  assert cli.main(["explore", "--workdir", str(tmp_path / "classifier")]) == 2  # config alone.
  assert "classifier" in capsys.readouterr().err
  _copy_config(runs["vae"], tmp_path / "vqvae", kind="vqvae")
  assert cli.main(["explore", "--workdir", str(tmp_path / "vqvae")]) == 2
  assert "model.kind=vqvae" in capsys.readouterr().err
  empty = tmp_path / "no_ckpt"
  empty.mkdir()
  shutil.copy(runs["vae"] / "config.json", empty / "config.json")
  assert cli.main(["explore", "--workdir", str(empty)]) == 2
  err = capsys.readouterr().err
  assert err.count("\n") == 1 and "checkpoint" in err
  assert cli.main(["explore", "--workdir", str(runs["vae"]), "--port", "70000"]) == 2


def test_the_json_api(vae):
  client = explore_app.create_app(vae).test_client()
  info = client.get("/api/info").get_json()
  assert info["latent_dim"] == 4 and info["kind"] == "vae" and len(info["points"]) == 300
  assert [d["index"] for d in info["dimensions"]] == [d.index for d in vae.dimensions]
  out = client.post("/api/decode", json={"z": [[0.0] * 4]}).get_json()
  assert out["images"]["shape"] == [1, 28, 28, 1] and out["ms"] > 0
  plane = client.post("/api/plane", json={"u": 0.5, "v": -0.5}).get_json()
  np.testing.assert_allclose(plane["z"], vae.plane_latent(0.5, -0.5), rtol=1e-6)
  bad = client.post("/api/interpolate", json={"i": 0, "j": 1, "steps": 99})
  assert bad.status_code == 400 and "steps" in bad.get_json()["error"]
  assert client.post("/api/decode", data="not json").status_code == 400
  page = client.get("/").get_data(as_text=True)
  assert "/api/info" in page
  assert not re.findall(r"https?://|<script src=|<link ", page)  # Offline: nothing fetched.


def _chromium():
  for name in ("chromium", "chromium-browser", "google-chrome"):
    if shutil.which(name):
      return shutil.which(name)
  return None


def test_the_page_in_a_headless_browser(vae):
  """Loads the page in headless Chromium, waits for the first decode, moves the slider of the
  highest-KL dimension, clicks the plane, interpolates and samples; checks the canvases change
  and no error shows. Skipped without Chromium and chromedriver unless VAE_JAX_REQUIRE_BROWSER=1
  (CI installs both and sets it)."""
  driver_path = shutil.which("chromedriver")
  if not (_chromium() and driver_path):
    if os.environ.get("VAE_JAX_REQUIRE_BROWSER"):
      pytest.fail("VAE_JAX_REQUIRE_BROWSER is set but chromium / chromedriver are not installed")
    pytest.skip("no chromium + chromedriver (apt-get install chromium chromium-driver)")
  webdriver = pytest.importorskip("selenium.webdriver")
  from selenium.webdriver.support.ui import WebDriverWait  # pylint: disable=import-outside-toplevel

  server = explore_app.make_server(vae, port=0)
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  options = webdriver.ChromeOptions()
  options.binary_location = _chromium()
  for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
               "--window-size=1600,1200"):  # The whole plane in view: a click hits its centre.
    options.add_argument(flag)
  options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # The page's console.
  browser = webdriver.Chrome(service=webdriver.ChromeService(executable_path=driver_path),
                             options=options)
  try:
    browser.get(f"http://127.0.0.1:{server.server_port}/")
    wait = WebDriverWait(browser, 60)
    wait.until(lambda b: b.execute_script("return document.body.dataset.ready") == "1")
    canvas_sum = ("const c = document.getElementById(arguments[0]); const d = c.getContext('2d')"
                  ".getImageData(0, 0, c.width, c.height).data; let s = 0; for (const v of d) "
                  "s += v; return s;")
    def pixels():
      return browser.execute_script(canvas_sum, "decoded")
    first = pixels()
    assert first > 0
    top = vae.dimensions[0].index
    browser.execute_script(
        "const s = document.getElementById(arguments[0]); s.value = s.max; "
        "s.dispatchEvent(new Event('input'));", f"s{top}")
    wait.until(lambda b: pixels() != first)
    browser.find_element("id", "plane").click()
    wait.until(lambda b: b.execute_script("return document.body.dataset.planeClicks") == "1")
    browser.find_element("id", "interpolate").click()
    wait.until(lambda b: len(b.find_elements("css selector", "#path canvas")) == 10)
    browser.find_element("id", "sample").click()
    wait.until(lambda b: len(b.find_elements("css selector", "#samples canvas")) == 16)
    assert browser.find_element("id", "error").text == ""
    errors_logged = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors_logged, errors_logged  # No console errors (nor a missing favicon).
    assert "epoch" in browser.find_element("id", "run").text
    assert json.loads(browser.execute_script("return JSON.stringify(Z)"))[top] == pytest.approx(
        vae.plane_latent(0.0, 0.0)[top], abs=0.02 * max(vae.plane_extent_2))  # The click at
    # the centre (within a pixel or two) set the sliders to the plane's centre.
  finally:
    browser.quit()
    server.shutdown()
