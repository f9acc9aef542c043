"""The three MuJoCo tasks of the paper and their constants.

Gymnasium ``*-v5`` replaces the paper's gym ``*-v3`` (mujoco-py is not installable today;
``docs/dependencies.md``). Observation and action sizes match D4RL. Conditioning targets
are the published code's (docs/spec.md §5.1): both are evaluated, the first is the reported one.
Two normalisations exist (docs/spec.md §5.3): D4RL's reference scores (``d4rl`` infos.py, the
default for verdicts) and the published code's dataset means of ``random-v2`` / ``expert-v2``
(the as-run one, which reproduces Table 1).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

logger = logging.getLogger(__name__)
_MUJOCO_SEEN: set[str] = set()   # MuJoCo warnings this process has logged (each once)


@dataclass(frozen=True)
class EnvSpec:
    name: str                      # short name used everywhere: hopper, halfcheetah, walker2d
    gym_id: str                    # gymnasium id of the environment we roll out in
    paper_gym_id: str              # the id the paper used (gym 0.18, mujoco-py)
    state_dim: int                 # observation size (D4RL's)
    act_dim: int                   # action size, actions in [-1, 1]
    targets: tuple[float, ...]     # return-to-go targets; [0] is the reported one (Table 3)
    d4rl_ref_min: float            # D4RL REF_MIN_SCORE (random policy)
    d4rl_ref_max: float            # D4RL REF_MAX_SCORE (expert policy)
    dataset_random_mean: float     # mean return of {env}-random-v2 (as-run normalisation)
    dataset_expert_mean: float     # mean return of {env}-expert-v2 (as-run normalisation)


ENVS: dict[str, EnvSpec] = {
    "hopper": EnvSpec("hopper", "Hopper-v5", "Hopper-v3", 11, 3, (3600.0, 1800.0),
                      -20.272305, 3234.3, 18.398905, 3511.3577),
    "halfcheetah": EnvSpec("halfcheetah", "HalfCheetah-v5", "HalfCheetah-v3", 17, 6, (6000.0, 12000.0),
                           -280.178953, 12135.0, -288.79712, 10656.426),
    "walker2d": EnvSpec("walker2d", "Walker2d-v5", "Walker2d-v3", 17, 6, (5000.0, 2500.0),
                        1.629008, 4592.3, 1.871351, 4920.507),
}


def _mujoco_warning(message: str) -> None:
    if message not in _MUJOCO_SEEN:
        _MUJOCO_SEEN.add(message)
        logger.warning("MuJoCo: %s (logged once per process)", message)


def make_env(gym_id: str):
    """``gymnasium.make(gym_id)``, with MuJoCo's warnings logged once per process instead of
    printed by MuJoCo at every model it compiles (mujoco 4 warns that HalfCheetah-v5's
    ``settotalmass`` is deprecated each time: 34 lines in one evaluation benchmark; the attribute
    still applies, the body's mass is 14 as before)."""
    import gymnasium as gym
    import mujoco

    if mujoco.get_mju_user_warning() is not _mujoco_warning:
        mujoco.set_mju_user_warning(_mujoco_warning)
    return gym.make(gym_id)


def env_spec(name: str) -> EnvSpec:
    """The :class:`EnvSpec` of ``name``; ``ValueError`` listing the known names otherwise."""
    try:
        return ENVS[name]
    except KeyError:
        raise ValueError(f"unknown environment {name!r}; known: {', '.join(ENVS)}") from None


def d4rl_normalised(env: str, ret: float) -> float:
    """D4RL's normalised score 100 (R - REF_MIN) / (REF_MAX - REF_MIN) (the paper's definition)."""
    s = env_spec(env)
    return 100.0 * (ret - s.d4rl_ref_min) / (s.d4rl_ref_max - s.d4rl_ref_min)


def dataset_mean_normalised(env: str, ret: float) -> float:
    """The published code's score: 100 (R - mean(random-v2)) / (mean(expert-v2) - mean(random-v2))."""
    s = env_spec(env)
    return 100.0 * (ret - s.dataset_random_mean) / (s.dataset_expert_mean - s.dataset_random_mean)


NORMALISATIONS = {"paper": d4rl_normalised, "as-run": dataset_mean_normalised}
