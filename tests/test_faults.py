"""Fault injection: a run killed (SIGKILL) at each named write point (files.fault_point) resumes
with `--resume` to metrics bit-identical to the same run trained without interruption.

Three run kinds: a plain run, an early-stopping run (best/ too) and a 2-run sweep (one vmapped
program). The killed process is `vae-jax train` with $VAE_JAX_FAULT=POINT@N; its data arrays come
from an .npz the test wrote from runner.load_data (so it does not import TensorFlow; what is under
test is every write after the data load). Each killed process is forked from a server process that
imported vae_jax once (about 2 s of imports saved per child; a test process has started JAX's
threads and must not fork itself). The resume and the uninterrupted reference run in this process.
"""

import json
import os
import re
import select
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vae_jax import cli, config as config_lib, files, runner

REPO = Path(__file__).resolve().parents[1]
EPOCHS = 3
KINDS = {
    "plain": {},
    "early_stopping": {"data.validation_size": 100, "train.early_stopping.patience": 2},
    "sweep": {},
}
# Event files only where their write point is under test (they import TensorFlow); the setting
# changes no result (runner.COMPUTE_ONLY).
TENSORBOARD = {"tensorboard": ["--config.train.tensorboard=True"]}
SWEEP = ["--sweep", "seed=0,1"]
# kind -> (point, N): the N-th time the run reaches the point. Epoch e's checkpoint is committed
# when epoch e + 1 saves (commit.json hit 1 is the epoch-0 marker a fresh run writes).
MATRIX = {
    "plain": [("config.json", 1), ("metrics.jsonl", 2), ("ckpt", 2), ("commit.json", 3),
              ("tensorboard", 2), ("summary.json", 1)],
    "early_stopping": [("metrics.jsonl", 2), ("ckpt", 2), ("best", 2), ("commit.json", 3)],
    # ckpt@4: run 0's epoch-2 save issued, run 1's in flight; commit.json@2 and @4: between the
    # two runs' markers of epoch 0 and of epoch 1; summary.json@2: run 0 finished, run 1 not.
    "sweep": [("sweep.json", 1), ("ckpt", 4), ("commit.json", 2), ("commit.json", 4),
              ("summary.json", 2)],
}
CASES = [(kind, point, n) for kind, points in MATRIX.items() for point, n in points]
# A fork server: imports vae_jax (no JAX backend, no thread of its own yet), then for each request
# line [npz, argv, env, out] forks a child that runs `vae-jax ARGV` as its console script does
# (cli.entry) on the arrays of the .npz, its stdout and stderr in OUT.stdout / OUT.stderr, and
# answers the child's exit status (negative: killed by that signal), as subprocess reports it.
SERVER = """
import json, os, sys
import numpy as np
from vae_jax import cli, runner
for line in sys.stdin:
  npz, argv, env, out = json.loads(line)
  pid = os.fork()
  if pid:
    print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), flush=True)
    continue
  for fd, name in ((1, ".stdout"), (2, ".stderr")):
    os.dup2(os.open(out + name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
  os.environ.update(env)
  arrays = np.load(npz)
  runner.load_data = lambda config: {s: (arrays[s + "_x"], arrays[s + "_y"])
                                     for s in ("train", "val", "test") if s + "_x" in arrays}
  sys.argv = ["vae-jax", *argv]
  cli.entry()
"""
# Phases of a plain run (fault point, signal spec) -> the epoch --resume continues from (None:
# nothing committed yet; "any": whatever the line names). "+S": sent S seconds after the point
# from a timer thread, landing in native code (the first epoch's compile, where Python runs the
# handler only on its return, or inside JAX's GC callback) or, on a fast machine, later.
# The compile phase, repeated at three delays (the instant a signal lands varies with the delay).
SIGNALS = [("data", "SIGINT", None), ("epoch@1", "SIGINT+0.05", "any"),
           ("epoch@1", "SIGINT+0.2", "any"), ("epoch@1", "SIGINT+0.6", "any"),
           ("epoch@1", "SIGTERM+0.2", "any"), ("ckpt@2", "SIGTERM", 1), ("iw_nll", "SIGINT", 3),
           ("figures", "SIGINT+0.3", "any")]


@pytest.fixture(scope="module")
def prepared(mnist_data_dir, tmp_path_factory):
  """kind -> (config file, .npz of its data splits, the uninterrupted run's directory), made on
  first use in each test process."""
  from conftest import tiny_config  # pylint: disable=import-outside-toplevel
  root, out = tmp_path_factory.mktemp("faults"), {}

  def prepare(kind):
    if kind in out:
      return out[kind]
    config = tiny_config(mnist_data_dir, **{"train.epochs": EPOCHS, "eval.iw_samples": 4,
                                            **KINDS[kind]})
    cfg = root / f"{kind}.py"
    cfg.write_text("import ml_collections, json\ndef get_config():\n  return "
                   f"ml_collections.ConfigDict(json.loads({config_lib.to_json(config)!r}))\n")
    splits = runner.load_data(config)
    npz = root / f"{kind}.npz"
    np.savez(npz, **{f"{s}_{i}": a for s, (x, y) in splits.items() for i, a in
                     (("x", x), ("y", y))})
    reference = root / f"{kind}_reference"
    assert cli.main(_train(cfg, reference, kind)) == 0
    out[kind] = (cfg, npz, reference)
    return out[kind]

  return prepare


def _train(cfg, workdir, kind, *more):
  return ["train", "--config", str(cfg), "--workdir", str(workdir), "--no-progress",
          *(SWEEP if kind == "sweep" else []), *more]


def _run_dirs(workdir, kind):
  return [workdir / "seed=0", workdir / "seed=1"] if kind == "sweep" else [workdir]


def _results(run_dir):
  rows = [{k: v for k, v in json.loads(line).items() if k != "epoch_seconds"}
          for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
  summary = json.loads((run_dir / "summary.json").read_text())
  return rows, {k: summary[k] for k in ("epoch", "best_epoch", "stopped_epoch", "eval/loss",
                                         "eval/nll_iw")}


@pytest.mark.parametrize("kind,point,n", CASES, ids=[f"{k}-{p}@{n}" for k, p, n in CASES])
def test_kill_at_a_write_point_then_resume_equals_an_uninterrupted_run(prepared, forker, tmp_path,
                                                                      kind, point, n):
  cfg, npz, reference = prepared(kind)
  killed, more = tmp_path / "killed", TENSORBOARD.get(point, [])
  proc = forker(npz, _train(cfg, killed, kind, *more), f"{point}@{n}", killed)
  assert proc.returncode == -signal.SIGKILL, (f"{point}@{n} was not reached (exit "
                                              f"{proc.returncode}): {proc.stderr[-2000:]}")
  assert cli.main(_train(cfg, killed, kind, *more, "--resume")) == 0
  for run, ref in zip(_run_dirs(killed, kind), _run_dirs(reference, kind)):
    assert _results(run) == _results(ref), run.name
    assert not [p for p in run.rglob("*") if files.is_leftover(p.name) and p.name != ".lock"]
  if kind == "sweep":
    listing = json.loads((killed / "sweep.json").read_text())
    assert [r["name"] for r in listing["runs"]] == ["seed=0", "seed=1"]


@pytest.fixture(scope="module")
def forker():
  """The fork server of this test process (SERVER), started on first use."""
  server = []

  def run(npz, argv, fault, out):
    if not server:
      server.append(subprocess.Popen(
          [sys.executable, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
          text=True, env=os.environ | {"PYTHONPATH": str(REPO)}))
    proc = server[0]
    proc.stdin.write(json.dumps([str(npz), argv, {files.FAULT_ENV: fault}, str(out)]) + "\n")
    proc.stdin.flush()
    assert select.select([proc.stdout], [], [], 600)[0], "the killed process ran over 600 s"
    code = proc.stdout.readline()
    assert code, "the fork server ended"
    return subprocess.CompletedProcess(argv, int(code), Path(f"{out}.stdout").read_text(),
                                       Path(f"{out}.stderr").read_text())

  yield run
  if server:
    server[0].stdin.close()
    try:
      server[0].wait(timeout=60)
    except subprocess.TimeoutExpired:  # A child that hung past its test's assertion.
      server[0].kill()


@pytest.mark.parametrize("point,how,resumes_from", SIGNALS,
                         ids=[f"{p}:{h}" for p, h, _ in SIGNALS])
def test_sigint_and_sigterm_at_every_phase_stop_in_one_line_and_resume(prepared, forker, tmp_path,
                                                                       point, how, resumes_from):
  cfg, npz, reference = prepared("plain")
  killed = tmp_path / "killed"
  more = ["--config.eval.figures=True"] if point == "figures" else []
  proc = forker(npz, _train(cfg, killed, "plain", *more), f"{point}:{how}", killed)
  name = how.split("+")[0]
  assert proc.returncode == {"SIGINT": 130, "SIGTERM": 143}[name], proc.stderr[-2000:]
  last = proc.stderr.strip().splitlines()[-1]
  assert last.startswith(f"vae-jax: interrupted by {name}; "), proc.stderr[-2000:]
  assert "Traceback" not in proc.stderr and "Segmentation" not in proc.stderr
  fresh = f"{killed} holds no checkpoint yet; run the same command to start it again"
  resumes = re.fullmatch(rf"add --resume to continue {re.escape(str(killed))} from epoch (\d+)",
                         last.split("; ", 1)[1])
  assert last.split("; ", 1)[1] == fresh or resumes, last
  if resumes_from != "any":
    assert (int(resumes.group(1)) if resumes else None) == resumes_from, last
  # As the line says: the same command again, or with --resume.
  assert cli.main(_train(cfg, killed, "plain", *more, *(["--resume"] if resumes else []))) == 0
  assert _results(killed) == _results(reference)
