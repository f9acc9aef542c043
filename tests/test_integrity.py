"""Issue 15: no cached artefact is used unverified, bad inputs are refused by name, weights load
strictly, the paper preflight runs under pytest too, and the smaller points (read-only cache,
group-readable files, actions outside [-1, 1], Ctrl-C, option checks, training threads)."""

from __future__ import annotations

import os
import pickle
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from dtcore import cli
from dtcore.assets import integrity
from dtcore.assets import store as asset_store
from dtcore.assets.integrity import CacheReadOnlyError
from dtcore.assets.recipes import DatasetRecipe
from dtcore.backbones import build_backbone
from dtcore.data import load_dataset
from dtcore import analysis_cache, checkpoints, provenance, runs
from dtcore.assets.integrity import CacheCorruptionWarning
from tests.test_backbones import gpt2_dir  # noqa: F401 - the small saved GPT-2 fixture
from tests.test_runs import _cache_in_tmp, data  # noqa: F401 - a cache per test, a tiny dataset
from tests.tiny_runs import store, write_dataset

ROOT = Path(__file__).resolve().parent.parent


def _weights(run, epoch="last") -> dict[str, torch.Tensor]:
    return torch.load(run.checkpoint(epoch), map_location="cpu", weights_only=True)["model"]


def _tamper_readable(path: Path) -> None:
    """Move one weight inside a checkpoint that torch still reads (torch.load checks no CRC)."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    key = next(k for k, v in state["model"].items() if v.is_floating_point())
    state["model"][key] = state["model"][key] + 463.0
    torch.save(state, path)


# -- point 1: checkpoints ----------------------------------------------------------------------

def test_a_lost_manifest_never_reapproves_a_tampered_checkpoint(data):
    run = store(data).get("hopper", "random", 0, "K20")
    original = _weights(run)
    last = run.run_dir / "epoch_002.pt"
    _tamper_readable(last)
    tampered = provenance.sha256_file(last)
    (run.run_dir / checkpoints.MANIFEST).unlink()

    with pytest.warns(CacheCorruptionWarning, match="epoch_000.pt.*cannot be verified"):
        again = store(data).get("hopper", "random", 0, "K20")
    assert again.built, "the unverifiable run is rebuilt, not loaded"
    assert tampered not in checkpoints.read_manifest(run.run_dir).values()
    assert all(torch.equal(original[k], v) for k, v in _weights(again).items())


def test_an_unlisted_checkpoint_is_reported_and_rebuilt_not_read(data):
    run = store(data).get("hopper", "random", 0, "K20")
    manifest = checkpoints.read_manifest(run.run_dir)
    manifest.pop("epoch_002.pt")
    provenance.atomic_write_json(run.run_dir / checkpoints.MANIFEST, manifest)
    _tamper_readable(run.run_dir / "epoch_002.pt")
    with pytest.warns(CacheCorruptionWarning, match="epoch_002.pt"):
        assert checkpoints.verify(run.run_dir, 2) is False


def test_an_invalid_manifest_is_reported_by_path_and_its_run_rebuilt(data):
    run = store(data).get("hopper", "random", 0, "K20")
    original = _weights(run)
    (run.run_dir / checkpoints.MANIFEST).write_text('{"epoch_000.pt": "not a hash"}')
    with pytest.warns(CacheCorruptionWarning) as caught:   # the manifest, then the checkpoint it cannot vouch for
        again = store(data).get("hopper", "random", 0, "K20")
    messages = [str(w.message) for w in caught]
    assert any("manifest.json" in m for m in messages) and any("epoch_000.pt" in m for m in messages), messages
    assert again.built and all(torch.equal(original[k], v) for k, v in _weights(again).items())


def test_an_invalid_analysis_record_is_reported_and_recomputed(tmp_path):
    analyses = analysis_cache.AnalysisCache(tmp_path)
    analyses({"x": 1}, lambda: [1, 2], kind="demo")
    (analyses.path({"x": 1}, "demo") / "meta.json").write_text("{")
    with pytest.warns(CacheCorruptionWarning, match="meta.json"):
        assert analyses({"x": 1}, lambda: [1, 2], kind="demo") == [1, 2]
    assert len(analyses.computed) == 2


# -- point 2: datasets and other assets --------------------------------------------------------

def _dataset_builder(calls: list):
    def build(out: Path) -> None:
        calls.append(out)
        write_dataset(out / "data.hdf5")
    return build


RECIPE = DatasetRecipe("hopper", "a.zip", "sac", 0.1, 10)


def test_a_dataset_asset_whose_bytes_changed_is_reported_and_rebuilt(tmp_path):
    calls: list = []
    path = asset_store.build_asset("datasets", "demo", RECIPE, _dataset_builder(calls), root=tmp_path)
    original = (path / "data.hdf5").read_bytes()
    blob = bytearray(original)
    blob[len(blob) // 2] ^= 0x01
    (path / "data.hdf5").write_bytes(bytes(blob))
    assert not asset_store.is_built(path)
    with pytest.warns(CacheCorruptionWarning, match=r"data.hdf5.*does not match"):
        again = asset_store.build_asset("datasets", "demo", RECIPE, _dataset_builder(calls), root=tmp_path)
    assert again == path and len(calls) == 2 and (path / "data.hdf5").read_bytes() == original


def test_a_deleted_dataset_file_is_rebuilt_not_reused(tmp_path):
    calls: list = []
    path = asset_store.build_asset("datasets", "demo", RECIPE, _dataset_builder(calls), root=tmp_path)
    (path / "data.hdf5").unlink()
    with pytest.warns(CacheCorruptionWarning, match=r"data.hdf5.*missing"):
        asset_store.build_asset("datasets", "demo", RECIPE, _dataset_builder(calls), root=tmp_path)
    assert len(calls) == 2 and (path / "data.hdf5").is_file()


def test_an_invalid_asset_provenance_is_reported_and_rebuilt(tmp_path):
    calls: list = []
    path = asset_store.build_asset("datasets", "demo", RECIPE, _dataset_builder(calls), root=tmp_path)
    (path / asset_store.PROVENANCE).write_text("[]")
    with pytest.warns(CacheCorruptionWarning, match="provenance.json"):
        asset_store.build_asset("datasets", "demo", RECIPE, _dataset_builder(calls), root=tmp_path)
    assert len(calls) == 2 and asset_store.is_built(path)


def test_a_missing_dataset_file_is_named_and_leaves_no_run_folder(tmp_path):
    missing = tmp_path / "data" / "gone.pkl"
    with pytest.raises(FileNotFoundError, match="gone.pkl"):
        store(missing).get("hopper", "random", 0, "K20")
    folder = runs.runs_root()
    assert not folder.exists() or not [p for p in folder.iterdir() if p.is_dir()]


def test_a_bad_dataset_fails_before_any_run_folder_is_made(tmp_path):
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(pickle.dumps([]))
    with pytest.raises(ValueError, match="bad.pkl"):
        store(bad).get("hopper", "random", 0, "K20")
    folder = runs.runs_root()
    assert not folder.exists() or not [p for p in folder.iterdir() if p.is_dir()]


# -- point 4: strict weight loading ------------------------------------------------------------

def _copy(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


def test_a_config_with_an_extra_layer_is_refused_naming_the_file_and_tensors(tmp_path, gpt2_dir):  # noqa: F811
    w = _copy(gpt2_dir[0], tmp_path / "w")
    (w / "config.json").write_text((w / "config.json").read_text().replace('"n_layer": 2', '"n_layer": 3'))
    with pytest.raises(ValueError, match=r"model.safetensors.*missing from the file.*h\.2\.attn"):
        build_backbone("gpt2", weights=str(w))


def test_a_safetensors_file_lacking_a_tensor_is_refused_naming_it(tmp_path, gpt2_dir):  # noqa: F811
    w = _copy(gpt2_dir[0], tmp_path / "w")
    tensors = load_file(w / "model.safetensors")
    tensors.pop("h.1.mlp.c_fc.weight")
    save_file(tensors, w / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError, match=r"model.safetensors.*h\.1\.mlp\.c_fc\.weight"):
        build_backbone("gpt2", weights=str(w))


def test_a_tensor_of_another_shape_is_refused_naming_it(tmp_path, gpt2_dir):  # noqa: F811
    w = _copy(gpt2_dir[0], tmp_path / "w")
    (w / "config.json").write_text((w / "config.json").read_text().replace('"n_embd": 16', '"n_embd": 32'))
    with pytest.raises(ValueError, match=r"model.safetensors.*another shape.*h\.0\.attn\.c_attn\.weight"):
        build_backbone("gpt2", weights=str(w))


# -- point 5: the paper preflight under pytest -------------------------------------------------

def test_pytest_with_the_paper_profile_stops_once_listing_every_missing_asset(tmp_path):
    empty = tmp_path / "empty"
    env = {**os.environ, "HF_HOME": str(empty), "DTCORE_DATA_DIR": str(empty), "DTCORE_CACHE": str(empty),
           "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "claims/", "--profile", "paper", "--envs", "hopper",
                           "-p", "no:cacheprovider", "-p", "no:xdist", "-q"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 4, out[-2000:]
    assert out.count("asset(s) missing") == 1 and "hopper_medium-v2.hdf5" in out and "hf download gpt2" in out
    assert "passed" not in out and "failed" not in out


# -- point 6: option checks (already at parse time; kept by these tests) -----------------------

@pytest.mark.parametrize("argv, option", [(["--envs", "mars"], "--envs"), (["--backbones", "bert"], "--backbones"),
                                          (["--seeds", "x"], "--seeds"), (["--seeds", "-1"], "--seeds")])
def test_a_bad_grid_option_is_a_parse_error_naming_it(argv, option, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["claims", "--profile", "smoke", *argv])
    assert exit_info.value.code == 2 and option in capsys.readouterr().err


def test_pytest_refuses_a_negative_seed_at_startup():
    proc = subprocess.run([sys.executable, "-m", "pytest", "tests/test_config.py", "--seeds=-1", "-p",
                           "no:cacheprovider", "-p", "no:xdist", "-q", "--co"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 4 and "--seeds" in proc.stdout + proc.stderr


def test_claims_and_pytest_accept_the_same_seeds():
    from dtcore.grid import parse_seeds

    args = cli.build_parser().parse_args(["claims", "--profile", "smoke", "--seeds", "2"])
    assert args.seeds == parse_seeds("2") == (2,)


# -- point 7: the smaller points ---------------------------------------------------------------

def test_a_read_only_cache_says_so_instead_of_promising_a_rebuild(tmp_path, monkeypatch):
    calls: list = []
    path = asset_store.build_asset("datasets", "demo", RECIPE, _dataset_builder(calls), root=tmp_path)
    (path / "data.hdf5").write_bytes(b"changed")
    monkeypatch.setattr(integrity.os, "access", lambda *a, **k: False)
    with pytest.raises(CacheReadOnlyError, match="read-only"):
        asset_store.build_asset("datasets", "demo", RECIPE, _dataset_builder(calls), root=tmp_path)


def test_cache_files_follow_the_umask_so_a_group_can_read_them(data):
    old = os.umask(0o022)
    try:
        run = store(data).get("hopper", "random", 0, "K1")
    finally:
        os.umask(old)
    for name in ("epoch_000.pt", "log.json", checkpoints.MANIFEST, checkpoints.PROVENANCE):
        assert stat.S_IMODE((run.run_dir / name).stat().st_mode) == 0o644, name


def test_actions_outside_minus_one_one_are_refused_naming_the_file(tmp_path):
    path = write_dataset(tmp_path / "hopper.pkl")
    paths = pickle.loads(path.read_bytes())
    paths[2]["actions"] = paths[2]["actions"] * 100
    path.write_bytes(pickle.dumps(paths))
    with pytest.raises(ValueError, match=r"hopper.pkl.*outside \[-1, 1\]"):
        load_dataset(path, env="hopper", trust_pickle=True)


def test_ctrl_c_prints_one_line_not_a_traceback(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_cmd_train", interrupted)
    assert cli.main(["train", "--out", "x"]) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_small_cpu_model_trains_on_one_thread_and_the_count_is_restored(data, monkeypatch):
    import dtcore.train as train_mod

    seen = []
    real = train_mod.train_step
    monkeypatch.setattr(train_mod, "train_step", lambda *a, **k: seen.append(torch.get_num_threads()) or real(*a, **k))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        store(data).get("hopper", "random", 0, "K1")
        assert set(seen) == {1} and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
