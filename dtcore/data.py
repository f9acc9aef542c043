"""Offline data of the paper's runs: loading D4RL-layout files into trajectories, and their statistics.

Implements docs/spec.md §2 (what the published code computed):

- §2.1 loading: D4RL's HDF5 files (``observations``, ``actions``, ``rewards``, ``terminals``,
  ``timeouts``, ``next_observations``) and the pickled list of paths written by the original
  download script, split into trajectories where ``terminals`` or ``timeouts`` is true;
  transitions after the last boundary are dropped. Unpickling runs code, so a pickle is read only
  when the caller says it trusts the file (``trust_pickle``; ``--trust-pickle`` on the command line).
- identity: :func:`dataset_sha256` hashes an HDF5 file's arrays (name, dtype, shape, bytes), not
  its attributes, so the same data collected again (another wall time) keeps its run keys.
- §2.3 preprocessing: state mean and population std (+1e-6) over all observations; trajectories
  sorted by return and kept while the running total stays *strictly* below the total number of
  timesteps, so the lowest-return trajectory is dropped as run (``drop_lowest_return=False``
  keeps it); sampling probability proportional to trajectory length.
- §2.4 ``get_batch``: uniform start in ``0..len-1``, windows of at most K steps, undiscounted
  returns-to-go with K+1 entries (a 0 appended when the window reaches the trajectory end), left
  padding with the published pad values, timesteps clamped to ``max_ep_len - 1``, rtg / scale.

Statistics and returns-to-go accumulate in float64 (the original summed float32 rewards in float32).
The windows cut from these trajectories: :mod:`dtcore.samplers`; D4RL's files: :mod:`dtcore.d4rl`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from dtcore.envs import env_spec

log = logging.getLogger(__name__)

TRAJECTORY_KEYS = ("observations", "next_observations", "actions", "rewards", "terminals", "timeouts")
HDF5_KEYS = TRAJECTORY_KEYS  # every key of D4RL's *-v2 files that a trajectory needs
PATH_KEYS = ("observations", "next_observations", "actions", "rewards", "terminals")  # pickled paths


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
# Dataset and statistics (docs/spec.md §2.1-2.3)
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
        """Per-dimension mean of all observations, float64 [S] (docs/spec.md §2.3.2)."""
        return self._observations.mean(axis=0)

    @cached_property
    def state_std(self) -> np.ndarray:
        """Per-dimension population std of all observations + 1e-6, float64 [S] (docs/spec.md §2.3.2)."""
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
        """Counts and return mean/std/min/max (the figures of docs/spec.md §2.2)."""
        r = self.returns
        return DatasetStats(n_trajectories=len(r), n_timesteps=int(self.lengths.sum()),
                            return_mean=float(r.mean()), return_std=float(r.std()),
                            return_min=float(r.min()), return_max=float(r.max()))


def load_dataset(path: str | os.PathLike, env: str | None = None, *, label: str | None = None,
                 trust_pickle: bool = False) -> OfflineDataset:
    """Read a D4RL HDF5 file (``.hdf5``/``.h5``) or, with ``trust_pickle``, a pickled list of
    paths (``.pkl``; without it a pickle is a ``ValueError``: unpickling runs any code it holds).

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
        if not trust_pickle:
            raise ValueError(f"{path}: refusing to unpickle a dataset (loading a pickle runs any code it holds); "
                             "convert it to D4RL's HDF5 layout, or pass --trust-pickle if you trust who wrote it")
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


def dataset_sha256(path: str | os.PathLike) -> str:
    """The content identity of a dataset file, part of every run key trained on it: for HDF5 the
    sha256 over each dataset's name, dtype, shape and bytes in name order (attributes such as a
    collection's wall time are left out, and so is compression); for any other file its bytes."""
    from dtcore.provenance import sha256_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such dataset file")
    if path.suffix not in (".hdf5", ".h5"):
        return sha256_file(path)
    import h5py

    h = hashlib.sha256()
    with _open_hdf5(path) as f:
        names: list[str] = []
        f.visit(lambda name: names.append(name) if isinstance(f[name], h5py.Dataset) else None)
        for name in sorted(names):
            arr = np.ascontiguousarray(f[name][()])
            h.update(f"{name}\0{arr.dtype.str}\0{arr.shape}\n".encode())
            h.update(repr(arr.tolist()).encode() if arr.dtype.kind == "O" else arr.tobytes())  # strings: by value
    return h.hexdigest()


def _open_hdf5(path: Path):
    """The open ``h5py.File``; a ``ValueError`` naming the file when it is not readable HDF5."""
    import h5py

    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise ValueError(f"{path}: not a readable HDF5 file ({err}); the file is truncated or corrupt: "
                         f"delete it and download or collect it again") from None


def _read_hdf5(path: Path) -> dict[str, np.ndarray]:
    with _open_hdf5(path) as f:
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
    """The original download script's pickle: a list of dicts without ``timeouts`` (docs/spec.md §2.1)."""
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


ACTION_TOLERANCE = 1e-4  # float32 rounding of actions stored at the bounds


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
    if act.size and np.abs(act).max() > 1.0 + ACTION_TOLERANCE:
        raise ValueError(f"{path}: {where}: actions reach {np.abs(act).max():.4g}, outside [-1, 1]: the "
                         f"MuJoCo action space and the model's tanh action head are [-1, 1] (D4RL's "
                         f"actions lie within it); clip or rescale the actions")
    if env is not None:
        spec = env_spec(env)
        if obs.shape[1] != spec.state_dim:
            raise ValueError(f"{path}: observation size {obs.shape[1]} does not match {env} "
                             f"(expected {spec.state_dim})")
        if act.shape[1] != spec.act_dim:
            raise ValueError(f"{path}: action size {act.shape[1]} does not match {env} "
                             f"(expected {spec.act_dim})")
