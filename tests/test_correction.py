"""The correction and the default seeds (docs/statistics.md): Benjamini-Hochberg against its
definition, and the default-seeds calculation recomputed from the registered pilot."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from dtcore import statistics
from dtcore.profiles import MINI, PAPER

PILOT = Path(__file__).resolve().parents[1] / "docs" / "pilot-mini-hopper-3seeds.json"


def test_benjamini_hochberg_matches_its_step_up_definition():
    rng = np.random.default_rng(0)
    for _ in range(200):
        p = rng.uniform(0, 0.2, rng.integers(1, 40))
        adjusted = np.array(statistics.benjamini_hochberg(p))
        m, order = p.size, np.argsort(p)
        for q in (0.01, 0.05, 0.1):
            passing = [i + 1 for i in range(m) if p[order[i]] <= (i + 1) * q / m]
            rejected = set(order[: max(passing)]) if passing else set()
            assert set(np.flatnonzero(adjusted <= q)) == rejected


def test_benjamini_hochberg_keeps_nan_and_is_never_stricter_than_holm():
    p = [0.001, 0.02, float("nan"), 0.04, 0.3]
    bh, holm = statistics.benjamini_hochberg(p), statistics.holm(p)
    assert math.isnan(bh[2])
    assert all(b <= h for b, h in zip(bh, holm) if not math.isnan(b))


def test_seeds_needed_is_right_at_large_effects_where_scipys_far_tail_is_nan():
    # scipy's nct.cdf of the far tail is nan at d = 13.6, n = 3-6: it must not read as "no power"
    alpha = 0.05 / 87
    n = statistics.seeds_needed(22.376, 1.6464, alpha=alpha)
    assert n == 4
    df = n - 1
    assert stats.nct.sf(stats.t.ppf(1 - alpha / 2, df), df, 22.376 / 1.6464 * math.sqrt(n)) >= 0.8


def test_default_seeds_are_the_registered_calculation_on_the_pilot():
    pilot = json.loads(PILOT.read_text())
    claims = [(c["per_seed"], c["threshold"]) for c in pilot["claims"]]
    assert len(claims) == 10
    assert statistics.pilot_seeds(claims, family=pilot["family_size"]) == len(MINI.seeds) == 5
    table1 = [79.5 - 67.7 - 3.3, 79.5 - 67.7, 79.5 - 67.7 + 3.3]   # the paper's hopper gap, sd 3.3
    assert statistics.pilot_seeds([(table1, 0.0)], family=87) == len(PAPER.seeds) == 7


def test_pilot_seeds_needs_a_decided_claim():
    with pytest.raises(ValueError, match="at least one"):
        statistics.pilot_seeds([], family=10)
