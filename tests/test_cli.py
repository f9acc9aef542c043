"""The command line: ``python -m dtcore train`` / ``evaluate`` on a tiny synthetic dataset with
Hopper-v5 evaluation, end to end in a subprocess (no wall-time bound: a loaded machine is
slower, and speed is bench/'s business); ``dtcore claims``:
the claim files it finds, the pytest command it builds, its grid options checked at parse time."""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dtcore import cli
from dtcore.bodies import BODIES
from dtcore.experiment import Assets
from tests.tiny_runs import write_dataset

ROOT = Path(__file__).resolve().parent.parent


def _dtcore(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "dtcore", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_a_smoke_run_trains_and_evaluates_from_the_command_line(tmp_path):
    data = write_dataset(tmp_path / "hopper.pkl")
    common = ["--profile", "smoke", "--env", "hopper", "--backbone", "random", "--seed", "0",
              "--dataset", str(data), "--trust-pickle", "--episodes", "2", "--max-steps", "40"]
    res = _dtcore("train", *common, "--epochs", "2", "--steps", "20", "--out", str(tmp_path / "run"), cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "epoch 2: loss" in res.stdout and "mean return by target" in res.stdout
    assert sorted(p.name for p in (tmp_path / "run").glob("epoch_*.pt")) == ["epoch_000.pt", "epoch_001.pt",
                                                                            "epoch_002.pt"]
    res = _dtcore("evaluate", *common, "--checkpoint", str(tmp_path / "run" / "epoch_002.pt"), cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "target 3600: mean return" in res.stdout and "'paper'" in res.stdout and "'as-run'" in res.stdout


def test_the_claims_command_runs_every_claim_file_it_finds(tmp_path):
    from dtcore import cli

    args = cli.build_parser().parse_args(["claims", "--profile", "smoke", "--seeds", "0-2", "--envs", "hopper"])
    repo_files = [str(p) for p in sorted((ROOT / "claims").glob("test_*.py"))]
    cmd = cli.claims_command(args, ROOT)
    assert repo_files and [c for c in cmd if c.endswith(".py")] == repo_files
    claims = tmp_path / "claims"
    claims.mkdir()
    for name in ("test_sec5_2_b.py", "test_sec5_1_a.py", "conftest.py", "criteria.py"):
        (claims / name).write_text("")
    (claims / "test_sec9_new_section.py").write_text("")   # a new section: no list to update
    cmd = cli.claims_command(args, tmp_path)
    assert [Path(c).name for c in cmd if c.endswith(".py")] == [
        "test_sec5_1_a.py", "test_sec5_2_b.py", "test_sec9_new_section.py"]
    assert cmd[cmd.index("--seeds") + 1] == "0,1,2" and cmd[cmd.index("--envs") + 1] == "hopper"
    assert "--backbones" not in cmd


def test_the_claims_command_without_claim_files_verifies_nothing_and_says_so(tmp_path, monkeypatch, capsys):
    from dtcore import cli

    (tmp_path / "claims").mkdir()
    monkeypatch.setattr(cli, "_repo_root", lambda: tmp_path)
    assert cli.main(["claims", "--profile", "smoke"]) == 2
    assert "nothing was verified" in capsys.readouterr().out


@pytest.mark.parametrize("argv, option, accepted", [
    (["--seeds", "x"], "--seeds", "0-4,42,666"), (["--seeds=-1"], "--seeds", "0-9"),
    (["--seeds", "4-2"], "--seeds", "0-9"), (["--seeds", "0,0"], "--seeds", "0-9"),
    (["--envs", "mars"], "--envs", "hopper, halfcheetah, walker2d"),
    (["--backbones", "bert"], "--backbones", ", ".join(BODIES)),
    (["--envs", "hoper"], "--envs", "unknown 'hoper' (did you mean 'hopper'?); choose among hopper"),
    (["--backbones", "gpt2,rnadom"], "--backbones", "unknown 'rnadom' (did you mean 'random'?)"),
    (["--profile", "mnii"], "--profile", "unknown 'mnii' (did you mean 'mini'?); choose among paper, mini, smoke")])
def test_the_claims_command_refuses_a_bad_grid_option_at_parse_time(argv, option, accepted, capsys):
    from dtcore import cli

    with pytest.raises(SystemExit) as stop:
        cli.build_parser().parse_args(["claims", *argv])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}:" in err and accepted in err


@pytest.mark.parametrize("argv, refusal", [
    (["train", "--env", "walker", "--out", "x"], "argument --env: unknown 'walker' (did you mean 'walker2d'?)"),
    (["evaluate", "--backbone", "rnadom", "--checkpoint", "x"], "argument --backbone: unknown 'rnadom' (did you mean 'random'?)"),
    (["evaluate", "--profile", "smok", "--checkpoint", "x"], "argument --profile: unknown 'smok' (did you mean 'smoke'?)"),
    (["data", "collect", "--env", "hoper", "--policy", "p", "--noise", "0", "--steps", "1", "--out", "x"],
     "argument --env: unknown 'hoper' (did you mean 'hopper'?); choose among hopper, halfcheetah, walker2d"),
    (["data", "build", "--profile", "mnii"], "argument --profile: unknown 'mnii' (did you mean 'mini'?)"),
    (["pretrain", "--modality", "language", "--size", "mni"], "argument --size: unknown 'mni' (did you mean 'mini'?)"),
    (["train", "--env", "mars", "--out", "x"], "argument --env: unknown 'mars'; choose among"),
], ids=["train-env", "evaluate-backbone", "evaluate-profile", "data-collect-env", "data-build-profile", "pretrain-size",
        "no-name-close"])
def test_a_mistyped_env_backbone_or_profile_is_refused_with_the_closest_known_name(argv, refusal, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.build_parser().parse_args(argv)
    assert stop.value.code == 2 and refusal in capsys.readouterr().err


def test_the_claims_command_refuses_an_env_outside_the_profile(monkeypatch, capsys):
    from dtcore import cli, profiles

    monkeypatch.setitem(profiles.PROFILES, "smoke", dataclasses.replace(profiles.SMOKE, envs=("hopper",)))
    with pytest.raises(SystemExit) as stop:
        cli.main(["claims", "--profile", "smoke", "--envs", "walker2d"])
    assert stop.value.code == 2
    assert "argument --envs: walker2d not in the smoke profile" in capsys.readouterr().err


def test_until_decided_refuses_seeds_the_looks_choose(capsys):
    from dtcore import cli

    with pytest.raises(SystemExit) as stop:
        cli.main(["claims", "--profile", "smoke", "--until-decided", "--seeds", "0-4"])
    assert stop.value.code == 2 and "the looks choose the seeds" in capsys.readouterr().err


def test_the_claims_command_takes_a_seed_outside_the_profile_like_pytest(tmp_path, monkeypatch):
    """``dtcore claims --profile smoke --seeds 2`` used to stop in the prebuild (the grid allowed
    only the profile's own seeds) where ``pytest claims/ --seeds 2`` ran."""
    import dtcore.build
    from dtcore import cli, process_group
    from dtcore.profiles import get_profile
    from dtcore.grid import grid

    built, ran = [], []
    monkeypatch.setattr(dtcore.build, "build_grid", lambda profile, envs, seeds, backbones, **kw: built.append(
        grid(get_profile(profile), envs, seeds, backbones)))
    monkeypatch.setattr(process_group, "call", lambda cmd, **kw: ran.append(cmd) or 0)
    assert cli.main(["claims", "--profile", "smoke", "--seeds", "2", "--envs", "hopper",
                     "--report", str(tmp_path / "claims.html")]) == 0
    assert built and {s.seed for s in built[0]} == {2}
    assert ran[0][ran[0].index("--seeds") + 1] == "2"


def test_an_unknown_policy_file_is_refused_by_data_collect(tmp_path):
    fake = tmp_path / "tqc" / "Hopper-v3_1" / "Hopper-v3.zip"
    fake.parent.mkdir(parents=True)
    fake.write_bytes(b"not the trusted agent")
    res = _dtcore("data", "collect", "--env", "hopper", "--policy", str(fake), "--noise", "0.2", "--steps", "100",
                  "--out", str(tmp_path / "x.hdf5"), cwd=tmp_path)
    assert res.returncode != 0
    assert "sha256" in (res.stdout + res.stderr)
    assert not (tmp_path / "x.hdf5").exists()


def test_data_build_fills_the_asset_cache_once_and_names_the_files(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT), DTCORE_CACHE=str(tmp_path / "cache"))
    cmd = [sys.executable, "-m", "dtcore", "data", "build", "--profile", "smoke", "--envs", "hopper"]
    first = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stdout + first.stderr
    path = Path(first.stdout.split("hopper: ", 1)[1].split(" (sha256", 1)[0])
    assert path.is_file() and (tmp_path / "cache" / "assets") in path.parents
    built = path.stat().st_mtime_ns
    again = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and again.stdout == first.stdout, again.stdout + again.stderr
    assert path.stat().st_mtime_ns == built      # found in the cache, not collected again
    bad = subprocess.run(cmd[:-1] + ["hopper,pong"], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode == 2 and "pong" in bad.stderr


def test_the_paper_profile_without_assets_fails_once_with_the_list_of_missing_files(tmp_path):
    env_home = {"DTCORE_DATA_DIR": str(tmp_path / "d4rl"), "HF_HOME": str(tmp_path / "hf")}
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT), **env_home)
    res = subprocess.run([sys.executable, "-m", "dtcore", "claims", "--profile", "paper", "--envs", "hopper"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    out = res.stdout + res.stderr
    assert res.returncode == 2, out
    assert "hopper_medium-v2.hdf5" in out and "gpt2" in out and "imagegpt" in out
    assert "Traceback" not in out


# The flags' settings do not depend on the assets: these tests give placeholder ones.
NO_ASSETS = Assets(Path("dataset.hdf5"), "", "weights", "")


def test_the_train_command_takes_the_sampler_and_leaves_the_profiles_by_default():
    from dtcore import cli

    parse = cli.build_parser().parse_args
    cfg = cli._experiment(parse(["train", "--out", "run", "--sampler", "device"]), NO_ASSETS).config
    assert cfg.train.sampler == "device"
    cfg = cli._experiment(parse(["train", "--out", "run"]), NO_ASSETS).config
    assert cfg.train.sampler == "host"


def test_the_train_command_switches_between_the_fast_path_and_the_published_procedure():
    from dtcore import cli

    parse = cli.build_parser().parse_args

    def settings(argv):
        cfg = cli._experiment(parse(["train", "--out", "run", *argv]), NO_ASSETS).config
        return (cfg.train.precision, cfg.train.sampler, cfg.train.compile, cfg.model.attn_implementation,
                cfg.eval.batched)

    assert settings(["--profile", "paper"]) == ("bf16", "device", False, "sdpa", True)  # the profile's: fast
    assert settings(["--profile", "paper", "--procedure", "published"]) == ("fp32", "host", False, "eager", False)
    assert settings(["--profile", "mini"]) == ("fp32", "host", False, "sdpa", True)
    assert settings(["--profile", "mini", "--procedure", "fast", "--compile"]) == ("bf16", "device", True, "sdpa", True)
    assert settings(["--profile", "paper", "--procedure", "published", "--precision", "bf16"])[:2] == ("bf16", "host")
    assert cli._device(parse(["train", "--out", "run", "--device", "cpu"])) == "cpu"


def test_the_train_command_chooses_the_kernels_and_the_published_procedure_of_mini_and_smoke_trains():
    from dtcore import cli
    from dtcore.train import _check_config

    parse = cli.build_parser().parse_args

    def train_cfg(argv):
        cfg = cli._experiment(parse(["train", "--out", "run", *argv]), NO_ASSETS).config
        _check_config(cfg, "all")                                  # what dtcore.train.train checks first
        return cfg.train.kernels, cfg.train.lanes

    for profile in ("mini", "smoke"):
        assert train_cfg(["--profile", profile]) == ("cpu", "splitmix64")
        assert train_cfg(["--profile", profile, "--procedure", "published"]) == ("reference", "torch")
        assert train_cfg(["--profile", profile, "--kernels", "cpu-torch"]) == ("cpu-torch", "splitmix64")
        assert train_cfg(["--profile", profile, "--kernels", "builtin"]) == ("builtin", "torch")


def test_dtcore_claims_names_a_missing_behaviour_policy_before_building_anything(tmp_path, monkeypatch, capsys):
    """An offline profile whose policies are absent stops with one message naming the file and the
    fix, before any asset or run folder is made (no traceback from the prebuild)."""
    monkeypatch.setenv("DTCORE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("DTCORE_POLICY_DIR", str(tmp_path / "nowhere"))
    assert cli.main(["claims", "--profile", "smoke", "--envs", "hopper", "--seeds", "0"]) == 2
    out = capsys.readouterr().out
    assert "Hopper-v3.zip not found" in out and "DTCORE_POLICY_DIR" in out and "--profile mini" not in out
    assert not (tmp_path / "cache").exists()


def _parsers(parser: argparse.ArgumentParser, name: str):
    """(command name, parser) of ``parser`` and every subcommand under it."""
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub, p in action.choices.items():
                yield from _parsers(p, f"{name} {sub}")


def test_every_help_says_what_the_command_does_and_every_option_its_default():
    """``--help`` of ``python -m dtcore``, each subcommand and ``python -m reports``: a first line on
    what the command does for a user; every option with help text naming its default (or required)."""
    from dtcore import cli
    from reports.__main__ import build_parser as reports_parser

    for root, name in ((cli.build_parser(), "dtcore"), (reports_parser(), "python -m reports")):
        for command, parser in _parsers(root, name):
            first = (parser.description or "").strip().splitlines()
            assert first and first[0].endswith(".") and not first[0].startswith("`"), (command, first[:1])
            for action in parser._actions:
                if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                    continue
                assert action.help, (command, action.option_strings or action.dest)
                if action.option_strings and not action.required:
                    assert "default" in action.help, (command, action.option_strings, action.help)
    top = subprocess.run([sys.executable, "-m", "dtcore", "--help"], cwd=ROOT, capture_output=True, text=True,
                         timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    description = top.stdout.split("\n\n")[1]     # after the usage paragraph
    assert description.startswith("Test the claims of Takagi (NeurIPS 2022)"), top.stdout[:600]


def test_workers_help_says_what_workers_are_for_each_command():
    helps = {command: a.help for command, parser in _parsers(cli.build_parser(), "dtcore")
             for a in parser._actions if "--workers" in a.option_strings}
    assert set(helps) == {"dtcore claims", "dtcore build"}, helps
    assert "build the missing runs" in helps["dtcore claims"] and "pytest-xdist" in helps["dtcore claims"]
    assert "build the missing runs" in helps["dtcore build"] and "pytest" not in helps["dtcore build"]


def test_dtcore_claims_resolves_report_from_the_users_directory_and_returns_pytests_status(
        tmp_path, monkeypatch, capsys):
    """``--report my.html`` from another directory lands there (pytest runs in the repository, so the
    path is made absolute first); without ``--report`` the plugin picks the path; the exit status
    is pytest's own, for ``dtcore claims`` as for ``pytest claims/``, and nothing is printed after
    pytest's last line (the report's path)."""
    import dtcore.build
    from dtcore import cli, process_group

    monkeypatch.setattr(dtcore.build, "build_grid", lambda *a, **kw: None)
    ran = []
    monkeypatch.setattr(process_group, "call", lambda cmd, **kw: ran.append((cmd, kw["cwd"])) or 1)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["claims", "--profile", "smoke", "--envs", "hopper", "--report", "my.html"]) == 1
    cmd, cwd = ran[-1]
    assert cwd == ROOT and cmd[cmd.index("--claims-report") + 1] == str(tmp_path / "my.html")
    assert capsys.readouterr().out == ""
    assert cli.main(["claims", "--profile", "smoke", "--envs", "hopper"]) == 1
    assert "--claims-report" not in ran[-1][0]


def test_every_command_hides_transformers_load_reports_from_its_output(monkeypatch, capsys):
    """A body load prints transformers' "LOAD REPORT" table at its default verbosity: every command
    (the build's workers inherit the environment) sets it to errors only, unless the user set it."""
    from dtcore import cli

    monkeypatch.delenv("TRANSFORMERS_VERBOSITY", raising=False)
    assert cli.main(["registry"]) == 0
    assert os.environ["TRANSFORMERS_VERBOSITY"] == "error"
    monkeypatch.setenv("TRANSFORMERS_VERBOSITY", "info")
    cli.main(["registry"])
    assert os.environ["TRANSFORMERS_VERBOSITY"] == "info"
