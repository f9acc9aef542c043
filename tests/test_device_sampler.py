"""dtcore.samplers.DeviceBatchSampler (issue 9): the dataset on the device and batches drawn there.

Its windows are the numpy BatchSampler's, bit for bit, for the same (trajectory, start) pairs; its
training stream repeats per seed, resumes from its state and draws the published distribution
(trajectories in proportion to their length, starts uniform); on CUDA it draws without a host
synchronisation."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from scipy import stats

from dtcore.data import OfflineDataset
from dtcore.samplers import BatchSampler, DeviceBatchSampler
from tests.test_data import S, make_dataset, make_trajectory

FIELDS = ("states", "actions", "rewards", "dones", "rtg", "timesteps", "mask")


def every_window(sampler) -> tuple[np.ndarray, np.ndarray]:
    """(traj, start) of every window the sampler can draw: each start of each kept trajectory."""
    rows = [(k, si) for k in range(len(sampler.kept)) for si in range(sampler.lengths[k])]
    return tuple(np.array(v, dtype=np.int64) for v in zip(*rows))


def assert_identical(a, b) -> None:
    for name in FIELDS:
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and x.shape == y.shape, (name, x.dtype, y.dtype, x.shape, y.shape)
        assert torch.equal(x.cpu(), y.cpu()), name


def same(a, b) -> bool:
    return all(torch.equal(getattr(a, k), getattr(b, k)) for k in FIELDS)


def windows_match(device: str) -> None:
    """Every window of a mixed dataset (short, long, > max_ep_len) from both samplers, K in 1, 5, 20."""
    ds = make_dataset([3, 1, 7, 12, 30, 25, 1100], terminal=False)
    for K in (1, 5, 20):
        for drop in (True, False):
            host = BatchSampler(ds, K, 4, seed=0, drop_lowest_return=drop)
            dev = DeviceBatchSampler(ds, K, 4, seed=0, drop_lowest_return=drop, device=device)
            assert dev.kept.tolist() == host.kept.tolist()
            np.testing.assert_array_equal(dev.lengths, host.lengths)
            np.testing.assert_array_equal(dev.p, host.p)
            traj, start = every_window(host)
            got = dev.windows(traj, start)
            assert all(getattr(got, k).device.type == torch.device(device).type for k in FIELDS)
            assert_identical(host.windows(traj, start), got)
            as_tensors = dev.windows(torch.as_tensor(traj), torch.as_tensor(start))
            assert_identical(host.windows(traj, start), as_tensors)


# -- the same windows as the numpy sampler ------------------------------------------------------

def test_every_window_is_bit_identical_to_the_numpy_samplers_on_cpu():
    windows_match("cpu")


def test_padded_windows_at_a_trajectory_start_and_the_rtg_past_its_end_match():
    ds = make_dataset([4, 40])
    K = 8
    host = BatchSampler(ds, K, 1, seed=0, drop_lowest_return=False, scale=250.0)
    dev = DeviceBatchSampler(ds, K, 1, seed=0, drop_lowest_return=False, scale=250.0)
    k = int(np.flatnonzero(host.lengths == 4)[0])
    traj, start = np.array([k, k, k, k]), np.array([0, 1, 2, 3])  # 4, 3, 2, 1 real steps: all padded
    got = dev.windows(traj, start)
    assert_identical(host.windows(traj, start), got)
    assert got.mask[:, :4].sum() == 0 and (got.mask[:, -1] == 1).all()
    assert (got.rtg[:, -1, 0] == 0).all()  # each window reaches the trajectory end: the appended 0
    pad_state = torch.tensor(((0.0 - ds.state_mean) / ds.state_std).astype(np.float32))
    assert torch.equal(got.states[0, 0], pad_state)


# -- the stream ---------------------------------------------------------------------------------

def test_a_batch_has_the_contract_shapes_and_dtypes_and_its_last_step_is_always_real():
    ds = make_dataset([30, 40, 50])
    b = DeviceBatchSampler(ds, 20, 256, seed=0).sample()
    assert b.states.shape == (256, 20, S) and b.states.dtype == torch.float32
    assert b.actions.shape == (256, 20, 3) and b.rewards.shape == (256, 20, 1)
    assert b.dones.dtype == torch.int64 and b.timesteps.dtype == torch.int64
    assert b.rtg.shape == (256, 21, 1) and b.mask.shape == (256, 20) and b.mask.dtype == torch.float32
    assert (b.mask[:, -1] == 1).all()  # a start is never past the trajectory's last step


def test_the_same_seed_gives_the_same_batch_sequence_and_another_seed_does_not():
    ds = make_dataset([30, 40, 50, 60])
    s1, s2, s3 = (DeviceBatchSampler(ds, 10, 16, seed=s) for s in (7, 7, 8))
    first = [s1.sample() for _ in range(5)]
    assert all(same(a, s2.sample()) for a in first)
    assert not same(first[0], s3.sample())
    assert not same(first[0], first[1])
    assert s1.batches_drawn == 5


@pytest.mark.parametrize("kind", [BatchSampler, DeviceBatchSampler], ids=["host", "device"])
def test_resuming_from_the_state_dict_continues_the_stream_bit_exactly(tmp_path, kind):
    ds = make_dataset([30, 40, 50])
    full = kind(ds, 10, 16, seed=5)
    ref = [full.sample() for _ in range(6)]
    part = kind(ds, 10, 16, seed=5)
    for _ in range(3):
        part.sample()
    torch.save(part.state_dict(), tmp_path / "state.pt")  # as a checkpoint holds it
    state = torch.load(tmp_path / "state.pt", weights_only=True)
    assert state == pickle.loads(pickle.dumps(part.state_dict()))  # plain Python values
    resumed = kind(ds, 10, 16, seed=999)
    resumed.load_state_dict(state)
    assert all(same(r, resumed.sample()) for r in ref[3:])
    assert resumed.batches_drawn == 6


def test_a_host_state_does_not_load_into_a_device_sampler_nor_the_reverse():
    ds = make_dataset([30, 40, 50])
    host, dev = BatchSampler(ds, 10, 16, seed=0), DeviceBatchSampler(ds, 10, 16, seed=0)
    with pytest.raises(ValueError, match="not the state of a DeviceBatchSampler"):
        dev.load_state_dict(host.state_dict())
    with pytest.raises(ValueError, match="not the state of a BatchSampler"):
        host.load_state_dict(dev.state_dict())


def test_a_fixed_batch_leaves_the_stream_untouched_and_equals_the_numpy_samplers():
    ds = make_dataset([30, 40, 50])
    s1, s2 = DeviceBatchSampler(ds, 10, 16, seed=0), DeviceBatchSampler(ds, 10, 16, seed=0)
    held = s1.fixed_batch(32, seed=123)
    assert same(s1.sample(), s2.sample())
    assert s1.batches_drawn == 1
    assert same(held, s2.fixed_batch(32, seed=123))
    assert not same(held, s2.fixed_batch(32, seed=124))
    assert_identical(BatchSampler(ds, 10, 16, seed=0).fixed_batch(32, seed=123), held)
    with pytest.raises(ValueError, match="n must be >= 1"):
        s1.fixed_batch(0, seed=1)


# -- the distribution ---------------------------------------------------------------------------

def test_trajectories_are_drawn_in_proportion_to_their_length_and_starts_uniformly():
    rng = np.random.default_rng(4)
    lengths = [10, 40, 150, 23]
    trajs = [make_trajectory(rng, n, obs_value=float(i)) for i, n in enumerate(lengths)]
    ds = OfflineDataset(trajs, "memory", "test", "hopper")
    sampler = DeviceBatchSampler(ds, 1, 5000, seed=11, drop_lowest_return=False)
    batches = [sampler.sample() for _ in range(8)]  # 40 000 draws of the training stream
    states = torch.cat([b.states[:, 0, 0] for b in batches]).double().numpy()
    ids = np.rint(states * ds.state_std[0] + ds.state_mean[0]).astype(int)  # trajectory i holds i
    starts = torch.cat([b.timesteps[:, 0] for b in batches]).numpy()      # K = 1: timestep = start
    counts = np.bincount(ids, minlength=len(lengths))
    expected = len(ids) * np.array(lengths) / sum(lengths)
    assert stats.chisquare(counts, expected).pvalue > 1e-3, (counts, expected)
    for i, n in enumerate(lengths):
        mine = starts[ids == i]
        assert mine.min() >= 0 and mine.max() <= n - 1
        observed = np.bincount(mine, minlength=n)
        assert stats.chisquare(observed).pvalue > 1e-3, (i, observed)


def test_a_one_step_trajectory_always_starts_at_zero():
    ds = make_dataset([1, 1, 1], seed=2)
    b = DeviceBatchSampler(ds, 4, 64, seed=0, drop_lowest_return=False).sample()
    assert (b.timesteps[:, -1] == 0).all() and (b.mask.sum(1) == 1).all()


# -- CUDA -----------------------------------------------------------------------------------------

@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_cuda_the_windows_are_identical_and_sampling_never_synchronises():
    windows_match("cuda")
    ds = make_dataset([30, 40, 50, 60])
    a, b = (DeviceBatchSampler(ds, 20, 64, seed=3, device="cuda") for _ in range(2))
    a.sample()  # first call: allocations and lazy initialisation
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        drawn = [a.sample() for _ in range(5)]
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert drawn[0].states.device.type == "cuda"
    b.sample()
    assert all(same(x, b.sample()) for x in drawn)
    state = a.state_dict()
    c = DeviceBatchSampler(ds, 20, 64, seed=0, device="cuda")
    c.load_state_dict(state)
    assert same(a.sample(), c.sample())
