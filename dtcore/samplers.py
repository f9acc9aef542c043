"""Training windows of the offline data (docs/spec.md §2.3-2.4): the batch and the two samplers.

- §2.4 ``get_batch``: uniform start in ``0..len-1``, windows of at most K steps, undiscounted
  returns-to-go with K+1 entries (a 0 appended when the window reaches the trajectory end), left
  padding with the published pad values, timesteps clamped to ``max_ep_len - 1``, rtg / scale.

Differences from the published code, on purpose: every random draw comes from one
``numpy.random.Generator`` seeded by ``seed`` (the original used unseeded global ``np.random`` and
``random``, docs/spec.md §2.5), so a batch sequence repeats exactly and resumes bit-exactly from
:meth:`BatchSampler.state_dict`; the draws are vectorised (all B trajectory choices, then all B
starts) rather than interleaved per row, which samples the same distribution. Statistics and
returns-to-go accumulate in float64 (the original summed float32 rewards in float32).

Two samplers cut the same windows (:class:`WindowSampler` is what they share).
:class:`BatchSampler` (``TrainConfig.sampler="host"``, what every cached run used) draws and
builds each batch in numpy on the host and copies it to its device. :class:`DeviceBatchSampler`
(``sampler="device"``, the fast procedure) holds the kept trajectories on the device, states already
normalised, and draws with a seeded ``torch.Generator`` there (``torch.multinomial`` over the
length weights, a float64 uniform start floored and clamped to ``length - 1``): the same
distribution and, for the same (trajectory, start) pairs, bit-identical batches, but another
random stream than the numpy sampler's, and no host synchronisation per batch. Both samplers draw
``fixed_batch`` from the same numpy Generator, so held-out and analysis batches are the same.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from dtcore.data import OfflineDataset, kept_trajectories, returns_to_go

log = logging.getLogger(__name__)

# Padding values of the published get_batch (docs/spec.md §2.4, step 6).
PAD_STATE = 0.0     # raw state, before normalisation: padded states become -mean/std
PAD_ACTION = -10.0
PAD_REWARD = 0.0
PAD_DONE = 2
PAD_RTG = 0.0
PAD_TIMESTEP = 0


# --------------------------------------------------------------------------------------------
# Batch and sampler (docs/spec.md §2.3-2.4)
# --------------------------------------------------------------------------------------------


@dataclass
class Batch:
    """One training batch of B windows of K timesteps, as the published ``get_batch`` returned."""

    states: torch.Tensor     # [B, K, S] float32, normalised; padding = (0 - mean) / std
    actions: torch.Tensor    # [B, K, A] float32, raw; padding = -10
    rewards: torch.Tensor    # [B, K, 1] float32; padding = 0
    dones: torch.Tensor      # [B, K] int64 terminals; padding = 2
    rtg: torch.Tensor        # [B, K+1, 1] float32 returns-to-go / scale; padding = 0
    timesteps: torch.Tensor  # [B, K] int64, clamped to max_ep_len - 1; padding = 0
    mask: torch.Tensor       # [B, K] float32, 1 for real steps, 0 for padding

    def to(self, device: str | torch.device, non_blocking: bool = False) -> "Batch":
        """The same batch with every tensor on ``device``."""
        return Batch(**{name: getattr(self, name).to(device, non_blocking=non_blocking)
                        for name in self.__dataclass_fields__})

    def __len__(self) -> int:
        return self.states.shape[0]


class WindowSampler:
    """What both samplers share: the kept trajectories, their lengths and probabilities (docs/spec.md §2.3)
    and the stream bookkeeping; :class:`BatchSampler` and :class:`DeviceBatchSampler` differ only in
    where the windows are cut and which Generator draws the training stream.

    ``sample()`` draws ``batch_size`` windows of ``context`` steps; the same ``seed`` gives the same
    batch sequence. ``fixed_batch(n, seed)`` draws from its own numpy Generator (identical for both
    samplers) and leaves the training stream untouched. ``state_dict()`` / ``load_state_dict()``
    carry the training Generator state for resume. ``lengths`` and ``p`` are numpy arrays [N] in
    the order of ``kept`` (ascending return).
    """

    def __init__(self, dataset: "OfflineDataset", context: int, batch_size: int, seed: int, *,
                 scale: float = 1000.0, drop_lowest_return: bool = True, max_ep_len: int = 1000,
                 device: str | torch.device = "cpu") -> None:
        if context < 1:
            raise ValueError(f"context must be >= 1, got {context}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if scale <= 0:
            raise ValueError(f"scale must be positive, got {scale}")
        self.dataset = dataset
        self.context = int(context)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.scale = float(scale)
        self.drop_lowest_return = drop_lowest_return
        self.max_ep_len = int(max_ep_len)
        self.device = torch.device(device)
        self.state_mean = dataset.state_mean  # [S] float64, over ALL trajectories (docs/spec.md §2.3.2)
        self.state_std = dataset.state_std    # [S] float64, population std + 1e-6
        self.kept = kept_trajectories(dataset.trajectories, drop_lowest_return)  # ascending return
        trajs = [dataset.trajectories[i] for i in self.kept]
        self.lengths = np.array([len(t["rewards"]) for t in trajs], dtype=np.int64)       # [N]
        self.offsets = np.concatenate([[0], np.cumsum(self.lengths)[:-1]]).astype(np.int64)
        self.p = self.lengths / self.lengths.sum()                                        # [N]
        self._store(_flat_steps(trajs, self.lengths))
        self.batches_drawn = 0

    def _store(self, steps: dict[str, np.ndarray]) -> None:
        """Keep the flattened steps of :func:`_flat_steps` in the form :meth:`windows` reads."""
        raise NotImplementedError

    def _draw_training(self, n: int) -> Batch:
        """``n`` windows from the training Generator."""
        raise NotImplementedError

    def windows(self, traj, start) -> Batch:
        """The batch of windows starting at step ``start[b]`` of kept trajectory ``traj[b]``."""
        raise NotImplementedError

    # -- drawing -----------------------------------------------------------------------------

    def sample(self) -> Batch:
        """The next training batch of the seeded stream."""
        batch = self._draw_training(self.batch_size)
        self.batches_drawn += 1
        return batch

    def fixed_batch(self, n: int, seed: int) -> Batch:
        """``n`` windows from a fresh numpy Generator seeded by ``seed`` (held-out / analysis batches).

        Both samplers draw the same (trajectory, start) pairs here, so they give the same batch.
        """
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        return self.windows(*_host_draw(np.random.default_rng(seed), n, self.lengths, self.p))


def _flat_steps(trajs: list[dict[str, np.ndarray]], lengths: np.ndarray) -> dict[str, np.ndarray]:
    """The kept trajectories concatenated, so a batch is one fancy-indexing gather. [T, ...] each."""
    return {
        "obs": np.concatenate([t["observations"] for t in trajs]).astype(np.float32),   # [T, S]
        "act": np.concatenate([t["actions"] for t in trajs]).astype(np.float32),        # [T, A]
        "rew": np.concatenate([t["rewards"] for t in trajs]).astype(np.float32),        # [T]
        "done": np.concatenate([t["terminals"] for t in trajs]).astype(np.int64),       # [T]
        # Undiscounted reward-to-go of each step to the end of its trajectory (gamma = 1), float64.
        "rtg": np.concatenate([returns_to_go(t["rewards"]) for t in trajs]),           # [T]
        "step": np.concatenate([np.arange(n) for n in lengths]).astype(np.int64),       # [T]
    }


def _host_draw(rng: np.random.Generator, n: int, lengths: np.ndarray, p: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
    """(trajectory [n], start [n]) from a numpy Generator: all n choices, then all n starts."""
    traj = rng.choice(len(lengths), size=n, replace=True, p=p)   # [n] docs/spec.md §2.4.1
    start = rng.integers(0, lengths[traj])                       # [n] docs/spec.md §2.4.2
    return traj, start


class BatchSampler(WindowSampler):
    """The published sampler (docs/spec.md §2.3-2.4) drawing on the host from one seeded
    ``numpy.random.Generator``; each batch is built in numpy and then copied to ``device``.

    ``sample()`` draws ``batch_size`` windows of ``context`` steps; the same ``seed`` gives the same
    batch sequence. ``fixed_batch(n, seed)`` draws from its own Generator and leaves the training
    stream untouched. ``state_dict()`` / ``load_state_dict()`` carry the Generator state for resume.
    """

    def __init__(self, dataset: "OfflineDataset", context: int, batch_size: int, seed: int, *,
                 scale: float = 1000.0, drop_lowest_return: bool = True, max_ep_len: int = 1000,
                 device: str | torch.device = "cpu") -> None:
        super().__init__(dataset, context, batch_size, seed, scale=scale,
                         drop_lowest_return=drop_lowest_return, max_ep_len=max_ep_len, device=device)
        self.rng = np.random.default_rng(self.seed)

    def _store(self, steps: dict[str, np.ndarray]) -> None:
        self._obs, self._act, self._rew = steps["obs"], steps["act"], steps["rew"]
        self._done, self._rtg, self._step = steps["done"], steps["rtg"], steps["step"]

    def _draw_training(self, n: int) -> Batch:
        return self.windows(*_host_draw(self.rng, n, self.lengths, self.p))

    def windows(self, traj: np.ndarray, start: np.ndarray) -> Batch:
        """The batch of windows starting at step ``start[b]`` of kept trajectory ``traj[b]``."""
        K = self.context
        traj = np.asarray(traj, dtype=np.int64)
        start = np.asarray(start, dtype=np.int64)
        tlen = np.minimum(K, self.lengths[traj] - start)                     # [n] real steps
        pad = K - tlen                                                       # [n] left padding
        j = np.arange(K + 1)[None, :]                                        # [1, K+1]
        flat = (self.offsets[traj] + start)[:, None] + j - pad[:, None]      # [n, K+1] flat index
        real = j >= pad[:, None]                                             # [n, K+1]
        end = (self.offsets[traj] + self.lengths[traj])[:, None]             # [n, 1]
        in_traj = real & (flat < end)                                        # rtg column K may pass the end
        idx = np.where(in_traj, flat, 0)[:, :K]                              # [n, K] safe gather index
        m = real[:, :K]                                                      # [n, K] mask

        states = np.where(m[..., None], self._obs[idx].astype(np.float64), PAD_STATE)  # [n, K, S]
        states = (states - self.state_mean) / self.state_std                 # float64, then f32
        actions = np.where(m[..., None], self._act[idx], PAD_ACTION)         # [n, K, A]
        rewards = np.where(m, self._rew[idx], PAD_REWARD)[..., None]         # [n, K, 1]
        dones = np.where(m, self._done[idx], PAD_DONE)                       # [n, K]
        timesteps = np.where(m, np.minimum(self._step[idx], self.max_ep_len - 1), PAD_TIMESTEP)
        rtg_idx = np.where(in_traj, flat, 0)                                 # [n, K+1]
        rtg = np.where(in_traj, self._rtg[rtg_idx], PAD_RTG) / self.scale    # [n, K+1] float64

        dev = self.device
        return Batch(
            states=torch.from_numpy(states.astype(np.float32)).to(dev),
            actions=torch.from_numpy(actions.astype(np.float32)).to(dev),
            rewards=torch.from_numpy(rewards.astype(np.float32)).to(dev),
            dones=torch.from_numpy(dones.astype(np.int64)).to(dev),
            rtg=torch.from_numpy(rtg.astype(np.float32)[..., None]).to(dev),
            timesteps=torch.from_numpy(timesteps.astype(np.int64)).to(dev),
            mask=torch.from_numpy(m.astype(np.float32)).to(dev),
        )

    # -- resume ------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The Generator state and the number of batches drawn (plain Python values)."""
        return {"rng": self.rng.bit_generator.state, "batches_drawn": self.batches_drawn,
                "seed": self.seed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the stream exactly where :meth:`state_dict` was taken."""
        if "rng" not in state:
            raise ValueError("not the state of a BatchSampler (no numpy 'rng'): "
                             "a DeviceBatchSampler's state cannot continue a host stream")
        rng = np.random.default_rng()
        rng.bit_generator.state = state["rng"]
        self.rng = rng
        self.batches_drawn = int(state.get("batches_drawn", 0))


class DeviceBatchSampler(WindowSampler):
    """The sampler of docs/spec.md §2.3-2.4 with the dataset held on ``device`` and batches drawn there.

    The kept trajectories are flattened into tensors on ``device`` once: states already normalised
    (``((obs.astype(float64) - mean) / std).astype(float32)``, the bits :class:`BatchSampler`
    computes per batch), returns-to-go divided by ``scale`` in float64 and cast to float32 once,
    timesteps clamped to ``max_ep_len - 1``. ``windows(traj, start)`` gives exactly the tensors of
    ``BatchSampler.windows`` for the same arrays (padding included). ``sample()`` draws the
    trajectories length-weighted with ``torch.multinomial`` and the starts uniformly in
    ``[0, length)`` (float64 uniform x length, floored, clamped to ``length - 1``) from a
    ``torch.Generator`` on ``device`` seeded by ``seed``: the same distribution as the numpy
    sampler, another stream. Every op of ``sample()`` runs on the device with fixed shapes and no
    read-back, so a training loop never waits for the device to draw a batch.

    ``fixed_batch(n, seed)`` draws its (trajectory, start) pairs on the host with the numpy
    Generator of :class:`BatchSampler` (it is not in the step loop), so held-out and analysis
    batches are the same for both samplers. ``state_dict()`` holds the torch Generator state as a
    list of byte values (plain Python, like the host sampler's).
    """

    def __init__(self, dataset: "OfflineDataset", context: int, batch_size: int, seed: int, *,
                 scale: float = 1000.0, drop_lowest_return: bool = True, max_ep_len: int = 1000,
                 device: str | torch.device = "cpu") -> None:
        super().__init__(dataset, context, batch_size, seed, scale=scale,
                         drop_lowest_return=drop_lowest_return, max_ep_len=max_ep_len, device=device)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(self.seed)

    def _store(self, steps: dict[str, np.ndarray]) -> None:
        dev = self.device

        def put(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(a)).to(dev)

        mean, std = self.state_mean, self.state_std
        # Normalised once, with the bits BatchSampler.windows computes per batch.
        self._states = put(((steps["obs"].astype(np.float64) - mean) / std).astype(np.float32))  # [T, S]
        self._pad_state = put(((PAD_STATE - mean) / std).astype(np.float32))          # [S]
        self._act = put(steps["act"])                                                   # [T, A]
        self._rew = put(steps["rew"])                                                   # [T]
        self._done = put(steps["done"])                                                 # [T]
        self._rtg = put((steps["rtg"] / self.scale).astype(np.float32))                # [T] f64 / scale
        self._pad_rtg = put(np.array(PAD_RTG / self.scale, dtype=np.float32))          # []
        self._step = put(np.minimum(steps["step"], self.max_ep_len - 1))                # [T] clamped
        self._lengths = put(self.lengths)                                               # [N]
        self._offsets = put(self.offsets)                                               # [N]
        self._p = put(self.p)                                                           # [N] float64
        self._j = torch.arange(self.context + 1, device=dev)[None, :]                   # [1, K+1]

    def _draw_training(self, n: int) -> Batch:
        g = self.generator
        traj = torch.multinomial(self._p, n, replacement=True, generator=g)  # [n] docs/spec.md §2.4.1
        u = torch.rand(n, dtype=torch.float64, device=self.device, generator=g)  # [n] in [0, 1)
        length = self._lengths[traj]                                         # [n]
        start = torch.minimum((u * length).long(), length - 1)               # [n] docs/spec.md §2.4.2
        return self.windows(traj, start)

    def windows(self, traj: np.ndarray | torch.Tensor, start: np.ndarray | torch.Tensor) -> Batch:
        """The batch of windows starting at step ``start[b]`` of kept trajectory ``traj[b]``, on
        ``device``; the same tensors as :meth:`BatchSampler.windows`."""
        K, dev = self.context, self.device
        traj = torch.as_tensor(traj, dtype=torch.int64, device=dev)
        start = torch.as_tensor(start, dtype=torch.int64, device=dev)
        length, offset = self._lengths[traj], self._offsets[traj]           # [n]
        pad = K - torch.clamp(length - start, max=K)                         # [n] left padding
        flat = (offset + start - pad)[:, None] + self._j                     # [n, K+1] flat index
        real = self._j >= pad[:, None]                                       # [n, K+1]
        in_traj = real & (flat < (offset + length)[:, None])                 # rtg column K may pass the end
        safe = torch.where(in_traj, flat, 0)                                 # [n, K+1] safe gather index
        idx, m = safe[:, :K], real[:, :K]                                    # [n, K]
        return Batch(
            states=torch.where(m[..., None], self._states[idx], self._pad_state),
            actions=torch.where(m[..., None], self._act[idx], PAD_ACTION),
            rewards=torch.where(m, self._rew[idx], PAD_REWARD)[..., None],
            dones=torch.where(m, self._done[idx], PAD_DONE),
            rtg=torch.where(in_traj, self._rtg[safe], self._pad_rtg)[..., None],
            timesteps=torch.where(m, self._step[idx], PAD_TIMESTEP),
            mask=m.to(torch.float32),
        )

    # -- resume ------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The torch Generator state (a list of byte values), its device type, the batches drawn."""
        return {"torch_rng": self.generator.get_state().tolist(), "rng_device": self.device.type,
                "batches_drawn": self.batches_drawn, "seed": self.seed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the stream exactly where :meth:`state_dict` was taken."""
        if "torch_rng" not in state:
            raise ValueError("not the state of a DeviceBatchSampler (no 'torch_rng'): "
                             "a host BatchSampler's state cannot continue a device stream")
        if state.get("rng_device", self.device.type) != self.device.type:
            raise ValueError(f"the sampler state was taken on {state['rng_device']}; this sampler draws "
                             f"on {self.device.type} (a Generator state does not carry across device types)")
        self.generator.set_state(torch.tensor(state["torch_rng"], dtype=torch.uint8))
        self.batches_drawn = int(state.get("batches_drawn", 0))
