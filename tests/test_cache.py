"""The cache mechanics (dtcore/checkpoints.py, dtcore/analysis_cache.py, dtcore/runs.py): keys,
atomic writes, locks, manifests, analyses."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from dtcore.config import run_id
from dtcore.profiles import SMOKE, experiment
from dtcore import analysis_cache, checkpoints, provenance, runs
from dtcore.analysis_cache import AnalysisCache
from dtcore.assets.integrity import CacheCorruptionWarning

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("DTCORE_CACHE", str(tmp_path / "cache"))


def _never():
    raise AssertionError("compute() was called although the value is cached")


def test_run_key_is_deterministic_and_covers_config_and_asset_hashes():
    cfg = experiment(SMOKE, "hopper", "gpt2", 0, "K20", dataset_sha256="a" * 64, weights_sha256="b" * 64)
    again = experiment(SMOKE, "hopper", "gpt2", 0, "K20", dataset_sha256="a" * 64, weights_sha256="b" * 64)
    assert runs.run_dir(cfg) == runs.run_dir(again)
    assert runs.run_dir(cfg).name.startswith("hopper__gpt2__seed0__K20__")
    assert runs.run_dir(cfg).parent == Path(os.environ["DTCORE_CACHE"]) / "runs"
    other_data = dataclasses.replace(cfg, dataset_sha256="c" * 64)
    other_weights = dataclasses.replace(cfg, weights_sha256="c" * 64)
    other_lr = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, lr=2e-4))
    assert len({run_id(c) for c in (cfg, other_data, other_weights, other_lr)}) == 4


def test_analysis_key_ignores_dict_order_but_not_values():
    assert provenance.key_hash({"a": 1, "b": (1, 2)}) == provenance.key_hash({"b": [1, 2], "a": 1})
    assert provenance.key_hash({"a": 1}) != provenance.key_hash({"a": 2})
    with pytest.raises(ValueError, match="key_parts"):
        provenance.key_hash({"a": object()})


def test_atomic_write_keeps_the_old_file_when_the_write_fails(tmp_path, monkeypatch):
    target = tmp_path / "out" / "value.json"
    provenance.atomic_write_json(target, {"v": 1})

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(provenance.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        provenance.atomic_write_json(target, {"v": 2})
    assert json.loads(target.read_text()) == {"v": 1}
    assert [p.name for p in target.parent.iterdir()] == ["value.json"]


def test_a_lock_the_user_cannot_write_is_one_error_naming_it_the_cause_and_the_fix(monkeypatch):
    """Another user's cache made with umask 022: opening its lock file for writing is refused (the
    tests run as root, so the refusal is injected where the lock is taken)."""
    import errno

    import filelock

    def refused(lock, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", lock.lock_file)

    monkeypatch.setattr(filelock.FileLock, "acquire", refused)
    folder = AnalysisCache().path({"ckpt": "a"}, "demo")
    with pytest.raises(PermissionError) as err:
        AnalysisCache()({"ckpt": "a"}, _never, kind="demo")
    message = str(err.value)
    assert f"{folder}.lock" in message and "Permission denied" in message and "\n" not in message
    assert "another user" in message and "DTCORE_CACHE" in message and "group-writable" in message


@pytest.mark.parametrize("value", [
    np.arange(12, dtype=np.float64).reshape(3, 4),
    {"cka": np.eye(3), "layers": np.array([1, 2, 3])},
    {"curve": [0.5, 0.25], "epochs": [1, 2], "name": "mine"},
    torch.linspace(0, 1, 5),
    {"grads": [torch.ones(2)], "n": 3},
], ids=["array", "dict-of-arrays", "json", "tensor", "mixed"])
def test_analysis_results_round_trip_and_are_not_recomputed(value):
    store = AnalysisCache()
    first = store({"ckpt": "f" * 64, "layers": (0, 1)}, lambda: value, kind="demo")
    second = AnalysisCache()({"ckpt": "f" * 64, "layers": (0, 1)}, _never, kind="demo")
    for got in (first, second):
        _assert_same(got, value)
    assert store.computed and not store.loaded


def _assert_same(got, want):
    if isinstance(want, dict):
        assert set(got) == set(want)
        for k in want:
            _assert_same(got[k], want[k])
    elif isinstance(want, list):
        assert len(got) == len(want)
        for g, w in zip(got, want):
            _assert_same(g, w)
    elif isinstance(want, torch.Tensor):
        assert torch.equal(got, want)
    elif isinstance(want, np.ndarray):
        np.testing.assert_array_equal(got, want)
        assert got.dtype == want.dtype
    else:
        assert got == want


def test_analysis_key_includes_kind_and_every_key_part():
    store = AnalysisCache()
    assert store({"ckpt": "a"}, lambda: 1, kind="cka") == 1
    assert store({"ckpt": "b"}, lambda: 2, kind="cka") == 2
    assert store({"ckpt": "a"}, lambda: 3, kind="mine") == 3
    assert store({"ckpt": "a"}, _never, kind="cka") == 1
    assert sorted(p.name.split("__")[0] for p in analysis_cache.analyses_root().iterdir() if p.is_dir()) == [
        "cka", "cka", "mine"]


def test_corrupted_analysis_result_is_reported_and_recomputed():
    store = AnalysisCache()
    store({"ckpt": "a"}, lambda: np.ones(100), kind="acts")
    folder = store.path({"ckpt": "a"}, "acts")
    value = folder / "value.npy"
    value.write_bytes(value.read_bytes()[:50])
    with pytest.warns(CacheCorruptionWarning, match="value.npy"):
        again = store({"ckpt": "a"}, lambda: np.full(100, 2.0), kind="acts")
    np.testing.assert_array_equal(again, np.full(100, 2.0))


def test_regen_recomputes_analyses_once_per_session():
    AnalysisCache()({"k": 1}, lambda: "old", kind="x")
    calls = []

    def compute():
        calls.append(1)
        return "new"

    regen = AnalysisCache(regen=True, session="s1")
    assert regen({"k": 1}, compute, kind="x") == "new"
    assert regen({"k": 1}, compute, kind="x") == "new"
    assert AnalysisCache(regen=True, session="s1")({"k": 1}, compute, kind="x") == "new"
    assert len(calls) == 1
    assert AnalysisCache(regen=True, session="s2")({"k": 1}, compute, kind="x") == "new"
    assert len(calls) == 2


_CONCURRENT = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from dtcore.analysis_cache import AnalysisCache

    def compute():
        with open(sys.argv[1], "a") as f:
            f.write("computed\\n")
        time.sleep(1.0)
        return {"value": 42}

    print(AnalysisCache()({"ckpt": "same"}, compute, kind="slow")["value"])
""")


def test_two_processes_asking_for_one_analysis_compute_it_once(tmp_path):
    counter = tmp_path / "calls.txt"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", _CONCURRENT, str(counter)], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    assert [o[0].strip() for o in outs] == ["42", "42"]
    assert counter.read_text().splitlines() == ["computed"]


def _fake_checkpoints(folder: Path, epochs: int) -> None:
    for e in range(epochs):
        checkpoints.save(folder / f"epoch_{e:03d}.pt", {"model": {"w": torch.full((64,), float(e))}, "epoch": e})


def test_manifest_detects_a_corrupted_checkpoint_and_drops_it_and_later_epochs(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    _fake_checkpoints(folder, 4)
    manifest = checkpoints.read_manifest(folder)
    assert set(manifest) == {f"epoch_{e:03d}.pt" for e in range(4)}
    assert checkpoints.drop_corrupt(folder) is None
    bad = folder / "epoch_002.pt"
    data = bytearray(bad.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.warns(CacheCorruptionWarning, match="epoch_002.pt"):
        assert not checkpoints.verify(folder, 2)
    with pytest.warns(CacheCorruptionWarning, match="epoch_002.pt"):
        assert checkpoints.drop_corrupt(folder) == 2
    assert sorted(checkpoints.checkpoint_files(folder)) == [0, 1]
    assert set(checkpoints.read_manifest(folder)) == {"epoch_000.pt", "epoch_001.pt"}
    assert checkpoints.verify(folder, 1)


def test_unlisted_truncated_checkpoint_is_detected(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    _fake_checkpoints(folder, 3)
    (folder / checkpoints.MANIFEST).write_text(json.dumps(
        {k: v for k, v in checkpoints.read_manifest(folder).items() if k != "epoch_002.pt"}))
    last = folder / "epoch_002.pt"
    last.write_bytes(last.read_bytes()[:100])
    with pytest.warns(CacheCorruptionWarning, match="epoch_002.pt"):
        assert checkpoints.drop_corrupt(folder) == 2
    assert sorted(checkpoints.checkpoint_files(folder)) == [0, 1]


def test_provenance_names_config_code_versions_device_and_time():
    cfg = experiment(SMOKE, "hopper", "random", 0, "K1")
    prov = provenance.provenance(cfg, wall_time_s=1.23456)
    assert prov["config"]["variant"] == "K1" and prov["config"]["model"]["backbone"] == "random"
    assert prov["packages"]["torch"] == torch.__version__ and "numpy" in prov["packages"]
    assert prov["device"] in ("cpu",) or prov["device"].startswith("cuda")
    assert prov["wall_time_s"] == 1.235
    assert prov["git_sha"] is None or len(prov["git_sha"].split("+")[0]) == 40
