"""The explorer page's screenshot in docs/explorer.png: serves `vae-jax explore` for a run on a
free localhost port, drives it in headless Chromium (Selenium; apt-get install chromium
chromium-driver) — the top slider to +2, a click on the plane, an interpolation, prior samples —
and saves the window.

  python experiments/explore/screenshot.py --workdir checkpoints/mnist_mlp [--out docs/explorer.png]
"""

import argparse
import shutil
import threading
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.support.ui import WebDriverWait

from vae_jax import explore, explore_app


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--out", default=str(Path(__file__).resolve().parents[2] / "docs" /
                                           "explorer.png"))
  args = parser.parse_args()
  ex = explore.Explorer(args.workdir, num_test=500)
  server = explore_app.make_server(ex, port=0)
  threading.Thread(target=server.serve_forever, daemon=True).start()
  options = webdriver.ChromeOptions()
  options.binary_location = shutil.which("chromium") or shutil.which("google-chrome")
  for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
               "--window-size=1280,1000"):
    options.add_argument(flag)
  browser = webdriver.Chrome(
      service=webdriver.ChromeService(executable_path=shutil.which("chromedriver")),
      options=options)
  try:
    browser.get(f"http://127.0.0.1:{server.server_port}/")
    wait = WebDriverWait(browser, 60)
    wait.until(lambda b: b.execute_script("return document.body.dataset.ready") == "1")
    browser.find_element("id", "plane").click()
    wait.until(lambda b: b.execute_script("return document.body.dataset.planeClicks") == "1")
    browser.execute_script("const s = document.getElementById(arguments[0]); s.value = 2; "
                           "s.dispatchEvent(new Event('input'));", f"s{ex.dimensions[0].index}")
    browser.find_element("id", "interpolate").click()
    wait.until(lambda b: len(b.find_elements("css selector", "#path canvas")) == 10)
    browser.find_element("id", "sample").click()
    wait.until(lambda b: len(b.find_elements("css selector", "#samples canvas")) == 16)
    browser.save_screenshot(args.out)
    print(args.out)
  finally:
    browser.quit()
    server.shutdown()


if __name__ == "__main__":
  main()
