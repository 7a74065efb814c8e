"""The public API: fit on a user's arrays and a user's flax modules, resume, load_run, iw_nll,
hooks, data sources and their one-line errors; the examples run as written."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import jax
import numpy as np
import optax
import pytest

import vae_jax
from vae_jax import errors, models, objectives

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _example(name):
  spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _images(n=96, shape=(6, 5, 2), seed=0):
  """float images in [0, 1] of a shape unlike MNIST's."""
  return np.random.default_rng(seed).random((n, *shape)).astype(np.float32)


def _objective(shape=(6, 5, 2), latent=2):
  return objectives.VAEObjective(models.VAE(models.MLPEncoder(widths=(8,), latent_dim=latent),
                                            models.MLPDecoder(widths=(8,), image_shape=shape)),
                                 likelihood="bernoulli")


def test_public_names():
  assert {"fit", "load_run", "iw_nll", "models", "objectives", "data", "hooks",
          "FitResult"} <= set(vae_jax.__all__)
  assert all(hasattr(vae_jax, name) for name in vae_jax.__all__)
  assert isinstance(_objective(), objectives.Objective)
  assert isinstance(_objective().model, objectives.Model)


def test_own_data_example_trains_and_reports(capsys):
  _example("own_data")
  out = capsys.readouterr().out
  assert "test loss" in out and "IW-NLL (K=20)" in out


def test_own_module_example_resumes_exactly(tmp_path):
  """The hand-written flax encoder / decoder: 2 epochs + 2 resumed equal 4 in one go, bit for
  bit; the run directory reads back with load_run; IW-NLL is finite and below the test loss."""
  example = _example("own_module")
  first, resumed, run, nll = example.main(tmp_path / "run")
  assert [r["epoch"] for r in resumed.history] == [1, 2, 3, 4]
  assert resumed.history[:2] == first.history
  objective = run.objective
  whole = vae_jax.fit(objective, optax.adam(1e-3), _own_images()[:192],
                      eval_data=_own_images()[192:], epochs=4, batch_size=32, progress=False)
  for a, b in zip(jax.tree.leaves(whole.params), jax.tree.leaves(resumed.params)):
    np.testing.assert_array_equal(a, b)
  for a, b in zip(jax.tree.leaves(run.params), jax.tree.leaves(resumed.params)):
    np.testing.assert_array_equal(a, b)
  assert run.epoch == 4 and np.isfinite(nll)
  assert nll < resumed.summary["eval/loss"] + 1.0  # K = 10 bound vs the one-sample loss.
  files = {p.name for p in (tmp_path / "run").iterdir()}
  assert {"fit.json", "metrics.jsonl", "summary.json", "ckpt"} <= files


def _own_images():
  rng = np.random.default_rng(1)
  return (rng.random((256, 8, 8, 1)) * 255).astype(np.uint8)


def test_fit_on_arrays_learns_and_hooks_see_every_epoch():
  seen = []

  class Record(vae_jax.BaseHook):
    def after_epoch(self, loop, state, result):
      seen.append((result.epoch, state.epoch, result.rows[0]["train/loss"]))
      return state

  x = (_images(128) > 0.5).astype(np.float32)
  result = vae_jax.fit(_objective(), optax.adam(3e-3), x[:96], eval_data=x[96:], epochs=3,
                       batch_size=16, hooks=[Record()], progress=False, seed=3)
  assert [e for e, _, _ in seen] == [1, 2, 3] == [e for _, e, _ in seen]
  losses = [r["train/loss"] for r in result.history]
  assert losses[-1] < losses[0] and result.workdir is None
  assert result.summary["eval/loss"] == result.history[-1]["eval/loss"]
  assert set(result.history[0]) >= {"train/loss", "train/kl", "eval/loss", "eval/mse"}


def test_a_second_equal_fit_reuses_the_first_ones_programs():
  """Equal objective, optimizer and sizes: the second fit compiles nothing and ends equal."""
  x = (_images(48) > 0.5).astype(np.float32)
  tx = optax.adam(3e-3)
  runs = [vae_jax.fit(_objective(), tx, x[:32], eval_data=x[32:], epochs=1, batch_size=16,
                      progress=False) for _ in range(2)]
  assert runs[0].summary["compiles"] > 0 and runs[1].summary["compiles"] == 0
  assert runs[1].summary["compile_seconds"] == 0
  assert runs[0].history[-1]["eval/loss"] == runs[1].history[-1]["eval/loss"]


def test_shared_builds_once_per_key_forgets_the_oldest_and_skips_unhashable_keys(monkeypatch):
  from vae_jax import compiled  # pylint: disable=import-outside-toplevel
  monkeypatch.setattr(compiled, "SHARED_SIZE", 2)
  compiled.clear_shared()
  built = []
  make = lambda name: compiled.shared(lambda: built.append(name) or [name], name)  # noqa: E731
  first = make("a")
  assert make("a") is first and built == ["a"]
  make("b"), make("c")  # "a" is the least recently used: out.
  assert make("a") is not first and built == ["a", "b", "c", "a"]
  assert compiled.shared(lambda: "fresh", ["unhashable"]) == "fresh"
  compiled.clear_shared()


def test_iw_nll_tightens_with_k():
  objective = _objective()
  x = _images(32)
  params = objective.init_params(jax.random.key(0), x.shape[1:])
  k1 = vae_jax.iw_nll(objective, params, x, k=1)
  k50 = vae_jax.iw_nll(objective, params, x, k=50)
  assert np.isfinite(k1) and k50 <= k1
  with pytest.raises(ValueError, match="k must be"):
    vae_jax.iw_nll(objective, params, x, k=0)


def test_fit_workdir_refusals(tmp_path):
  objective, x = _objective(), _images(64)
  foreign = tmp_path / "foreign"
  foreign.mkdir()
  (foreign / "notes.txt").write_text("mine")
  with pytest.raises(errors.RunError, match="not empty and holds no vae_jax run"):
    vae_jax.fit(objective, optax.adam(1e-3), x, epochs=1, batch_size=16, workdir=foreign,
                progress=False)
  assert [p.name for p in foreign.iterdir()] == ["notes.txt"]
  with pytest.raises(errors.RunError, match="holds no run"):
    vae_jax.fit(objective, optax.adam(1e-3), x, epochs=1, batch_size=16,
                workdir=tmp_path / "new", resume=True, progress=False)
  assert not (tmp_path / "new").exists()
  for under_a_file in (foreign / "notes.txt", foreign / "notes.txt" / "run"):
    with pytest.raises(errors.RunError, match="notes.txt is a file"):
      vae_jax.fit(objective, optax.adam(1e-3), x, epochs=1, batch_size=16, workdir=under_a_file,
                  progress=False)
  assert [p.name for p in foreign.iterdir()] == ["notes.txt"]
  w = tmp_path / "run"
  vae_jax.fit(objective, optax.adam(1e-3), x, epochs=1, batch_size=16, workdir=w, progress=False)
  with pytest.raises(errors.RunError, match="pass resume=True"):
    vae_jax.fit(objective, optax.adam(1e-3), x, epochs=2, batch_size=16, workdir=w,
                progress=False)
  with pytest.raises(errors.RunError, match="differs in batch_size"):
    vae_jax.fit(objective, optax.adam(1e-3), x, epochs=2, batch_size=32, workdir=w,
                resume=True, progress=False)
  with pytest.raises(errors.RunError, match="pass the objective and optimizer"):
    vae_jax.load_run(w)
  with pytest.raises(errors.RunError, match="another objective"):
    vae_jax.load_run(w, _objective(latent=3), optax.adam(1e-3))
  with pytest.raises(errors.CheckpointError, match="not a run directory"):
    vae_jax.load_run(foreign)


@pytest.mark.parametrize("images, labels, match", [
    (np.zeros((4, 3, 3, 1), np.float32) + 2, None, r"lie in \[0, 1\]"),
    (np.zeros((4, 3, 3, 1), np.int16), None, "uint8 or float"),
    (np.zeros((4, 3), np.uint8), None, r"\[N, H, W, C\]"),
    (np.zeros((4, 3, 3, 1), np.uint8), np.zeros(3, int), "one class id per image"),
    (np.zeros((4, 3, 3, 1), np.uint8), -np.ones(4, int), ">= 0"),
])
def test_from_arrays_refuses_bad_input_in_one_line(images, labels, match):
  with pytest.raises(errors.DataError, match=match) as e:
    vae_jax.data.from_arrays(images, labels)
  assert "\n" not in str(e.value)


def test_sources_agree():
  x = (np.arange(2 * 4 * 4) % 256).astype(np.uint8).reshape(2, 4, 4)
  a = vae_jax.data.from_arrays(x, np.array([1, 0]))
  b = vae_jax.data.from_iterable([(x[:1], np.array([1])), (x[1:], np.array([0]))])
  assert a.image_shape == (4, 4, 1) and a.num_classes == 2
  np.testing.assert_array_equal(a.images, b.images)
  np.testing.assert_array_equal(a.labels, b.labels)


def test_from_folder_reads_tfds_image_folder(tmp_path):
  from PIL import Image  # pylint: disable=import-outside-toplevel
  for label, value in (("cat", 10), ("dog", 200)):
    folder = tmp_path / "train" / label
    folder.mkdir(parents=True)
    for i in range(2):
      Image.fromarray(np.full((5, 4, 3), value + i, np.uint8)).save(folder / f"{i}.png")
  source = vae_jax.data.from_folder(tmp_path, "train")
  assert source.images.shape == (4, 5, 4, 3) and source.num_classes == 2
  assert sorted(source.labels.tolist()) == [0, 0, 1, 1]
  by_label = {int(y): int(x[0, 0, 0]) // 100 for x, y in zip(source.images, source.labels)}
  assert by_label == {0: 0, 1: 2}  # cat (10, 11) is class 0, dog (200, 201) class 1.
  with pytest.raises(errors.DataError, match="is not a folder"):
    vae_jax.data.from_folder(tmp_path, "test")


def test_fit_with_early_stopping_keeps_the_best_epoch_and_resumes(tmp_path):
  """A learning rate of 0 never improves after epoch 1: patience 2 stops after epoch 3, the
  result is epoch 1's; a resumed stopped run trains nothing more."""
  from vae_jax import hooks  # pylint: disable=import-outside-toplevel
  x = _images(64)
  stop = hooks.EarlyStopping(patience=2, metric="eval/loss", min_delta=0.5)
  result = vae_jax.fit(_objective(), optax.sgd(0.0), x[:48], eval_data=x[48:], epochs=10,
                       batch_size=16, workdir=tmp_path / "r", early_stopping=stop,
                       progress=False)
  assert [r["epoch"] for r in result.history] == [1, 2, 3]
  assert (result.summary["best_epoch"], result.summary["stopped_epoch"]) == (1, 3)
  assert result.summary["eval/loss"] == result.history[0]["eval/loss"]
  assert (tmp_path / "r" / "best" / "1").is_dir()
  again = vae_jax.fit(_objective(), optax.sgd(0.0), x[:48], eval_data=x[48:], epochs=10,
                      batch_size=16, workdir=tmp_path / "r", early_stopping=stop, resume=True,
                      progress=False)
  assert len(again.history) == 3 and again.summary["best_epoch"] == 1
