"""What study reports read from finished run directories (the runner's contract: config.json,
metrics.jsonl, summary.json, ckpt/ and best/): summaries, training time, restored params at any
kept epoch, the test posterior, and table cells as mean ± sd over seeds; and what study runners
share: their command-line options, the train-then-report driver and the README's opening lines.
"""

from __future__ import annotations

import functools
import json
import shlex
import statistics
import sys
import time
from pathlib import Path

import jax
import numpy as np

from common.jobs import run_steps  # noqa: F401  # The runners' study.run_steps.
from vae_jax import (checkpointing, config as config_lib, data, evaluate, evaluators, scoring,
                     sweep, train)


def mean_sd(values, digits: int = 2) -> str:
  """'mean ± sd' (sample sd) of the values, the value alone for one, '–' for none."""
  values = [float(v) for v in values]
  if not values:
    return "–"
  if len(values) == 1:
    return f"{values[0]:.{digits}f}"
  return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


@functools.lru_cache(maxsize=16)
def _encode_program(objective):
  """Jitted (params, uint8 images [B, H, W, C], labels [B]) -> (mean [B, Z], logvar [B, Z])."""
  def encode(params, images, labels):
    x = objective.images({"image": images})
    return objective.model.apply({"params": params}, x,
                                 labels if objective.conditional else None,
                                 method=objective.model.encode)
  return jax.jit(encode)


def posterior(objective, params, images, labels, batch_size: int = 1000):
  """Parameters of q(z | x[, y]) for a dataset, in batches.

  Args:
    objective: a VAE / CVAE objective (objectives.py). images: uint8 [N, H, W, C].
    labels: int32 [N] (read by a conditional model only).
  Returns:
    (mean [N, Z], logvar [N, Z]) as float64 NumPy arrays.
  """
  encode = _encode_program(objective)
  parts = [encode(params, images[i:i + batch_size], labels[i:i + batch_size])
           for i in range(0, len(images), batch_size)]
  return tuple(np.concatenate([np.asarray(p[j], np.float64) for p in parts]) for j in (0, 1))


# What a run's record keeps (the small result files; no checkpoints): what a study README's
# tables are made of, so that a study can be re-rendered in a checkout without its run dirs.
RECORD_FILES = ("config.json", "summary.json", "metrics.jsonl", "eval/iw_nll.json")


class RunDir:
  """One finished run directory, or its record (RECORD_FILES, no checkpoints): summary.json,
  metrics.jsonl rows and (lazily, run directories only) restored params.

  Raises:
    FileNotFoundError (on construction): no summary.json, the run has not finished.
  """

  def __init__(self, run_dir: str | Path):
    self.dir = Path(run_dir)
    self.summary = json.loads((self.dir / "summary.json").read_text())
    self.history = [json.loads(line) for line in
                    (self.dir / "metrics.jsonl").read_text().splitlines() if line]
    self._restored = None

  @property
  def has_checkpoint(self) -> bool:
    """Whether params can be restored (a run directory, not a record)."""
    return (self.dir / "ckpt").is_dir()

  @property
  def seed(self) -> int:
    return self.summary["seed"]

  @property
  def train_minutes(self) -> float:
    """Training time of this run over all its invocations (metrics.jsonl keeps every epoch): its
    share of each program epoch (epoch_seconds / runs in the program)."""
    return sum(r["epoch_seconds"] / r["runs_in_program"] for r in self.history) / 60

  @property
  def epoch_seconds(self) -> list[float]:
    """Wall-clock seconds of each epoch of this run's program, over all its invocations
    (metrics.jsonl keeps every epoch)."""
    return [r["epoch_seconds"] for r in self.history]

  def restored(self):
    """(config, objective, params, keys, epoch) of the state the summary reports
    (evaluate.restore_run)."""
    if self._restored is None:
      self._restored = evaluate.restore_run(self.dir)
    return self._restored

  def params_at(self, epoch: int):
    """Params of the checkpoint of `epoch` in ckpt/ (the run must have kept it:
    train.keep_checkpoints=0 keeps every one).

    Raises:
      checkpointing.CheckpointError: that epoch was not kept or is unreadable.
    """
    config, objective, _, _, _ = self.restored()
    hparams = train.hparams_from_config(config)
    abstract = evaluate.abstract_state(objective, train.optimizer_from_config(config),
                                       data.image_shape(config.data.name), hparams)
    return checkpointing.restore_state(self.dir, epoch, abstract).params

  def kept_epochs(self) -> list[int]:
    """Epochs with a checkpoint in ckpt/, ascending."""
    with checkpointing.manager(self.dir) as mngr:
      return sorted(mngr.all_steps())



def finished_run(run_dir: Path, record_dir: Path) -> RunDir | None:
  """The run in `run_dir` when it holds a summary.json, else its record in `record_dir` when
  that does, else None (not finished)."""
  for d in (run_dir, record_dir):
    if (d / "summary.json").is_file():
      return RunDir(d)
  return None


def untrained_seeds(seeds, reuse: bool, record_of) -> list:
  """The seeds to train: all of them, or with --reuse those without a summary in their record
  directory `record_of(seed)`."""
  return [s for s in seeds if not (reuse and (record_of(s) / "summary.json").is_file())]


def save_record(run: RunDir, record_dir: Path) -> None:
  """Copies RECORD_FILES of a finished run directory into `record_dir` (a study commits its
  records beside its README; a record is left as it is)."""
  if run.dir.resolve() == record_dir.resolve():
    return
  for name in RECORD_FILES:
    if (run.dir / name).is_file():
      target = record_dir / name
      target.parent.mkdir(parents=True, exist_ok=True)
      tmp = target.with_name(f".{target.name}.tmp")
      tmp.write_bytes((run.dir / name).read_bytes())
      tmp.replace(target)


def test_images(counts) -> str:
  """'10k test images' (or '1,000 test images' for a cut test split, data.test_subset) from the
  runs' test split sizes (summary 'test_images'); 'test images' when a run predates the count
  (None) or they disagree."""
  counts = set(counts)
  if len(counts) != 1 or None in counts:
    return "test images"
  n = counts.pop()
  return f"{n // 1000}k test images" if n >= 10000 and n % 1000 == 0 else f"{n:,} test images"


def command_line(script: str) -> str:
  """The command that is running, as a README names it: 'python <script> <arguments>'."""
  return " ".join(["python", script, *map(shlex.quote, sys.argv[1:])])


def add_study_arguments(parser, runs: Path, out: Path) -> None:
  """The options every study runner shares: --reuse, --resume, --train-only, --report-only,
  --override KEY=VALUE ..., --runs DIR (parent of its run directories), --out DIR (README),
  --jobs N (run_steps)."""
  parser.add_argument("--reuse", action="store_true", help="keep runs that hold a summary.json")
  parser.add_argument("--resume", action="store_true", help="continue runs from a checkpoint")
  parser.add_argument("--train-only", action="store_true", help="skip the README")
  parser.add_argument("--report-only", action="store_true",
                      help="train nothing: write the README from the finished runs")
  parser.add_argument("--override", nargs="*", default=[],
                      help="KEY=VALUE config overrides for every run (quick checks)")
  parser.add_argument("--runs", type=Path, default=runs, help="parent of the run directories")
  parser.add_argument("--out", type=Path, default=out, help="where README.md and figures go")
  parser.add_argument("--jobs", type=int, default=1,
                      help="train this many groups at a time, each process on a CPU core of "
                           "its own")


def train_sweep(config_file, overrides, sweeps, run_dir: Path, args) -> tuple[list[dict], float]:
  """The runs of one group of a study grid, through `vae-jax train --sweep`'s machinery: the
  config file with `overrides` and the user's --override applied, `sweeps` ("key=v1,v2", e.g.
  "seed=0,1,2") expanded into <run_dir>/<name>/ run directories grouped into shared programs;
  --resume and --reuse as the runner got them.

  Returns:
    (sweep.run_sweep's results, seconds it took).
  Raises:
    ConfigError, DataError, RunError: as sweep.run_sweep.
  """
  start = time.perf_counter()
  config = config_lib.load_config(config_file)
  config_lib.apply_overrides(config, [*overrides, *args.override])
  results = sweep.run_sweep(config, sweeps, run_dir, resume=args.resume, reuse=args.reuse,
                            progress=False)
  return results, time.perf_counter() - start


def seed_sweep(seeds) -> list[str]:
  """The sweep of a group's seeds: ["seed=0,1,2"]."""
  return [f"seed={','.join(map(str, seeds))}"]


def seed_dir(group_dir: str | Path, seed: int) -> Path:
  """The run directory of one seed of a group: <group_dir>/seed=<s>/ (seed_sweep's layout; the
  one naming of every study's runs)."""
  return Path(group_dir) / f"seed={seed}"


def run_study(args, train_steps, write_report, before_training=None) -> int:
  """Calls every train_steps() (skipped with --report-only; --jobs of them at a time, run_steps),
  then write_report() (skipped with --train-only); a bad config or missing dataset prints one
  line and gives exit status 2. `before_training()`, if given, runs once the options are checked
  and only when something is to train (a runner's record of the invocation, e.g. growth's
  study.json): a refused command writes nothing.

  Returns:
    The exit status: 0 or 2.
  """
  if getattr(args, "jobs", 1) < 1:
    print(f"error: --jobs {args.jobs}: give at least 1", file=sys.stderr)
    return 2
  steps = [] if args.report_only else list(train_steps)
  if steps and before_training is not None:
    before_training()
  try:
    run_steps(steps, getattr(args, "jobs", 1))
  except (config_lib.ConfigError, data.DataError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  if not args.train_only:
    write_report()
  return 0


def readme_head(title: str, command: str, source: str, reuse_note: str = "") -> list[str]:
  """The opening lines every study README shares: title, the command that made it (and that
  `--reuse` re-renders it), the seed study's summary, and the 'What runs here' heading."""
  return [f"# {title}", "",
          f"Made by `{command}` (`--reuse` re-renders from the run directories{reuse_note} "
          "without training).", "", "## The study", "", source, "", "## What runs here", ""]


def run_score(workdir: str | Path) -> dict | None:
  """The run's classifier-FID / IS (`vae-jax score`'s dict, cached in <workdir>/eval/fid_is.json),
  or None when no classifier is trained for its dataset (see score_note).

  Raises:
    scoring.ScoreError: as scoring.score_run (e.g. an AE run: no prior to sample).
  """
  name = json.loads((Path(workdir) / "config.json").read_text())["data"]["name"]
  if not (scoring.default_classifier_dir(name) / "summary.json").is_file():
    return None
  return evaluators.cached_score(workdir)


def score_note(scores, dataset: str) -> str:
  """One README sentence naming what the FID / IS columns are and their references (classifier
  hash and accuracy, FID floor, real-data IS), from the first of `scores` that is not None; or
  how to get the columns when none was scored."""
  scored = next((s for s in scores if s), None)
  clf = scoring.default_classifier_dir(dataset)
  if scored is None:
    return (f"classifier-FID / IS: no classifier in {clf}; train it (`vae-jax train --config "
            f"vae_jax/configs/classifier_{dataset}.py --workdir {clf}`) and re-render with "
            "`--reuse`.")
  return (f"classifier-FID / IS (`vae-jax score`, n = {scored['n']}): Fréchet distance between "
          "the penultimate features of the in-repo CNN classifier for prior samples (decoder "
          "means) and for test images, and the inception score of the samples' class "
          f"probabilities; not Inception's. Classifier {scored['classifier_hash']} (test "
          f"accuracy {scored['classifier_test_accuracy']:.2%}); references: FID floor (train vs "
          f"test images) {scored['fid_floor_train_vs_test']:.2f}, IS of real test images "
          f"{scored['is_real_test']:.2f}.")
