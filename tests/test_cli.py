"""Every bad input exits 2 with one line naming the problem and the fix, and leaves no run dir."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import tiny_config
from vae_jax import cli, config as config_lib

REPO = Path(__file__).resolve().parents[1]
MNIST_MLP = str(config_lib.CONFIG_DIR / "mnist_mlp.py")


@pytest.fixture
def tiny_file(tmp_path, mnist_data_dir):
  """A config file holding the tiny test config."""
  path = tmp_path / "tiny.py"
  cfg = tiny_config(mnist_data_dir)
  path.write_text("import ml_collections, json\n"
                  "def get_config():\n  return ml_collections.ConfigDict("
                  f"json.loads({config_lib.to_json(cfg)!r}))\n")
  return str(path)


def _fails(capsys, argv, *fragments):
  assert cli.main(argv) == 2
  err = capsys.readouterr().err.strip()
  assert err.startswith("vae-jax: error: ") and "\n" not in err, err
  for fragment in fragments:
    assert fragment in err, err
  return err


@pytest.mark.parametrize("override,fragment", [
    ("--config.model.nope=3", "unknown config key 'model.nope'"),
    ("--config.optim.lr", "malformed override"),
    ("--config.optim.lr=fast", "bad override --config.optim.lr=fast"),
    ("--config.train.epochs=2.5", "expected int"),
    ("--config.model.latent_dim=0", "model.latent_dim must be positive"),
    ("--config.model.encoder.widths=64,-1", "model.encoder.widths[1] must be positive"),
    ("--config.train.batch_size=-8", "train.batch_size must be positive"),
    ("--config.optim.name=lbfgs", "unknown optim.name"),
    ("--config.data.name=svhn", "unknown data.name 'svhn'"),
    ("--config.objective.beta=-1", "objective.beta must be a finite number >= 0"),
    ("--config.objective.beta=1e999", "objective.beta must be a finite number >= 0"),
])
def test_bad_train_input_exits_2_without_run_dir(capsys, tmp_path, tiny_file, override, fragment):
  workdir = tmp_path / "run"
  _fails(capsys, ["train", "--config", tiny_file, "--workdir", str(workdir), override], fragment)
  assert not workdir.exists()


@pytest.mark.parametrize("body,fragment", [
    ("import sys\nsys.exit(0)\n", "failed to load (SystemExit"),
    ("from vae_jax import config\ndef get_config():\n  c = config.base_config()\n"
     "  c.train.epohcs = 3\n  return c\n", "sets train.epohcs, which is not a config field (did "
     "you mean train.epochs?)"),
], ids=["sys.exit", "typo"])
def test_a_config_file_that_exits_or_misspells_a_field(capsys, tmp_path, body, fragment):
  path = tmp_path / "c.py"
  path.write_text(body)
  _fails(capsys, ["train", "--config", str(path), "--workdir", str(tmp_path / "r")], fragment)
  assert not (tmp_path / "r").exists()


def test_missing_config_file(capsys, tmp_path):
  _fails(capsys, ["train", "--config", str(tmp_path / "nope.py"), "--workdir", str(tmp_path / "r")],
         "not found")
  assert not (tmp_path / "r").exists()


def test_missing_dataset(capsys, tmp_path, monkeypatch):
  from vae_jax import data  # pylint: disable=g-import-not-at-top
  # Never download here.
  monkeypatch.setattr(data.loading, "network_available", lambda *a, **k: False)
  workdir = tmp_path / "run"
  _fails(capsys, ["train", "--config", MNIST_MLP, "--workdir", str(workdir),
                  f"--config.data.data_dir={tmp_path / 'empty'}"], "vae-jax data import mnist")
  assert not workdir.exists()


def test_batch_larger_than_dataset(capsys, tmp_path, tiny_file):
  _fails(capsys, ["train", "--config", tiny_file, "--workdir", str(tmp_path / "r"),
                  "--config.train.batch_size=1024"], "exceeds")
  assert not (tmp_path / "r").exists()


def test_workdir_of_another_config(capsys, tmp_path, tiny_file, monkeypatch):
  workdir = str(tmp_path / "run")
  assert cli.main(["train", "--config", tiny_file, "--workdir", workdir, "--no-progress",
                   "--config.eval.iw_samples=0"]) == 0
  capsys.readouterr()
  _fails(capsys, ["train", "--config", tiny_file, "--workdir", workdir, "--resume",
                  "--config.eval.iw_samples=0", "--config.model.latent_dim=7"],
         "another config", "model.latent_dim")
  _fails(capsys, ["train", "--config", tiny_file, "--workdir", workdir,
                  "--config.eval.iw_samples=0"], "--resume")
  # evaluate (restoring the run once for both evaluators) and sample work on it.
  from vae_jax import evaluate  # pylint: disable=g-import-not-at-top
  restores = []
  restore = evaluate.restore_run
  monkeypatch.setattr(evaluate, "restore_run", lambda w: restores.append(w) or restore(w))
  assert cli.main(["evaluate", "--workdir", workdir, "--k", "4"]) == 0
  assert '"eval/nll_iw_k": 4' in capsys.readouterr().out and restores == [workdir]
  out = tmp_path / "s.png"
  assert cli.main(["sample", "--workdir", workdir, "--n", "9", "--out", str(out)]) == 0
  assert out.read_bytes()[:4] == b"\x89PNG"


def test_resume_without_checkpoint(capsys, tmp_path, tiny_file):
  _fails(capsys, ["train", "--config", tiny_file, "--workdir", str(tmp_path / "r"), "--resume"],
         "no checkpoint")
  assert not (tmp_path / "r").exists()


def test_evaluate_without_checkpoint(capsys, tmp_path):
  _fails(capsys, ["evaluate", "--workdir", str(tmp_path)], "not a run directory")
  (tmp_path / "config.json").write_text("{}")
  _fails(capsys, ["evaluate", "--workdir", str(tmp_path)], "no checkpoint")


def test_corrupt_checkpoint(capsys, tmp_path, tiny_file):
  workdir = tmp_path / "run"
  assert cli.main(["train", "--config", tiny_file, "--workdir", str(workdir), "--no-progress",
                   "--config.eval.iw_samples=0"]) == 0
  for f in (workdir / "ckpt" / "1" / "state").rglob("*"):
    if f.is_file() and f.stat().st_size > 0:
      f.write_bytes(b"garbage")
  _fails(capsys, ["evaluate", "--workdir", str(workdir)], "unreadable")


def test_import_dir_without_idx_files(capsys, tmp_path):
  _fails(capsys, ["data", "import", "mnist", "--from", str(tmp_path), "--data-dir",
                  str(tmp_path / "tfds")], "IDX")


def test_bad_arguments(capsys, tmp_path):
  _fails(capsys, ["train"], "--config")
  _fails(capsys, ["fly"], "invalid choice")
  _fails(capsys, ["sample", "--workdir", str(tmp_path), "--n", "0", "--out", "x.png"], "--n")
  _fails(capsys, ["evaluate", "--workdir", str(tmp_path), "--config.seed=1"], "only apply")


def test_console_script_exit_status_and_no_traceback(tmp_path):
  env = dict(os.environ, TFDS_DATA_DIR=str(tmp_path / "empty"))
  proc = subprocess.run([sys.executable, "-m", "vae_jax.cli", "train", "--config", MNIST_MLP,
                         "--workdir", str(tmp_path / "r"), "--config.optim.lr=x"],
                        capture_output=True, text=True, env=env, check=False)
  assert proc.returncode == 2
  assert "Traceback" not in proc.stderr
  assert proc.stderr.strip().splitlines()[-1].startswith("vae-jax: error: bad override")


def test_configs_are_found_by_name_and_listed(capsys, tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)  # No checkout here: the names resolve inside the package.
  assert config_lib.config_path("mnist_mlp") == config_lib.CONFIG_DIR / "mnist_mlp.py"
  by_name, by_path = config_lib.load_config("mnist_mlp"), config_lib.load_config(MNIST_MLP)
  assert by_name.to_json() == by_path.to_json()
  assert cli.main(["configs"]) == 0
  listing = dict(line.split(None, 1) for line in capsys.readouterr().out.splitlines())
  assert set(listing) == {p.stem for p in config_lib.CONFIG_DIR.glob("*.py")} - {"__init__"}
  assert listing["mnist_mlp"].startswith("the MNIST VAE of pytorch/examples")
  assert all("\n" not in v and len(v) < 150 for v in listing.values())
  _fails(capsys, ["train", "--config", "mnist_mpl"], "no config named mnist_mpl",
         "did you mean mnist_mlp?", "vae-jax configs")
  _fails(capsys, ["train", "--config", "nowhere/mnist_mlp.py"], "nowhere/mnist_mlp.py not found")
  assert not list(tmp_path.iterdir())  # Nothing written.


def test_version_comes_from_the_installed_distribution(capsys):
  from importlib import metadata  # pylint: disable=import-outside-toplevel
  with pytest.raises(SystemExit) as e:
    cli.main(["--version"])
  assert e.value.code == 0
  assert capsys.readouterr().out.strip() == f"vae-jax {metadata.version('vae_jax')}"
