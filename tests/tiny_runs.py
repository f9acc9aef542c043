"""Tiny runs for the fixtures tests: a synthetic hopper dataset and a smoke-sized profile.

No asset is built: the dataset is a pickle of random trajectories with hopper's sizes, and the
bodies are random (gpt2/igpt runs would need weights; these tests use the random body).
"""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import numpy as np

from dtcore.profiles import SMOKE, Profile
from dtcore.runs import RunStore

TINY = dataclasses.replace(
    SMOKE, envs=("hopper",), seeds=(0, 1),
    random_body=dataclasses.replace(SMOKE.random_body, n_layer=1, n_embd=8),
    train=dataclasses.replace(SMOKE.train, context=4, batch_size=4, heldout_batch_size=8,
                              epochs=2, steps_per_epoch=4, warmup_steps=4),
    episodes_per_target=1, eval_max_steps=5,
)


def slow_profile(steps_per_epoch: int, epochs: int = 3) -> Profile:
    """TINY with longer epochs: a process can be killed in the middle of one."""
    return dataclasses.replace(TINY, train=dataclasses.replace(
        TINY.train, steps_per_epoch=steps_per_epoch, epochs=epochs))


def write_dataset(path: Path, n_trajectories: int = 6, length: int = 30, seed: int = 0) -> Path:
    """A pickled list of random hopper-sized paths (obs 11, act 3), as D4RL's download wrote."""
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n_trajectories):
        obs = rng.standard_normal((length + 1, 11)).astype(np.float32)
        paths.append({"observations": obs[:-1], "next_observations": obs[1:],
                      "actions": rng.uniform(-1, 1, (length, 3)).astype(np.float32),
                      "rewards": rng.uniform(0, 1 + i, length).astype(np.float32),
                      "terminals": np.zeros(length, dtype=bool)})
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(paths, f)
    return path


def store(data: Path, profile: Profile = TINY, **kwargs) -> RunStore:
    """A RunStore over ``profile`` that trains on the synthetic ``data`` without evaluation."""
    kwargs = {"evaluate": False, "progress": False, **kwargs}
    return RunStore(profile, datasets={"hopper": data}, device="cpu", **kwargs)


def build_slow_run(data: str, steps_per_epoch: int, root: str) -> str:
    """A launcher's job in the launcher tests: the slow tiny run (hopper, random body, seed 0,
    K20) built or resumed through a RunStore under the cache ``root``; returns its run folder."""
    run = store(Path(data), slow_profile(steps_per_epoch), root=Path(root)).get("hopper", "random", 0, "K20")
    return str(run.run_dir)
