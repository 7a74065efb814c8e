"""Every model of the zoo trains under the runs axis (two seeds vmapped in one program) like each
run alone, on a real-MNIST subset through the config path; and their config refusals."""

import numpy as np
import pytest
from conftest import SMALL_TEST_SET

from vae_jax import config as config_lib, runner, sweep

ZOO = {  # name -> (overrides of the tiny config, metrics compared with the run alone)
    "iwae_dreg": ({"objective.name": "iwae", "objective.num_samples": 5,
                   "objective.estimator": "dreg", "eval.iw_samples": 20},
                  ("eval/loss", "eval/nll_iw")),
    "vampprior": ({"model.prior": "vampprior", "model.pseudo_inputs": 20, "eval.iw_samples": 20},
                  ("eval/loss", "eval/nll_iw")),
    "ladder_iwae": ({"model.kind": "hvae", "model.hvae.latent_dims": "8,4",
                     "model.hvae.widths": "32,16", "model.hvae.inference": "ladder",
                     "objective.name": "iwae", "objective.num_samples": 3,
                     "eval.iw_samples": 20}, ("eval/loss", "eval/nll_iw")),
    "vqvae": ({"model.kind": "vqvae", "model.vq.num_codes": 32, "model.vq.code_dim": 4,
               "eval.iw_samples": 0}, ("eval/loss", "eval/perplexity")),
    "mvae": ({"model.kind": "mvae", "eval.iw_samples": 10},
             ("eval/loss", "eval/error", "eval/nll_iw")),
}

# The run alone draws its figures (the sweep's are test_dynamics'), but for the IWAE: its model is
# the plain VAE, whose figures test_runner checks.
NO_FIGURES = ("iwae_dreg",)


@pytest.mark.parametrize("name", list(ZOO))
def test_zoo_model_trains_under_the_runs_axis_like_alone_and_resumes(tiny, tmp_path, name):
  """Two seeds vmapped in one program for 2 epochs; seed 0 alone, killed after epoch 1 and
  resumed, ends where the vmapped run does: the VQ-VAE's codebook averages, the hierarchy and the
  pseudo-inputs all live in the checkpointed state (a lost one would move the numbers by far more
  than the tolerance)."""
  overrides, keys = ZOO[name]
  overrides = {**SMALL_TEST_SET, **overrides}
  results = sweep.run_sweep(tiny(**overrides, **{"train.epochs": 2}), ["seed=0,1"],
                            tmp_path / "sw", progress=False)
  assert all(r["summary"]["runs_in_program"] == 2 for r in results)
  runner.train_and_evaluate(tiny(**overrides, **{"train.epochs": 1}), tmp_path / "alone",
                            progress=False)
  figures = name not in NO_FIGURES  # Figures change no metric (eval.figures is compute-only).
  alone = runner.train_and_evaluate(
      tiny(**overrides, **{"train.epochs": 2, "eval.figures": figures}), tmp_path / "alone",
      resume=True, progress=False)
  seed0 = next(r["summary"] for r in results if r["name"] == "seed=0")
  for key in keys:
    assert np.isfinite(alone[key]), key
    assert seed0[key] == pytest.approx(alone[key], rel=1e-4, abs=1e-6), key
  if figures:
    written = tmp_path / "alone" / "figures"
    assert (written / "reconstructions.png").is_file()
    assert (written / "prior_samples.png").is_file() == (name != "vqvae")  # No prior: no samples.


@pytest.mark.parametrize("overrides, message", [
    (["model.prior=vampprior", "model.kind=ae", "eval.iw_samples=0"],
     "model.prior=vampprior needs model.kind=vae"),
    (["model.kind=hvae", "objective.name=iwae", "objective.estimator=dreg"], "estimator=iwae"),
    (["model.kind=vqvae"], "eval.iw_samples"),
    (["model.kind=hvae", "model.prior=vampprior"], "no growth and no VampPrior"),
])
def test_zoo_configs_that_cannot_work_are_refused(overrides, message):
  config = config_lib.apply_overrides(config_lib.base_config(), overrides)
  with pytest.raises(config_lib.ConfigError, match=message):
    config_lib.validate(config)
