"""`--sweep KEY=V1,V2,...`: the product of config values, grouped into compiled programs.

Runs whose configs differ only in traced fields (seed, objective.beta, optim.lr,
optim.weight_decay; train.TRACED_KEYS) share one program, vmapped over a runs axis; values that
change shapes or static choices (latent size, widths, batch size, ...) make separate programs,
run one after another. train.vmap_runs=never (or auto where vmapping would be slower, see
runner.vmaps_runs) gives every run its own program. Every run writes `DIR/<key=value,...>/` with
the full run-directory contract; `DIR/sweep.json` lists every run with its program.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import shutil
from pathlib import Path

from vae_jax import checkpointing, config as config_lib, files, locking, parallel, rundir, runner

SWEEP_FILE = "sweep.json"


@dataclasses.dataclass(frozen=True)
class Run:
  """name: 'key=value,...' (its directory under the sweep dir); overrides: ['key=value', ...]."""
  name: str
  overrides: tuple[str, ...]
  config: object
  program: int = 0


def parse(config, sweeps: list[str]) -> list[tuple[str, list[str]]]:
  """['KEY=V1,V2', ...] -> [(KEY, [raw values])]: each value is checked against the type of the
  config field (as --config.KEY=VALUE would be). Values of tuple fields are separated by ';'
  (--sweep model.encoder.widths=400;512,256).

  Raises:
    config_lib.ConfigError: a missing '=', an unknown or repeated key, no value, a repeated or
      malformed value.
  """
  out, seen = [], set()
  for item in sweeps:
    key, sep, raw = item.partition("=")
    if not sep or not key or not raw:
      raise config_lib.ConfigError(f"malformed --sweep {item}; write --sweep KEY=V1,V2,...")
    if key in seen:
      raise config_lib.ConfigError(f"--sweep {key} given twice; list all its values in one --sweep")
    seen.add(key)
    probe = config.copy_and_resolve_references()
    config_lib.apply_overrides(probe, [f"{key}={raw.split(';')[0].split(',')[0]}"])  # Key check.
    current = config_lib.get_path(config, key)
    values = raw.split(";") if isinstance(current, (tuple, list)) else raw.split(",")
    if any(not v for v in values) or len(set(values)) != len(values):
      raise config_lib.ConfigError(f"bad --sweep {item}: values must be non-empty and distinct")
    for v in values:
      config_lib.apply_overrides(probe, [f"{key}={v}"])  # Type check of every value.
    out.append((key, values))
  return out


def expand(config, sweeps: list[tuple[str, list[str]]]) -> list[Run]:
  """The product of the sweep values as Runs (validated configs), numbered by program in order
  of first appearance.

  Raises:
    config_lib.ConfigError: a combination that fails config validation.
  """
  runs, programs = [], {}
  for combo in itertools.product(*[[(k, v) for v in values] for k, values in sweeps]):
    overrides = tuple(f"{k}={v}" for k, v in combo)
    c = config_lib.apply_overrides(config.copy_and_resolve_references(), list(overrides))
    try:
      config_lib.validate(c)
    except config_lib.ConfigError as e:
      raise config_lib.ConfigError(f"sweep run {','.join(overrides)}: {e}") from None
    key = runner.program_key(c) if runner.vmaps_runs(c) else ",".join(overrides)
    program = programs.setdefault(key, len(programs))
    runs.append(Run(",".join(overrides).replace("/", "_"), overrides, c, program))
  return runs


def run_sweep(config, sweep_args: list[str], workdir: str | Path, *, resume: bool = False,
              reuse: bool = False, progress: bool = True) -> list[dict]:
  """Trains every run of the sweep; returns {name, program, workdir, summary} per run trained or
  reused. The sweep, every run's config and what its directory holds are checked before anything
  is written (a dataset a later program needs is checked when that program starts).

  reuse: skip runs that already hold a summary.json. resume: continue runs that hold a
  checkpoint (runs without one start fresh, in a program of their own).

  Raises:
    config_lib.ConfigError for bad sweeps; as runner.train_and_evaluate_runs.
  """
  config_lib.validate(config)
  runs = expand(config, parse(config, sweep_args))
  workdir = Path(workdir)
  reused = {}  # name -> the summary of a finished run --reuse keeps.
  for r in runs:  # Conflicts with what is on disk are refused before anything is written.
    run_dir = workdir / r.name
    if reuse and (run_dir / "summary.json").is_file():
      saved = config_lib.with_defaults(_read_json(run_dir / "config.json"))
      reused[r.name] = _read_json(run_dir / "summary.json")
      changed = rundir.config_diff(json.loads(config_lib.to_json(saved)),
                                   json.loads(config_lib.to_json(r.config)))
      if [k for k in changed if k not in rundir.COMPUTE_ONLY]:
        raise config_lib.ConfigError(f"--reuse: {run_dir} was trained with another config; "
                                     "use another --workdir or drop --reuse")
    elif checkpointing.latest_epoch(run_dir) is not None and not resume:
      raise config_lib.ConfigError(f"{run_dir} already holds a checkpoint; pass --resume to "
                                   "continue it, --reuse to keep finished runs, or another "
                                   "--workdir")
  _check_ours(workdir, runs)
  listing = [{"name": r.name, "overrides": list(r.overrides), "program": r.program,
              "workdir": str(workdir / r.name)} for r in runs]
  created, writer = not workdir.exists(), parallel.is_writer()
  if writer:  # Process 0 of a multi-host launch (the only process otherwise).
    workdir.mkdir(parents=True, exist_ok=True)
    with locking.hold([workdir], wait=True):  # One sweep.json update at a time.
      _merge_listing(workdir / SWEEP_FILE, sweep_args, listing)
  try:
    return _train_programs(runs, workdir, resume, reused, progress)
  except BaseException:
    if writer and created and not any(p.is_dir() for p in workdir.iterdir()):
      shutil.rmtree(workdir, ignore_errors=True)  # Nothing trained: leave nothing behind.
    raise


def _read_json(path: Path):
  """The JSON in `path`. Raises config_lib.ConfigError: missing or unreadable (one line)."""
  try:
    return json.loads(path.read_text())
  except (OSError, ValueError):
    raise config_lib.ConfigError(f"--reuse: {path} is missing or unreadable; delete its run "
                                 "directory to train it again, or drop --reuse") from None


def _check_ours(workdir: Path, runs) -> None:
  """Refuses (before anything is written) a sweep dir or run dir that vae_jax may not write into
  (files.not_ours: a file, not writable, holding files but no sweep.json / config.json) or a run
  dir another live process trains.

  Raises:
    config_lib.ConfigError: naming the directory and the fix.
  """
  for path, marker in [(workdir, SWEEP_FILE)] + [(workdir / r.name, "config.json") for r in runs]:
    problem = files.not_ours(path, marker)
    if problem:
      raise config_lib.ConfigError(f"--workdir {workdir}: {problem}; pass a new or empty "
                                   "directory you can write to")
    if path != workdir and path.is_dir():
      locking.check_free(path)


def _merge_listing(path: Path, sweep_args: list[str], listing: list[dict]) -> None:
  """sweep.json: this sweep's runs added to (or replacing, by name) the runs it lists already,
  written atomically; `sweep` lists every --sweep argument given so far."""
  old = {"sweep": [], "runs": []}
  if path.exists():
    try:
      old = json.loads(path.read_text())
      old_args, old_runs = list(old["sweep"]), list(old["runs"])
      names = {r["name"] for r in listing}
      old = {"sweep": old_args, "runs": [r for r in old_runs if r["name"] not in names]}
    except (ValueError, KeyError, TypeError):
      raise config_lib.ConfigError(f"{path} is unreadable (not a vae_jax sweep listing); restore "
                                   "or delete it, or pass another --workdir") from None
  files.remove_leftovers(path.parent)
  args = old["sweep"] + [a for a in sweep_args if a not in old["sweep"]]
  files.write_json(path, {"sweep": args, "runs": old["runs"] + listing}, indent=2)


def _train_programs(runs, workdir: Path, resume: bool, reused: dict, progress: bool) -> list[dict]:
  """Trains the runs not in `reused` (name -> summary), one program at a time."""
  results = []
  for program in sorted({r.program for r in runs}):
    members = [r for r in runs if r.program == program]
    results += [{"name": r.name, "program": program, "workdir": str(workdir / r.name),
                 "summary": reused[r.name]} for r in members if r.name in reused]
    members = [r for r in members if r.name not in reused]
    groups = [members]
    if resume:  # Runs started (config.json written) and runs not started are two programs.
      has = [r for r in members if (workdir / r.name / "config.json").exists()]
      groups = [has, [r for r in members if r not in has]]
    for group, group_resume in zip(groups, (resume, False)):
      if not group:
        continue
      summaries = runner.train_and_evaluate_runs(
          [r.config for r in group], [workdir / r.name for r in group], resume=group_resume,
          progress=progress)
      results += [{"name": r.name, "program": program, "workdir": str(workdir / r.name),
                   "summary": s} for r, s in zip(group, summaries)]
  return results
