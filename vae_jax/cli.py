"""The `vae-jax` command: parse, validate, dispatch. Errors the user can fix print one line and
exit with status 2.

  vae-jax configs                                 (the shipped configs, by name)
  vae-jax train --config NAME|FILE [--config.a.b=VALUE ...] [--sweep KEY=V1,V2 ...] [--workdir DIR]
                [--resume] [--reuse] [--distributed]
  vae-jax evaluate --workdir DIR [--k 5000]
  vae-jax sample --workdir DIR --n 64 --out FILE
  vae-jax score --workdir DIR [--n 10000] [--classifier DIR] [--of prior|reconstructions]
                [--over-training]
  vae-jax explore --workdir DIR [--port 8765] [--host 127.0.0.1] [--num-test 2000]
  vae-jax data import NAME --from DIR|ARCHIVE [--data-dir D]
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
from pathlib import Path

from vae_jax import errors

USAGE_EXIT = 2
# A full or read-only disk, or a quota: the user's to fix, in one line.
DISK_ERRORS = (errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EACCES)


class UsageError(Exception):
  """One-line user error."""


class _Parser(argparse.ArgumentParser):

  def error(self, message):  # One line instead of usage + message.
    raise UsageError(f"{message} (see {self.prog} --help)")


def _parser() -> argparse.ArgumentParser:
  p = _Parser(prog="vae-jax", description="Variational autoencoders in JAX.")
  p.add_argument("--version", action="version", version=f"vae-jax {_version()}")
  sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
  sub.add_parser("configs", help="list the shipped configs (--config NAME) with their summary")

  t = sub.add_parser("train", help="train a model from a config file",
                     epilog="Override any config field with --config.KEY=VALUE, "
                            "e.g. --config.optim.lr=3e-4 --config.model.encoder.widths=512,256")
  t.add_argument("--config", required=True,
                 help="a shipped config's name (vae-jax configs lists them) or an "
                      "ml_collections config file defining get_config()")
  t.add_argument("--workdir", help="run directory (default checkpoints/<config name>)")
  t.add_argument("--resume", action="store_true", help="continue from the latest checkpoint")
  t.add_argument("--sweep", action="append", default=[], metavar="KEY=V1,V2,...",
                 help="train the product of these values (repeatable); runs differing only in "
                      "seed, objective.beta, optim.lr, optim.weight_decay share one vmapped "
                      "program; each run goes to WORKDIR/<key=value,...>/")
  t.add_argument("--reuse", action="store_true", help="with --sweep: skip finished runs")
  t.add_argument("--no-progress", action="store_true", help="hide the progress bar")
  t.add_argument("--distributed", action="store_true",
                 help="call jax.distributed.initialize() (automatic under SLURM / Open MPI / "
                      "JAX_COORDINATOR_ADDRESS): one process per host, process 0 writes the run")

  e = sub.add_parser("evaluate", help="test-set loss and IW-NLL of a trained run")
  e.add_argument("--workdir", required=True)
  e.add_argument("--k", type=int, default=5000, help="importance samples of the IW-NLL (>= 1)")

  s = sub.add_parser("sample", help="decode prior samples of a trained run into an image grid")
  s.add_argument("--workdir", required=True)
  s.add_argument("--n", type=int, default=64, help="number of samples (>= 1)")
  s.add_argument("--out", required=True, help="output .png (or .npy for the raw [n,H,W,C] array)")
  s.add_argument("--seed", type=int, default=0)

  c = sub.add_parser("score", help="classifier-FID and IS of a VAE / CVAE run's prior samples, "
                     "with the train-vs-test FID floor and the real-data IS (cached in "
                     "WORKDIR/eval/ while the checkpoint, classifier and options are the same)")
  c.add_argument("--workdir", required=True)
  c.add_argument("--n", type=int, default=10000,
                 help="prior samples, and test / train images of the references")
  c.add_argument("--classifier", help="classifier run directory (default "
                                      "checkpoints/classifier_<the run's data.name>)")
  c.add_argument("--seed", type=int, default=0, help="seed of the prior samples")
  c.add_argument("--of", choices=("prior", "reconstructions"), default="prior",
                 help="score prior samples, or reconstructions of the first n test images (AE, "
                      "VQ-VAE: no prior)")
  c.add_argument("--over-training", action="store_true",
                 help="score every kept checkpoint (one JSON line each) and draw "
                      "WORKDIR/figures/scores_over_training.png")

  x = sub.add_parser("explore", help="a local web page to explore a VAE / CVAE / AE run's latent "
                     "space (sliders, a plane, interpolation, prior samples); needs "
                     "pip install 'vae_jax[explore]'")
  x.add_argument("--workdir", required=True)
  x.add_argument("--port", type=int, default=8765, help="0 picks a free port")
  x.add_argument("--host", default="127.0.0.1",
                 help="address to bind (default localhost only; 0.0.0.0 exposes the run)")
  x.add_argument("--num-test", type=int, default=2000,
                 help="test images encoded for the KL order, the plane and interpolation")

  d = sub.add_parser("data", help="dataset tools")
  dsub = d.add_subparsers(dest="data_command", required=True, parser_class=_Parser)
  i = dsub.add_parser("import", help="prepare a standard TFDS dataset offline from its files")
  i.add_argument("name", help="mnist, fashion_mnist (the *_32 variants read these) or cifar10")
  i.add_argument("--from", dest="src", required=True,
                 help="mnist, fashion_mnist: folder holding the IDX (.gz) files; cifar10: the "
                      "official cifar-10-binary.tar.gz or its extracted folder")
  i.add_argument("--data-dir",
                 help="TFDS data dir (default $TFDS_DATA_DIR or ~/tensorflow_datasets)")
  return p


def _version() -> str:
  """The installed distribution's version (pyproject.toml is its one source)."""
  from importlib import metadata  # pylint: disable=import-outside-toplevel
  try:
    return metadata.version("vae_jax")
  except metadata.PackageNotFoundError:
    return "unknown (not installed; pip install -e .)"


def _configs(_args):
  from vae_jax import config as config_lib  # pylint: disable=import-outside-toplevel
  named = config_lib.named_configs()
  width = max(map(len, named))
  for name, summary in named.items():
    print(f"{name:<{width}}  {summary}")


def split_config_overrides(argv: list[str]) -> tuple[list[str], list[str]]:
  """(the other arguments, ['KEY=VALUE' of every --config.KEY=VALUE]) of a command line."""
  rest, overrides = [], []
  for arg in argv:
    if arg.startswith("--config."):
      overrides.append(arg[len("--config."):])
    else:
      rest.append(arg)
  return rest, overrides


def _train(args, overrides):
  from vae_jax import parallel  # pylint: disable=import-outside-toplevel
  parallel.initialize_distributed(force=args.distributed)  # Before anything touches a device.
  from vae_jax import config as config_lib, runner  # pylint: disable=import-outside-toplevel
  from vae_jax import sweep  # pylint: disable=import-outside-toplevel
  config = config_lib.load_config(args.config)
  config_lib.apply_overrides(config, overrides)
  workdir = Path(args.workdir or Path("checkpoints") / Path(args.config).stem)
  keys = ("eval/loss", "eval/nll_iw", "best_epoch", "median_epoch_seconds", "runs_in_program")
  if args.reuse and not args.sweep:
    raise UsageError("--reuse applies to --sweep runs; drop it or add --sweep KEY=V1,V2")
  try:
    if args.sweep:
      for r in sweep.run_sweep(config, args.sweep, workdir, resume=args.resume, reuse=args.reuse,
                               progress=not args.no_progress):
        print(json.dumps({"workdir": r["workdir"], "program": r["program"]}
                         | {k: r["summary"][k] for k in keys if k in r["summary"]}))
      return
    summary = runner.train_and_evaluate(config, workdir, resume=args.resume,
                                        progress=not args.no_progress and parallel.is_writer())
  except KeyboardInterrupt as e:
    e.resume_hint = _resume_hint(workdir, bool(args.sweep))
    raise
  if parallel.is_writer():
    print(json.dumps({"workdir": str(workdir)} | {k: summary[k] for k in keys if k in summary}))


def _resume_hint(workdir: Path, is_sweep: bool) -> str:
  """What `vae-jax train ... --resume` would continue after an interrupt."""
  from vae_jax import checkpointing  # pylint: disable=import-outside-toplevel
  if is_sweep:
    return f"add --resume to continue the sweep in {workdir} from its runs' committed epochs"
  try:
    epoch = checkpointing.latest_epoch(workdir)
  except errors.CheckpointError:
    epoch = None
  if epoch is None:
    return f"{workdir} holds no checkpoint yet; run the same command to start it again"
  return f"add --resume to continue {workdir} from epoch {epoch}"


def _evaluate(args):
  from vae_jax import evaluate, evaluators  # pylint: disable=import-outside-toplevel
  if args.k < 1:
    raise UsageError(f"--k must be >= 1, got {args.k}")
  run = evaluate.restore_run(args.workdir)  # Refuses a bad run in one line; restored once.
  result = evaluators.evaluate_run(args.workdir, "test_means", options={"run": run})  # Cached
  if run.objective.has_posterior and run.objective.normalized:  # in <workdir>/eval/.
    iw = evaluators.evaluate_run(args.workdir, "iw_nll", k=args.k,
                                 options={"progress": sys.stderr.isatty(), "run": run})
    result = result | {"eval/nll_iw": iw["nll"], "eval/nll_iw_k": args.k}
  print(json.dumps(result))


def _sample(args):
  import jax  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  from vae_jax import evaluate, plots  # pylint: disable=import-outside-toplevel
  if args.n < 1:
    raise UsageError(f"--n must be >= 1, got {args.n}")
  out = Path(args.out)
  if out.suffix not in (".png", ".npy") or out.is_dir():
    raise UsageError(f"--out must be a file ending in .png or .npy, got {out}")
  config, objective, params, _, _ = evaluate.restore_run(args.workdir)
  if not objective.has_posterior:
    raise UsageError(f"{args.workdir} holds a model without a prior (model.kind="
                     f"{config.model.kind}); pass the --workdir of a VAE or CVAE run")
  z = jax.random.normal(jax.random.key(args.seed), (args.n, config.model.latent_dim))
  images = np.asarray(objective.decode_mean(params, z, objective.prior_labels(args.n)))
  if out.suffix == ".npy":
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, images)
  else:
    plots.image_grid(images, out)
  print(out)


def _score(args):
  from vae_jax import evaluators  # pylint: disable=import-outside-toplevel
  if not args.over_training:
    print(json.dumps(evaluators.cached_score(args.workdir, args.n, args.classifier, args.seed,
                                             of=args.of)))
    return
  from vae_jax import curves  # pylint: disable=import-outside-toplevel
  scores = evaluators.cached_scores_over_training(args.workdir, args.n, args.classifier,
                                                  args.seed, args.of)
  for score in scores:
    print(json.dumps(score))
  print(curves.scores_over_training(scores, Path(args.workdir) / "figures" /
                                    "scores_over_training.png"), file=sys.stderr)


def _explore(args):
  from vae_jax import explore, explore_app  # pylint: disable=import-outside-toplevel
  if not 0 <= args.port <= 65535:
    raise UsageError(f"--port must be in 0..65535, got {args.port}")
  explore_app.require_flask()  # Refused before the test set is encoded.
  server = explore_app.make_server(explore.Explorer(args.workdir, args.num_test), args.host,
                                   args.port)
  print(f"vae-jax explore: http://{args.host}:{server.server_port}/ (Ctrl-C stops)", flush=True)
  try:
    server.serve_forever()
  finally:
    server.server_close()


def _data_import(args):
  from vae_jax.data import importers  # pylint: disable=import-outside-toplevel
  path = importers.import_dataset(args.name, args.src, args.data_dir)
  print(f"prepared {args.name} in {path}")


def run(argv: list[str]) -> None:
  """Runs the CLI; raises UsageError (or a library's user-error type) on bad input."""
  rest, overrides = split_config_overrides(argv)
  args = _parser().parse_args(rest)
  if overrides and args.command != "train":
    raise UsageError("--config.KEY=VALUE overrides only apply to `vae-jax train`")
  if args.command == "train":
    _train(args, overrides)
  elif args.command == "evaluate":
    _evaluate(args)
  elif args.command == "sample":
    _sample(args)
  elif args.command == "score":
    _score(args)
  elif args.command == "explore":
    _explore(args)
  elif args.command == "configs":
    _configs(args)
  else:
    _data_import(args)


def main(argv: list[str] | None = None) -> int:
  """Runs the CLI; returns the exit status: 0, 2 (a user error, one line on stderr), 130 / 143
  (SIGINT / SIGTERM: one line naming what --resume continues)."""
  from vae_jax import signals  # pylint: disable=import-outside-toplevel
  with signals.handled():
    try:
      run(sys.argv[1:] if argv is None else argv)
    except (UsageError, *errors.USER_ERRORS) as e:
      print(f"vae-jax: error: {e}", file=sys.stderr)
      return USAGE_EXIT
    except BrokenPipeError:  # `vae-jax configs | head`: the reader left; no traceback.
      os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
      return 0
    except OSError as e:
      if e.errno not in DISK_ERRORS:
        raise
      print(f"vae-jax: error: {e.strerror}: {e.filename or 'a run file'}; free space or pass a "
            "--workdir on a writable disk (a run resumes from its last committed epoch)",
            file=sys.stderr)
      return USAGE_EXIT
    except KeyboardInterrupt as e:
      hint = getattr(e, "resume_hint", None)
      name = signals.signal.Signals(getattr(e, "signum", signals.signal.SIGINT)).name
      print(f"vae-jax: interrupted by {name}" + (f"; {hint}" if hint else ""), file=sys.stderr)
      return getattr(e, "exit_status", 130)
  return 0


def entry() -> None:
  """The `vae-jax` console script: exits with main()'s status. After an interrupt it skips the
  interpreter's teardown (os._exit, output flushed), which XLA's and orbax's threads can crash
  mid-compile; the run's files are consistent at any instant."""
  status = main()
  if status in (130, 143):
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
  sys.exit(status)


if __name__ == "__main__":
  entry()
