"""--sweep: parsing, grouping into programs, bad input, and runs equal single runs."""

import json

import pytest

from vae_jax import cli, config as config_lib, runner, sweep


def test_parse_and_group_by_program():
  config = config_lib.base_config()
  runs = sweep.expand(config, sweep.parse(config, [
      "objective.beta=0.5,1", "seed=0,1", "model.latent_dim=2,3"]))
  assert len(runs) == 8
  assert runs[0].name == "objective.beta=0.5,seed=0,model.latent_dim=2"
  by_program = {}
  for r in runs:
    by_program.setdefault(r.program, set()).add(r.config.model.latent_dim)
  assert len(by_program) == 2 and all(len(v) == 1 for v in by_program.values())
  tuples = sweep.parse(config, ["model.encoder.widths=400;512,256"])
  assert tuples == [("model.encoder.widths", ["400", "512,256"])]


@pytest.mark.parametrize("args, message", [
    (["--sweep", "objective.beta"], "malformed --sweep"),
    (["--sweep", "objective.bta=1,2"], "unknown config key 'objective.bta'"),
    (["--sweep", "objective.beta=1,x"], "bad override --config.objective.beta=x"),
    (["--sweep", "seed=1,1"], "non-empty and distinct"),
    (["--sweep", "seed=1,"], "non-empty and distinct"),
    (["--sweep", "seed=1", "--sweep", "seed=2"], "given twice"),
    (["--sweep", "model.latent_dim=2,0"], "model.latent_dim must be positive"),
    (["--reuse"], "--reuse applies to --sweep"),
])
def test_bad_sweep_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, args, message):
  workdir = tmp_path / "sweep"
  code = cli.main(["train", "--config", "vae_jax/configs/mnist_mlp.py", "--workdir",
                   str(workdir), *args])
  err = capsys.readouterr().err
  assert code == 2 and message in err and err.count("\n") == 1, err
  assert not workdir.exists()


def _metrics(path):
  rows = [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]
  return [{k: v for k, v in r.items() if k not in ("epoch_seconds", "runs_in_program")}
          for r in rows]


def test_sweep_runs_in_one_program_equal_single_runs(tiny, tmp_path):
  config = tiny(**{"train.epochs": 2, "eval.iw_samples": 4})
  sweeps = ["objective.beta=0.5,2", "optim.lr=0.003"]
  results = sweep.run_sweep(config, sweeps, tmp_path / "sw", progress=False)
  assert len(results) == 2 and {r["program"] for r in results} == {0}
  listing = json.loads((tmp_path / "sw" / "sweep.json").read_text())
  assert [r["name"] for r in listing["runs"]] == [r["name"] for r in results]
  for r in results[1:]:  # One of the two, alone.
    alone_config = config_lib.apply_overrides(config.copy_and_resolve_references(),
                                              r["name"].split(","))  # No commas in values.
    alone = runner.train_and_evaluate(alone_config, tmp_path / r["name"], progress=False)
    assert r["summary"]["runs_in_program"] == 2 and alone["runs_in_program"] == 1
    for a, b in zip(_metrics(tmp_path / "sw" / r["name"]), _metrics(tmp_path / r["name"])):
      assert a.keys() == b.keys()
      for k in a:
        assert a[k] == pytest.approx(b[k], rel=1e-4, abs=1e-3), k
    assert r["summary"]["eval/nll_iw"] == pytest.approx(alone["eval/nll_iw"], rel=1e-4)
  # --reuse skips finished runs; nothing is retrained.
  again = sweep.run_sweep(config, sweeps, tmp_path / "sw", reuse=True, progress=False)
  assert [r["summary"] for r in again] == [r["summary"] for r in results]
  with pytest.raises(config_lib.ConfigError, match="another config"):  # Stale results: refused.
    sweep.run_sweep(tiny(**{"train.epochs": 3, "eval.iw_samples": 4}), sweeps, tmp_path / "sw",
                    reuse=True)
  with pytest.raises(config_lib.ConfigError, match="already holds a checkpoint"):
    sweep.run_sweep(config, sweeps, tmp_path / "sw")


@pytest.mark.parametrize("kind, mode, conv_runs, shared", [
    ("mlp", "auto", "auto", True), ("conv", "auto", "auto", True),
    ("conv", "auto", "vmap", False), ("conv", "always", "vmap", True),
    ("mlp", "never", "auto", False)])
def test_seeds_share_a_program_unless_vmapping_is_slower(kind, mode, conv_runs, shared):
  """auto: conv models whose convs would vmap into grouped convs on the CPU (this test's
  backend) run one program per run."""
  config = config_lib.apply_overrides(config_lib.base_config(), [
      "data.name=mnist_32", f"model.encoder.kind={kind}", f"model.decoder.kind={kind}",
      f"train.vmap_runs={mode}", f"model.conv_runs={conv_runs}"])
  runs = sweep.expand(config, sweep.parse(config, ["seed=0,1"]))
  assert (runs[0].program == runs[1].program) == shared
  assert runner.vmaps_runs(runs[0].config) == shared
