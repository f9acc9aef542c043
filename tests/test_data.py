"""dtcore.data: loading, trajectory splitting, statistics and the published batch sampler
(docs/spec.md §2.1-2.4), on small files the tests write."""

from __future__ import annotations

import pickle

import h5py
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from dtcore.data import OfflineDataset, kept_trajectories, load_dataset, returns_to_go
from dtcore.samplers import BatchSampler

S, A = 11, 3  # hopper's sizes


def make_trajectory(rng: np.random.Generator, n: int, *, terminal: bool = True,
                    obs_value: float | None = None) -> dict[str, np.ndarray]:
    obs = rng.normal(size=(n, S)).astype(np.float32) if obs_value is None else \
        np.full((n, S), obs_value, np.float32)
    terminals = np.zeros(n, bool)
    timeouts = np.zeros(n, bool)
    (terminals if terminal else timeouts)[-1] = True
    return {"observations": obs, "next_observations": obs + 1,
            "actions": rng.uniform(-1, 1, (n, A)).astype(np.float32),
            "rewards": rng.uniform(0, 3, n).astype(np.float32),
            "terminals": terminals, "timeouts": timeouts}


def make_dataset(lengths, seed: int = 0, **kw) -> OfflineDataset:
    rng = np.random.default_rng(seed)
    return OfflineDataset([make_trajectory(rng, n, **kw) for n in lengths], source="memory",
                          label="test", env="hopper")


def write_hdf5(path, data: dict[str, np.ndarray]) -> None:
    with h5py.File(path, "w") as f:
        for k, v in data.items():
            f[k] = v


def flat(trajectories, tail: int = 0, rng=None) -> dict[str, np.ndarray]:
    """D4RL's flat layout: trajectories concatenated, plus ``tail`` unfinished transitions."""
    out = {k: np.concatenate([t[k] for t in trajectories]) for k in trajectories[0]}
    if tail:
        extra = make_trajectory(rng, tail)
        extra["terminals"][:] = False
        out = {k: np.concatenate([out[k], extra[k]]) for k in out}
    return out


def published_row(traj: dict[str, np.ndarray], si: int, K: int, mean, std, scale=1000.0,
                  max_ep_len=1000) -> dict[str, np.ndarray]:
    """One row of the published get_batch (spec §2.4), written as a plain loop."""
    s = traj["observations"][si:si + K]
    a = traj["actions"][si:si + K]
    r = traj["rewards"][si:si + K]
    d = traj["terminals"][si:si + K].astype(np.int64)
    tlen = len(s)
    ts = np.arange(si, si + tlen)
    ts[ts >= max_ep_len] = max_ep_len - 1
    rew = traj["rewards"][si:].astype(np.float64)
    cs = np.zeros_like(rew)
    cs[-1] = rew[-1]
    for t in reversed(range(len(rew) - 1)):
        cs[t] = rew[t] + cs[t + 1]
    rtg = cs[:tlen + 1]
    if len(rtg) <= tlen:
        rtg = np.concatenate([rtg, [0.0]])
    pad = K - tlen
    return {
        "states": (np.concatenate([np.zeros((pad, S)), s]) - mean) / std,
        "actions": np.concatenate([np.full((pad, A), -10.0), a]),
        "rewards": np.concatenate([np.zeros(pad), r])[:, None],
        "dones": np.concatenate([np.full(pad, 2), d]),
        "rtg": (np.concatenate([np.zeros(pad), rtg]) / scale)[:, None],
        "timesteps": np.concatenate([np.zeros(pad, np.int64), ts]),
        "mask": np.concatenate([np.zeros(pad), np.ones(tlen)]),
    }


# -- returns-to-go ----------------------------------------------------------------------------

@given(st.lists(st.floats(-100, 100), min_size=1, max_size=50))
def test_returns_to_go_satisfy_the_reverse_recursion(rewards):
    r = np.array(rewards)
    rtg = returns_to_go(r)
    assert rtg[-1] == pytest.approx(r[-1])
    np.testing.assert_allclose(rtg[:-1], r[:-1] + rtg[1:], rtol=1e-12, atol=1e-9)
    assert rtg[0] == pytest.approx(r.sum(), abs=1e-9)


# -- the sampler's windows against the published row-by-row procedure -----------------------

@pytest.mark.parametrize("K", [1, 5, 20])
def test_every_window_equals_the_published_get_batch_row(K):
    ds = make_dataset([3, 7, 12, 30, 25])
    sampler = BatchSampler(ds, K, 4, seed=0, drop_lowest_return=False)
    rows = [(k, si) for k in range(len(sampler.kept)) for si in range(sampler.lengths[k])]
    traj, start = (np.array(v) for v in zip(*rows))
    batch = sampler.windows(traj, start)
    for b, (k, si) in enumerate(rows):
        ref = published_row(ds.trajectories[sampler.kept[k]], si, K, ds.state_mean, ds.state_std)
        for name, want in ref.items():
            got = getattr(batch, name)[b].numpy()
            np.testing.assert_allclose(got, want.reshape(got.shape), rtol=1e-5, atol=1e-6,
                                       err_msg=f"{name} of trajectory {k} start {si}")


def test_a_window_at_the_trajectory_end_is_left_padded_with_the_published_values():
    ds = make_dataset([10, 40])
    K = 8
    sampler = BatchSampler(ds, K, 1, seed=0, drop_lowest_return=False)
    k = int(np.flatnonzero(sampler.lengths == 10)[0])
    b = sampler.windows(np.array([k]), np.array([7]))  # 3 real steps: 7, 8, 9
    pad, real = slice(0, 5), slice(5, 8)
    assert b.mask[0].tolist() == [0] * 5 + [1] * 3
    expected_pad_state = torch.tensor(-ds.state_mean / ds.state_std, dtype=torch.float32)
    torch.testing.assert_close(b.states[0, pad], expected_pad_state.expand(5, S))
    assert (b.actions[0, pad] == -10).all() and (b.rewards[0, pad] == 0).all()
    assert (b.dones[0, pad] == 2).all() and (b.timesteps[0, pad] == 0).all()
    assert b.timesteps[0, real].tolist() == [7, 8, 9]
    assert b.dones[0, real].tolist() == [0, 0, 1]
    assert b.rtg.shape == (1, K + 1, 1)
    assert (b.rtg[0, :5] == 0).all() and b.rtg[0, -1, 0] == 0  # appended 0 at the trajectory end
    r = ds.trajectories[sampler.kept[k]]["rewards"].astype(np.float64)
    np.testing.assert_allclose(b.rtg[0, 5:8, 0].numpy(), [r[7:].sum() / 1000, r[8:].sum() / 1000,
                                                         r[9] / 1000], rtol=1e-6)


def test_states_are_normalised_and_round_trip_to_the_raw_observations():
    ds = make_dataset([50, 60, 70])
    sampler = BatchSampler(ds, 20, 256, seed=1)
    b = sampler.sample()
    obs = np.concatenate([t["observations"] for t in ds.trajectories]).astype(np.float64)
    np.testing.assert_allclose(ds.state_mean, obs.mean(0))
    np.testing.assert_allclose(ds.state_std, obs.std(0) + 1e-6)
    raw = b.states.double().numpy() * ds.state_std + ds.state_mean  # [B, K, S]
    m = b.mask.bool().numpy()
    # every real state is one of the dataset's observations, found again (to float32 precision)
    nearest = np.abs(raw[m][:, None, :] - obs[None, :, :]).max(-1).min(-1)  # [n_real]
    assert nearest.max() < 1e-5
    np.testing.assert_allclose(raw[~m], 0.0, atol=1e-5)  # padding was zeros before normalising


def test_timesteps_past_the_episode_limit_are_clamped_to_999():
    ds = make_dataset([1100, 30], terminal=False)
    sampler = BatchSampler(ds, 20, 1, seed=0, drop_lowest_return=False)
    k = int(np.flatnonzero(sampler.lengths == 1100)[0])
    b = sampler.windows(np.array([k]), np.array([990]))
    assert b.timesteps[0].tolist() == list(range(990, 1000)) + [999] * 10


# -- which trajectories, with which probability ---------------------------------------------

def test_the_lowest_return_trajectory_is_dropped_as_run_and_kept_with_the_flag():
    ds = make_dataset([20, 30, 40, 50])
    returns = ds.returns
    lowest = int(np.argmin(returns))
    kept = kept_trajectories(ds.trajectories)
    assert sorted(kept.tolist()) == sorted(set(range(4)) - {lowest})
    assert np.all(np.diff(returns[kept]) >= 0)  # ascending return, as the published code
    assert sorted(kept_trajectories(ds.trajectories, drop_lowest_return=False).tolist()) == [0, 1, 2, 3]
    assert kept_trajectories(ds.trajectories[:1]).tolist() == [0]  # a single trajectory stays


def test_the_dropped_trajectory_never_appears_in_a_batch():
    rng = np.random.default_rng(3)
    trajs = [make_trajectory(rng, 15, obs_value=float(i)) for i in range(4)]
    ds = OfflineDataset(trajs, "memory", "test", "hopper")
    lowest = int(np.argmin(ds.returns))
    seen = set(_trajectory_ids(BatchSampler(ds, 5, 1, seed=0).fixed_batch(2000, seed=1), ds))
    assert lowest not in seen and len(seen) == 3
    seen_all = set(_trajectory_ids(BatchSampler(ds, 5, 1, seed=0, drop_lowest_return=False)
                                   .fixed_batch(2000, seed=1), ds))
    assert seen_all == {0, 1, 2, 3}


def _trajectory_ids(b, ds) -> np.ndarray:
    """Trajectory i has every observation equal to i; read it back from the last real step."""
    raw = b.states[:, -1, 0].double().numpy() * ds.state_std[0] + ds.state_mean[0]
    return np.rint(raw).astype(int)


def test_trajectories_are_drawn_in_proportion_to_their_length_and_starts_uniformly():
    rng = np.random.default_rng(4)
    lengths = [10, 40, 150]
    trajs = [make_trajectory(rng, n, obs_value=float(i)) for i, n in enumerate(lengths)]
    ds = OfflineDataset(trajs, "memory", "test", "hopper")
    b = BatchSampler(ds, 1, 1, seed=0, drop_lowest_return=False).fixed_batch(40_000, seed=2)
    ids = _trajectory_ids(b, ds)
    freq = np.bincount(ids, minlength=3) / len(ids)
    np.testing.assert_allclose(freq, np.array(lengths) / sum(lengths), atol=0.01)
    starts = b.timesteps[ids == 2, 0].numpy()  # K = 1: the timestep is the start
    assert starts.min() == 0 and starts.max() == 149
    counts = np.bincount(starts // 15, minlength=10)  # 10 bins of 15 steps
    assert counts.min() > 0.75 * counts.mean() and counts.max() < 1.25 * counts.mean()


# -- reproducibility and resume ---------------------------------------------------------------

def _equal(a, b) -> bool:
    return all(torch.equal(getattr(a, k), getattr(b, k)) for k in a.__dataclass_fields__)


def test_the_same_seed_gives_the_same_batch_sequence_and_another_seed_does_not():
    ds = make_dataset([30, 40, 50, 60])
    s1, s2, s3 = (BatchSampler(ds, 10, 16, seed=s) for s in (7, 7, 8))
    first = [s1.sample() for _ in range(5)]
    assert all(_equal(a, s2.sample()) for a in first)
    assert not _equal(first[0], s3.sample())
    assert not _equal(first[0], first[1])


def test_a_fixed_batch_does_not_disturb_the_training_stream():
    ds = make_dataset([30, 40, 50])
    s1, s2 = BatchSampler(ds, 10, 16, seed=0), BatchSampler(ds, 10, 16, seed=0)
    held1 = s1.fixed_batch(32, seed=123)
    assert _equal(s1.sample(), s2.sample())
    assert _equal(held1, s2.fixed_batch(32, seed=123))
    assert not _equal(held1, s2.fixed_batch(32, seed=124))


def test_a_batch_has_the_contract_shapes_and_dtypes_and_moves_to_a_device():
    ds = make_dataset([30, 40, 50])
    b = BatchSampler(ds, 20, 8, seed=0, device="cpu").sample()
    assert b.states.shape == (8, 20, S) and b.states.dtype == torch.float32
    assert b.actions.shape == (8, 20, A) and b.rewards.shape == (8, 20, 1)
    assert b.dones.dtype == torch.int64 and b.timesteps.dtype == torch.int64
    assert b.rtg.shape == (8, 21, 1) and b.mask.shape == (8, 20) and b.mask.dtype == torch.float32
    moved = b.to("meta")
    assert moved.states.device.type == "meta" and len(moved) == 8


# -- loading real formats ---------------------------------------------------------------------

def test_an_hdf5_file_is_split_at_terminals_and_timeouts_and_its_tail_dropped(tmp_path):
    rng = np.random.default_rng(0)
    trajs = [make_trajectory(rng, 5), make_trajectory(rng, 9, terminal=False),
             make_trajectory(rng, 1), make_trajectory(rng, 12)]
    path = tmp_path / "hopper_medium-v2.hdf5"
    write_hdf5(path, flat(trajs, tail=4, rng=rng))
    ds = load_dataset(path, env="hopper")
    assert [len(t["rewards"]) for t in ds.trajectories] == [5, 9, 1, 12]
    for got, want in zip(ds.trajectories, trajs):
        for k in want:
            np.testing.assert_array_equal(got[k], want[k])
    assert ds.label == "D4RL" and ds.source == str(path) and ds.env == "hopper"


def test_the_pickled_paths_of_the_original_script_load_like_the_hdf5_file(tmp_path):
    rng = np.random.default_rng(1)
    trajs = [make_trajectory(rng, n, terminal=n != 9) for n in (5, 9, 3)]
    write_hdf5(tmp_path / "a.hdf5", flat(trajs))
    paths = [{k: t[k] for k in ("observations", "next_observations", "actions", "rewards",
                                "terminals")} for t in trajs]
    with open(tmp_path / "a.pkl", "wb") as f:
        pickle.dump(paths, f)
    h, p = load_dataset(tmp_path / "a.hdf5"), load_dataset(tmp_path / "a.pkl", trust_pickle=True)
    assert h.label == p.label == "D4RL-like substitute"
    for a, b in zip(h.trajectories, p.trajectories):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])


def test_dataset_statistics_count_trajectories_steps_and_returns():
    ds = make_dataset([4, 6, 10])
    r = np.array([t["rewards"].sum(dtype=np.float64) for t in ds.trajectories])
    st_ = ds.stats()
    assert (st_.n_trajectories, st_.n_timesteps) == (3, 20)
    assert st_.return_mean == pytest.approx(r.mean())
    assert st_.return_std == pytest.approx(np.sqrt(((r - r.mean()) ** 2).mean()))
    assert (st_.return_min, st_.return_max) == (pytest.approx(r.min()), pytest.approx(r.max()))


# -- bad input ----------------------------------------------------------------------------------

def _good(rng):
    return flat([make_trajectory(rng, 6), make_trajectory(rng, 8)])


@pytest.mark.parametrize("problem, edit, message", [
    ("missing key", lambda d: d.pop("timeouts"), "missing key"),
    ("observation size", lambda d: d.update(observations=d["observations"][:, :5],
                                            next_observations=d["next_observations"][:, :5]),
     "observation size 5"),
    ("NaN", lambda d: d["observations"].__setitem__((3, 2), np.nan), "NaN or inf"),
    ("inf", lambda d: d["rewards"].__setitem__(4, np.inf), "NaN or inf"),
    ("empty", lambda d: [d.__setitem__(k, v[:0]) for k, v in list(d.items())], "empty"),
    ("no boundary", lambda d: [d["terminals"].fill(False), d["timeouts"].fill(False)], "empty"),
])
def test_bad_input_raises_a_value_error_naming_the_file_and_the_problem(tmp_path, problem, edit, message):
    data = _good(np.random.default_rng(0))
    edit(data)
    path = tmp_path / f"bad_{problem.replace(' ', '_')}.hdf5"
    write_hdf5(path, data)
    with pytest.raises(ValueError, match=message) as err:
        load_dataset(path, env="hopper")
    assert str(path) in str(err.value)


def test_a_bad_pickled_path_names_the_file_and_the_trajectory(tmp_path):
    rng = np.random.default_rng(0)
    paths = [make_trajectory(rng, 5), make_trajectory(rng, 5)]
    paths[1]["actions"][2, 0] = np.nan
    path = tmp_path / "bad.pkl"
    with open(path, "wb") as f:
        pickle.dump(paths, f)
    with pytest.raises(ValueError, match=r"trajectory 1: key 'actions' contains NaN") as err:
        load_dataset(path, trust_pickle=True)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("suffix", [".hdf5", ".pkl"])
def test_a_truncated_dataset_file_gives_an_error_naming_the_file_and_the_fix(tmp_path, suffix):
    bad = tmp_path / f"hopper_medium-v2{suffix}"
    bad.write_bytes(b"\x89HDF\r\n truncated")
    with pytest.raises(ValueError, match="truncated or corrupt") as err:
        load_dataset(bad, trust_pickle=True)
    assert str(bad) in str(err.value)
