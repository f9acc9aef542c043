"""dtcore.evaluate: the batched rollout equals the published sequential one for the same seeds and
weights, non-finite actions end only their own episode, and both normalisations hold on the
paper's numbers (docs/spec.md §5.1-5.3)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from torch import nn

from dtcore.config import EvalConfig, ModelConfig
from dtcore import envs as envs_module
from dtcore.envs import NORMALISATIONS, env_spec, make_env
from dtcore.evaluate import EvalResult, TargetResult, evaluate
from dtcore.model import build_model

ENV = "hopper"
SPEC = env_spec(ENV)


@pytest.fixture(autouse=True)
def _mujoco_log_outside_the_repository(tmp_path, monkeypatch):
    """MuJoCo appends its warnings to MUJOCO_LOG.TXT in the working directory."""
    monkeypatch.chdir(tmp_path)


class TinyPolicy(nn.Module):
    """A stand-in with the model contract: reads every real step of the window through the mask."""

    def __init__(self, S: int, A: int, d: int = 16, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.inp = nn.Linear(S + A + 1, d)
        self.time = nn.Embedding(1000, d)
        self.out = nn.Linear(d, A)

    def forward(self, states, actions, returns_to_go, timesteps, attention_mask=None):
        h = torch.tanh(self.inp(torch.cat([states, actions, returns_to_go], -1)) + self.time(timesteps))
        m = attention_mask[..., None]                                  # [B, K, 1]
        pooled = (h * m).cumsum(1) / m.cumsum(1).clamp(min=1)          # [B, K, d] causal mean
        return torch.tanh(self.out(pooled + h))                        # [B, K, A]


def tiny_model(env: str = ENV) -> nn.Module:
    """The real DecisionTransformer at a tiny size."""
    spec = env_spec(env)
    cfg = ModelConfig(backbone="random", state_dim=spec.state_dim, act_dim=spec.act_dim,
                      n_layer=2, n_embd=32, n_head=1, seed=0)
    return build_model(cfg)


def stats(env: str = ENV):
    rng = np.random.default_rng(0)
    S = env_spec(env).state_dim
    return rng.normal(0, 0.5, S), rng.uniform(0.5, 2.0, S)


def cfg(batched: bool, env: str = ENV, **kw) -> EvalConfig:
    base = dict(env=env, targets=env_spec(env).targets, episodes_per_target=3, max_steps=50,
                reset_seed=100, batched=batched)
    return EvalConfig(**{**base, **kw})


@pytest.mark.parametrize("env, context, workers", [
    ("hopper", 20, 0), ("hopper", 4, 0), ("halfcheetah", 4, 0), ("hopper", 4, 2)])
def test_a_batched_rollout_equals_the_same_episodes_run_one_by_one(env, context, workers):
    model = tiny_model(env)
    model.train()  # evaluate must switch to eval mode (no dropout) and give the mode back
    mean, std = stats(env)
    kw = dict(state_mean=mean, state_std=std, context=context)
    batched = evaluate(model, cfg(True, env), workers=workers, **kw)
    sequential = evaluate(model, cfg(False, env), **kw)
    assert model.training
    for b, s in zip(batched.results, sequential.results):
        assert b.reset_seeds == s.reset_seeds
        assert b.lengths == s.lengths
        np.testing.assert_allclose(b.returns, s.returns, rtol=1e-5, atol=1e-4)
        assert b.failures == s.failures == (None,) * 3
    assert batched.forwards == max(max(r.lengths) for r in batched.results)  # one forward per step
    assert sequential.forwards == sum(sum(r.lengths) for r in sequential.results)
    assert batched.results[0].reset_seeds == (100, 101, 102)
    assert batched.results[1].reset_seeds == (1100, 1101, 1102)
    assert len(set(np.round(batched.results[0].returns, 6))) == 3  # own seed, own episode


class NaNAt(nn.Module):
    """Wraps a policy and returns NaN for rows conditioned on the high target at step 5."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, states, actions, returns_to_go, timesteps, attention_mask=None):
        out = self.inner(states, actions, returns_to_go, timesteps, attention_mask).clone()
        bad = (timesteps[:, -1] == 5) & (returns_to_go[:, -1, 0] > 2.7)  # [B]
        out[bad] = float("nan")
        return out


@pytest.mark.parametrize("batched, workers", [(True, 0), (True, 2), (False, 0)])
def test_a_nan_action_fails_only_its_episode_with_the_reason_recorded(batched, workers):
    mean, std = stats()
    policy = NaNAt(tiny_model())
    res = evaluate(policy, cfg(batched, max_steps=30), state_mean=mean, state_std=std, context=5,
                   workers=workers)
    high, low = res.results
    assert high.n_failed == 3 and low.n_failed == 0
    assert all("non-finite action at step 5" in f for f in high.failures)
    assert all(n == 5 for n in high.lengths)  # ended before stepping with the bad action
    assert all(np.isfinite(high.returns)) and all(n > 5 for n in low.lengths)


def test_bad_statistics_are_refused_naming_the_shapes():
    with pytest.raises(ValueError, match="state_mean"):
        evaluate(TinyPolicy(SPEC.state_dim, SPEC.act_dim), cfg(True), state_mean=np.zeros(5),
                 state_std=np.ones(5), context=5)


# -- scores -------------------------------------------------------------------------------------

def result(env: str, returns_per_target: dict[float, list[float]]) -> EvalResult:
    rs = tuple(TargetResult(t, tuple(r), tuple([100] * len(r)), tuple([None] * len(r)),
                            tuple(range(len(r)))) for t, r in returns_per_target.items())
    return EvalResult(env, rs, batched=True)


@pytest.mark.parametrize("env, raw, d4rl, as_run", [
    ("hopper", 2795, 86.5, 79.5),       # docs/spec.md §5.3: Hopper GPT2
    ("hopper", 2383, 73.8, 67.7),       # Hopper Random
    ("halfcheetah", 5009, 42.6, 48.4),  # HalfCheetah GPT2
    ("walker2d", 3504, 76.3, 71.2),     # Walker GPT2
])
def test_both_normalisations_reproduce_the_papers_conversions(env, raw, d4rl, as_run):
    assert NORMALISATIONS["paper"](env, raw) == pytest.approx(d4rl, abs=0.05)
    assert NORMALISATIONS["as-run"](env, raw) == pytest.approx(as_run, abs=0.05)


def test_mean_return_reads_the_first_target_unless_another_is_named():
    r = result("hopper", {3600.0: [1.0, 3.0], 1800.0: [10.0, 30.0]})
    assert r.mean_return() == 2.0 and r.mean_return(1800.0) == 20.0
    with pytest.raises(ValueError, match="not evaluated"):
        r.mean_return(999.0)


def test_env_workers_default_to_none_on_a_cpu_and_to_parallel_physics_beside_a_gpu(monkeypatch):
    from dtcore import envworkers

    monkeypatch.setattr(envworkers.os, "cpu_count", lambda: 16)
    assert envworkers.default_workers("cpu", 200) == 0  # the CPU's cores run the forwards
    assert envworkers.default_workers("cuda", 200) == 8  # up to 8 processes
    assert envworkers.default_workers("cuda:0", 40) == 5  # at least 8 episodes each
    assert envworkers.default_workers("cuda", 12) == 0  # too few episodes to share out
    monkeypatch.setattr(envworkers.os, "cpu_count", lambda: 4)
    assert envworkers.default_workers("cuda", 200) == 3  # one core left for the main process


def test_evaluate_takes_the_default_workers_when_none_are_given(monkeypatch):
    from dtcore import evaluate as ev

    asked = []
    monkeypatch.setattr(ev, "default_workers", lambda device, episodes: asked.append((str(device), episodes)) or 0)
    ev.evaluate(tiny_model(), EvalConfig(env="hopper", targets=(3600.0, 1800.0), episodes_per_target=2, max_steps=3),
                state_mean=np.zeros(11), state_std=np.ones(11), context=2)
    assert asked == [("cpu", 4)]


def test_mujoco_warnings_are_logged_once_not_printed_for_every_model(capfd, caplog, monkeypatch):
    monkeypatch.setattr(envs_module, "_MUJOCO_SEEN", set())
    with caplog.at_level(logging.WARNING, logger="dtcore.envs"):
        made = [make_env("HalfCheetah-v5") for _ in range(3)]
    out, err = capfd.readouterr()
    assert "settotalmass" not in out + err                  # mujoco 4 printed it at each of the three
    assert len([r for r in caplog.records if "settotalmass" in r.getMessage()]) == 1
    assert made[0].unwrapped.model.body_mass.sum() == pytest.approx(14.0)   # the deprecated attribute still applies
