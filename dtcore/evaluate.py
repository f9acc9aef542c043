"""Return-conditioned evaluation rollouts and their scores (docs/spec.md §5.1-5.3).

The published procedure (``evaluate_episode_rtg``, docs/spec.md §5.1) ran every episode on its own, one
batch-1 forward per environment step: reset, rtg = target / scale, then each step append the
normalised state with a zero placeholder action, keep the last K steps left-padded with zeros
and a 0/1 mask (``get_action``, docs/spec.md §3.3), read ``action_preds[0, -1]``, step, rtg -= r / scale,
until the episode ends or 1000 steps. That is ``cfg.batched=False`` here.

``cfg.batched=True`` (ours, the fast procedure) runs every episode of every target as one set of
environments and makes **one batched forward per step** over the episodes still running, each row
with its own history exactly as above. What is computed per episode is the same; the batched
rollout is checked against the sequential one in ``tests/test_evaluate.py``.

Differences from the published code: gymnasium ``*-v5`` instead of gym ``*-v3``; every episode
resets with its own seed ``cfg.reset_seed + j * 1000 + i`` (target j, episode i; the original
reused one unseeded env); a non-finite action ends that episode as failed, with the reason kept,
instead of crashing the run.

Scores (docs/spec.md §5.2-5.3): the epoch score is the mean episode return of the first target; tables
report the best over epochs (early stopping) and we also report the last epoch. Both
normalisations come from :mod:`dtcore.envs`: ``"paper"`` (D4RL reference scores) and ``"as-run"``
(dataset means of random-v2 / expert-v2, which reproduces Table 1).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from dtcore.config import EvalConfig
from dtcore.envs import NORMALISATIONS, env_spec, make_env
from dtcore.envworkers import LocalEnvs, ProcessEnvs, default_workers

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TargetResult:
    """The episodes of one return-to-go target."""

    target: float
    returns: tuple[float, ...]           # raw undiscounted return of each episode
    lengths: tuple[int, ...]             # environment steps of each episode
    failures: tuple[str | None, ...]     # None, or why the episode was ended as failed
    reset_seeds: tuple[int, ...]

    @property
    def mean_return(self) -> float:
        return float(np.mean(np.asarray(self.returns, dtype=np.float64)))

    @property
    def n_failed(self) -> int:
        return sum(f is not None for f in self.failures)


@dataclass(frozen=True)
class EvalResult:
    """Per-episode outcomes of one evaluation, per target; the first target is the reported one."""

    env: str
    results: tuple[TargetResult, ...]
    batched: bool
    wall_time_s: float = 0.0
    forwards: int = 0                    # model forward calls made
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def targets(self) -> tuple[float, ...]:
        return tuple(r.target for r in self.results)

    def target_result(self, target: float | None = None) -> TargetResult:
        if target is None:
            return self.results[0]
        for r in self.results:
            if r.target == target:
                return r
        raise ValueError(f"target {target} was not evaluated; targets: {self.targets}")

    def mean_return(self, target: float | None = None) -> float:
        """Mean raw return over the episodes of ``target`` (default: the reported first target)."""
        return self.target_result(target).mean_return

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary with every episode (for ``log.json``)."""
        return {"env": self.env, "batched": self.batched, "wall_time_s": self.wall_time_s,
                "forwards": self.forwards,
                "targets": [{"target": r.target, "mean_return": r.mean_return,
                             "score_paper": NORMALISATIONS["paper"](self.env, r.mean_return),
                             "score_as_run": NORMALISATIONS["as-run"](self.env, r.mean_return),
                             "returns": list(r.returns), "lengths": list(r.lengths),
                             "failures": list(r.failures), "reset_seeds": list(r.reset_seeds)}
                            for r in self.results]}


# --------------------------------------------------------------------------------------------
# Rollouts
# --------------------------------------------------------------------------------------------


@dataclass
class _Episode:
    target_index: int
    seed: int
    ret: float = 0.0
    length: int = 0
    failure: str | None = None


def evaluate(model: nn.Module, cfg: EvalConfig, *, state_mean: np.ndarray, state_std: np.ndarray,
             context: int, device: str | torch.device = "cpu", max_ep_len: int = 1000,
             workers: int | None = None, amp_dtype: torch.dtype | None = None) -> EvalResult:
    """Roll out ``cfg.episodes_per_target`` episodes per target of ``cfg.targets`` in ``cfg.env``.

    ``model(states [B,K,S], actions [B,K,A], returns_to_go [B,K,1], timesteps [B,K],
    attention_mask [B,K]) -> action_preds [B,K,A]``; the action is ``action_preds[:, -1]``. The
    model runs in eval mode under ``torch.inference_mode`` and gets its previous mode back.
    ``state_mean`` / ``state_std`` are the training data's (docs/spec.md §2.3). Timesteps fed to the model
    are clamped to ``max_ep_len - 1``.

    Batched only: ``workers > 1`` steps the environments in that many forked processes (worth it
    when many episodes meet many cores; the default ``None`` takes :func:`default_workers`: none
    on a CPU); ``amp_dtype`` (e.g. ``torch.bfloat16``) runs the forward under autocast, which
    changes the actions slightly: the default ``None`` is fp32, as run.
    """
    spec = env_spec(cfg.env)
    if context < 1:
        raise ValueError(f"context must be >= 1, got {context}")
    if cfg.episodes_per_target > 1000:
        raise ValueError(f"episodes_per_target must be <= 1000 (reset seeds are spaced by 1000), "
                         f"got {cfg.episodes_per_target}")
    state_mean = np.asarray(state_mean, dtype=np.float32).reshape(-1)
    state_std = np.asarray(state_std, dtype=np.float32).reshape(-1)
    if state_mean.shape != (spec.state_dim,) or state_std.shape != (spec.state_dim,):
        raise ValueError(f"state_mean {state_mean.shape} and state_std {state_std.shape} must be "
                         f"[{spec.state_dim}] for {cfg.env}")
    episodes = [_Episode(j, cfg.reset_seed + j * 1000 + i)
                for j in range(len(cfg.targets)) for i in range(cfg.episodes_per_target)]
    if workers is None:
        workers = default_workers(device, len(episodes))
    rollout = _rollout_batched if cfg.batched else _rollout_sequential
    was_training = model.training
    model.eval()
    t0 = time.perf_counter()
    try:
        with torch.inference_mode():
            forwards = rollout(model, cfg, episodes, _Normaliser(state_mean, state_std),
                               context, torch.device(device), max_ep_len, workers, amp_dtype)
    finally:
        model.train(was_training)
    wall = time.perf_counter() - t0
    results = tuple(
        TargetResult(target=float(target),
                     returns=tuple(e.ret for e in episodes if e.target_index == j),
                     lengths=tuple(e.length for e in episodes if e.target_index == j),
                     failures=tuple(e.failure for e in episodes if e.target_index == j),
                     reset_seeds=tuple(e.seed for e in episodes if e.target_index == j))
        for j, target in enumerate(cfg.targets))
    log.info("evaluated %d episodes of %s in %.1f s (%d forwards)", len(episodes), cfg.env, wall, forwards)
    return EvalResult(cfg.env, results, cfg.batched, wall, forwards)


@dataclass(frozen=True)
class _Normaliser:
    mean: np.ndarray  # [S] float32
    std: np.ndarray   # [S] float32

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """(s - mean) / std in float32, the raw state first stored as float32 as the original did."""
        return (np.asarray(obs, dtype=np.float32) - self.mean) / self.std


def _step_env(env: gym.Env, ep: _Episode, action: np.ndarray, t: int, cfg: EvalConfig
              ) -> tuple[np.ndarray | None, float]:
    """Step one episode; returns (next raw obs or None if the episode ended, reward)."""
    if not np.isfinite(action).all():
        ep.failure = f"non-finite action at step {t}: {action.tolist()}"
        return None, 0.0
    obs, reward, terminated, truncated, _ = env.step(action)
    ep.ret += float(reward)
    ep.length = t + 1
    if not np.isfinite(obs).all():
        ep.failure = f"non-finite observation after step {t}"
        return None, float(reward)
    if terminated or truncated or t + 1 >= cfg.max_steps:
        return None, float(reward)
    return obs, float(reward)


def _rollout_sequential(model, cfg, episodes, normalise, K, device, max_ep_len, workers, amp_dtype
                        ) -> int:
    """The published procedure: one episode after another, batch-1 ``get_action`` each step, fp32."""
    del workers, amp_dtype  # the published procedure has neither
    spec = env_spec(cfg.env)
    env = make_env(spec.gym_id)
    forwards = 0
    try:
        for ep in episodes:
            obs, _ = env.reset(seed=ep.seed)
            states = normalise(obs)[None]                                        # [1, S]
            actions = np.zeros((0, spec.act_dim), np.float32)                    # [0, A]
            rtg = np.array([cfg.targets[ep.target_index] / cfg.scale], np.float32)  # [1]
            for t in range(cfg.max_steps):
                actions = np.concatenate([actions, np.zeros((1, spec.act_dim), np.float32)])
                timesteps = np.minimum(np.arange(t + 1), max_ep_len - 1)
                action = _get_action(model, states, actions, rtg, timesteps, K, device)
                forwards += 1
                actions[-1] = action
                obs, reward = _step_env(env, ep, action, t, cfg)
                if obs is None:
                    break
                states = np.concatenate([states, normalise(obs)[None]])
                rtg = np.concatenate([rtg, [np.float32(rtg[-1] - np.float32(reward / cfg.scale))]])
    finally:
        env.close()
    return forwards


def _get_action(model, states, actions, rtg, timesteps, K, device) -> np.ndarray:
    """Published ``get_action``: last K steps, left-padded with zeros, mask 0/1; ``preds[0, -1]``."""
    n = min(len(states), K)
    pad = K - n
    S, A = states.shape[1], actions.shape[1]
    s = np.concatenate([np.zeros((pad, S), np.float32), states[-n:]])[None]           # [1, K, S]
    a = np.concatenate([np.zeros((pad, A), np.float32), actions[-n:]])[None]          # [1, K, A]
    r = np.concatenate([np.zeros(pad, np.float32), rtg[-n:]])[None, :, None]          # [1, K, 1]
    ts = np.concatenate([np.zeros(pad, np.int64), timesteps[-n:]])[None]              # [1, K]
    mask = np.concatenate([np.zeros(pad, np.float32), np.ones(n, np.float32)])[None]  # [1, K]
    preds = model(*(torch.from_numpy(x).to(device) for x in (s, a, r, ts, mask)))    # [1, K, A]
    return preds[0, -1].float().cpu().numpy()


def _rollout_batched(model, cfg, episodes, normalise, K, device, max_ep_len, workers, amp_dtype) -> int:
    """Every episode at once: one forward per step over the running rows, each with its own window."""
    spec = env_spec(cfg.env)
    E, S, A = len(episodes), spec.state_dim, spec.act_dim
    seeds = [ep.seed for ep in episodes]
    envs = ProcessEnvs(spec.gym_id, seeds, S, workers) if workers > 1 else LocalEnvs(spec.gym_id, seeds, S)
    # Rolling windows of the last K steps; the newest step is column K-1; zeros/mask 0 = padding.
    states = np.zeros((E, K, S), np.float32)   # [E, K, S] normalised
    actions = np.zeros((E, K, A), np.float32)  # [E, K, A]
    rtg = np.zeros((E, K), np.float32)         # [E, K]
    ts = np.zeros((E, K), np.int64)            # [E, K]
    mask = np.zeros((E, K), np.float32)        # [E, K]
    cur_rtg = np.array([cfg.targets[ep.target_index] / cfg.scale for ep in episodes], np.float32)
    running = np.ones(E, bool)
    forwards = 0
    try:
        obs = envs.reset()                                                        # [E, S] raw
        for t in range(cfg.max_steps):
            rows = np.flatnonzero(running)
            if rows.size == 0:
                break
            for win in (states, actions, rtg, ts, mask):  # shift every window left by one step
                win[rows, :-1] = win[rows, 1:]
            states[rows, -1] = normalise(obs[rows])
            actions[rows, -1] = 0.0
            rtg[rows, -1] = cur_rtg[rows]
            ts[rows, -1] = min(t, max_ep_len - 1)
            mask[rows, -1] = 1.0
            inputs = (states[rows], actions[rows], rtg[rows, :, None], ts[rows], mask[rows])
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                preds = model(*(torch.from_numpy(x).to(device) for x in inputs))  # [n, K, A]
            forwards += 1
            act = preds[:, -1].float().cpu().numpy()                              # [n, A]
            actions[rows, -1] = act
            finite = np.isfinite(act).all(axis=1)                                 # [n]
            for k in np.flatnonzero(~finite):
                episodes[rows[k]].failure = f"non-finite action at step {t}: {act[k].tolist()}"
            running[rows[~finite]] = False
            rows, act = rows[finite], act[finite]
            nxt, reward, done = envs.step(rows, act)                              # [n, S], [n], [n]
            for k, i in enumerate(rows):
                ep = episodes[i]
                ep.ret += float(reward[k])
                ep.length = t + 1
                if not np.isfinite(nxt[k]).all():
                    ep.failure = f"non-finite observation after step {t}"
                if done[k] or ep.failure is not None or t + 1 >= cfg.max_steps:
                    running[i] = False
                else:
                    obs[i] = nxt[k]
                    cur_rtg[i] = np.float32(cur_rtg[i] - np.float32(reward[k] / cfg.scale))
    finally:
        envs.close()
    return forwards
