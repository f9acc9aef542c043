"""Offline data of the paper's runs: D4RL loading, trajectories, statistics and the batch sampler.

Implements ``../shared/spec/paper-spec.md`` §2 (what the published code computed):

- §2.1 loading: D4RL's HDF5 files (``observations``, ``actions``, ``rewards``, ``terminals``,
  ``timeouts``, ``next_observations``) and the pickled list of paths written by the original
  download script, split into trajectories where ``terminals`` or ``timeouts`` is true;
  transitions after the last boundary are dropped.
- §2.3 preprocessing: state mean and population std (+1e-6) over all observations; trajectories
  sorted by return and kept while the running total stays *strictly* below the total number of
  timesteps, so the lowest-return trajectory is dropped as run (``drop_lowest_return=False``
  keeps it); sampling probability proportional to trajectory length.
- §2.4 ``get_batch``: uniform start in ``0..len-1``, windows of at most K steps, undiscounted
  returns-to-go with K+1 entries (a 0 appended when the window reaches the trajectory end), left
  padding with the published pad values, timesteps clamped to ``max_ep_len - 1``, rtg / scale.

Differences from the published code, on purpose: every random draw comes from one
``numpy.random.Generator`` seeded by ``seed`` (the original used unseeded global ``np.random`` and
``random``, spec §2.5), so a batch sequence repeats exactly and resumes bit-exactly from
:meth:`BatchSampler.state_dict`; the draws are vectorised (all B trajectory choices, then all B
starts) rather than interleaved per row, which samples the same distribution. Statistics and
returns-to-go accumulate in float64 (the original summed float32 rewards in float32).

The download half (:func:`download_d4rl`) fetches D4RL's own files into ``DTCORE_DATA_DIR``
(default ``~/.d4rl/datasets``, where d4rl keeps them), checks sha256 where a hash is known and
writes atomically; offline it fails at once and says which file to put where.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import re
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dtcore.envs import env_spec

log = logging.getLogger(__name__)

TRAJECTORY_KEYS = ("observations", "next_observations", "actions", "rewards", "terminals", "timeouts")
HDF5_KEYS = TRAJECTORY_KEYS  # every key of D4RL's *-v2 files that a trajectory needs
PATH_KEYS = ("observations", "next_observations", "actions", "rewards", "terminals")  # pickled paths
FALLBACK_EPISODE_STEPS = 1000  # spec §2.1: without `timeouts`, a path closes after 1000 steps

# Padding values of the published get_batch (spec §2.4, step 6).
PAD_STATE = 0.0     # raw state, before normalisation: padded states become -mean/std
PAD_ACTION = -10.0
PAD_REWARD = 0.0
PAD_DONE = 2
PAD_RTG = 0.0
PAD_TIMESTEP = 0


# --------------------------------------------------------------------------------------------
# Batch and sampler (spec §2.3-2.4)
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


class BatchSampler:
    """The published sampler (spec §2.3-2.4) drawing from one seeded ``numpy.random.Generator``.

    ``sample()`` draws ``batch_size`` windows of ``context`` steps; the same ``seed`` gives the same
    batch sequence. ``fixed_batch(n, seed)`` draws from its own Generator and leaves the training
    stream untouched. ``state_dict()`` / ``load_state_dict()`` carry the Generator state for resume.
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
        self.state_mean = dataset.state_mean  # [S] float64, over ALL trajectories (spec §2.3.2)
        self.state_std = dataset.state_std    # [S] float64, population std + 1e-6
        self.kept = kept_trajectories(dataset.trajectories, drop_lowest_return)  # ascending return
        self._flatten()
        self.rng = np.random.default_rng(self.seed)
        self.batches_drawn = 0

    def _flatten(self) -> None:
        """Concatenate the kept trajectories so a batch is one fancy-indexing gather."""
        trajs = [self.dataset.trajectories[i] for i in self.kept]
        self.lengths = np.array([len(t["rewards"]) for t in trajs], dtype=np.int64)       # [N]
        self.offsets = np.concatenate([[0], np.cumsum(self.lengths)[:-1]]).astype(np.int64)
        self.p = self.lengths / self.lengths.sum()                                        # [N]
        self._obs = np.concatenate([t["observations"] for t in trajs]).astype(np.float32)  # [T, S]
        self._act = np.concatenate([t["actions"] for t in trajs]).astype(np.float32)       # [T, A]
        self._rew = np.concatenate([t["rewards"] for t in trajs]).astype(np.float32)       # [T]
        self._done = np.concatenate([t["terminals"] for t in trajs]).astype(np.int64)      # [T]
        # Undiscounted reward-to-go of each step to the end of its trajectory (gamma = 1), float64.
        self._rtg = np.concatenate([returns_to_go(t["rewards"]) for t in trajs])          # [T]
        self._step = np.concatenate([np.arange(n) for n in self.lengths]).astype(np.int64)  # [T]

    # -- drawing -----------------------------------------------------------------------------

    def sample(self) -> Batch:
        """The next training batch of the seeded stream."""
        batch = self._draw(self.rng, self.batch_size)
        self.batches_drawn += 1
        return batch

    def fixed_batch(self, n: int, seed: int) -> Batch:
        """``n`` windows from a fresh Generator seeded by ``seed`` (held-out / analysis batches)."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        return self._draw(np.random.default_rng(seed), n)

    def _draw(self, rng: np.random.Generator, n: int) -> Batch:
        traj = rng.choice(len(self.lengths), size=n, replace=True, p=self.p)  # [n] spec §2.4.1
        start = rng.integers(0, self.lengths[traj])                          # [n] spec §2.4.2
        return self.windows(traj, start)

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
        rng = np.random.default_rng()
        rng.bit_generator.state = state["rng"]
        self.rng = rng
        self.batches_drawn = int(state.get("batches_drawn", 0))


def returns_to_go(rewards: np.ndarray) -> np.ndarray:
    """Undiscounted reverse cumulative sum: ``rtg[t] = sum_{t' >= t} r[t']`` in float64. [T] -> [T]."""
    r = np.asarray(rewards, dtype=np.float64)
    return np.cumsum(r[::-1])[::-1].copy()


def kept_trajectories(trajectories: list[dict[str, np.ndarray]], drop_lowest_return: bool = True
                      ) -> np.ndarray:
    """Indices of the trajectories the published sampler draws from, in ascending return.

    Spec §2.3.4 with ``pct_traj = 1``: start from the best trajectory and add the next-best while
    ``running total + its length < total timesteps``. The strict ``<`` always leaves out the
    lowest-return trajectory (when there are at least two). ``drop_lowest_return=False`` keeps all.
    """
    returns = np.array([np.sum(t["rewards"], dtype=np.float64) for t in trajectories])
    lengths = np.array([len(t["rewards"]) for t in trajectories], dtype=np.int64)
    order = np.argsort(returns, kind="stable")  # lowest to highest
    if not drop_lowest_return:
        return order
    total = lengths.sum()
    kept, running = 1, lengths[order[-1]]
    ind = len(order) - 2
    while ind >= 0 and running + lengths[order[ind]] < total:
        running += lengths[order[ind]]
        kept += 1
        ind -= 1
    return order[-kept:]


# --------------------------------------------------------------------------------------------
# Dataset and statistics (spec §2.1-2.3)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetStats:
    n_trajectories: int
    n_timesteps: int
    return_mean: float       # mean undiscounted trajectory return
    return_std: float        # population std (ddof = 0), as the published notebooks printed
    return_min: float
    return_max: float


@dataclass(frozen=True)
class OfflineDataset:
    """Trajectories of one offline dataset, each a dict of arrays (keys :data:`TRAJECTORY_KEYS`)."""

    trajectories: list[dict[str, np.ndarray]]
    source: str                       # the file it was read from
    label: str                        # "D4RL" | "D4RL-like substitute"
    env: str | None = None

    @cached_property
    def _observations(self) -> np.ndarray:
        return np.concatenate([t["observations"] for t in self.trajectories]).astype(np.float64)

    @cached_property
    def state_mean(self) -> np.ndarray:
        """Per-dimension mean of all observations, float64 [S] (spec §2.3.2)."""
        return self._observations.mean(axis=0)

    @cached_property
    def state_std(self) -> np.ndarray:
        """Per-dimension population std of all observations + 1e-6, float64 [S] (spec §2.3.2)."""
        return self._observations.std(axis=0) + 1e-6

    @property
    def returns(self) -> np.ndarray:
        """Undiscounted return of each trajectory, float64 [N]."""
        return np.array([np.sum(t["rewards"], dtype=np.float64) for t in self.trajectories])

    @property
    def lengths(self) -> np.ndarray:
        return np.array([len(t["rewards"]) for t in self.trajectories], dtype=np.int64)

    @property
    def state_dim(self) -> int:
        return int(self.trajectories[0]["observations"].shape[1])

    @property
    def act_dim(self) -> int:
        return int(self.trajectories[0]["actions"].shape[1])

    def stats(self) -> DatasetStats:
        """Counts and return mean/std/min/max (the figures of spec §2.2)."""
        r = self.returns
        return DatasetStats(n_trajectories=len(r), n_timesteps=int(self.lengths.sum()),
                            return_mean=float(r.mean()), return_std=float(r.std()),
                            return_min=float(r.min()), return_max=float(r.max()))


def load_dataset(path: str | os.PathLike, env: str | None = None, *, label: str | None = None
                 ) -> OfflineDataset:
    """Read a D4RL HDF5 file (``.hdf5``/``.h5``) or a pickled list of paths (``.pkl``).

    ``env`` checks the observation and action sizes against :mod:`dtcore.envs`. ``label`` defaults
    to "D4RL" for a file named as D4RL names its files (``hopper_medium-v2.hdf5``,
    ``hopper-medium-v2.pkl``) and "D4RL-like substitute" otherwise. Raises ``ValueError`` naming
    the file for a missing key, mismatched sizes, NaN/inf or an empty dataset.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such dataset file")
    if path.suffix in (".hdf5", ".h5"):
        flat = _read_hdf5(path)
        _check_arrays(flat, path, "the transitions", env)
        trajectories = _split(flat)
    elif path.suffix == ".pkl":
        trajectories = _read_paths(path)
        for i, t in enumerate(trajectories):
            _check_arrays(t, path, f"trajectory {i}", env)
    else:
        raise ValueError(f"{path}: unknown dataset format {path.suffix!r}; expected .hdf5, .h5 or .pkl")
    if not trajectories:
        raise ValueError(f"{path}: empty dataset (no complete trajectory: no terminal or timeout)")
    if label is None:
        label = "D4RL" if re.fullmatch(r"[a-z0-9]+[_-][a-z_-]+-v2\.(hdf5|h5|pkl)", path.name) else \
            "D4RL-like substitute"
    return OfflineDataset(trajectories=trajectories, source=str(path), label=label, env=env)


def _read_hdf5(path: Path) -> dict[str, np.ndarray]:
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise ValueError(f"{path}: not a readable HDF5 file ({err}); the file is truncated or corrupt: "
                         f"delete it and download or collect it again") from None
    with f:
        missing = [k for k in HDF5_KEYS if k not in f]
        if missing:
            raise ValueError(f"{path}: missing key(s) {', '.join(missing)}; a D4RL file has "
                             f"{', '.join(HDF5_KEYS)}")
        data = {k: np.asarray(f[k][()]) for k in HDF5_KEYS}
    n = len(data["observations"])
    if n == 0:
        raise ValueError(f"{path}: empty dataset (0 transitions)")
    for k, v in data.items():
        if len(v) != n:
            raise ValueError(f"{path}: key {k!r} has {len(v)} rows, observations has {n}")
    data["rewards"] = data["rewards"].reshape(n)
    data["terminals"] = data["terminals"].reshape(n).astype(bool)
    data["timeouts"] = data["timeouts"].reshape(n).astype(bool)
    return data


def _split(data: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
    """Cut the flat transitions where terminals or timeouts is true; drop the unfinished tail."""
    ends = np.flatnonzero(data["terminals"] | data["timeouts"])  # inclusive last index of each path
    starts = np.concatenate([[0], ends[:-1] + 1])
    return [{k: data[k][s:e + 1] for k in TRAJECTORY_KEYS} for s, e in zip(starts, ends)]


def _read_paths(path: Path) -> list[dict[str, np.ndarray]]:
    """The original download script's pickle: a list of dicts without ``timeouts`` (spec §2.1)."""
    try:
        with open(path, "rb") as f:
            paths = pickle.load(f)
    except (pickle.UnpicklingError, EOFError, ValueError) as err:
        raise ValueError(f"{path}: not a readable pickle of trajectories ({err}); the file is truncated or "
                         f"corrupt: delete it and build it again") from None
    if not isinstance(paths, list):
        raise ValueError(f"{path}: expected a pickled list of trajectories, got {type(paths).__name__}")
    out = []
    for i, p in enumerate(paths):
        missing = [k for k in PATH_KEYS if k not in p]
        if missing:
            raise ValueError(f"{path}: trajectory {i} is missing key(s) {', '.join(missing)}")
        t = {k: np.asarray(p[k]) for k in PATH_KEYS}
        n = len(t["rewards"])
        t["rewards"] = t["rewards"].reshape(n)
        t["terminals"] = t["terminals"].reshape(n).astype(bool)
        if "timeouts" in p:
            t["timeouts"] = np.asarray(p["timeouts"]).reshape(n).astype(bool)
        else:  # a path that does not end in a terminal ended by time limit
            t["timeouts"] = np.zeros(n, dtype=bool)
            if n and not t["terminals"][-1]:
                t["timeouts"][-1] = True
        out.append(t)
    return out


def _check_arrays(t: dict[str, np.ndarray], path: Path, where: str, env: str | None) -> None:
    """Row counts, shapes, finiteness and (with ``env``) sizes of one trajectory or flat file."""
    n = len(t["rewards"])
    if n == 0:
        raise ValueError(f"{path}: empty dataset ({where} has 0 transitions)")
    for k in TRAJECTORY_KEYS:
        if len(t[k]) != n:
            raise ValueError(f"{path}: {where}: key {k!r} has {len(t[k])} rows, rewards has {n}")
        if t[k].dtype.kind == "f" and not np.isfinite(t[k]).all():
            raise ValueError(f"{path}: {where}: key {k!r} contains NaN or inf")
    obs, act = t["observations"], t["actions"]
    if obs.ndim != 2 or act.ndim != 2 or t["next_observations"].shape != obs.shape:
        raise ValueError(f"{path}: {where}: observations {obs.shape}, next_observations "
                         f"{t['next_observations'].shape} and actions {act.shape} must be [T, dim]")
    if env is not None:
        spec = env_spec(env)
        if obs.shape[1] != spec.state_dim:
            raise ValueError(f"{path}: observation size {obs.shape[1]} does not match {env} "
                             f"(expected {spec.state_dim})")
        if act.shape[1] != spec.act_dim:
            raise ValueError(f"{path}: action size {act.shape[1]} does not match {env} "
                             f"(expected {spec.act_dim})")


# --------------------------------------------------------------------------------------------
# Download (spec §2.1; dependencies.md: D4RL's own URLs)
# --------------------------------------------------------------------------------------------

D4RL_BASE_URL = "http://rail.eecs.berkeley.edu/datasets/offline_rl/gym_mujoco_v2"
D4RL_KINDS = ("medium", "random", "expert")

# sha256 of D4RL's files where known. None is verified here yet (no network on the machine that
# wrote this), so every entry is empty and downloads are not checked; fill in from a trusted copy.
KNOWN_SHA256: dict[str, str] = {
    f"{env}_{kind}-v2.hdf5": "" for env in ("hopper", "halfcheetah", "walker2d") for kind in D4RL_KINDS
}


class DatasetDownloadError(OSError):
    """A D4RL file could not be fetched (offline, HTTP error) or failed its checksum."""


def data_dir() -> Path:
    """Where D4RL files live: ``DTCORE_DATA_DIR``, default ``~/.d4rl/datasets`` (d4rl's own)."""
    return _default_data_dir()


def _default_data_dir() -> Path:
    return Path(os.environ.get("DTCORE_DATA_DIR", Path.home() / ".d4rl" / "datasets")).expanduser()


def d4rl_filename(env: str, kind: str = "medium") -> str:
    env_spec(env)
    if kind not in D4RL_KINDS:
        raise ValueError(f"unknown dataset kind {kind!r}; known: {', '.join(D4RL_KINDS)}")
    return f"{env}_{kind}-v2.hdf5"


def d4rl_url(env: str, kind: str = "medium") -> str:
    """D4RL's URL of ``{env}_{kind}-v2.hdf5``."""
    return f"{D4RL_BASE_URL}/{d4rl_filename(env, kind)}"


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def download_d4rl(env: str, kind: str = "medium", data_dir: str | os.PathLike | None = None, *,
                  url: str | None = None, sha256: str | None = None, timeout: float = 10.0) -> Path:
    """The local path of D4RL's ``{env}_{kind}-v2.hdf5``, downloading it first if absent.

    ``url`` overrides D4RL's URL (tests use a loopback server) and ``sha256`` the known hash. The
    file is written to a temporary name in the same folder and renamed only after its hash
    matched, so a failed or refused download leaves nothing behind.
    """
    name = d4rl_filename(env, kind)
    folder = Path(data_dir).expanduser() if data_dir is not None else _default_data_dir()
    target = folder / name
    expected = sha256 if sha256 is not None else KNOWN_SHA256.get(name, "")
    if target.exists():
        if not expected or sha256_file(target) == expected:
            return target
        log.warning("%s does not match its known sha256; downloading it again", target)
    src = url or d4rl_url(env, kind)
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=folder)
    try:
        digest = _fetch(src, fd, timeout, name, target)
        if expected and digest != expected:
            raise DatasetDownloadError(f"{name} from {src}: sha256 {digest} does not match the "
                                       f"known {expected}; the file was not kept")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    log.info("downloaded %s to %s", src, target)
    return target


def _fetch(src: str, fd: int, timeout: float, name: str, target: Path) -> str:
    """Stream ``src`` into the open file ``fd``; the sha256 of what was written."""
    h = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(src, timeout=timeout) as resp:
            while block := resp.read(1 << 20):
                h.update(block)
                out.write(block)
    except (urllib.error.URLError, OSError) as e:
        raise DatasetDownloadError(
            f"cannot download {name} from {src} ({e}). Without network access, copy {name} "
            f"(from {src} on a connected machine) to {target}, or set DTCORE_DATA_DIR to the "
            f"folder that holds it") from e
    return h.hexdigest()
