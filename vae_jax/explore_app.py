"""`vae-jax explore`: a local web page over a trained run (explore.Explorer), served by Flask
(the optional `[explore]` extra). The page is one small HTML/JS file shipped in the package
(explore_page.html), with nothing fetched from outside: it works offline.

JSON API (all images as {"shape": [n, H, W, C], "data": base64 of the uint8 bytes}; every decode
answer carries "ms", the server's milliseconds for it; a bad request is HTTP 400 with {"error":
one line}):
  GET  /api/info                      the run: kind, latent size, dimensions by KL, plane points
  POST /api/decode    {z: [[..Z]], label?}
  POST /api/plane     {u, v, label?}   -> also "z"
  POST /api/interpolate {i, j, steps, method: linear|spherical, label?}
  POST /api/prior     {n, temperature, seed, label?}
  GET  /api/test/<i>                   test image i, its posterior mean "z" and "label"
"""

from __future__ import annotations

import base64
import errno
import importlib.resources
import time
from collections.abc import Callable

import numpy as np

from vae_jax import errors, explore

DEFAULT_HOST = "127.0.0.1"  # Localhost only unless --host says otherwise.
DEFAULT_PORT = 8765


def require_flask():
  """The flask module.

  Raises:
    errors.ExploreError: Flask is not installed (the `[explore]` extra).
  """
  try:
    import flask  # pylint: disable=import-outside-toplevel
  except ImportError:
    raise errors.ExploreError("the explorer needs Flask: pip install 'vae_jax[explore]'") from None
  return flask


def images_json(images_nxHxWxC: np.ndarray) -> dict:
  """uint8 images [n, H, W, C] as {"shape", "data" (base64 of the C-order bytes)}."""
  x = np.ascontiguousarray(images_nxHxWxC, np.uint8)
  return {"shape": list(x.shape), "data": base64.b64encode(x.tobytes()).decode("ascii")}


def info(ex: explore.Explorer, points: int = 500) -> dict:
  """The page's description of the run (see the module docstring)."""
  uv = ex.plane_coordinates(points)
  return {
      "workdir": str(ex.workdir), "epoch": ex.epoch, "kind": ex.config.model.kind,
      "latent_dim": ex.latent_dim, "has_posterior": ex.has_posterior,
      "learned_prior": ex.learned_prior, "num_classes": ex.num_classes,
      "image_shape": list(ex.images_NxHxWxC.shape[1:]), "num_test": len(ex.labels_N),
      "decode_batch": explore.DECODE_BATCH,
      "plane": "latent axes" if ex.latent_dim == 2 else "first two PCA directions",
      "dimensions": [d._asdict() | {"kl": None if np.isnan(d.kl) else d.kl}
                     for d in ex.dimensions],
      "points": [[float(u), float(v), int(y)] for (u, v), y in zip(uv, ex.labels_N[:points])],
  }


def create_app(ex: explore.Explorer):
  """The Flask app serving the page and the JSON API of one Explorer."""
  flask = require_flask()
  app = flask.Flask("vae_jax.explore")
  page = importlib.resources.files("vae_jax").joinpath("explore_page.html").read_text()

  def answer(fn: Callable[[dict], dict]):
    body = flask.request.get_json(silent=True) if flask.request.method == "POST" else {}
    if body is None or not isinstance(body, dict):
      return flask.jsonify(error="the request body must be a JSON object"), 400
    start = time.perf_counter()
    try:
      out = fn(body)
    except (errors.ExploreError, TypeError, ValueError, KeyError) as e:
      return flask.jsonify(error=errors.one_line(e)), 400
    return flask.jsonify(out | {"ms": 1e3 * (time.perf_counter() - start)})

  @app.get("/")
  def index():
    return flask.Response(page, mimetype="text/html")

  @app.get("/favicon.ico")
  def favicon():
    return flask.Response(status=204)  # None: and no 404 in the browser's console.

  @app.get("/api/info")
  def get_info():
    return answer(lambda _: info(ex))

  @app.post("/api/decode")
  def decode():
    return answer(lambda b: {"images": images_json(ex.decode(b["z"], b.get("label")))})

  @app.post("/api/plane")
  def plane():
    def go(b):
      z = ex.plane_latent(float(b["u"]), float(b["v"]))
      return {"z": z.tolist(), "images": images_json(ex.decode(z[None], b.get("label")))}
    return answer(go)

  @app.post("/api/interpolate")
  def interpolate():
    return answer(lambda b: {"images": images_json(ex.interpolate(
        int(b["i"]), int(b["j"]), int(b.get("steps", 10)), str(b.get("method", "linear")),
        b.get("label")))})

  @app.post("/api/prior")
  def prior():
    return answer(lambda b: {"images": images_json(ex.prior_samples(
        int(b.get("n", 16)), float(b.get("temperature", 1.0)), int(b.get("seed", 0)),
        b.get("label")))})

  @app.get("/api/test/<int:index>")
  def test_image(index):
    def go(_):
      image, z, label = ex.test_image(index)
      return {"images": images_json(image[None]), "z": z.tolist(), "label": label}
    return answer(go)

  return app


def make_server(ex: explore.Explorer, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT):
  """A werkzeug server (one thread: one decode at a time) bound to host:port (port 0 picks a
  free one: server.server_port).

  Raises:
    errors.ExploreError: the port is taken or not ours to bind.
  """
  from werkzeug import serving  # pylint: disable=import-outside-toplevel
  app = create_app(ex)
  try:
    return serving.make_server(host, port, app, threaded=False)
  except OSError as e:
    if e.errno in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL):
      raise errors.ExploreError(f"cannot listen on {host}:{port} ({e.strerror}); pass another "
                                "--port (0 picks a free one)") from None
    raise
