"""The environments of a batched evaluation: every episode's environment, reset with its own
seed, stepped row by row, either in this process (:class:`LocalEnvs`) or split over forked worker
processes (:class:`ProcessEnvs`) so that CPU physics runs in parallel while the model runs one
batched forward per step (``dtcore.evaluate``). Both have the same three methods."""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Sequence

import numpy as np
import torch

from dtcore.envs import make_env


def default_workers(device: str | torch.device, episodes: int) -> int:
    """Environment worker processes for a batched rollout of ``episodes`` on ``device``.

    On a GPU the forward of a step is short and the CPU physics of every episode is the cost (200
    Hopper episodes take about 40 ms of MuJoCo per step on one core): up to 8 processes, one core
    left for the main one, at least 8 episodes each. On a CPU the same cores run the forwards (and
    the run grid runs runs in parallel), so none: the environments step in this process.
    """
    if torch.device(device).type != "cuda":
        return 0
    workers = min(8, (os.cpu_count() or 1) - 1, episodes // 8)
    return workers if workers > 1 else 0


class LocalEnvs:
    """Environments in this process, reset each with its own seed."""

    def __init__(self, gym_id: str, seeds: Sequence[int], state_dim: int) -> None:
        self.envs = [make_env(gym_id) for _ in seeds]
        self.seeds = list(seeds)
        self.state_dim = state_dim

    def reset(self) -> np.ndarray:
        return np.stack([env.reset(seed=seed)[0] for env, seed in zip(self.envs, self.seeds)])

    def step(self, rows: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Step envs ``rows`` with ``actions [n, A]``: next obs [n, S], rewards [n], ended [n]."""
        out = [self.envs[i].step(a) for i, a in zip(rows, actions)]
        obs = np.stack([o[0] for o in out]) if out else np.zeros((0, self.state_dim))
        return (obs, np.array([o[1] for o in out], np.float64),
                np.array([bool(o[2] or o[3]) for o in out], bool))

    def close(self) -> None:
        for env in self.envs:
            env.close()


def _env_worker(conn, gym_id: str, seeds: list[int], state_dim: int) -> None:
    """Worker process: holds a shard of environments and steps the rows it is sent."""
    envs = LocalEnvs(gym_id, seeds, state_dim)
    try:
        while True:
            msg = conn.recv()
            if msg[0] == "reset":
                conn.send(envs.reset())
            elif msg[0] == "step":
                conn.send(envs.step(msg[1], msg[2]))
            else:
                break
    finally:
        envs.close()
        conn.close()


class ProcessEnvs:
    """The same interface with the environments split over ``workers`` forked processes
    (the fast procedure: CPU physics in parallel while the model runs one batched forward per step)."""

    def __init__(self, gym_id: str, seeds: Sequence[int], state_dim: int, workers: int) -> None:
        ctx = mp.get_context("fork")
        self.state_dim = state_dim
        self.shards = [a for a in np.array_split(np.arange(len(seeds)), workers) if a.size]
        self.conns, self.procs = [], []
        for shard in self.shards:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_env_worker, args=(child, gym_id, [seeds[i] for i in shard], state_dim),
                               daemon=True)
            proc.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(proc)

    def reset(self) -> np.ndarray:
        for c in self.conns:
            c.send(("reset",))
        return np.concatenate([c.recv() for c in self.conns])

    def step(self, rows: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        sent = []
        for shard, conn in zip(self.shards, self.conns):
            sel = np.flatnonzero((rows >= shard[0]) & (rows <= shard[-1]))  # rows of this worker
            if sel.size:
                conn.send(("step", rows[sel] - shard[0], actions[sel]))
                sent.append((sel, conn))
        obs = np.zeros((len(rows), self.state_dim))                           # [n, S]
        reward, ended = np.zeros(len(rows)), np.zeros(len(rows), bool)       # [n], [n]
        for sel, conn in sent:
            obs[sel], reward[sel], ended[sel] = conn.recv()
        return obs, reward, ended

    def close(self) -> None:
        for c, p in zip(self.conns, self.procs):
            try:
                c.send(("close",))
            except (BrokenPipeError, OSError):
                pass
            p.join(timeout=5)
            if p.is_alive():
                p.terminate()
