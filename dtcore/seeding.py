"""One place that seeds every random number generator the project touches.

The paper's training script seeded only torch (docs/spec.md §2.5, §8.9), so its batch order and
evaluation episodes were not reproducible. Everything in dtcore calls :func:`seed_everything`
and draws batches from explicit ``numpy.random.Generator`` objects instead.
"""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python's ``random``, numpy's global state and torch (CPU and CUDA).

    Returns a fresh ``numpy.random.Generator`` seeded with ``seed`` for code that should hold its
    own stream rather than rely on global state.
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise ValueError(f"seed must be an int, got {seed!r} of type {type(seed).__name__}")
    seed = int(seed)
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    return np.random.default_rng(seed)
