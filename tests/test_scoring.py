"""Scores without a winner's curse: the epoch chosen on the per-epoch episodes and scored on fresh
ones is unbiased on a flat learning curve; the best-of-epochs mean it replaces is not."""

from __future__ import annotations

import numpy as np
import pytest

from dtcore import statistics


def _simulate(epochs: int, episodes: int, scored: int, draws: int = 4000, seed: int = 0):
    """A flat true curve (every epoch's true mean 0, episode sd 1): returns (mean of the selected
    epoch's score on fresh episodes, mean of the best-of-epochs value, Monte-Carlo standard errors)."""
    rng = np.random.default_rng(seed)
    rescored, best = np.empty(draws), np.empty(draws)
    for d in range(draws):
        means = {e: float(rng.normal(0.0, 1.0, episodes).mean()) for e in range(1, epochs + 1)}
        chosen = statistics.select_epoch(means)
        best[d] = means[chosen]
        rescored[d] = rng.normal(0.0, 1.0, scored).mean()      # the chosen checkpoint on other episodes
    return rescored.mean(), best.mean(), rescored.std() / np.sqrt(draws), best.std() / np.sqrt(draws)


def test_the_rescored_epoch_is_unbiased_on_a_flat_curve_and_best_of_epochs_is_not():
    rescored, best, se_r, se_b = _simulate(epochs=5, episodes=10, scored=50)
    assert abs(rescored) < 4 * se_r                       # unbiased within Monte-Carlo error
    assert best == pytest.approx(0.37, abs=0.05)          # the mini winner's curse, in episode sds
    assert best > 10 * se_b


def test_select_epoch_takes_the_earliest_of_tied_maxima_and_skips_nan():
    assert statistics.select_epoch({3: 1.0, 1: 2.0, 2: 2.0}) == 1
    assert statistics.select_epoch({1: float("nan"), 2: -1.0}) == 2
    with pytest.raises(ValueError, match="no epoch"):
        statistics.select_epoch({1: float("nan")})
