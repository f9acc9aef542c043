"""Offline assets: D4RL-like datasets from the behaviour policies, the asset cache, asset
resolution and the paper profile's missing-asset message (issue 5, points 2, 4 and 5)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from dtcore.assets import collect, store
from dtcore.assets.collect import LABEL, TRUSTED_POLICY_FILES, UntrustedPolicyError, collect_dataset
from dtcore.assets.recipes import DatasetRecipe
from dtcore.assets.resolve import MissingAssetsError, check_paper_assets, resolve_dataset, resolve_weights
from dtcore.data import load_dataset
from dtcore.envs import env_spec
from dtcore.profiles import MINI, PAPER, SMOKE

POLICY_DIR = collect.default_policy_dir()
needs_policies = pytest.mark.skipif(
    POLICY_DIR is None or not POLICY_DIR.is_dir(),
    reason="behaviour policies not found: set DTCORE_POLICY_DIR to a copy of rl-trained-agents")
D4RL_KEYS = ("observations", "actions", "rewards", "terminals", "timeouts", "next_observations")


def _recipe(env: str = "hopper", steps: int = 300) -> DatasetRecipe:
    return dataclasses.replace(MINI.dataset_recipe(env), steps=steps)


@pytest.fixture(scope="module")
def hopper_file(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("collect") / "hopper.hdf5"
    return collect_dataset(_recipe("hopper", 300), out, progress=False)


# --------------------------------------------------------------------------- collection


@needs_policies
def test_collected_file_has_d4rl_layout_dtypes_and_provenance(hopper_file):
    spec = env_spec("hopper")
    with h5py.File(hopper_file, "r") as f:
        assert set(D4RL_KEYS) <= set(f.keys())
        n = len(f["rewards"])
        assert n >= 300
        assert f["observations"].shape == (n, spec.state_dim) and f["observations"].dtype == np.float32
        assert f["next_observations"].shape == (n, spec.state_dim) and f["next_observations"].dtype == np.float32
        assert f["actions"].shape == (n, spec.act_dim) and f["actions"].dtype == np.float32
        assert f["rewards"].dtype == np.float32 and f["terminals"].dtype == bool and f["timeouts"].dtype == bool
        actions = f["actions"][()]
        assert actions.min() >= -1.0 and actions.max() <= 1.0
        attrs = dict(f.attrs)
    assert attrs["label"] == LABEL == "D4RL-like substitute"
    assert attrs["policy_sha256"] == TRUSTED_POLICY_FILES[_recipe().agent]
    assert attrs["noise"] == pytest.approx(0.2)
    versions = json.loads(attrs["versions"])
    assert {"gymnasium", "mujoco"} <= set(versions)
    assert json.loads(attrs["recipe"])["steps"] == 300
    assert json.loads(attrs["reset_seeds"])[0] == 0


@needs_policies
def test_collected_file_reads_back_through_the_loader_with_the_right_statistics(hopper_file):
    ds = load_dataset(hopper_file, env="hopper")
    assert ds.label == "D4RL-like substitute"
    with h5py.File(hopper_file, "r") as f:
        rewards = f["rewards"][()].astype(np.float64)
        ends = np.flatnonzero(f["terminals"][()] | f["timeouts"][()])
    assert ends[-1] == len(rewards) - 1, "the file holds whole episodes only"
    lengths = np.diff(np.concatenate([[-1], ends]))
    assert len(rewards) >= 300 > lengths[:-1].sum(), "the shortest prefix of episodes reaching 300 steps"
    returns = [seg.sum() for seg in np.split(rewards, ends[:-1] + 1)]
    stats = ds.stats()
    assert stats.n_trajectories == len(ends) and stats.n_timesteps == len(rewards)
    assert stats.return_mean == pytest.approx(np.mean(returns))
    assert stats.return_std == pytest.approx(np.std(returns))
    stored = json.loads(collect.stats_path(hopper_file).read_text())
    assert stored["n_trajectories"] == stats.n_trajectories
    assert stored["return_mean"] == pytest.approx(stats.return_mean, rel=1e-6)
    assert stored["d4rl_medium_v2"]["return_mean"] == pytest.approx(1422.06)
    # the noisy TQC agent is far above a falling random policy (hopper-random-v2: ~18)
    assert stats.return_mean > 200


@needs_policies
def test_next_observation_is_the_following_observation_within_an_episode(hopper_file):
    ds = load_dataset(hopper_file, env="hopper")
    for traj in ds.trajectories:
        np.testing.assert_array_equal(traj["next_observations"][:-1], traj["observations"][1:])
        assert traj["terminals"][:-1].sum() == 0 and traj["timeouts"][:-1].sum() == 0


@needs_policies
def test_collection_is_deterministic_given_the_recipe(tmp_path):
    recipe = _recipe("halfcheetah", 50)
    recipe = dataclasses.replace(recipe, seed=3)
    a = collect_dataset(recipe, tmp_path / "a.hdf5", progress=False, n_envs=2)
    b = collect_dataset(recipe, tmp_path / "b.hdf5", progress=False, n_envs=2)
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        for k in D4RL_KEYS:
            np.testing.assert_array_equal(fa[k][()], fb[k][()])
        n_episodes = int((fa["terminals"][()] | fa["timeouts"][()]).sum())
        assert n_episodes == 1 and len(fa["rewards"]) == 1000, "one whole 1000-step episode, not one per env"
        assert json.loads(fa.attrs["reset_seeds"]) == [3, 3 + n_episodes - 1]


def test_a_policy_file_with_an_unknown_sha256_is_refused(tmp_path):
    marker = tmp_path / "unpickled"
    fake = tmp_path / "tqc" / "Hopper-v3_1" / "Hopper-v3.zip"
    fake.parent.mkdir(parents=True)
    # a pickle that would create `marker` if anything unpickled it
    fake.write_bytes(b"cpathlib\nPath\n(S'" + str(marker).encode() + b"'\ntR.")
    with pytest.raises(UntrustedPolicyError, match="sha256"):
        collect_dataset(_recipe(), tmp_path / "out.hdf5", policy_dir=tmp_path, progress=False)
    assert not marker.exists() and not (tmp_path / "out.hdf5").exists()


@needs_policies
def test_an_untrusted_vecnormalize_beside_a_trusted_ars_agent_is_refused(tmp_path):
    agent = "ars/HalfCheetah-v3_1/HalfCheetah-v3.zip"          # an ARS agent that ships with the package
    (tmp_path / agent).parent.mkdir(parents=True)
    shutil.copy(POLICY_DIR / agent, tmp_path / agent)
    stats = tmp_path / "ars/HalfCheetah-v3_1/HalfCheetah-v3/vecnormalize.pkl"
    stats.parent.mkdir(parents=True)
    stats.write_bytes(b"not the published statistics")
    recipe = DatasetRecipe("halfcheetah", agent, "ars", 0.1, 10)
    with pytest.raises(UntrustedPolicyError, match="vecnormalize.pkl"):
        collect_dataset(recipe, tmp_path / "out.hdf5", policy_dir=tmp_path, progress=False)


def test_profiles_only_name_trusted_behaviour_policies():
    for profile in (MINI, SMOKE):
        assert {r.env for r in profile.datasets} == set(profile.envs)
        for r in profile.datasets:
            assert r.agent in TRUSTED_POLICY_FILES, r.agent
            assert r.agent.split("/")[0] == r.algo


# --------------------------------------------------------------------------- asset cache


def test_asset_cache_builds_once_reuses_and_says_so(tmp_path, caplog):
    calls = []

    def build(out: Path) -> dict:
        calls.append(out)
        (out / "payload.txt").write_text("x")
        return {"answer": 42}

    recipe = DatasetRecipe("hopper", "a.zip", "sac", 0.1, 10)
    first = store.build_asset("datasets", "demo", recipe, build, root=tmp_path)
    with caplog.at_level(logging.INFO, logger="dtcore.assets.store"):
        t0 = time.perf_counter()
        second = store.build_asset("datasets", "demo", recipe, build, root=tmp_path)
        assert time.perf_counter() - t0 < 0.5
    assert first == second and len(calls) == 1
    assert any("reusing cached asset" in r.getMessage() for r in caplog.records)
    prov = store.read_provenance(first)
    assert prov["recipe"] == dataclasses.asdict(recipe) and prov["build"] == {"answer": 42}
    assert "payload.txt" in prov["files"] and "torch" in prov["versions"]
    assert [p.name for p in first.parent.iterdir() if p.is_dir()] == [first.name], "no temporary left"


def test_asset_cache_is_keyed_by_the_full_recipe(tmp_path):
    def build(out: Path) -> None:
        (out / "f").write_text("x")

    base = DatasetRecipe("hopper", "a.zip", "sac", 0.1, 10)
    paths = {store.build_asset("datasets", "demo", r, build, root=tmp_path)
             for r in (base, dataclasses.replace(base, noise=0.2), dataclasses.replace(base, seed=1))}
    assert len(paths) == 3
    assert store.asset_key("datasets", "demo", base) == store.asset_key("datasets", "demo", base)
    assert store.asset_key("datasets", "demo", base, {"v": 1}) != store.asset_key("datasets", "demo", base, {"v": 2})


def test_a_failed_build_leaves_no_asset_behind(tmp_path):
    def build(out: Path) -> None:
        (out / "half").write_text("x")
        raise RuntimeError("boom")

    recipe = DatasetRecipe("hopper", "a.zip", "sac", 0.1, 10)
    with pytest.raises(RuntimeError, match="boom"):
        store.build_asset("datasets", "demo", recipe, build, root=tmp_path)
    assert not [p for p in (tmp_path / "assets" / "datasets").iterdir() if p.is_dir()]


@needs_policies
def test_resolve_dataset_collects_the_profile_recipe_once_then_reuses_it(tmp_path, caplog):
    profile = dataclasses.replace(SMOKE, datasets=(_recipe("walker2d", 120),))
    path = resolve_dataset(profile, "walker2d", root=tmp_path, progress=False)
    assert load_dataset(path, env="walker2d").stats().n_timesteps >= 120
    with caplog.at_level(logging.INFO, logger="dtcore.assets.store"):
        assert resolve_dataset(profile, "walker2d", root=tmp_path, progress=False) == path
    assert any("reusing cached asset" in r.getMessage() for r in caplog.records)
    assert store.read_provenance(path.parent)["build"]["n_timesteps"] >= 120


def test_hub_names_and_local_directories_pass_through_resolve_weights(tmp_path):
    assert resolve_weights("gpt2", PAPER) == "gpt2"
    assert resolve_weights("openai/imagegpt-small", PAPER) == "openai/imagegpt-small"
    assert resolve_weights(str(tmp_path), PAPER) == str(tmp_path)
    with pytest.raises(ValueError, match="asset:language"):
        resolve_weights("asset:video-mini", MINI)


# --------------------------------------------------------------------------- missing paper assets


@pytest.fixture
def empty_caches(tmp_path, monkeypatch):
    from huggingface_hub import constants

    hub = tmp_path / "hf" / "hub"
    hub.mkdir(parents=True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("DTCORE_DATA_DIR", str(tmp_path / "d4rl"))
    return hub, tmp_path / "d4rl"


def _fake_hub_snapshot(hub: Path, repo: str, files: tuple[str, ...]) -> None:
    folder = hub / f"models--{repo.replace('/', '--')}"
    snap = folder / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text("abc123")
    for f in files:
        (snap / f).write_text("{}")


def test_a_missing_paper_asset_gives_one_message_listing_each_and_where_to_put_it(empty_caches):
    hub, d4rl = empty_caches
    with pytest.raises(MissingAssetsError) as info:
        check_paper_assets(PAPER, PAPER.envs)
    msg = str(info.value)
    assert f"{len(PAPER.weights) + len(PAPER.envs)} asset(s) missing" in msg   # every body's weights, every env's data
    for item in ("'gpt2'", "'openai/imagegpt-small'", "hf download gpt2", str(hub)):
        assert item in msg
    for env in PAPER.envs:
        assert str(d4rl / f"{env}_medium-v2.hdf5") in msg
    assert "DTCORE_DATA_DIR" in msg
    assert info.value.__cause__ is None and info.value.__context__ is None, "no chained hub traceback"


def test_present_paper_assets_are_not_listed(empty_caches):
    hub, d4rl = empty_caches
    for ref in set(PAPER.weights.values()) - {"openai/imagegpt-small"}:
        _fake_hub_snapshot(hub, ref, ("config.json", "model.safetensors"))
    _fake_hub_snapshot(hub, "openai/imagegpt-small", ("config.json",))  # weights file absent
    d4rl.mkdir()
    (d4rl / "hopper_medium-v2.hdf5").write_bytes(b"")
    with pytest.raises(MissingAssetsError) as info:
        check_paper_assets(PAPER, ("hopper",))
    msg = str(info.value)
    assert "1 asset(s) missing" in msg and "'openai/imagegpt-small'" in msg
    assert "'gpt2'" not in msg and "hopper_medium-v2" not in msg
    _fake_hub_snapshot(hub, "openai/imagegpt-small-2", ("config.json", "pytorch_model.bin"))
    check_paper_assets(dataclasses.replace(PAPER, weights={**PAPER.weights, "igpt": "openai/imagegpt-small-2"}), ("hopper",))


def test_offline_profiles_report_a_missing_behaviour_policy_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("DTCORE_POLICY_DIR", str(tmp_path / "nowhere"))
    monkeypatch.setenv("DTCORE_CACHE", str(tmp_path / "cache"))
    with pytest.raises(MissingAssetsError) as info:
        check_paper_assets(MINI, ("hopper", "walker2d"))
    msg = str(info.value)
    assert "2 asset(s) missing" in msg and "DTCORE_POLICY_DIR" in msg
    assert str(tmp_path / "nowhere" / MINI.dataset_recipe("hopper").agent) in msg


def test_the_policies_the_profiles_need_ship_with_the_package(monkeypatch):
    """A clone of the repository alone can build its datasets: every behaviour policy of the mini
    and smoke recipes is in dtcore/assets/policies, trusted, with its licence and provenance."""
    monkeypatch.delenv("DTCORE_POLICY_DIR", raising=False)
    assert collect.default_policy_dir() == collect.PACKAGED_POLICIES
    prov = json.loads((collect.PACKAGED_POLICIES / "provenance.json").read_text())
    assert "MIT" in prov["licence"] and (collect.PACKAGED_POLICIES / "LICENSE").is_file()
    for name, entry in prov["files"].items():
        data = (collect.PACKAGED_POLICIES / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"] and len(data) == entry["bytes"], name
    for recipe in MINI.datasets + SMOKE.datasets:
        path = collect.policy_path(recipe)
        assert path.is_relative_to(collect.PACKAGED_POLICIES)
        assert collect.verify_trusted(path) == prov["files"][recipe.agent]["sha256"]
    monkeypatch.setenv("DTCORE_POLICY_DIR", "/elsewhere")
    assert str(collect.default_policy_dir()) == "/elsewhere"


def test_the_asset_resolver_resolves_each_dataset_and_each_body_weights_once(tmp_path, monkeypatch):
    """RunStore and the command line both take a cell's assets from an AssetResolver: the dataset
    by env and the weights by body (a block run loads the donor body's), each resolved once."""
    import dtcore.assets.resolve as resolve
    from dtcore.experiment import AssetResolver

    calls = []
    data = tmp_path / "data.hdf5"
    data.write_bytes(b"rows")

    def fake_weights(ref, profile, **kwargs):
        calls.append(ref)
        (tmp_path / ref.replace(":", "_")).mkdir(exist_ok=True)
        return str(tmp_path / ref.replace(":", "_"))

    def fake_dataset(profile, env, **kwargs):
        calls.append(env)
        return data

    monkeypatch.setattr(resolve, "resolve_weights", fake_weights)
    monkeypatch.setattr(resolve, "resolve_dataset", fake_dataset)
    monkeypatch.setattr("dtcore.data.dataset_sha256", lambda path: f"sha of {Path(path).name}")   # not HDF5
    resolver = AssetResolver(SMOKE, progress=False)
    random = resolver.cell("hopper", "random", "K20")
    gpt2 = resolver.cell("hopper", "gpt2", "K20")
    block = resolver.cell("hopper", "random", "block1")
    igpt = resolver.cell("walker2d", "igpt", "noclip")
    assert calls == ["hopper", "asset:language-smoke", "walker2d", "asset:image-smoke"]
    assert (random.weights, random.weights_sha256) == (None, "")
    assert block == gpt2 and gpt2.weights.endswith("asset_language-smoke") and len(gpt2.weights_sha256) == 64
    assert igpt.weights.endswith("asset_image-smoke") and igpt.dataset == data

    override = AssetResolver(SMOKE, datasets={"hopper": data}, weights={"gpt2": str(tmp_path)})
    assert override.cell("hopper", "random", "block0").weights == str(tmp_path)
    assert calls == ["hopper", "asset:language-smoke", "walker2d", "asset:image-smoke"]   # nothing resolved
