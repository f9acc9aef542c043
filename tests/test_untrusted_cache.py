"""Faults of the reliability review of 2026-12-05 (issue #34), each injected into its own temporary
cache on tiny synthetic data: nothing in the cache is executed, asset identity is content, a
corrupt run is not called cached, and bad inputs end in one line.

A "planted object" is :class:`Plant`: unpickling it calls ``os.makedirs(marker)``, so the marker
folder exists exactly when a loader ran the file's code.
"""

from __future__ import annotations

import os
import pickle
import shutil
import stat
import subprocess
import sys
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from dtcore import checkpoints, cli
from dtcore.analysis_cache import AnalysisCache
from dtcore.assets import pretrain as pretrain_mod
from dtcore.assets import resolve
from dtcore.assets.collect import write_d4rl_hdf5
from dtcore.assets.integrity import CacheCorruptionWarning, UnsafeCacheFileError
from dtcore.assets.store import build_asset
from dtcore.grid import MAX_GRID_RUNS, grid
from dtcore.profiles import MINI, SMOKE
from dtcore.provenance import sha256_bytes
from tests.tiny_runs import TINY, store, write_dataset

ROOT = Path(__file__).resolve().parent.parent


class Plant:
    """An object whose unpickling runs code: ``os.makedirs(marker)``."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return os.makedirs, (self.marker,)


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("DTCORE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def data(tmp_path):
    return write_dataset(tmp_path / "data" / "hopper.pkl")


def _one_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got:\n{text}"
    return lines[0]


# --- 1. nothing in the cache is executed or unpickled ---------------------------------------

def test_a_planted_object_in_a_checkpoint_whose_manifest_was_updated_is_refused_not_run(data, tmp_path):
    run = store(data).get("hopper", "random", 0, "K20")
    path = run.checkpoint("last")
    state = torch.load(path, map_location="cpu", weights_only=True)
    marker = tmp_path / "ran"
    torch.save({**state, "extra": Plant(marker)}, path)
    checkpoints.record_file(path)                       # the sha256 record vouches for the planted file

    again = store(data).get("hopper", "random", 0, "K20")
    assert not again.built                              # its hash matches: the integrity check passes
    with pytest.raises(UnsafeCacheFileError) as err:
        again.model("last")
    assert not marker.exists(), "loading the checkpoint ran the planted object's code"
    line = _one_line(str(err.value))
    assert str(path) in line and "delete" in line and str(run.run_dir) in line


def test_a_planted_object_in_an_analysis_value_whose_meta_was_updated_is_recomputed_not_run(tmp_path):
    cache = AnalysisCache(tmp_path / "cache")
    value = {"t": torch.arange(3.0), "n": 2}
    assert cache({"x": 1}, lambda: value, kind="demo")["n"] == 2
    folder = cache.path({"x": 1}, "demo")
    assert (folder / "value.pt").exists()
    marker = tmp_path / "ran"
    torch.save({"t": torch.arange(3.0), "n": 2, "extra": Plant(marker)}, folder / "value.pt")
    meta = __import__("json").loads((folder / "meta.json").read_text())
    meta["sha256"] = sha256_bytes((folder / "value.pt").read_bytes())
    (folder / "meta.json").write_text(__import__("json").dumps(meta))

    with pytest.warns(CacheCorruptionWarning, match="value.pt"):
        got = AnalysisCache(tmp_path / "cache")({"x": 1}, lambda: {"t": torch.arange(3.0), "n": 3}, kind="demo")
    assert not marker.exists(), "loading the analysis value ran the planted object's code"
    assert got["n"] == 3                                 # computed again
    assert AnalysisCache(tmp_path / "cache")({"x": 1}, lambda: None, kind="demo")["n"] == 3


@pytest.mark.parametrize("fmt", ["npy", "npz"])
def test_a_planted_object_array_in_an_analysis_value_whose_meta_was_updated_is_recomputed_not_run(tmp_path, fmt):
    cache = AnalysisCache(tmp_path / "cache")
    value = np.arange(3.0) if fmt == "npy" else {"a": np.arange(3.0)}
    cache({"x": 1}, lambda: value, kind="demo")
    folder = cache.path({"x": 1}, "demo")
    marker = tmp_path / "ran"
    planted = np.array([Plant(marker)], dtype=object)
    if fmt == "npy":
        np.save(folder / "value.npy", planted, allow_pickle=True)
    else:
        np.savez(folder / "value.npz", a=planted)
    meta = __import__("json").loads((folder / "meta.json").read_text())
    meta["sha256"] = sha256_bytes((folder / f"value.{fmt}").read_bytes())
    (folder / "meta.json").write_text(__import__("json").dumps(meta))

    with pytest.warns(CacheCorruptionWarning, match=f"value.{fmt}.*objects other than"):
        got = AnalysisCache(tmp_path / "cache")({"x": 1}, lambda: np.full(3, 7.0), kind="demo")
    assert not marker.exists(), "loading the analysis value ran the planted object's code"
    np.testing.assert_array_equal(got, np.full(3, 7.0))                 # computed again
    np.testing.assert_array_equal(AnalysisCache(tmp_path / "cache")({"x": 1}, lambda: None, kind="demo"),
                                  np.full(3, 7.0))


def test_an_analysis_value_with_nan_is_stored_as_json_and_one_that_needs_unpickling_is_refused(tmp_path):
    cache = AnalysisCache(tmp_path / "cache")
    got = cache({"x": 2}, lambda: {"cosine": [float("nan"), 0.5], "l2": 1.0}, kind="demo")
    assert (cache.path({"x": 2}, "demo") / "value.json").exists() and got["l2"] == 1.0
    with pytest.raises(ValueError, match="'demo'.*without running code"):
        cache({"x": 3}, lambda: {"a": np.float32(1.0)}, kind="demo")


def _train_args(tmp_path, dataset, *extra):
    return ["train", "--profile", "smoke", "--env", "hopper", "--backbone", "random", "--dataset", str(dataset),
            "--epochs", "1", "--steps", "2", "--episodes", "1", "--out", str(tmp_path / "out"), *extra]


def test_a_pickled_dataset_is_not_unpickled_without_the_trust_flag(tmp_path, capsys):
    marker = tmp_path / "ran"
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps(Plant(marker)))
    assert cli.main(_train_args(tmp_path, evil)) == 2
    assert not marker.exists(), "--dataset unpickled the file"
    line = _one_line(capsys.readouterr().err)
    assert str(evil) in line and "--trust-pickle" in line and "HDF5" in line
    assert not (tmp_path / "out").exists()


def test_the_slurm_pickles_live_in_a_private_folder_outside_the_shared_cache(tmp_path, monkeypatch):
    from dtcore.slurm import SlurmOptions, log_dir, private_log_dir

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    folder = log_dir(SlurmOptions())
    assert Path(os.environ["DTCORE_CACHE"]) not in folder.parents
    assert stat.S_IMODE(private_log_dir(folder).stat().st_mode) == 0o700
    shared = tmp_path / "cache" / "slurm"
    shared.mkdir(parents=True)
    shared.chmod(0o775)
    with pytest.raises(PermissionError, match=f"{shared}.*writable by others.*chmod 700"):
        private_log_dir(shared)


# --- 2. asset identity is content, not timing -----------------------------------------------

def _episodes(seed: int = 0) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(3):
        obs = rng.standard_normal((21, 11)).astype(np.float32)
        timeouts = np.zeros(20, dtype=bool)
        timeouts[-1] = True
        out.append({"observations": obs[:-1], "next_observations": obs[1:],
                    "actions": rng.uniform(-1, 1, (20, 3)).astype(np.float32),
                    "rewards": rng.uniform(0, 1, 20).astype(np.float32),
                    "terminals": np.zeros(20, dtype=bool), "timeouts": timeouts})
    return out


def test_a_dataset_collected_again_with_identical_arrays_keeps_every_run_key(tmp_path):
    a, b, c = (tmp_path / f"{n}.hdf5" for n in "abc")
    write_d4rl_hdf5(a, _episodes(), {"label": "x", "stats": {"wall_s": 12.5}})
    write_d4rl_hdf5(b, _episodes(), {"label": "x", "stats": {"wall_s": 31.0}})   # another wall time
    write_d4rl_hdf5(c, _episodes(seed=1), {"label": "x", "stats": {"wall_s": 12.5}})
    assert a.read_bytes() != b.read_bytes()

    def key(path):
        return store(path).config("hopper", "random", 0).dataset_sha256

    assert key(a) == key(b) and key(a) != key(c)
    with h5py.File(b, "a") as f:
        f["rewards"][3] += 1.0
    assert key(b) != key(a)


def _hf_folder(path: Path, metrics: str) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text('{"model_type": "gpt2"}')
    (path / "model.safetensors").write_bytes(b"\x00" * 64)
    (path / "pretrain_metrics.json").write_text(metrics)
    return path


def test_a_body_pretrained_again_to_identical_weights_keeps_every_run_key(tmp_path, data):
    one = _hf_folder(tmp_path / "one", '{"train_wall_s": 2917.2, "ms_per_step": 729.3}')
    two = _hf_folder(tmp_path / "two", '{"train_wall_s": 3101.0, "ms_per_step": 775.2}')
    keys = {store(data, weights={"gpt2": w}).config("hopper", "gpt2", 0).weights_sha256 for w in (one, two)}
    assert len(keys) == 1
    (two / "model.safetensors").write_bytes(b"\x01" * 64)
    assert store(data, weights={"gpt2": two}).config("hopper", "gpt2", 0).weights_sha256 not in keys


def test_a_damaged_shipped_body_is_restored_from_git_not_retrained(tmp_path, monkeypatch):
    recipe, size = MINI.weights_recipe(MINI.weights_of("gpt2"))
    key = resolve.asset_key(*resolve.pretrain_asset(recipe, size)[:2], recipe, resolve.pretrain_asset(recipe, size)[2])
    repo = tmp_path / "repo"
    shutil.copytree(resolve.PACKAGED_BODIES / key, repo / "bodies" / key)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "bodies"]):
        subprocess.run([*git, *cmd], cwd=repo, check=True, capture_output=True)
    weights = repo / "bodies" / key / "model.safetensors"
    good = weights.read_bytes()
    damaged = bytearray(good)
    damaged[len(good) // 2] ^= 0xFF
    weights.write_bytes(bytes(damaged))
    monkeypatch.setattr(resolve, "PACKAGED_BODIES", repo / "bodies")
    monkeypatch.setattr(pretrain_mod, "pretrain", lambda *a, **kw: pytest.fail("the damaged body was retrained"))

    with pytest.warns(CacheCorruptionWarning, match="git"):
        got = Path(resolve.resolve_weights(MINI.weights_of("gpt2"), MINI, root=tmp_path / "cache"))
    assert (got / "model.safetensors").read_bytes() == good
    assert got.is_relative_to(tmp_path / "cache") and weights.read_bytes() == bytes(damaged)  # tree untouched
    from dtcore.experiment import weights_sha256
    assert weights_sha256(str(got)) == weights_sha256(str(ROOT / "dtcore/assets/bodies" / key))


# --- 3. what the prebuild and the planner call cached is verified ---------------------------

def test_a_truncated_checkpoint_makes_its_run_incomplete_so_the_prebuild_rebuilds_it(data):
    first = store(data)
    run = first.get("hopper", "random", 0, "K20")
    path = checkpoints.checkpoint_path(run.run_dir, TINY.train.epochs)
    good = checkpoints.load(path)["model"]
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 2)

    planner = store(data)
    assert not planner.complete(run.spec)               # the Slurm planner submits a job for it
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CacheCorruptionWarning)
        rebuilt = store(data).run(run.spec)              # what build_run (a worker or a job) does
    assert rebuilt.built and all(torch.equal(v, good[k]) for k, v in rebuilt.state("last")["model"].items())
    assert store(data).complete(run.spec)


# --- 4. the low cases ----------------------------------------------------------------------

@pytest.fixture
def no_build(monkeypatch):
    """Fails a test that gets past the command line's checks into building anything."""
    monkeypatch.setattr(cli, "_assets_missing", lambda *a: pytest.fail("the command got past its checks"))


def test_a_grid_of_more_than_the_ceiling_is_refused_with_a_clear_message(no_build, capsys):
    with pytest.raises(ValueError, match=f"more than {MAX_GRID_RUNS} runs.*fewer seeds"):
        grid(SMOKE, seeds=range(100_001))
    with pytest.raises(SystemExit) as exit_:
        cli.main(["build", "--profile", "smoke", "--envs", "hopper", "--seeds", "0-100000"])
    assert exit_.value.code == 2 and f"more than {MAX_GRID_RUNS} runs" in capsys.readouterr().err
    assert len(grid(SMOKE, seeds=range(10))) < MAX_GRID_RUNS


@pytest.mark.parametrize("workers", ["0", "-3"])
def test_workers_below_one_are_refused(no_build, capsys, workers):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["build", "--profile", "smoke", "--envs", "hopper", "--workers", workers])
    assert exit_.value.code == 2 and "--workers" in capsys.readouterr().err


def _dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_a_killed_asset_build_leaves_no_temporary_folder_after_the_next_build(tmp_path):
    root = tmp_path / "cache"
    first = build_asset("demo", "thing", {"n": 1}, lambda out: (out / "x").write_text("1"), root=root)
    stale = first.with_name(f".{first.name}.tmp{_dead_pid()}")  # what a SIGTERMed build left
    stale.mkdir()
    (stale / "half").write_bytes(b"\0" * 1000)
    shutil.rmtree(first)
    again = build_asset("demo", "thing", {"n": 1}, lambda out: (out / "x").write_text("1"), root=root)
    assert again == first and (again / "x").read_text() == "1"
    assert [p.name for p in first.parent.iterdir() if ".tmp" in p.name] == []


def test_temporary_folders_of_killed_builds_of_any_asset_go_at_the_next_asset_lookup(tmp_path):
    """Case 55: a build killed by a signal leaves ``.<key>.tmp<pid>``; one of an asset nobody
    builds again goes too, at any later asset lookup, when its process is dead and its asset's lock
    is free. A live builder's folder stays: this process's, and one whose lock another process holds."""
    root = tmp_path / "cache"
    first = build_asset("demo", "thing", {"n": 1}, lambda out: (out / "x").write_text("1"), root=root)
    kinds = first.parent.parent
    dead = kinds / "pretrained" / f".body__abc.tmp{_dead_pid()}"
    alive = kinds / "pretrained" / f".body__def.tmp{os.getpid()}"
    locked = kinds / "datasets" / f".data__xyz.tmp{_dead_pid()}"   # its builder runs on another node
    for folder in (dead, alive, locked):
        folder.mkdir(parents=True)
        (folder / "half").write_bytes(b"\0" * 1000)
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from filelock import FileLock; "
                               "lock = FileLock(sys.argv[1]); lock.acquire(); print('held', flush=True); "
                               "time.sleep(60)", str(kinds / "datasets" / "data__xyz.lock")],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        again = build_asset("demo", "thing", {"n": 1}, lambda out: pytest.fail("rebuilt"), root=root)
    finally:
        holder.kill()
        holder.wait()
    assert again == first
    assert not dead.exists() and alive.exists() and locked.exists()


def test_a_corrupt_dataset_file_ends_in_one_line_with_exit_code_2(tmp_path, capsys):
    bad = tmp_path / "hopper.hdf5"
    bad.write_bytes(b"<html>not found</html>")
    assert cli.main(_train_args(tmp_path, bad)) == 2
    line = _one_line(capsys.readouterr().err)
    assert str(bad) in line and "not a readable HDF5 file" in line
    assert cli.main(_train_args(tmp_path, tmp_path / "missing.hdf5")) == 2
    assert "missing.hdf5" in _one_line(capsys.readouterr().err)


@pytest.mark.parametrize("content, problem", [
    (b"PK\x03\x04" + bytes(200), "not a checkpoint torch can read"),     # a zip's header, then nothing
    (b"<html>not found</html>", "not a checkpoint torch can read"),
    (b"hello", "not a checkpoint torch can read"),
    (b"", "not a checkpoint torch can read"),
    ("planted", "not a checkpoint torch can read without running code"),
    ("tensor", "do not fit the model"),
], ids=["zip-header", "html", "text", "empty", "planted", "a-tensor"])
def test_a_bad_checkpoint_to_evaluate_ends_in_one_line_naming_it_with_exit_code_2(tmp_path, capsys, content, problem):
    """Named, with the fix; never the run cache's "delete <its folder>" (the user's own folder)."""
    dataset = tmp_path / "hopper.hdf5"
    write_d4rl_hdf5(dataset, _episodes(), {"label": "x"})
    bad = tmp_path / "epoch_002.pt"
    if content == "tensor":
        torch.save(torch.ones(3), bad)
    elif content == "planted":
        torch.save({"model": {}, "extra": Plant(tmp_path / "ran")}, bad)
    else:
        bad.write_bytes(content)
    argv = ["evaluate", "--profile", "smoke", "--env", "hopper", "--backbone", "random", "--dataset", str(dataset),
            "--episodes", "1", "--checkpoint", str(bad)]
    assert cli.main(argv) == 2
    line = _one_line(capsys.readouterr().err)
    assert f"--checkpoint {bad}" in line and problem in line and "`dtcore train`" in line
    assert "delete" not in line and not (tmp_path / "ran").exists()


def test_a_weights_folder_without_weights_ends_in_one_line_with_exit_code_2(tmp_path, capsys):
    dataset = tmp_path / "hopper.hdf5"
    write_d4rl_hdf5(dataset, _episodes(), {"label": "x"})
    weights = tmp_path / "weights"
    weights.mkdir()
    args = _train_args(tmp_path, dataset, "--weights", str(weights))
    args[args.index("random")] = "gpt2"
    assert cli.main(args) == 2
    assert str(weights) in _one_line(capsys.readouterr().err)
