"""D4RL-like datasets rolled out from behaviour policies (the offline stand-in for D4RL medium-v2).

D4RL's medium-v2 files (docs/spec.md §2.1) were collected from one partially trained SAC policy per
task. They cannot be downloaded here, so the ``mini`` and ``smoke`` profiles roll out the public
rl-baselines3-zoo agents (their source, licence and checksums: docs/assets.md §1; read from the
directory ``DTCORE_POLICY_DIR``) in the gymnasium ``*-v5`` environments instead:

* whole episodes, episode ``i`` reset with seed ``recipe.seed + i``;
* action = clip(deterministic policy action + N(0, recipe.noise^2), -1, 1), the noise drawn from a
  numpy Generator seeded with ``(recipe.seed, i)``, so each episode depends only on its index;
* episodes are collected in index order until at least ``recipe.steps`` transitions exist;
* the file has D4RL's HDF5 layout (``observations``, ``actions``, ``rewards``, ``terminals``,
  ``timeouts``, ``next_observations``; float32 / bool as D4RL) and its provenance in the file's
  attributes, labelled "D4RL-like substitute", never "D4RL".

The zips and ``vecnormalize.pkl`` files are pickles and unpickling runs code, so only files whose
sha256 is in :data:`TRUSTED_POLICY_FILES` are ever opened.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pickle
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dtcore.assets.integrity import sha256_file
from dtcore.assets.recipes import DatasetRecipe
from dtcore.envs import d4rl_normalised, env_spec, make_env

log = logging.getLogger(__name__)

LABEL = "D4RL-like substitute"
N_ENVS = 8  # environments stepped together, one batched policy call per step (part of the key)

# sha256 of every policy file the project agrees to unpickle (the table of the policies' README,
# rl-trained-agents @ cd35bde). Relative paths are those of the source repository.
TRUSTED_POLICY_FILES: dict[str, str] = {
    "sac/Hopper-v3_1/Hopper-v3.zip": "0825339a734891abbf0d1917f38092729e68cca58b1102de7c520a65648ec1e0",
    "sac/HalfCheetah-v3_1/HalfCheetah-v3.zip": "63ac27ae0c2ffe0428ded7bf93c6981c2f638352ae9d2770afc55c9ce2fdfba8",
    "sac/Walker2d-v3_1/Walker2d-v3.zip": "dfaaaeb48b06b70cab6092f8968fcf0966f0e0ca0fd163099b2d6cbb351dbed4",
    "tqc/Hopper-v3_1/Hopper-v3.zip": "ad04cf1b354adb8810cd2a98f45f3c5179bd5c6d9fa83a1a7b8c1157094417e3",
    "ars/Hopper-v3_1/Hopper-v3.zip": "085e23f61986852d0e374bc4fffecf953e77937dc51a30475bf0dc4db3e38860",
    "ars/Hopper-v3_1/Hopper-v3/vecnormalize.pkl": "0312c48b791aed138676a08491d5fb307ec7ad73b51a2ff453bdab9855f10f52",
    "ars/HalfCheetah-v3_1/HalfCheetah-v3.zip": "11c05f51fcac8f118f414dfeba6943b1eaa4c2203319026a11a75a729ea1a4a9",
    "ars/HalfCheetah-v3_1/HalfCheetah-v3/vecnormalize.pkl": "9c92bc001980f63df31e49febc441e23d42cd394fd00ff573affaff2ef8c142a",
    "ars/Walker2d-v3_1/Walker2d-v3.zip": "c2856c29f2f7d04677ccca8f61736830d2e32d4ca2316b15593c8a7282282d9d",
    "ars/Walker2d-v3_1/Walker2d-v3/vecnormalize.pkl": "6a90ef29e901b9ce70a5a7f42a5359b3a85f35b266e33beba878c961392372ea",
}

# D4RL medium-v2 statistics (docs/spec.md §2.2), printed beside ours.
D4RL_MEDIUM_STATS: dict[str, dict[str, float]] = {
    "hopper": {"n_trajectories": 2186, "n_timesteps": 999_906, "return_mean": 1422.06,
               "return_std": 378.95, "return_max": 3222.36, "return_min": 315.87},
    "halfcheetah": {"n_trajectories": 1000, "n_timesteps": 1_000_000, "return_mean": 4770.33,
                    "return_std": 355.75, "return_max": 5309.38, "return_min": -310.23},
    "walker2d": {"n_trajectories": 1190, "n_timesteps": 999_995, "return_mean": 2852.09,
                 "return_std": 1095.44, "return_max": 4226.94, "return_min": -6.61},
}


class UntrustedPolicyError(ValueError):
    """A policy file whose sha256 is not in :data:`TRUSTED_POLICY_FILES` (it is never unpickled)."""


PACKAGED_POLICIES = Path(__file__).resolve().parent / "policies"   # the agents the profiles need (README there)


def default_policy_dir() -> Path | None:
    """``DTCORE_POLICY_DIR``, else the policies shipped with the package (:data:`PACKAGED_POLICIES`),
    else a ``sb3-rl-trained-agents`` folder under ``shared/data`` in the repository's parent folder
    (a copy of the same agents, docs/assets.md §1) if it exists, else None."""
    env = os.environ.get("DTCORE_POLICY_DIR")
    if env:
        return Path(env).expanduser()
    if PACKAGED_POLICIES.is_dir():
        return PACKAGED_POLICIES
    shared = Path(__file__).resolve().parents[3] / "shared" / "data" / "sb3-rl-trained-agents"
    return shared if shared.is_dir() else None


def policy_path(recipe: DatasetRecipe, policy_dir: str | Path | None = None) -> Path:
    """Where ``recipe.agent`` lies: an absolute path as is, else under the policy directory."""
    agent = Path(recipe.agent)
    if agent.is_absolute():
        return agent
    root = Path(policy_dir) if policy_dir is not None else default_policy_dir()
    if root is None:
        raise FileNotFoundError(
            f"no behaviour-policy directory for {recipe.agent!r}: set DTCORE_POLICY_DIR to a copy of "
            "DLR-RM/rl-trained-agents (see docs/assets.md)")
    return root / agent


def verify_trusted(path: str | Path) -> str:
    """The sha256 of ``path`` if it is a trusted policy file; :class:`UntrustedPolicyError` otherwise."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"policy file {path} does not exist")
    digest = sha256_file(path)
    if digest not in TRUSTED_POLICY_FILES.values():
        shipped = path.resolve().is_relative_to(PACKAGED_POLICIES)
        raise UntrustedPolicyError(
            f"refusing to load {path}: its sha256 {digest} is not in the project's list of trusted "
            "policy files (dtcore.assets.collect.TRUSTED_POLICY_FILES); these files are pickles and "
            "loading one runs code. " + (restore_hint(path, None) if shipped else
                                         "Add a checksum there only for a file you trust."))
    return digest


def restore_hint(path: Path, agent: str | None) -> str:
    """How to get back the trusted copy of a policy file: ``git checkout`` for one shipped with
    the package, else rl-trained-agents' file of that name."""
    if path.resolve().is_relative_to(PACKAGED_POLICIES):
        return f"It is shipped with dtclaims: restore it with `git checkout -- {path}`."
    return f"Replace it with rl-trained-agents' {agent or path.name} (docs/assets.md §1)."


class _GymToGymnasium(pickle.Unpickler):
    """Unpickles SB3 objects pickled under gym: ``gym.*`` modules are read as ``gymnasium.*``."""

    def find_class(self, module: str, name: str):  # noqa: ANN201
        if module == "gym" or module.startswith("gym."):
            module = "gymnasium" + module[3:]
        return super().find_class(module, name)


@dataclass(frozen=True)
class BehaviourPolicy:
    act: Callable[[np.ndarray], np.ndarray]   # deterministic action, obs [N,S] -> [N,A]
    files: dict[str, str]                     # file path -> sha256 of every file unpickled
    algo: str


def load_policy(path: str | Path, algo: str, env: str) -> BehaviourPolicy:
    """Load a trusted rl-baselines3-zoo agent for the gymnasium v5 ``env`` (deterministic actions).

    Follows the policies' README: ``custom_objects`` replaces the pickled gym spaces and schedules;
    ARS agents come with ``<zip stem>/vecnormalize.pkl`` observation statistics.
    """
    from sb3_contrib import ARS, TQC
    from stable_baselines3 import SAC

    classes = {"sac": SAC, "tqc": TQC, "ars": ARS}
    if algo not in classes:
        raise ValueError(f"algo must be one of {', '.join(classes)}, got {algo!r}")
    path = Path(path)
    files = {str(path): verify_trusted(path)}
    probe = make_env(env_spec(env).gym_id)
    custom = {"observation_space": probe.observation_space, "action_space": probe.action_space,
              "learning_rate": 0.0, "lr_schedule": lambda _: 0.0}
    probe.close()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = classes[algo].load(path, device="cpu", custom_objects=custom)
    normalise: Callable[[np.ndarray], np.ndarray] = lambda obs: obs  # noqa: E731
    if algo == "ars":
        stats_path = path.with_suffix("") / "vecnormalize.pkl"
        files[str(stats_path)] = verify_trusted(stats_path)
        with open(stats_path, "rb") as f:
            vecnorm = _GymToGymnasium(f).load()
        mean, var = vecnorm.obs_rms.mean, vecnorm.obs_rms.var
        clip, eps = float(vecnorm.clip_obs), float(vecnorm.epsilon)
        normalise = lambda obs: np.clip((obs - mean) / np.sqrt(var + eps), -clip, clip)  # noqa: E731

    def act(obs: np.ndarray) -> np.ndarray:
        action, _ = model.predict(normalise(obs).astype(np.float32), deterministic=True)
        return np.asarray(action, dtype=np.float64)

    return BehaviourPolicy(act=act, files=files, algo=algo)


def _episode_noise_rng(seed: int, episode: int) -> np.random.Generator:
    return np.random.default_rng([seed, episode])


def rollout(policy: BehaviourPolicy, env: str, *, noise: float, steps: int, seed: int,
            n_envs: int = N_ENVS, progress: bool = True) -> list[dict[str, np.ndarray]]:
    """Whole episodes 0, 1, ... (reset seed ``seed + i``) until their lengths sum to >= ``steps``.

    ``n_envs`` environments step together with one batched policy call. Episodes are assigned in
    index order and the result keeps exactly the shortest prefix of episodes reaching ``steps``.
    """
    from tqdm.auto import tqdm

    if steps <= 0:
        raise ValueError(f"steps must be positive, got {steps}")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    spec = env_spec(env)
    envs = [make_env(spec.gym_id) for _ in range(n_envs)]
    done: dict[int, dict[str, np.ndarray]] = {}
    slots: list[dict | None] = [None] * n_envs
    next_episode, prefix_len, prefix_n = 0, 0, 0
    bar = tqdm(total=steps, desc=f"collect {env}", unit="step", disable=not progress, leave=False)

    def start(slot: int) -> None:
        nonlocal next_episode
        obs, _ = envs[slot].reset(seed=seed + next_episode)
        slots[slot] = {"i": next_episode, "rng": _episode_noise_rng(seed, next_episode), "obs": obs,
                       "rec": {k: [] for k in ("observations", "actions", "rewards", "terminals",
                                                "timeouts", "next_observations")}}
        next_episode += 1

    for slot in range(n_envs):
        start(slot)
    while prefix_len < steps:
        active = [s for s in range(n_envs) if slots[s] is not None]
        obs = np.stack([slots[s]["obs"] for s in active])                      # [n, S]
        det = policy.act(obs)                                                  # [n, A]
        for row, s in enumerate(active):
            ep = slots[s]
            a = np.clip(det[row] + ep["rng"].normal(0.0, noise, size=spec.act_dim), -1.0, 1.0)
            nobs, r, term, trunc, _ = envs[s].step(a)
            for k, v in (("observations", ep["obs"]), ("actions", a), ("rewards", r), ("terminals", term),
                         ("timeouts", trunc), ("next_observations", nobs)):
                ep["rec"][k].append(v)
            ep["obs"] = nobs
            if term or trunc:
                done[ep["i"]] = _as_d4rl_arrays(ep["rec"])
                slots[s] = None
                while prefix_n in done and prefix_len < steps:
                    prefix_len += len(done[prefix_n]["rewards"])
                    prefix_n += 1
                    bar.update(len(done[prefix_n - 1]["rewards"]))
                if prefix_len < steps:  # episodes beyond the needed prefix are dropped below
                    start(s)
    bar.close()
    for e in envs:
        e.close()
    return [done[i] for i in range(prefix_n)]


def _as_d4rl_arrays(rec: dict[str, list]) -> dict[str, np.ndarray]:
    return {
        "observations": np.asarray(rec["observations"], dtype=np.float32),        # [T, S]
        "actions": np.asarray(rec["actions"], dtype=np.float32),                  # [T, A]
        "rewards": np.asarray(rec["rewards"], dtype=np.float32),                  # [T]
        "terminals": np.asarray(rec["terminals"], dtype=bool),                    # [T]
        "timeouts": np.asarray(rec["timeouts"], dtype=bool),                      # [T]
        "next_observations": np.asarray(rec["next_observations"], dtype=np.float32),  # [T, S]
    }


def episode_stats(env: str, episodes: list[dict[str, np.ndarray]]) -> dict[str, float]:
    """Statistics of a list of episodes in the form of docs/spec.md §2.2 (population std), plus the
    D4RL-normalised mean return and D4RL medium-v2's own numbers for comparison."""
    returns = np.array([ep["rewards"].astype(np.float64).sum() for ep in episodes])  # [N]
    lengths = np.array([len(ep["rewards"]) for ep in episodes])
    return {
        "env": env,
        "n_trajectories": int(len(episodes)),
        "n_timesteps": int(lengths.sum()),
        "return_mean": float(returns.mean()),
        "return_std": float(returns.std()),
        "return_min": float(returns.min()),
        "return_max": float(returns.max()),
        "length_mean": float(lengths.mean()),
        "length_min": int(lengths.min()),
        "length_max": int(lengths.max()),
        "n_terminated": int(sum(bool(ep["terminals"][-1]) for ep in episodes)),
        "n_timeouts": int(sum(bool(ep["timeouts"][-1]) for ep in episodes)),
        "d4rl_normalised_mean": float(d4rl_normalised(env, float(returns.mean()))),
        "d4rl_medium_v2": D4RL_MEDIUM_STATS.get(env, {}),
        "d4rl_medium_v2_normalised_mean": (
            float(d4rl_normalised(env, D4RL_MEDIUM_STATS[env]["return_mean"])) if env in D4RL_MEDIUM_STATS else None),
    }


def _versions() -> dict[str, str]:
    import gymnasium
    import mujoco
    import sb3_contrib
    import stable_baselines3

    return {"gymnasium": gymnasium.__version__, "mujoco": mujoco.__version__, "numpy": np.__version__,
            "stable_baselines3": stable_baselines3.__version__, "sb3_contrib": sb3_contrib.__version__}


def write_d4rl_hdf5(out_path: Path, episodes: list[dict[str, np.ndarray]], attrs: dict) -> None:
    """Concatenate ``episodes`` into D4RL's flat HDF5 layout, written to a temporary file and then
    renamed into place. Non-scalar attributes are stored as JSON strings."""
    import h5py

    tmp = out_path.with_name(out_path.name + f".tmp{os.getpid()}")
    with h5py.File(tmp, "w") as f:
        for key in episodes[0]:
            f.create_dataset(key, data=np.concatenate([ep[key] for ep in episodes]), compression="gzip")
        for k, v in attrs.items():
            f.attrs[k] = v if isinstance(v, (str, int, float, bool)) else json.dumps(v, sort_keys=True)
    os.replace(tmp, out_path)


def stats_path(out_path: str | Path) -> Path:
    """The statistics JSON stored beside a collected file: ``<name>.stats.json``."""
    out_path = Path(out_path)
    return out_path.with_name(out_path.stem + ".stats.json")


def collect_dataset(recipe: DatasetRecipe, out_path: str | Path, *, policy_dir: str | Path | None = None,
                    progress: bool = True, n_envs: int = N_ENVS) -> Path:
    """Roll out ``recipe``'s behaviour policy and write a D4RL-layout HDF5 file to ``out_path``
    (plus ``<stem>.stats.json`` beside it). Returns ``out_path``."""
    import time

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    spec = env_spec(recipe.env)
    path = policy_path(recipe, policy_dir)
    t0 = time.perf_counter()
    policy = load_policy(path, recipe.algo, recipe.env)
    episodes = rollout(policy, recipe.env, noise=recipe.noise, steps=recipe.steps, seed=recipe.seed,
                       n_envs=n_envs, progress=progress)
    stats = episode_stats(recipe.env, episodes)
    stats["wall_s"] = time.perf_counter() - t0
    attrs = {
        "label": LABEL,
        "env": recipe.env,
        "gym_id": spec.gym_id,
        "policy_file": str(path),
        "policy_sha256": policy.files[str(path)],
        "policy_files": policy.files,
        "algo": recipe.algo,
        "noise": float(recipe.noise),
        "noise_rule": "clip(deterministic action + N(0, noise^2), -1, 1); Generator seeded (seed, episode)",
        "reset_seeds": [recipe.seed, recipe.seed + len(episodes) - 1],
        "n_envs": n_envs,
        "recipe": dataclasses.asdict(recipe),
        "versions": _versions(),
        "stats": stats,
    }
    write_d4rl_hdf5(out_path, episodes, attrs)
    stats_path(out_path).write_text(json.dumps(stats, indent=2, sort_keys=True))
    log.info("%s (%s): %d trajectories, %d transitions, return %.1f +- %.1f (min %.1f, max %.1f), "
             "D4RL-normalised %.1f; D4RL medium-v2: return %.1f +- %.1f, normalised %.1f; %.1f s",
             out_path.name, LABEL, stats["n_trajectories"], stats["n_timesteps"], stats["return_mean"],
             stats["return_std"], stats["return_min"], stats["return_max"], stats["d4rl_normalised_mean"],
             stats["d4rl_medium_v2"].get("return_mean", float("nan")),
             stats["d4rl_medium_v2"].get("return_std", float("nan")),
             stats["d4rl_medium_v2_normalised_mean"] or float("nan"), stats["wall_s"])
    return out_path
