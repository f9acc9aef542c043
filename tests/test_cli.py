"""The command line: ``python -m dtcore train`` / ``evaluate`` on a tiny synthetic dataset with
Hopper-v5 evaluation, end to end in a subprocess, in under a minute on CPU."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.tiny_runs import write_dataset

ROOT = Path(__file__).resolve().parent.parent


def _dtcore(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "dtcore", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_a_smoke_run_trains_and_evaluates_from_the_command_line_in_under_a_minute(tmp_path):
    data = write_dataset(tmp_path / "hopper.pkl")
    common = ["--profile", "smoke", "--env", "hopper", "--backbone", "random", "--seed", "0",
              "--dataset", str(data), "--episodes", "2", "--max-steps", "40"]
    start = time.perf_counter()
    res = _dtcore("train", *common, "--epochs", "2", "--steps", "20", "--out", str(tmp_path / "run"), cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "epoch 2: loss" in res.stdout and "mean return by target" in res.stdout
    assert sorted(p.name for p in (tmp_path / "run").glob("epoch_*.pt")) == ["epoch_000.pt", "epoch_001.pt",
                                                                            "epoch_002.pt"]
    res = _dtcore("evaluate", *common, "--checkpoint", str(tmp_path / "run" / "epoch_002.pt"), cwd=tmp_path)
    elapsed = time.perf_counter() - start
    assert res.returncode == 0, res.stdout + res.stderr
    assert "target 3600: mean return" in res.stdout and "'paper'" in res.stdout and "'as-run'" in res.stdout
    assert elapsed < 60, f"train + evaluate took {elapsed:.0f} s"


def test_claims_command_reports_missing_claim_files_and_never_claims_success(tmp_path, monkeypatch):
    from dtcore import cli

    monkeypatch.setattr(cli, "CLAIM_FILES", ("test_does_not_exist.py",))
    assert cli.main(["claims", "--profile", "smoke"]) == 2


def test_an_unknown_policy_file_is_refused_by_data_collect(tmp_path):
    fake = tmp_path / "tqc" / "Hopper-v3_1" / "Hopper-v3.zip"
    fake.parent.mkdir(parents=True)
    fake.write_bytes(b"not the trusted agent")
    res = _dtcore("data", "collect", "--env", "hopper", "--policy", str(fake), "--noise", "0.2", "--steps", "100",
                  "--out", str(tmp_path / "x.hdf5"), cwd=tmp_path)
    assert res.returncode != 0
    assert "sha256" in (res.stdout + res.stderr)
    assert not (tmp_path / "x.hdf5").exists()


def test_the_paper_profile_without_assets_fails_once_with_the_list_of_missing_files(tmp_path):
    env_home = {"DTCORE_DATA_DIR": str(tmp_path / "d4rl"), "HF_HOME": str(tmp_path / "hf")}
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT), **env_home)
    res = subprocess.run([sys.executable, "-m", "dtcore", "claims", "--profile", "paper", "--envs", "hopper"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    out = res.stdout + res.stderr
    assert res.returncode == 2, out
    assert "hopper_medium-v2.hdf5" in out and "gpt2" in out and "imagegpt" in out
    assert "Traceback" not in out


def test_the_train_command_takes_the_sampler_and_leaves_the_profiles_by_default():
    from dtcore import cli

    parse = cli.build_parser().parse_args
    _, cfg = cli._experiment(parse(["train", "--out", "run", "--sampler", "device"]))
    assert cfg.train.sampler == "device"
    _, cfg = cli._experiment(parse(["train", "--out", "run"]))
    assert cfg.train.sampler == "host"


def test_the_train_command_switches_between_the_fast_path_and_the_published_procedure():
    from dtcore import cli

    parse = cli.build_parser().parse_args

    def settings(argv):
        _, cfg = cli._experiment(parse(["train", "--out", "run", *argv]))
        return (cfg.train.precision, cfg.train.sampler, cfg.train.compile, cfg.model.attn_implementation,
                cfg.eval.batched)

    assert settings(["--profile", "paper"]) == ("bf16", "device", False, "sdpa", True)  # the profile's: fast
    assert settings(["--profile", "paper", "--procedure", "published"]) == ("fp32", "host", False, "eager", False)
    assert settings(["--profile", "mini"]) == ("fp32", "host", False, "sdpa", True)
    assert settings(["--profile", "mini", "--procedure", "fast", "--compile"]) == ("bf16", "device", True, "sdpa", True)
    assert settings(["--profile", "paper", "--procedure", "published", "--precision", "bf16"])[:2] == ("bf16", "host")
    assert cli._device(parse(["train", "--out", "run", "--device", "cpu"])) == "cpu"
