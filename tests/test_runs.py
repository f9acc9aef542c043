"""Trained runs from the cache (dtcore/runs.py): built once, loaded after, repaired, resumed."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from dtcore.model import build_model
from dtcore import checkpoints, provenance, runs
from dtcore.assets.integrity import CacheCorruptionWarning
from dtcore.provenance import sha256_tree
from tests.tiny_runs import TINY, slow_profile, store, write_dataset

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("DTCORE_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def data(tmp_path):
    return write_dataset(tmp_path / "data" / "hopper.pkl")


def _tensors_equal(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_tensors_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_tensors_equal(x, y) for x, y in zip(a, b))
    return a == b


def _trained_state(run, epoch) -> dict:
    state = run.state(epoch)
    return {k: state[k] for k in ("model", "optimizer", "scheduler", "sampler", "step")}


def test_a_run_is_trained_once_then_loaded_with_checkpoints_log_and_provenance(data):
    first = store(data)
    run = first.get("hopper", "random", 0, "K1")
    assert first.trained == ["hopper-seed0-random-K1"] and run.built
    assert run.run_dir.name.startswith("hopper__random__seed0__K1__")
    assert run.epochs == [0, 1, 2] and [r["epoch"] for r in run.log] == [1, 2]
    prov = run.provenance
    assert prov["config"]["variant"] == "K1" and prov["run"] == "hopper-seed0-random-K1"
    assert {"git_sha", "packages", "device", "wall_time_s"} <= set(prov)
    assert set(checkpoints.read_manifest(run.run_dir)) == {
        "epoch_000.pt", "epoch_001.pt", "epoch_002.pt", "log.json"}

    second = store(data)
    again = second.get("hopper", "random", 0, "K1")
    assert second.loaded == ["hopper-seed0-random-K1"] and second.trained == [] and not again.built
    assert again.run_dir == run.run_dir
    assert second.get("hopper", "random", 0, "K1") is again


def test_epoch_zero_model_is_the_seeded_initial_model_in_eval_mode(data):
    run = store(data).get("hopper", "random", 1, "K20")
    initial, trained = run.model(0), run.model("last")
    assert not initial.training
    rebuilt = build_model(run.model_config).state_dict()
    assert _tensors_equal(initial.state_dict(), rebuilt)
    assert not _tensors_equal(trained.state_dict(), rebuilt)


def test_best_checkpoint_has_the_highest_reported_mean_return(data):
    run = store(data, evaluate=True).get("hopper", "random", 0, "K1")
    target = run.config.eval.targets[0]
    assert set(run.eval_returns) == {1, 2} and all(target in r for r in run.eval_returns.values())
    best = run.checkpoint("best")
    best_epoch = int(best.stem.split("_")[1])
    assert all(run.mean_return(best_epoch) >= run.mean_return(e) for e in run.eval_returns)
    with pytest.raises(ValueError, match="epoch"):
        run.checkpoint(7)


def test_corrupted_checkpoint_is_reported_rebuilt_and_never_loaded(data):
    run = store(data).get("hopper", "random", 0, "K20")
    original = {e: _trained_state(run, e) for e in run.epochs}
    bad = run.run_dir / "epoch_001.pt"
    blob = bytearray(bad.read_bytes())
    blob[len(blob) // 3] ^= 0x55
    bad.write_bytes(bytes(blob))

    later = store(data)
    with pytest.warns(CacheCorruptionWarning, match="epoch_001.pt"):   # get() verifies every epoch
        reloaded = later.get("hopper", "random", 0, "K20")
        model = reloaded.model(1)
    assert _tensors_equal(model.state_dict(), original[1]["model"])
    assert later.trained == ["hopper-seed0-random-K20"] and reloaded.built
    assert all(_tensors_equal(_trained_state(reloaded, e), original[e]) for e in run.epochs)


def test_truncated_last_checkpoint_is_rebuilt_before_its_hash_is_used(data):
    run = store(data).get("hopper", "random", 0, "K20")
    weights = run.model("last").state_dict()
    last = run.run_dir / "epoch_002.pt"
    last.write_bytes(last.read_bytes()[:1000])
    truncated = provenance.sha256_file(last)
    with pytest.warns(CacheCorruptionWarning, match="epoch_002.pt"):
        sha = store(data).get("hopper", "random", 0, "K20").checkpoint_sha256("last")
    assert sha == provenance.sha256_file(last) != truncated
    assert _tensors_equal(run.model("last").state_dict(), weights)


def test_regen_retrains_a_cached_run_once_per_session(data):
    run = store(data).get("hopper", "random", 0, "K1")
    before = run.provenance["session"]
    regen = store(data, regen=True, session="second")
    assert regen.get("hopper", "random", 0, "K1").built
    assert run.provenance["session"] == "second" != before
    same_session = store(data, regen=True, session="second")
    assert not same_session.get("hopper", "random", 0, "K1").built


_TRAIN = textwrap.dedent("""
    import sys
    from pathlib import Path
    from tests.tiny_runs import slow_profile, store
    store(Path(sys.argv[1]), slow_profile(int(sys.argv[2]))).get("hopper", "random", 0, "K20")
""")


def test_training_killed_mid_epoch_resumes_to_the_same_final_bits(tmp_path, data, monkeypatch):
    steps = 40
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", _TRAIN, str(data), str(steps)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    runs_root = runs.runs_root()
    deadline = time.monotonic() + 120
    def epoch_one_recorded() -> bool:   # its file and its hash record: an unrecorded file is rebuilt
        return any("epoch_001.pt" in (checkpoints.read_manifest(f.parent) or {}) for f in runs_root.glob("*/epoch_001.pt"))

    while not epoch_one_recorded():
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "training never finished its first epoch"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stderr.close()
    (folder,) = [p for p in runs_root.iterdir() if p.is_dir()]
    assert sorted(checkpoints.checkpoint_files(folder)) == [0, 1], "the kill did not land in epoch 2"
    assert not (folder / checkpoints.PROVENANCE).exists()

    resumed = store(data, slow_profile(steps)).get("hopper", "random", 0, "K20")
    assert resumed.built and resumed.provenance["resumed_from_epoch"] == 1

    monkeypatch.setenv("DTCORE_CACHE", str(tmp_path / "uninterrupted"))
    straight = store(data, slow_profile(steps)).get("hopper", "random", 0, "K20")
    assert straight.provenance["resumed_from_epoch"] is None
    assert straight.run_dir.name == resumed.run_dir.name
    assert _tensors_equal(_trained_state(resumed, "last"), _trained_state(straight, "last"))
    assert [r["train_loss_mean"] for r in resumed.log] == [r["train_loss_mean"] for r in straight.log]


def _tiny_gpt2(folder: Path) -> Path:
    from transformers import GPT2Config, GPT2Model

    torch.manual_seed(0)
    GPT2Model(GPT2Config(n_layer=1, n_embd=8, n_head=1, vocab_size=16, n_positions=64,
                         bos_token_id=0, eos_token_id=0)).save_pretrained(folder)
    return folder


def test_pretrained_runs_key_on_the_weights_hash_and_build_from_the_local_folder(tmp_path, data, monkeypatch):
    import dtcore.assets.resolve as resolve

    def no_build(*args, **kwargs):
        raise AssertionError("a random-body run must not resolve pretrained weights")

    monkeypatch.setattr(resolve, "resolve_weights", no_build)
    assert store(data).config("hopper", "random", 0, "K20").weights_sha256 == ""

    weights = _tiny_gpt2(tmp_path / "language")
    runs = store(data, weights={"gpt2": weights})
    cfg = runs.config("hopper", "gpt2", 0, "K20")
    assert cfg.model.weights == TINY.weights["gpt2"]
    assert cfg.weights_sha256 == sha256_tree(weights) and str(weights) not in provenance.canonical_json(cfg)
    block = runs.config("hopper", "random", 0, "block0")
    assert block.weights_sha256 == cfg.weights_sha256 and block.model.block_donor == TINY.weights["gpt2"]
    run = runs.get("hopper", "gpt2", 0, "K20")
    assert run.model_config.weights == str(weights)
    assert _tensors_equal(run.model(0).state_dict(), build_model(run.model_config).state_dict())
    other = _tiny_gpt2(tmp_path / "other")
    (other / "extra.txt").write_text("changed")
    assert store(data, weights={"gpt2": other}).config("hopper", "gpt2", 0, "K20") != cfg


def test_corrupted_log_is_reported_and_rewritten(data):
    run = store(data).get("hopper", "random", 0, "K1")
    losses = [r["train_loss_mean"] for r in run.log]
    (run.run_dir / "log.json").write_text('{"epochs": []}')
    later = store(data)
    with pytest.warns(CacheCorruptionWarning, match="log.json"):
        again = later.get("hopper", "random", 0, "K1")
    assert again.built and [r["train_loss_mean"] for r in again.log] == losses
    assert not store(data).get("hopper", "random", 0, "K1").built
    assert all(checkpoints.verify(again.run_dir, e) for e in again.epochs)


def _length(epochs: int):
    return dataclasses.replace(TINY, train=dataclasses.replace(TINY.train, epochs=epochs))


def test_a_run_at_a_new_length_starts_from_the_cached_run_and_equals_a_fresh_one(tmp_path, data, monkeypatch):
    short = store(data, _length(2)).get("hopper", "random", 0, "K20")
    longer = store(data, _length(4)).get("hopper", "random", 0, "K20")
    assert longer.run_dir != short.run_dir
    assert longer.provenance["started_from"] == f"{short.run_dir.name} epochs 0-2"
    assert longer.provenance["resumed_from_epoch"] == 2
    prefix = store(data, _length(3)).get("hopper", "random", 0, "K20")   # the longest cached covers it
    assert prefix.provenance["started_from"] == f"{longer.run_dir.name} epochs 0-3"
    assert [r["epoch"] for r in prefix.log] == [1, 2, 3] and prefix.epochs == [0, 1, 2, 3]
    assert checkpoints.load(checkpoints.checkpoint_path(prefix.run_dir, 3))["run_id"] == prefix.run_dir.name

    for epochs, adopted in ((4, longer), (3, prefix)):
        monkeypatch.setenv("DTCORE_CACHE", str(tmp_path / f"fresh{epochs}"))
        fresh = store(data, _length(epochs)).get("hopper", "random", 0, "K20")
        assert fresh.provenance["started_from"] is None and fresh.run_dir.name == adopted.run_dir.name
        for epoch in range(epochs + 1):
            assert _tensors_equal(_trained_state(adopted, epoch), _trained_state(fresh, epoch)), epoch
        assert [r["train_loss_mean"] for r in adopted.log] == [r["train_loss_mean"] for r in fresh.log]


def test_a_corrupt_or_other_config_run_is_no_donor(data):
    short = store(data, _length(2)).get("hopper", "random", 0, "K20")
    other_seed = store(data, _length(3)).get("hopper", "random", 1, "K20")
    assert other_seed.provenance["started_from"] is None       # another seed: another prefix
    checkpoints.checkpoint_path(short.run_dir, 2).write_bytes(b"broken")
    longer = store(data, _length(3)).get("hopper", "random", 0, "K20")
    assert longer.provenance["started_from"] == f"{short.run_dir.name} epochs 0-1"   # up to its last good epoch


def test_the_share_to_train_leaves_out_resumed_and_adopted_epochs(data):
    from dtcore.grid import RunSpec
    spec = RunSpec("hopper", 0, "random", "K20")
    assert store(data, _length(2)).share_to_train(spec) == 1.0          # nothing cached
    store(data, _length(2)).get("hopper", "random", 0, "K20")
    assert store(data, _length(2)).share_to_train(spec) == 0.0          # complete
    assert store(data, _length(4)).share_to_train(spec) == 0.5          # epochs 1-2 adopted
    assert store(data, _length(4), regen=True).share_to_train(spec) == 1.0


def test_a_run_of_another_config_is_no_donor_and_its_checkpoints_are_never_hashed(data):
    other = dataclasses.replace(TINY, train=dataclasses.replace(TINY.train, epochs=2, steps_per_epoch=5))
    foreign = store(data, other).get("hopper", "random", 0, "K20")      # same folder prefix, another resume key
    fresh = store(data, _length(3))
    run = fresh.get("hopper", "random", 0, "K20")
    assert run.run_dir.name.rsplit("__", 1)[0] == foreign.run_dir.name.rsplit("__", 1)[0]
    assert run.provenance["started_from"] is None
    assert not any(str(foreign.run_dir) in path for path, _, _ in fresh._verified)
