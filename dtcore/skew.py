"""The seed aggregate of a claim whose per-seed values are skewed (issue #30, point 5;
``docs/statistics.md``, "Skewed seeds and a second mode").

The Student-t interval of a mean keeps its 95 % for normal per-seed values, and for heavy
symmetric tails, but not under skew: with right-skewed values a sample of a few seeds usually
misses the long upper tail, so its mean lies low and its spread is small, and the interval lies
wholly below the true mean far more often than 2.5 % (a lognormal of sigma 0.5: 7-8 %; of
sigma 1: 16-18 %, at n = 3-10). A claim declares ``skew="right"`` or ``"left"`` from its
statistic's definition alone (a failing body's score near its floor, a minimum over many pairs,
a ratio under a ceiling), and its seed aggregate is decided with the quantiles of the t statistic
under that shape.

The t statistic T = (mean - mu) / (sd / sqrt(n)) at the true mean mu is unchanged by a shift and
a positive rescaling of the values, so for per-seed values a + b exp(sigma Z) (Z standard normal)
its distribution depends on n and sigma alone: :func:`null_t` simulates it (fixed seed, the same
in every process) at :data:`SIGMA`, the most skewed shape a declaration covers, mirrored for left
skew. Each one-sided p is the larger of Student's and the shape's (:func:`one_sided_p`), so the
rule keeps its level for normal values and for every lognormal up to sigma = 1 (its T quantiles
move monotonically with sigma), on both sides. The price is width on the skewed side: at n = 5 the
interval reaches 8.6 standard errors past the mean there instead of 2.8.

No rule of a mean keeps its level against a rare second mode (a seed that learns among failing
ones) at a handful of seeds, or at any n without a bound on the values (Bahadur and Savage 1956):
where the paper shows such a mode the claim is decided on the median seed (the sign test), and
elsewhere the skew declared is what the rule assumes (docs/statistics.md).
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Sequence

import numpy as np
from scipy import stats

from dtcore import statistics
from dtcore.statistics import Equivalence, Interval

SKEWS = ("right", "left")   # the side of the per-seed values' long tail
SIGMA = 1.0                 # the most skewed shape a declared skew covers: a lognormal of this sigma
DRAWS = 100_000             # simulated t statistics per seed count (p resolution 1e-5)
SEED = 20261207             # the simulation's seed: the null is the same in every process
MAX_SEEDS = 64              # the largest seed count "what would decide it" searches


def _check(skew: str) -> None:
    if skew not in SKEWS:
        raise ValueError(f"skew must be one of {SKEWS}, got {skew!r}")


@lru_cache(maxsize=None)
def _right_null(n: int) -> np.ndarray:
    """[DRAWS] sorted t statistics at the true mean of n values exp(SIGMA Z)."""
    rng = np.random.default_rng([SEED, n])
    mu = math.exp(SIGMA ** 2 / 2)
    out = []
    for rows in np.array_split(np.arange(DRAWS), max(1, DRAWS * n // 2_000_000)):   # <= 2M values at once
        x = np.exp(SIGMA * rng.standard_normal((rows.size, n)))
        out.append((x.mean(axis=1) - mu) / (x.std(axis=1, ddof=1) / math.sqrt(n)))
    return np.sort(np.concatenate(out))


def null_t(n: int, skew: str) -> np.ndarray:
    """[DRAWS] sorted t statistics of n per-seed values at their true mean, under the declared
    ``skew``: a lognormal of sigma :data:`SIGMA` ("right"), or its mirror image ("left")."""
    _check(skew)
    if n < 2:
        raise ValueError(f"a t statistic needs at least 2 seeds, got {n}")
    right = _right_null(int(n))
    return right if skew == "right" else -right[::-1]


def one_sided_p(t: float | np.ndarray, n: int, skew: str, *, upper: bool) -> np.ndarray:
    """P(T >= t) (``upper``) or P(T <= t), elementwise over ``t``: the larger of Student's t at
    n - 1 degrees of freedom and the declared shape's (Monte Carlo, (k + 1) / (DRAWS + 1)), valid
    under either."""
    null, t = null_t(n, skew), np.asarray(t, dtype=np.float64)
    if upper:
        k, student = null.size - np.searchsorted(null, t, side="left"), stats.t.sf(t, n - 1)
    else:
        k, student = np.searchsorted(null, t, side="right"), stats.t.cdf(t, n - 1)
    return np.maximum(student, (k + 1) / (null.size + 1))


@lru_cache(maxsize=4096)
def critical(n: int, skew: str, alpha: float) -> tuple[float, float]:
    """(low, high): T below ``low`` has :func:`one_sided_p` (lower) under ``alpha``, T above
    ``high`` has the upper one under it; between them neither side rejects."""
    null = null_t(n, skew)
    k = math.ceil(alpha * (null.size + 1) - 1)      # the shape's p reaches alpha from k values beyond
    shaped_low = float(null[k - 1]) if k >= 1 else -math.inf
    shaped_high = float(null[null.size - k]) if k >= 1 else math.inf
    return min(float(stats.t.ppf(alpha, n - 1)), shaped_low), max(float(stats.t.isf(alpha, n - 1)), shaped_high)


def _mean_se(values: Sequence[float]) -> tuple[np.ndarray, float, float]:
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size < 2:
        raise ValueError(f"a seed aggregate needs at least 2 finite values, got {x.size}")
    return x, float(x.mean()), float(x.std(ddof=1)) / math.sqrt(x.size)


def interval(values: Sequence[float], skew: str, confidence: float = 0.95) -> Interval:
    """The interval of the mean of ``values`` [n] (non-finite dropped) under the declared
    ``skew``: the means mu not rejected by either one-sided test at (1 - confidence) / 2,
    [mean - high x se, mean - low x se] with (low, high) = :func:`critical`."""
    x, mean, se = _mean_se(values)
    low, high = critical(x.size, skew, (1 - confidence) / 2)
    return Interval(mean, mean - high * se, mean - low * se, int(x.size), se * math.sqrt(x.size))


def t_test_p(values: Sequence[float], threshold: float, skew: str) -> float:
    """Two-sided p of mean(values) == ``threshold`` under the declared ``skew``: twice the
    smaller one-sided p (below 5 % exactly when the 95 % :func:`interval` excludes the threshold)."""
    x, _, _ = _mean_se(values)
    return float(t_test_p_rows(x[None, :], threshold, skew)[0])


def t_test_p_rows(values: np.ndarray, threshold: float, skew: str) -> np.ndarray:
    """:func:`t_test_p` of each row of ``values`` [R, n] (finite, n >= 2) at once: [R] (for
    simulations: R replications of n seeds)."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < 2:
        raise ValueError(f"values must be [R, n] with n >= 2, got shape {x.shape}")
    n = x.shape[1]
    mean, se = x.mean(axis=1), x.std(axis=1, ddof=1) / math.sqrt(n)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (mean - threshold) / se
    p = np.minimum(1.0, 2 * np.minimum(one_sided_p(t, n, skew, upper=True), one_sided_p(t, n, skew, upper=False)))
    return np.where(se > 0, p, np.where(mean == threshold, 1.0, 0.0))


def tost_p_rows(differences: np.ndarray, margin: float, skew: str) -> np.ndarray:
    """:func:`tost`'s p of equivalence for each row of ``differences`` [R, n] (finite, n >= 2):
    [R], the larger of the two one-sided p against -+``margin``."""
    x = np.asarray(differences, dtype=np.float64)
    n = x.shape[1]
    mean, se = x.mean(axis=1), x.std(axis=1, ddof=1) / math.sqrt(n)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.maximum(one_sided_p((mean + margin) / se, n, skew, upper=True),      # H0: mean <= -margin
                       one_sided_p((mean - margin) / se, n, skew, upper=False))     # H0: mean >= +margin
    return np.where(se > 0, p, np.where(np.abs(mean) < margin, 0.0, 1.0))


def tost(differences: Sequence[float], margin: float, skew: str) -> Equivalence:
    """:func:`dtcore.statistics.tost` under the declared ``skew``: each one-sided test against
    -+``margin`` with the shape's p, the 90 % and 95 % intervals of :func:`interval`."""
    if not margin > 0:
        raise ValueError(f"margin must be > 0, got {margin}")
    x, mean, se = _mean_se(differences)
    i90, i95 = interval(x, skew, 0.90), interval(x, skew, 0.95)
    if se == 0.0:
        inside = abs(mean) < margin
        return Equivalence(i90, i95, 0.0 if inside else 1.0, 1.0 if inside else 0.0)
    n = x.size
    p_equivalent = float(tost_p_rows(x[None, :], margin, skew)[0])
    p_diff = one_sided_p((mean - margin) / se, n, skew, upper=True) if mean >= 0 else \
        one_sided_p((mean + margin) / se, n, skew, upper=False)         # H0: |mean| <= margin
    return Equivalence(i90, i95, p_equivalent, float(p_diff))


def power(d: float, n: int, skew: str, alpha: float) -> float:
    """Power of the two-sided test at ``alpha`` under the declared ``skew`` at the standardised
    effect ``d`` = (mean - threshold) / sd, with the seeds' spread taken as normal (noncentral t)
    and the shape's critical value on the effect's side."""
    low, high = critical(n, skew, alpha / 2)
    nc = abs(d) * math.sqrt(n)
    crit = high if d > 0 else -low
    p = float(stats.nct.sf(crit, n - 1, nc))
    return p if math.isfinite(p) else float(stats.norm.sf(crit - nc))   # scipy's nan far out in the tail


def seeds_needed(effect: float, sd: float, skew: str, *, alpha: float, power_wanted: float,
                 start: int = 2) -> int | None:
    """Smallest n from ``start`` at which :func:`power` reaches ``power_wanted`` (None: none up to
    :data:`MAX_SEEDS`, or no effect), by bisection (the power rises with n: the critical value
    falls and the noncentrality grows). ``start``: a lower bound (Student's count, which the
    shape's never undercuts)."""
    if not (abs(effect) > 0 and math.isfinite(effect)):
        return None
    if not sd > 0:
        return max(2, start)
    return statistics.smallest_n(lambda n: power(effect / sd, n, skew, alpha) >= power_wanted, max(2, start), MAX_SEEDS)
