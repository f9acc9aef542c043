"""Exponential moving average of the learning curves of Fig. 9 (§5.6.1, block replacement).

The paper's plotting code (docs/spec.md §6.6) smoothed with
``scipy.signal.lfilter([1 - α], [1, -α], x, zi=[x₀])``, α = 0.8:

    y_t = (1 - α) x_t + α y_{t-1}

Because of how ``zi`` was given, its first value is y₀ = (1 - α) x₀ + x₀ = (2 - α) x₀ (1.2 x₀
for α = 0.8), not x₀. ``published_first_point=True`` reproduces that; the default starts the
average at y₀ = x₀.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dtcore.metrics.arrays import as_array


def ema(x: Any, alpha: float = 0.8, published_first_point: bool = False) -> np.ndarray:
    """EMA y_t = (1 - α) x_t + α y_{t-1} of a 1-D series x [T] (float64, a new array).

    y₀ = x₀, or (2 - α) x₀ with ``published_first_point=True`` (the published 1.2 x₀ for α = 0.8).
    """
    if not 0 <= alpha < 1:
        raise ValueError(f"alpha must be in [0, 1), got {alpha}")
    xs = as_array(x, "x", ndim=1, min_samples=1)
    y = np.empty_like(xs)
    y[0] = (2 - alpha) * xs[0] if published_first_point else xs[0]
    for t in range(1, xs.shape[0]):
        y[t] = (1 - alpha) * xs[t] + alpha * y[t - 1]
    return y
