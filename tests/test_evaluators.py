"""The evaluator registry: one cache per evaluator under <run>/eval/, keyed by params (and the
checkpoint when the run has one), written atomically; options stay out of the key."""

import numpy as np
import pytest

from vae_jax import evaluators


@pytest.fixture
def counted():
  calls = []

  @evaluators.register("_test_json")
  def _json(workdir, k, scale=1.0, verbose=False):
    calls.append((k, verbose))
    return {"value": k * scale}

  @evaluators.register("_test_arrays", arrays=True)
  def _arrays(workdir, n):
    calls.append(n)
    return {"a/scores": np.arange(n, dtype=np.float64)}

  yield calls
  del evaluators.REGISTRY["_test_json"], evaluators.REGISTRY["_test_arrays"]


def test_results_are_cached_per_params(tmp_path, counted):
  assert evaluators.evaluate_run(tmp_path, "_test_json", k=2) == {"value": 2.0}
  assert evaluators.evaluate_run(tmp_path, "_test_json", k=2,
                                 options={"verbose": True}) == {"value": 2.0}
  assert counted == [(2, False)]  # Options are not part of the key: the cache answered.
  assert evaluators.cache_path(tmp_path, "_test_json") == tmp_path / "eval" / "_test_json.json"
  assert evaluators.evaluate_run(tmp_path, "_test_json", k=3, scale=0.5) == {"value": 1.5}
  assert counted == [(2, False), (3, False)]
  assert not list((tmp_path / "eval").glob(".*"))  # No temporary file left behind.


def test_array_results_round_trip_through_npz(tmp_path, counted):
  first = evaluators.evaluate_run(tmp_path, "_test_arrays", n=4)
  again = evaluators.evaluate_run(tmp_path, "_test_arrays", n=4)
  np.testing.assert_array_equal(first["a/scores"], again["a/scores"])
  assert counted == [4] and evaluators.cache_path(tmp_path, "_test_arrays").suffix == ".npz"


def test_a_corrupt_cache_is_recomputed_and_unknown_names_refused(tmp_path, counted):
  path = evaluators.cache_path(tmp_path, "_test_json")
  path.parent.mkdir()
  path.write_text("{not json")
  assert evaluators.evaluate_run(tmp_path, "_test_json", k=1) == {"value": 1.0}
  assert counted == [(1, False)]
  with pytest.raises(ValueError, match="unknown evaluator 'nope'; choose one of"):
    evaluators.evaluate_run(tmp_path, "nope")


def test_the_library_registers_its_evaluators():
  assert {"test_means", "iw_nll", "scores", "fid_is"} <= set(evaluators.REGISTRY)
