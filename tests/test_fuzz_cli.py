"""Property-based fuzzing of the command line (hypothesis): random subcommands, options,
--config.KEY=VALUE overrides and --sweep values in random order. Whatever the input: no
traceback, exit status 0 or 2 (2 with exactly one line on stderr), and a refused `train` leaves
no run directory behind.

Training itself is replaced by a stub (runner._run) and the datasets by 256 blank images, so each
case costs milliseconds to a second; everything before training (parsing, config loading and
validation, sweep expansion, device layout, run-directory checks, locks) runs for real.
"""

import json
import shutil

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from vae_jax import cli, config as config_lib, data, evaluate, runner

CASES = {"run": 0, "exit_0": 0, "exit_2": 0}
KEYS = config_lib.flat_keys(config_lib.base_config())
VALUES = st.one_of(
    st.integers(-3, 300).map(str), st.floats(-1e3, 1e3).map(str),
    st.sampled_from(["", "0", "1", "True", "False", "abc", "1,2", "(3, 4)", "[5]", "'x'", "None",
                     "1e-3", "mlp", "conv", "vae", "ae", "mnist", "nan", "inf", "-1", "{}",
                     "auto", "never", "always", "bernoulli", "mse", "4,", ",,", "="]),
    st.text(st.characters(codec="ascii", exclude_categories=("Cc",)), max_size=8))
FLAGS = ["--resume", "--reuse", "--no-progress", "--bogus", "--config", "--workdir", "--n",
         "--k", "--out", "--seed", "--classifier", "--sweep", "--distributed", "extra"]


def _override(key, value):
  return f"--config.{key}={value}"


OVERRIDE = st.builds(_override, st.one_of(st.sampled_from(KEYS), st.sampled_from(
    ["nope", "model", "train.nope", "model.encoder", "", ".", "train..epochs"])), VALUES)
SWEEP = st.builds(lambda k, vs: ["--sweep", f"{k}={','.join(vs)}"],
                  st.one_of(st.sampled_from(KEYS), st.just("bogus")),
                  st.lists(VALUES, max_size=3))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, mnist_data_dir):
  """A finished tiny run (the evaluate / sample / score target) and its config file."""
  from conftest import tiny_config  # pylint: disable=g-import-not-at-top
  root = tmp_path_factory.mktemp("fuzz")
  config = tiny_config(mnist_data_dir, **{"eval.iw_samples": 0})
  runner.train_and_evaluate(config, root / "run", progress=False)
  config_file = root / "tiny.py"
  config_file.write_text("import ml_collections, json\ndef get_config():\n  return "
                         f"ml_collections.ConfigDict(json.loads({config_lib.to_json(config)!r}))\n")
  (root / "empty").mkdir()
  (root / "badrun").mkdir()
  (root / "badrun" / "config.json").write_text("{not json")
  return root


@pytest.fixture(scope="module")
def stubs(trained):
  """Blank data and no training; undone at the end of the module."""
  mp = pytest.MonkeyPatch()
  blank = (np.zeros((256, 28, 28, 1), np.uint8), np.arange(256, dtype=np.int32) % 10)
  mp.setattr(data.loading, "load_split", lambda name, split, data_dir=None: blank)
  mp.setattr(runner, "_run", lambda configs, workdirs, *a: [
      {"epoch": c.train.epochs, "eval/loss": 1.0} for c in configs])
  mp.setattr(evaluate, "iw_nll", lambda *a, **k: (1.0, 0.0))
  yield
  mp.undo()


def _argv(draw, root):
  command = draw(st.sampled_from(["train", "evaluate", "sample", "score", "data", "bogus"]))
  workdirs = [str(root / "fresh"), str(root / "run"), str(root / "empty"), str(root / "badrun"),
              str(root / "missing" / "deep")]
  parts = [["--config", draw(st.sampled_from([str(root / "tiny.py"), str(root / "nope.py"),
                                               str(root / "run" / "config.json")]))],
           ["--workdir", draw(st.sampled_from(workdirs))]]
  parts += [[o] for o in draw(st.lists(OVERRIDE, max_size=4))]
  parts += draw(st.lists(SWEEP, max_size=2))
  parts += [[f] for f in draw(st.lists(st.sampled_from(FLAGS), max_size=3))]
  parts += [[o, draw(VALUES)] for o in draw(st.lists(st.sampled_from(
      ["--n", "--k", "--seed", "--out", "--classifier"]), max_size=2))]
  if draw(st.booleans()):
    suffix = draw(st.sampled_from([".png", ".npy", ".txt"]))
    parts.append(["--out", str(root / "out" / f"s{suffix}")])
  order = draw(st.permutations(range(len(parts))))
  return [command] + [token for i in order for token in parts[i]]


GOOD_OVERRIDES = ["train.epochs=2", "optim.lr=0.01", "model.latent_dim=3", "objective.beta=2.0",
                  "seed=3", "train.batch_size=32", "model.encoder.widths=16,8",
                  "data.preprocess=binarize_dynamic", "optim.name=adamw", "data.on_device=never",
                  "train.steps_per_call=3", "model.kind=ae", "eval.elbo_samples=2"]
GOOD_SWEEPS = ["seed=0,1", "optim.lr=1e-3,1e-2", "objective.beta=1,2", "model.latent_dim=2,3"]


def _plausible(draw, root):
  """Mostly valid command lines (so that exit 0 is reached often), with a junk token mixed in
  now and then."""
  command = draw(st.sampled_from(["train", "train", "evaluate", "sample"]))
  if command == "train":
    parts = [["--config", str(root / "tiny.py")], ["--workdir", str(root / "fresh")]]
    parts += [[f"--config.{o}"] for o in draw(st.lists(st.sampled_from(GOOD_OVERRIDES),
                                                       max_size=3, unique=True))]
    parts += [["--sweep", sw] for sw in draw(st.lists(st.sampled_from(GOOD_SWEEPS), max_size=2,
                                                      unique=True))]
  else:
    parts = [["--workdir", str(root / "run")]]
    parts += [["--out", str(root / "out" / "s.png")]] if command == "sample" else []
    parts += [[f, str(draw(st.integers(1, 9)))] for f in draw(
        st.lists(st.sampled_from(["--n", "--seed"] if command == "sample" else ["--k"]),
                 max_size=1))]
  if draw(st.integers(0, 4)) == 0:
    parts.append([draw(st.sampled_from(FLAGS))])
  order = draw(st.permutations(range(len(parts))))
  return [command] + [token for i in order for token in parts[i]]


@st.composite
def command_lines(draw, root):
  return _plausible(draw, root) if draw(st.booleans()) else _argv(draw, root)


def test_fuzzed_command_lines_exit_0_or_2_and_leave_nothing_behind(trained, stubs, capsys):
  fresh = trained / "fresh"

  @settings(max_examples=400, deadline=None, derandomize=True,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
  @given(command_lines(trained))
  def check(argv):
    shutil.rmtree(fresh, ignore_errors=True)
    shutil.rmtree(trained / "missing", ignore_errors=True)
    capsys.readouterr()
    code = cli.main(argv)  # Any exception other than the handled ones fails the test.
    err = capsys.readouterr().err.strip()
    CASES["run"] += 1
    CASES[f"exit_{code}"] = CASES.get(f"exit_{code}", 0) + 1
    assert code in (0, 2), (argv, code, err)
    if code == 2:
      assert err.startswith("vae-jax: error: ") and "\n" not in err, (argv, err)
      if argv[0] == "train":
        assert not fresh.exists() and not (trained / "missing").exists(), argv

  check()
  print(f"fuzzed command lines: {json.dumps(CASES)}")
  assert CASES["run"] >= 400 and CASES["exit_0"] >= 20 and CASES["exit_2"] >= 20
