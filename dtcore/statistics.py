"""The statistics a verdict rests on: pure functions, arrays in, numbers out (``docs/statistics.md``).

- **Seeds** (the sample of a seed aggregate): :func:`t_interval`, the Student-t interval of the
  mean of per-seed values (of paired per-seed differences where two bodies are compared), and
  :func:`t_test_p`, its two-sided p-value against a threshold. At 2-5 seeds a percentile bootstrap
  returns about [min, max] of the seeds (coverage 0.49 at n = 2, 0.75 at n = 3); the t interval
  keeps its 95 % for normal data at any n >= 2.
- **Equality** ("within a few points"): :func:`tost`, two one-sided t tests against a margin
  written down before the run; equivalence is shown when the 90 % t interval lies inside
  ``[-margin, margin]``.
- **Units inside one run** (evaluation episodes, analysis samples): :func:`half_sample_indices`
  draws half-samples without replacement. For a smooth statistic the spread of the statistic over
  half-samples of n units matches the spread of the full-sample statistic (McCarthy's half-sample
  replication: the variance of a mean of n/2 units drawn without replacement from n is
  sigma^2/n * n/(n-1)); unlike a bootstrap it never duplicates a unit, which debiased CKA and
  pairwise-cosine statistics cannot tolerate. :func:`replicate_interval` turns the replicates
  into an interval centred on the full-sample value.
- **Benchmarks** (not verdicts): :func:`median_interval`, the median of per-round ratios with
  its order-statistic interval.
- **Power and multiplicity**: :func:`seeds_needed` and :func:`t_power` (one-sample t test,
  noncentral t; Colas et al. 2018), :func:`pilot_seeds` (a profile's default seeds from a pilot), :func:`holm` (Holm
  1979, step-down family-wise correction), :func:`benjamini_hochberg` (step-up false discovery
  rate). The ``_rows`` forms take [R, ...] arrays: R replications of a simulation at once.
- **Across environments** (Agarwal et al. 2021, "rliable"): :func:`iqm`,
  :func:`stratified_bootstrap` (seeds resampled within each environment) and
  :func:`probability_of_improvement`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Interval:
    """A point estimate with its two-sided interval."""

    value: float        # the estimate (mean of the seeds; full-sample statistic)
    low: float          # lower end of the interval
    high: float         # upper end
    n: int              # seeds, or units inside a run
    sd: float = math.nan  # standard deviation of the seeds (t intervals only)

    def __format__(self, spec: str) -> str:
        """``f"{iv:.2f}"`` gives ``value (low-high)``, each end in ``spec``; the value alone where
        the ends are NaN (too few values for the interval). An empty spec gives the repr."""
        if not spec:
            return repr(self)
        if math.isnan(self.low) or math.isnan(self.high):
            return format(self.value, spec)
        return f"{self.value:{spec}} ({self.low:{spec}}-{self.high:{spec}})"


def _finite_1d(values: Sequence[float], name: str = "values") -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {x.shape}")
    return x[np.isfinite(x)]


def t_interval(values: Sequence[float], confidence: float = 0.95) -> Interval:
    """Student-t interval of the mean of ``values`` [n] (non-finite values dropped); n >= 2."""
    x = _finite_1d(values)
    if x.size < 2:
        raise ValueError(f"a t interval needs at least 2 finite values, got {x.size}")
    (low, high), = t_interval_rows(x[None, :], confidence)
    return Interval(float(x.mean()), float(low), float(high), int(x.size), float(x.std(ddof=1)))


def t_interval_rows(values: np.ndarray, confidence: float = 0.95) -> np.ndarray:
    """:func:`t_interval`'s bounds for each row of ``values`` [R, n] (finite, n >= 2) at once: [R, 2]."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < 2:
        raise ValueError(f"values must be [R, n] with n >= 2, got shape {x.shape}")
    n = x.shape[1]
    mean, half = x.mean(axis=1), float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * x.std(axis=1, ddof=1) / math.sqrt(n)
    return np.stack([mean - half, mean + half], axis=1)


def t_test_p(values: Sequence[float], threshold: float) -> float:
    """Two-sided p-value of the one-sample t test of mean(values) == threshold (1.0 when every
    value equals the threshold; 0.0 when the values are all equal and differ from it)."""
    x = _finite_1d(values)
    if x.size < 2:
        return math.nan
    return float(t_test_p_rows(x[None, :], threshold)[0])


def t_test_p_rows(values: np.ndarray, threshold: float) -> np.ndarray:
    """:func:`t_test_p` of each row of ``values`` [R, n] (finite, n >= 2) at once: [R] two-sided
    p-values (for simulations: R replications of n seeds)."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < 2:
        raise ValueError(f"values must be [R, n] with n >= 2, got shape {x.shape}")
    n = x.shape[1]
    mean, sd = x.mean(axis=1), x.std(axis=1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.abs(mean - threshold) / (sd / math.sqrt(n))
    return np.where(sd > 0, 2 * stats.t.sf(t, n - 1), np.where(mean == threshold, 1.0, 0.0))


def median_interval(values: Sequence[float], confidence: float = 0.95) -> Interval:
    """The median of ``values`` [n] (non-finite dropped) with its distribution-free interval: the
    order statistics x_(k) and x_(n+1-k) for the largest k whose coverage P(k <= Binomial(n, 1/2)
    <= n - k) is at least ``confidence`` (``scipy.stats.quantile_test``). For the benchmarks'
    per-round ratios, whose distribution has the VM's outliers; NaN ends where n is too small
    (n < 6 at 95 %)."""
    x = _finite_1d(values)
    if x.size == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    median = float(np.median(x))
    ci = stats.quantile_test(x, q=median, p=0.5).confidence_interval(confidence)
    return Interval(median, float(ci.low), float(ci.high), int(x.size))


@dataclass(frozen=True)
class Equivalence:
    """Two one-sided tests (TOST) of |mean| < margin, and the test of |mean| > margin."""

    interval90: Interval   # the 90 % t interval: equivalence when inside [-margin, margin]
    interval95: Interval   # the 95 % t interval: a difference beyond the margin when wholly outside
    p_equivalent: float    # TOST p-value: max of the two one-sided p-values
    p_different: float     # one-sided p-value that |mean| exceeds the margin (on the mean's side)


def tost(differences: Sequence[float], margin: float) -> Equivalence:
    """Equivalence test of paired differences [n] against ``margin`` > 0, decided at 5 %."""
    if not margin > 0:
        raise ValueError(f"margin must be > 0, got {margin}")
    x = _finite_1d(differences, "differences")
    i90, i95 = t_interval(x, 0.90), t_interval(x, 0.95)
    se = i95.sd / math.sqrt(x.size)
    df = x.size - 1
    if se == 0.0:
        inside = abs(i95.value) < margin
        return Equivalence(i90, i95, 0.0 if inside else 1.0, 1.0 if inside else 0.0)
    p_low = float(stats.t.sf((i95.value + margin) / se, df))     # H0: mean <= -margin
    p_high = float(stats.t.cdf((i95.value - margin) / se, df))   # H0: mean >= +margin
    p_diff = float(stats.t.sf((abs(i95.value) - margin) / se, df))  # H0: |mean| <= margin
    return Equivalence(i90, i95, max(p_low, p_high), p_diff)


def tost_columns(differences: np.ndarray, margin: float) -> tuple[np.ndarray, np.ndarray]:
    """:func:`tost`'s p of equivalence for each column of ``differences`` [..., n, k] (finite,
    n >= 2) at once: (p [..., k], the 90 % t intervals [..., k, 2]). ``margin`` <= 0 shows nothing
    equivalent (p = 1). The leading axes are replications of a simulation."""
    x = np.asarray(differences, dtype=np.float64)
    if x.ndim < 2 or x.shape[-2] < 2:
        raise ValueError(f"differences must be [..., n, k] with n >= 2, got shape {x.shape}")
    n = x.shape[-2]
    mean, se = x.mean(axis=-2), x.std(axis=-2, ddof=1) / math.sqrt(n)
    half = float(stats.t.ppf(0.95, n - 1)) * se
    interval = np.stack([mean - half, mean + half], axis=-1)
    if not margin > 0:
        return np.ones_like(mean), interval
    with np.errstate(divide="ignore", invalid="ignore"):
        p_low = stats.t.sf((mean + margin) / se, n - 1)      # H0: mean <= -margin
        p_high = stats.t.cdf((mean - margin) / se, n - 1)    # H0: mean >= +margin
    p = np.where(se > 0, np.maximum(p_low, p_high), np.where(np.abs(mean) < margin, 0.0, 1.0))
    return p, interval


def seeds_needed(effect: float, sd: float, *, alpha: float = 0.05, power: float = 0.8,
                 sides: int = 2, max_n: int = 1000) -> int | None:
    """Smallest n whose one-sample t test at level ``alpha`` (``sides`` 1 or 2) detects a mean
    ``effect`` away from the threshold with probability ``power``, for per-seed standard
    deviation ``sd`` (noncentral t). None when more than ``max_n`` would be needed or the effect
    is zero."""
    if sides not in (1, 2):
        raise ValueError(f"sides must be 1 or 2, got {sides}")
    effect = abs(float(effect))
    if not (effect > 0 and math.isfinite(effect)):
        return None
    if not sd > 0:
        return 2
    d = effect / sd
    # The normal approximation undershoots the t test's n by a few seeds: start just below it.
    approx = ((stats.norm.ppf(1 - alpha / sides) + stats.norm.ppf(power)) / d) ** 2
    if approx > max_n:
        return None
    for n in range(max(2, int(approx) - 1), max_n + 1):
        if float(t_power(d, n, alpha=alpha, sides=sides)) >= power:
            return n
    return None


def smallest_n(reaches: Callable[[int], bool], lo: int, hi: int) -> int | None:
    """The smallest n in [``lo``, ``hi``] at which ``reaches(n)`` holds, for a predicate that,
    once true, stays true as n grows (power rising with the seeds), by bisection; None when it
    does not hold at ``hi``."""
    if lo > hi or not reaches(hi):
        return None
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if reaches(mid) else (mid + 1, hi)
    return lo


def t_power(d: float | np.ndarray, n: int, *, alpha: float | np.ndarray = 0.05, sides: int = 2) -> np.ndarray:
    """Power of the one-sample t test at level ``alpha`` (``sides`` 1 or 2) with n seeds at the
    standardised effect ``d`` = |effect| / sd (noncentral t); elementwise over arrays of ``d`` and
    ``alpha``."""
    df = n - 1
    crit = stats.t.ppf(1 - np.asarray(alpha, dtype=np.float64) / sides, df)
    nc = np.abs(np.asarray(d, dtype=np.float64)) * math.sqrt(n)
    # the far tail is below t.cdf(-crit) and negligible; scipy's nct.cdf returns nan for it at a
    # large noncentrality, which must not read as "no power"
    far = np.nan_to_num(stats.nct.cdf(-crit, df, nc), nan=0.0) if sides == 2 else 0.0
    return stats.nct.sf(crit, df, nc) + far


def pilot_seeds(pilot: Sequence[tuple[Sequence[float], float]], *, family: int, alpha: float = 0.05,
                power: float = 0.8) -> int:
    """A profile's default seeds from a pilot (``docs/statistics.md``, "Default seeds"): for each
    (per-seed values, threshold) of a claim the pilot decided, the seeds its standardised effect
    needs for ``power`` at ``alpha / family`` (the first step of Holm, the hardest bar of either
    correction); the median of those counts, rounded up."""
    needs = []
    for values, threshold in pilot:
        x = _finite_1d(values)
        needs.append(seeds_needed(float(x.mean()) - threshold, float(x.std(ddof=1)), alpha=alpha / family,
                                  power=power) or math.inf)
    if not needs:
        raise ValueError("a pilot needs at least one decided claim")
    return int(math.ceil(float(np.median(needs))))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (same order as given; nan stays nan). Reject the
    hypotheses whose adjusted p-value is below the family-wise level."""
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = ok.size
    running = 0.0
    for rank, i in enumerate(ok[np.argsort(p[ok], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * float(p[i])))
        out[i] = running
    return out.tolist()


def benjamini_hochberg(pvalues: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg step-up adjusted p-values (same order as given; nan stays nan): the
    smallest false discovery rate at which each hypothesis is rejected. Valid for independent and
    positively dependent p-values (Benjamini and Yekutieli 2001)."""
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    if ok.size:
        out[ok] = benjamini_hochberg_rows(p[ok][None, :])[0]
    return out.tolist()


def benjamini_hochberg_rows(pvalues: np.ndarray) -> np.ndarray:
    """:func:`benjamini_hochberg` of each row of ``pvalues`` [R, m] (finite) at once: [R, m]."""
    p = np.asarray(pvalues, dtype=np.float64)
    m = p.shape[1]
    order = np.argsort(p, axis=1, kind="stable")
    ranked = np.take_along_axis(p, order, axis=1) * m / np.arange(1, m + 1)
    adjusted = np.minimum(np.minimum.accumulate(ranked[:, ::-1], axis=1)[:, ::-1], 1.0)
    out = np.empty_like(p)
    np.put_along_axis(out, order, adjusted, axis=1)
    return out


def select_epoch(means: Mapping[int, float]) -> int:
    """The paper's early stopping: the epoch with the highest mean return, earliest on ties. Its
    mean is biased upward (the winner's curse): score the epoch on other episodes."""
    finite = {e: float(m) for e, m in means.items() if math.isfinite(float(m))}
    if not finite:
        raise ValueError("no epoch with a finite mean return to select")
    return max(sorted(finite), key=lambda e: finite[e])


# -- units inside one run -------------------------------------------------------------------

def half_sample_indices(n: int, draws: int = 400, seed: int = 0) -> np.ndarray:
    """[draws, n // 2] indices of half-samples of ``n`` units drawn without replacement."""
    if n < 4:
        raise ValueError(f"half-sampling needs at least 4 units, got {n}")
    rng = np.random.default_rng(seed)
    return np.stack([rng.permutation(n)[: n // 2] for _ in range(draws)])


def replicates(units: np.ndarray, statistic: Callable[[np.ndarray], float], *, draws: int = 400,
               seed: int = 0) -> np.ndarray:
    """[draws] values of ``statistic`` on half-samples of the rows of ``units`` [n, ...]."""
    units = np.asarray(units)
    return np.array([statistic(units[idx]) for idx in half_sample_indices(len(units), draws, seed)])


def replicate_interval(value: float, reps: Sequence[float], n_units: int,
                       confidence: float = 0.95) -> Interval:
    """Interval of a full-sample statistic ``value`` from its half-sample replicates, studentised:
    ``value`` +- t(n_units - 1) x the replicates' standard deviation. The replicates' spread
    matches the full-sample statistic's for smooth statistics (means, ratios, medians,
    differences); their percentiles behave like z quantiles and under-cover with few units (89 %
    at 10 normal episodes, 84 % at 10 bimodal ones), which the t quantile at n_units - 1 repairs
    (``docs/statistics.md``, "One seed"). Not for extreme-order statistics (a minimum)."""
    r = _finite_1d(reps, "replicates")
    if r.size < 20 or n_units < 2:
        return Interval(float(value), math.nan, math.nan, n_units)
    half = float(stats.t.ppf(0.5 + confidence / 2, n_units - 1)) * float(r.std(ddof=1))
    return Interval(float(value), float(value) - half, float(value) + half, n_units)


# -- across environments (rliable) ----------------------------------------------------------

def iqm(values: Sequence[float] | np.ndarray, axis: int | None = None) -> float | np.ndarray:
    """Interquartile mean: the mean of the middle 50 % of the values (25 % trimmed each side).
    ``axis=-1`` on a [rows, n] array: one IQM per row (every value finite), for the bootstrap."""
    if axis is not None:
        return stats.trim_mean(np.asarray(values, dtype=np.float64), 0.25, axis=axis)
    x = np.sort(_finite_1d(values))
    if x.size == 0:
        return math.nan
    return float(stats.trim_mean(x, 0.25))


def stratified_bootstrap(scores: Mapping[str, Sequence[float]], statistic: Callable[..., Any],
                         *, reps: int = 2000, confidence: float = 0.95, seed: int = 0) -> Interval:
    """``statistic`` of all runs pooled over environments, with a percentile interval from
    resampling the seeds within each environment (Agarwal et al. 2021). ``statistic`` takes the
    pooled values, and with ``axis=-1`` a [reps, runs] array of resamples (one value per row)."""
    groups = [np.asarray(v, dtype=np.float64) for v in scores.values()]
    if not groups or any(g.size == 0 for g in groups):
        raise ValueError("every environment needs at least one score")
    rng = np.random.default_rng(seed)
    value = float(statistic(np.concatenate(groups)))
    resampled = np.concatenate([g[rng.integers(0, g.size, (reps, g.size))] for g in groups], axis=1)
    boot = np.asarray(statistic(resampled, axis=-1), dtype=np.float64)
    lo, hi = np.quantile(boot, [0.5 - confidence / 2, 0.5 + confidence / 2])
    return Interval(value, float(lo), float(hi), int(sum(g.size for g in groups)))


def _poi(x: Sequence[np.ndarray], y: Sequence[np.ndarray]) -> float:
    """Mean over environments of P(X > Y) + P(X = Y) / 2 over all pairs of runs."""
    per_env = [float(np.mean((a[:, None] > b[None, :]) + 0.5 * (a[:, None] == b[None, :]))) for a, b in zip(x, y)]
    return float(np.mean(per_env))


def probability_of_improvement(x: Mapping[str, Sequence[float]], y: Mapping[str, Sequence[float]], *,
                               reps: int = 2000, confidence: float = 0.95, seed: int = 0) -> Interval:
    """P(X > Y): the probability that a run of X scores above a run of Y of the same environment,
    averaged over environments, with a stratified-bootstrap percentile interval."""
    envs = [e for e in x if e in y]
    if not envs:
        raise ValueError("x and y share no environment")
    xs = [np.asarray(x[e], dtype=np.float64) for e in envs]
    ys = [np.asarray(y[e], dtype=np.float64) for e in envs]
    rng = np.random.default_rng(seed)
    boot = np.array([_poi([a[rng.integers(0, a.size, a.size)] for a in xs],
                          [b[rng.integers(0, b.size, b.size)] for b in ys]) for _ in range(reps)])
    lo, hi = np.quantile(boot, [0.5 - confidence / 2, 0.5 + confidence / 2])
    return Interval(_poi(xs, ys), float(lo), float(hi), int(sum(a.size for a in xs)))
