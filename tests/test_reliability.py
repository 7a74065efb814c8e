"""Reliability: non-finite steps skipped and counted, runs that diverge fail alone."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vae_jax import checkpointing, cli, compiled, evaluate, locking, runner, train


class _Poisoned:
  """The objective with a NaN loss from optimizer step `start` on, for runs whose beta > 1."""

  def __init__(self, objective, state, hparams, start):
    self._objective, self._bad = objective, (state.step >= start) & (hparams.beta > 1.0)

  def __getattr__(self, name):
    return getattr(self._objective, name)

  def terms(self, params, batch, key, hparams):
    terms = self._objective.terms(params, batch, key, hparams)
    return terms | {"loss": jnp.where(self._bad, jnp.nan, terms["loss"])}


@pytest.fixture
def poison_from_step(monkeypatch):
  """poison_from_step(start) patches train.train_step; the process's shared programs are
  forgotten before (theirs are unpoisoned) and after (the poisoned ones must not serve a later
  test)."""
  real = train.train_step

  def poisoned(start):
    def step(state, batch, key, hparams, *, objective, tx):
      return real(state, batch, key, hparams, tx=tx,
                  objective=_Poisoned(objective, state, hparams, start))
    compiled.clear_shared()
    monkeypatch.setattr(train, "train_step", step)
  yield poisoned
  compiled.clear_shared()


def _rows(workdir):
  return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def test_nonfinite_steps_are_skipped_counted_and_stop_the_run(tiny, tmp_path, poison_from_step):
  """8 steps per epoch; NaN from step 12: 4 skipped in epoch 2, the 6th in a row in epoch 3."""
  poison_from_step(12)
  config = tiny(**{"train.epochs": 4, "objective.beta": 2.0, "train.max_nonfinite_steps": 6,
                   "eval.iw_samples": 0})
  with pytest.raises(runner.RunError, match=r"6 consecutive training steps had a non-finite "
                     r"loss or gradient in epoch 3 .* last good checkpoint is epoch 2; lower "
                     r"--config.optim.lr"):
    runner.train_and_evaluate(config, tmp_path / "r", progress=False)
  rows = _rows(tmp_path / "r")
  assert [r["train/nonfinite_steps"] for r in rows] == [0, 4, 8]
  assert checkpointing.latest_epoch(tmp_path / "r") == 2  # Epoch 3 (failed) was not saved.
  _, _, params, _, _ = evaluate.restore_run(tmp_path / "r")
  assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(params))


def test_a_diverging_run_fails_alone_under_the_runs_axis(tiny, tmp_path, poison_from_step):
  poison_from_step(12)
  make = lambda beta: tiny(**{"train.epochs": 3, "objective.beta": beta,  # noqa: E731
                              "train.max_nonfinite_steps": 6, "eval.iw_samples": 4})
  ok, bad = runner.train_and_evaluate_runs([make(1.0), make(2.0)],
                                           [tmp_path / "ok", tmp_path / "bad"], progress=False)
  assert ok["failed"] is None and ok["nonfinite_steps"] == 0 and ok["epoch"] == 3
  assert "epoch 3" in bad["failed"] and bad["nonfinite_steps"] == 4 + 8
  alone = runner.train_and_evaluate(make(1.0), tmp_path / "alone", progress=False)
  np.testing.assert_allclose(ok["eval/loss"], alone["eval/loss"], rtol=1e-5)
  assert np.isfinite(bad["eval/loss"]) and checkpointing.latest_epoch(tmp_path / "bad") == 2
  assert [r["epoch"] for r in _rows(tmp_path / "bad")] == [1, 2, 3]


def test_skipped_step_leaves_the_state_unchanged(tiny):
  from vae_jax import objectives  # pylint: disable=g-import-not-at-top
  config = tiny()
  objective = objectives.from_config(config, (28, 28, 1))
  tx = train.make_optimizer("adam")
  h = train.hparams_from_config(config)
  state = train.init_state(objective, tx, (28, 28, 1), jax.random.key(0), h)
  batch = {"image": jnp.zeros((4, 28, 28, 1), jnp.uint8), "label": jnp.zeros((4,), jnp.int32)}
  poisoned = _Poisoned(objective, state, train.Hparams.of(beta=2.0), start=0)
  new, metrics = train.train_step(state, batch, jax.random.key(1), h, objective=poisoned, tx=tx)
  assert bool(metrics["nonfinite"])
  assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), new, state))
  new, metrics = train.train_step(state, batch, jax.random.key(1), h, objective=objective, tx=tx)
  assert not bool(metrics["nonfinite"]) and int(new.step) == 1


def _config_file(tmp_path, config):
  from vae_jax import config as config_lib  # pylint: disable=g-import-not-at-top
  path = tmp_path / "config.py"
  path.write_text("import ml_collections, json\ndef get_config():\n  return "
                  f"ml_collections.ConfigDict(json.loads({config_lib.to_json(config)!r}))\n")
  return str(path)


def _comparable(workdir):
  return [{k: v for k, v in r.items() if k != "epoch_seconds"} for r in _rows(workdir)]


def _corrupt(checkpoint_dir):
  for path in checkpoint_dir.rglob("*"):
    if path.is_file() and path.parent.name == "d":
      path.write_bytes(bytes(len(path.read_bytes())))  # Same size, all zeros.


def test_corrupt_latest_checkpoint_falls_back_to_the_newest_good_one(tiny, tmp_path, capsys):
  base = {"eval.iw_samples": 0, "train.keep_checkpoints": 0}
  runner.train_and_evaluate(tiny(**base, **{"train.epochs": 3}), tmp_path / "r", progress=False)
  _corrupt(tmp_path / "r" / "ckpt" / "3")
  capsys.readouterr()
  resumed = runner.train_and_evaluate(tiny(**base, **{"train.epochs": 4}), tmp_path / "r",
                                      resume=True, progress=False)
  err = capsys.readouterr().err
  assert "skipping a bad checkpoint" in err and "resumes from epoch 2" in err
  full = runner.train_and_evaluate(tiny(**base, **{"train.epochs": 4}), tmp_path / "full",
                                   progress=False)
  assert _comparable(tmp_path / "r") == _comparable(tmp_path / "full")
  assert resumed["eval/loss"] == full["eval/loss"]
  for epoch in checkpointing.all_epochs(tmp_path / "r"):
    _corrupt(tmp_path / "r" / "ckpt" / str(epoch))
  with pytest.raises(checkpointing.CheckpointError, match="no good checkpoint"):
    runner.train_and_evaluate(tiny(**base, **{"train.epochs": 5}), tmp_path / "r", resume=True,
                              progress=False)
  with pytest.raises(checkpointing.CheckpointError, match="does not match its digest|unreadable"):
    evaluate.restore_run(tmp_path / "r")


def test_a_digest_mismatch_is_caught(tiny, tmp_path):
  runner.train_and_evaluate(tiny(**{"eval.iw_samples": 0}), tmp_path / "r", progress=False)
  meta = tmp_path / "r" / "ckpt" / "1" / "meta" / "metadata"
  meta.write_text(meta.read_text().replace('"digest": "', '"digest": "0'))
  with pytest.raises(checkpointing.CheckpointError, match="does not match its digest"):
    evaluate.restore_run(tmp_path / "r")


def test_second_writer_is_refused_naming_the_pid(tiny, tmp_path, capsys):
  workdir = tmp_path / "r"
  runner.train_and_evaluate(tiny(**{"eval.iw_samples": 0}), workdir, progress=False)
  import subprocess, sys  # pylint: disable=g-import-not-at-top,multiple-imports
  holder = subprocess.Popen([sys.executable, "-c", (
      "import sys, time; sys.path.insert(0, %r)\n"
      "from vae_jax import locking\n"
      "with locking.hold([%r]):\n  print('held', flush=True); time.sleep(600)\n")
      % (str(__import__("pathlib").Path(__file__).resolve().parents[1]), str(workdir))],
      stdout=subprocess.PIPE, text=True)
  assert holder.stdout.readline().strip() == "held"
  cfg = _config_file(tmp_path, tiny(**{"eval.iw_samples": 0, "train.epochs": 2}))
  assert cli.main(["train", "--config", cfg, "--workdir", str(workdir), "--resume"]) == 2
  err = capsys.readouterr().err.strip()
  assert f"pid {holder.pid}" in err and "\n" not in err and "in use" in err
  holder.kill()  # SIGKILL: the kernel releases its lock; no stale lock blocks the resume.
  holder.wait()
  locking.check_free(workdir)
  assert cli.main(["train", "--config", cfg, "--workdir", str(workdir), "--resume",
                   "--no-progress"]) == 0


def test_resume_of_a_run_killed_before_its_first_checkpoint_starts_afresh(tiny, tmp_path, capsys):
  config = tiny(**{"eval.iw_samples": 0})
  workdir = tmp_path / "r"
  workdir.mkdir()
  from vae_jax import config as config_lib  # pylint: disable=g-import-not-at-top
  (workdir / "config.json").write_text(config_lib.to_json(config))  # As a killed run leaves it.
  capsys.readouterr()
  summary = runner.train_and_evaluate(config, workdir, resume=True, progress=False)
  assert "starting it afresh" in capsys.readouterr().err and summary["epoch"] == 1


def test_checkpoints_by_wall_time(tiny, tmp_path, monkeypatch):
  clock = iter(range(0, 10**6, 100))  # Every perf_counter() call: 100 s later.
  config = tiny(**{"train.epochs": 3, "train.checkpoint_every": 10, "eval.iw_samples": 0,
                   "train.checkpoint_minutes": 1.0, "train.keep_checkpoints": 0})
  monkeypatch.setattr(runner.time, "perf_counter", lambda: float(next(clock)))
  runner.train_and_evaluate(config, tmp_path / "r", progress=False)
  assert checkpointing.all_epochs(tmp_path / "r") == [3, 2, 1]  # Not only the last epoch.


def _tree(path):
  """Every file under path (or path itself) with its bytes."""
  if path.is_file():
    return {path: path.read_bytes()}
  return {p: p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def test_a_foreign_or_other_config_workdir_is_refused_untouched(tiny, tmp_path, capsys):
  import shutil  # pylint: disable=g-import-not-at-top
  cfg = _config_file(tmp_path, tiny(**{"eval.iw_samples": 0}))

  def refused(workdir):
    before = _tree(workdir)
    capsys.readouterr()
    assert cli.main(["train", "--config", cfg, "--workdir", str(workdir), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and _tree(workdir) == before
    return err

  a_file = tmp_path / "a_file"
  a_file.write_text("not a run")
  assert "is a file" in refused(a_file) and "is a file" in refused(a_file / "under")
  foreign = tmp_path / "foreign"
  (foreign / "ckpt").mkdir(parents=True)
  (foreign / "ckpt" / "data.bin").write_text("someone else's")
  (foreign / "summary.json").write_text("{}")
  assert "holds no vae_jax run" in refused(foreign)
  other = tmp_path / "other"  # A finished run of another config, its ckpt/ removed.
  runner.train_and_evaluate(tiny(**{"eval.iw_samples": 0, "model.latent_dim": 3}), other,
                            progress=False)
  shutil.rmtree(other / "ckpt")
  assert "another config" in refused(other) and "model.latent_dim" in refused(other)


def test_sweep_json_merges_and_a_refused_sweep_leaves_it_alone(tiny, tmp_path, capsys):
  cfg = _config_file(tmp_path, tiny(**{"eval.iw_samples": 0}))
  sweep_dir = tmp_path / "sweep"

  def train(*more):
    return cli.main(["train", "--config", cfg, "--workdir", str(sweep_dir), "--no-progress",
                     *more])

  assert train("--sweep", "seed=0,1") == 0
  first = (sweep_dir / "sweep.json").read_text()
  capsys.readouterr()
  assert train("--sweep", "seed=1,2") == 2  # seed=1 holds a checkpoint: refused, untouched.
  assert "seed=1" in capsys.readouterr().err
  with locking.hold([sweep_dir / "seed=0"]):  # A live run in it: refused, untouched.
    assert train("--sweep", "seed=0,3", "--resume") == 2
    assert "in use" in capsys.readouterr().err
  assert (sweep_dir / "sweep.json").read_text() == first and not (sweep_dir / "seed=2").exists()
  (tmp_path / "a_file").write_text("mine")
  for target in (tmp_path / "a_file", tmp_path / "a_file" / "sweep"):
    assert cli.main(["train", "--config", cfg, "--workdir", str(target), "--no-progress",
                     "--sweep", "seed=0,1"]) == 2
    assert "a_file is a file" in capsys.readouterr().err
  assert (tmp_path / "a_file").read_text() == "mine"
  assert train("--sweep", "seed=5") == 0  # Another sweep into the same directory: merged.
  listing = json.loads((sweep_dir / "sweep.json").read_text())
  assert [r["name"] for r in listing["runs"]] == ["seed=0", "seed=1", "seed=5"]
  assert listing["sweep"] == ["seed=0,1", "seed=5"]
  (sweep_dir / "seed=5" / "summary.json").write_text('{"eval/lo')  # Hand-edited, truncated.
  capsys.readouterr()
  assert train("--sweep", "seed=5", "--reuse") == 2
  err = capsys.readouterr().err
  assert err.count("\n") == 1 and "summary.json is missing or unreadable" in err


def test_damaged_run_files_are_refused_in_one_line(tiny, tmp_path, capsys, monkeypatch):
  import os  # pylint: disable=g-import-not-at-top
  cfg = _config_file(tmp_path, tiny(**{"eval.iw_samples": 0}))
  run = tmp_path / "r"
  train = ["train", "--config", cfg, "--workdir", str(run), "--no-progress"]
  assert cli.main(train) == 0
  resume = [*train, "--config.train.epochs=2", "--resume"]

  def refused(argv, fragment):
    before = _tree(run)
    capsys.readouterr()
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and fragment in err and _tree(run) == before, err

  for name, damaged, fragment in (
      ("metrics.jsonl", '{"epoch": 1, "train/lo', "metrics.jsonl line 1 is not a metrics row"),
      ("config.json", '{"data": {"na', "config.json is not a vae_jax config"),
      ("commit.json", "[]", "commit.json is unreadable")):
    good = (run / name).read_text()
    (run / name).write_text(damaged)
    refused(resume, fragment)
    if name == "config.json":
      refused(["evaluate", "--workdir", str(run)], "config.json is unreadable")
    (run / name).write_text(good)
  real_access = os.access
  monkeypatch.setattr(os, "access", lambda path, mode: path != tmp_path and real_access(path, mode))
  capsys.readouterr()
  assert cli.main(["train", "--config", cfg, "--workdir", str(tmp_path / "new")]) == 2
  assert "is not writable" in capsys.readouterr().err and not (tmp_path / "new").exists()


def test_a_full_disk_is_one_line_and_the_run_resumes(tiny, tmp_path, capsys, monkeypatch):
  import errno  # pylint: disable=g-import-not-at-top
  from vae_jax import files  # pylint: disable=g-import-not-at-top
  cfg = _config_file(tmp_path, tiny(**{"eval.iw_samples": 0, "train.epochs": 2}))
  run = tmp_path / "r"
  train = ["train", "--config", cfg, "--workdir", str(run), "--no-progress"]
  real = files.write_atomic

  def full_at_summary(path, text):
    if path.name == "summary.json":
      raise OSError(errno.ENOSPC, "No space left on device", str(path))
    real(path, text)

  monkeypatch.setattr(files, "write_atomic", full_at_summary)
  capsys.readouterr()
  assert cli.main(train) == 2
  err = capsys.readouterr().err
  assert err.count("\n") == 1 and "No space left on device" in err and "free space" in err
  monkeypatch.setattr(files, "write_atomic", real)
  assert cli.main([*train, "--resume"]) == 0
  assert json.loads((run / "summary.json").read_text())["epoch"] == 2


@pytest.mark.parametrize("damage", ["truncated_record", "dataset_info"])
def test_a_damaged_prepared_dataset_is_one_line(mnist_data_dir, tmp_path, damage):
  import shutil  # pylint: disable=g-import-not-at-top
  from pathlib import Path  # pylint: disable=g-import-not-at-top
  from vae_jax import data  # pylint: disable=g-import-not-at-top
  shutil.copytree(Path(mnist_data_dir) / "mnist", tmp_path / "mnist")
  if damage == "truncated_record":
    record = sorted((tmp_path / "mnist").rglob("mnist-test.tfrecord*"))[0]
    record.write_bytes(record.read_bytes()[:5000])
  else:
    next((tmp_path / "mnist").rglob("dataset_info.json")).write_text('{"name": "mni')
  with pytest.raises(data.DataError) as e:
    data.load_split("mnist", "test", str(tmp_path))
  assert "\n" not in str(e.value) and "vae-jax data import mnist" in str(e.value)


def test_a_config_that_does_not_match_its_checkpoint_is_one_clean_line(tiny, tmp_path):
  """Refused from orbax's metadata before any array is read (a restore failing mid-read left
  orbax's threads printing 'Event loop is closed' tracebacks around the line)."""
  import subprocess, sys  # pylint: disable=g-import-not-at-top,multiple-imports
  from pathlib import Path  # pylint: disable=g-import-not-at-top
  run = tmp_path / "r"
  runner.train_and_evaluate(tiny(**{"eval.iw_samples": 0}), run, progress=False)
  saved = json.loads((run / "config.json").read_text())
  saved["model"]["latent_dim"] = 7
  (run / "config.json").write_text(json.dumps(saved))
  proc = subprocess.run([sys.executable, "-m", "vae_jax.cli", "evaluate", "--workdir", str(run)],
                        capture_output=True, text=True, timeout=300, env=__import__("os").environ
                        | {"PYTHONPATH": str(Path(__file__).resolve().parents[1])})
  assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr[-2000:]
  assert "holds arrays of other shapes than this config's model" in proc.stderr
