"""Exact masked evaluation, per-class means and the chunked IW-NLL."""

import jax
import jax.numpy as jnp
import numpy as np

from vae_jax import evaluate, objectives, train

H = train.Hparams.of()


def _dataset(n=50):
  images = jax.random.randint(jax.random.key(1), (n, 3, 4, 1), 0, 256).astype(jnp.uint8)
  return {"image": images, "label": jnp.arange(n, dtype=jnp.int32) % 3}


def test_evaluate_dataset_is_exact_per_example_mean(tiny_vae):
  """50 examples in batches of 8 (last batch padded): equals the plain mean over examples."""
  model, params = tiny_vae
  objective = objectives.VAEObjective(model=model, preprocess="binarize_threshold")
  data, key = _dataset(), jax.random.key(3)
  fn = evaluate.eval_per_example(objective)
  result = jax.jit(lambda p, d: evaluate.evaluate_dataset(fn, p, d, key, H, batch_size=8))(
      params, data)
  per_batch = [fn(params, jax.tree.map(lambda a, i=i: a[i * 8:(i + 1) * 8], data),
                  jax.random.fold_in(key, i), H) for i in range(7)]
  ref = {k: np.concatenate([np.asarray(b[k]) for b in per_batch])[:50].mean() for k in result}
  for k in ref:
    np.testing.assert_allclose(result[k], ref[k], rtol=1e-5)
  means, per_class = evaluate.evaluate_by_class(fn, params, data, key, H, batch_size=8,
                                                num_classes=4)
  np.testing.assert_allclose(means["loss"], result["loss"], rtol=1e-5)
  assert np.isnan(per_class["loss"][3]) and np.all(np.isfinite(per_class["loss"][:3]))
  counts = np.bincount(np.asarray(data["label"]), minlength=3)
  np.testing.assert_allclose(np.sum(per_class["loss"][:3] * counts) / 50, result["loss"],
                             rtol=1e-5)


def test_chunked_iw_nll_equals_one_program(tiny_vae):
  """The IW-NLL in chunks (under the progress bar) equals one pass over the whole set: batch b
  uses fold_in(key, b) whatever the chunking."""
  model, params = tiny_vae
  objective = objectives.VAEObjective(model=model)
  data, key = _dataset(23), jax.random.key(4)
  per_example = lambda p, b, k, h: {"nll_iw": -objective.iw_bound(p, b, k, 5, 2)}  # noqa: E731
  whole = evaluate.evaluate_dataset(per_example, params, data, key, H, batch_size=4)["nll_iw"]
  for chunks in (1, 3, 20):
    nll, _ = evaluate.iw_nll(objective, params, data, key, num_samples=5, batch_size=4,
                             chunk_size=2, chunks=chunks)
    np.testing.assert_allclose(nll, float(whole), rtol=1e-5)


def test_per_example_scores_match_the_batched_terms(tiny_vae):
  """23 images in batches of 8 (last padded): one score per image, batch b's noise from
  fold_in(key, b); the IW-NLL with many samples is below the one-sample -ELBO on average."""
  model, params = tiny_vae
  objective = objectives.VAEObjective(model=model)
  data, key = _dataset(23), jax.random.key(5)
  scores = evaluate.per_example_scores(objective, params, np.asarray(data["image"]),
                                       np.asarray(data["label"]), key, iw_samples=64,
                                       batch_size=8, chunk_size=16)
  assert {k: v.shape for k, v in scores.items()} == {k: (23,) for k in
                                                     ("neg_elbo", "recon", "kl", "nll_iw")}
  terms = objective.terms(params, jax.tree.map(lambda a: a[8:16], data), jax.random.fold_in(key, 1),
                          H)
  np.testing.assert_allclose(scores["neg_elbo"][8:16], terms["recon"] + terms["kl"], rtol=1e-5)
  assert np.mean(scores["nll_iw"]) < np.mean(scores["neg_elbo"])
