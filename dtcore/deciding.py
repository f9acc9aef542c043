"""What would decide an undecided verdict, by the path that decides it (``docs/statistics.md``,
"What would decide it").

A verdict is decided by one of several rules, and what more evidence would decide it differs by
rule. :func:`what_would_decide` reads the values a seed aggregate recorded (its ``method`` names
the rule) and answers at the level the verdict must reach, the corrected level of the headline
(the claim's next Benjamini-Hochberg step) or 5 % for an uncorrected cell:

- **Student-t** (``student-t``): the seeds for 80 % power of the two-sided t test at the level,
  at the observed effect and spread (noncentral t); with a smallest effect of interest also the
  seeds for 80 % power of the equivalence test (:func:`tost_seeds`), and the smaller of the two.
  Under a declared skew (``skew``, :mod:`dtcore.skew`) both counts take the shape's critical
  values (the directional one on the effect's side, the equivalence one on each of its sides), up
  to :data:`dtcore.skew.MAX_SEEDS` seeds.
- **TOST** (``tost``, an equality claim): the equivalence test's own power function.
- **Intersection-union** (``intersection-union t``): the seeds the weakest of the components
  that must clear needs, each component at the level / (exceptions + 1); with a smallest effect
  of interest also the seeds that show every component negligible, each by its own TOST at the
  level, with 80 % power jointly (:func:`every_tost_seeds`), and the smaller of the two.
- **Sign test** and **Clopper-Pearson rate**: the agreeing seeds that would decide it, either way.
- **Stratified bootstrap**: the runs per environment missing below its minimum.
- **One seed**: a second seed.
- **A noise floor**: not decidable with this estimator at this profile; never a count, since
  more seeds shrink the interval but not the floor. Only a smallest effect of interest larger
  than the floor leaves a count: the seeds that show the effect within sesoi less the floor.

The counts are post-hoc: they take the observed effect for the true one, and a 3-seed effect is
a noisy estimate (docs/statistics.md gives the spread). They say where the evidence stands, not
a guarantee, so their texts give them to two significant figures (:func:`rough`: "about 670
seeds", not 666). A cell's own message states its count at the test's own 5 %, before the
headline's correction, and says so (:attr:`Need.uncorrected`); the headline states the corrected one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Mapping

import numpy as np
from scipy import stats

from dtcore import skew as skewed, statistics

POWER = 0.8
MAX_SEEDS = 1000
UNCORRECTED = "uncorrected: "   # opens a count stated at a cell's own 5 %, before the headline's correction


@dataclass(frozen=True)
class Need:
    """What would decide a verdict: seeds (or runs per environment), in words, and by which path."""

    path: str                 # "t", "t or equivalence", "tost", "every", "sign", "rate", "runs", "seed", "floor"
    seeds: int | None         # seeds in all (None: no count decides it)
    text: str

    @property
    def uncorrected(self) -> str:
        """The text in a cell's own message, whose level is the test's own 5 %: a count opens with
        :data:`UNCORRECTED`, so that it is not read as the headline's corrected count."""
        return self.text if self.seeds is None else UNCORRECTED + self.text


def rough(x: float) -> str:
    """``x`` to two significant figures, as a post-hoc count or duration deserves: 666 -> "670",
    198.4 -> "200", 21.5 -> "22", 3.24 -> "3.2"; an int keeps its units (7 -> "7")."""
    if x == 0 or not math.isfinite(x):
        return f"{x:g}"

    def decimals_of(v: float) -> int:   # the decimal places of v's second significant digit
        return 1 - math.floor(math.log10(abs(v)))

    decimals = decimals_of(round(x, decimals_of(x)))   # 9.96 rounds to 10.0: one place fewer
    if isinstance(x, int):
        decimals = min(decimals, 0)
    value = round(x, decimals)
    return f"{value:.{decimals}f}" if decimals > 0 else f"{value:.0f}"


def tost_power(diff: float, sd: float, margin: float, n: int, alpha: float, skew: str | None = None) -> float:
    """Power of the two one-sided t tests (each at ``alpha``) of |mean| < ``margin`` at true mean
    difference ``diff`` and per-seed ``sd``, n seeds: P(T_upper <= low) - P(T_lower < high) with
    the two noncentral t statistics (the shifted-t approximation; exact when sd is known), where
    (low, high) are Student's -+t or, under a declared ``skew``, the shape's
    (:func:`dtcore.skew.critical`)."""
    if n < 2:
        return 0.0
    df, se = n - 1, sd / math.sqrt(n)
    if skew is None:
        high = float(stats.t.ppf(1 - alpha, df))
        low = -high
    else:
        low, high = skewed.critical(n, skew, alpha)
    upper = float(stats.nct.cdf(low, df, (diff - margin) / se))
    lower = float(stats.nct.cdf(high, df, (diff + margin) / se))
    upper = upper if math.isfinite(upper) else float(diff - margin < 0)
    lower = lower if math.isfinite(lower) else float(diff + margin < 0)
    return max(0.0, upper - lower)


def tost_seeds(diff: float, sd: float, margin: float, *, alpha: float, power: float = POWER,
               max_n: int = MAX_SEEDS, skew: str | None = None) -> int | None:
    """Smallest n at which the equivalence test (under a declared ``skew``: the shape's) reaches
    ``power`` (None: none up to ``max_n``, or the difference lies outside the margin)."""
    if not (abs(diff) < margin and sd > 0):
        return None if abs(diff) >= margin else 2
    return statistics.smallest_n(lambda n: tost_power(diff, sd, margin, n, alpha, skew) >= power, 2, max_n)


def _number(values: Mapping[str, Any], key: str) -> float | None:
    x = values.get(key)
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        return None
    return float(x)


def _seeds(n: int | None, what: str, searched: int = MAX_SEEDS) -> str:
    return (f"no feasible number of seeds decides it: more than {searched} would be needed at the observed "
            "effect") if n is None else f"about {rough(n)} seeds {what}"


def _floor_blocks(values: Mapping[str, Any]) -> bool:
    floor, value, threshold = (_number(values, k) for k in ("noise_floor", "value", "threshold"))
    if floor is None or value is None or threshold is None:
        return False
    reference = 0.0 if values.get("direction") == "within" else threshold
    return abs(value - reference) <= floor


def _more(count: int | None, values: Mapping[str, Any]) -> int | None:
    """A count at least one seed above the seeds there are: an undecided verdict needs more."""
    return None if count is None else max(count, int(values.get("n") or 0) + 1)


def _t_path(values: Mapping[str, Any], level: float, *, blocked: bool = False) -> Need:
    """``blocked``: the value lies inside the noise floor, where no count decides it either way."""
    mean, sd, threshold = _number(values, "value"), _number(values, "sd"), float(values["threshold"])
    effect = mean - threshold
    directional = None if blocked else \
        _more(statistics.seeds_needed(effect, sd, alpha=level, power=POWER, max_n=MAX_SEEDS), values)
    skew = values.get("skew")
    if skew and directional is not None:
        directional = _more(skewed.seeds_needed(effect, sd, skew, alpha=level, power_wanted=POWER,
                                                start=directional), values)
    searched = skewed.MAX_SEEDS if skew else MAX_SEEDS
    margin = _negligible_margin(values)
    if margin is None:
        return Need("t", directional, _seeds(directional, f"would decide it (80 % power at level {level:.2g})",
                                             searched))
    negligible = _more(tost_seeds(effect, sd, margin, alpha=level, max_n=searched, skew=skew or None), values)
    if negligible is not None and (directional is None or negligible < directional):
        return Need("t or equivalence", negligible,
                    f"about {rough(negligible)} seeds would show the effect negligible (within +-{margin:g}; "
                    f"80 % power at level {level:.2g})")
    return Need("t or equivalence", directional, _seeds(directional, f"would decide it (80 % power at level "
                                                                     f"{level:.2g})", searched))


def _tost_path(values: Mapping[str, Any], level: float) -> Need:
    mean, sd, margin = _number(values, "value"), _number(values, "sd"), float(values["threshold"])
    if abs(mean) < margin:
        n = _more(tost_seeds(mean, sd, margin, alpha=level), values)
        return Need("tost", n, _seeds(n, f"would show equivalence within +-{margin:g} (80 % power at level "
                                          f"{level:.2g})"))
    n = _more(statistics.seeds_needed(abs(mean) - margin, sd, alpha=level, power=POWER, max_n=MAX_SEEDS), values)
    return Need("tost", n, _seeds(n, f"would show a difference beyond +-{margin:g} (80 % power at level "
                                     f"{level:.2g})"))


def _negligible_margin(values: Mapping[str, Any]) -> float | None:
    """The margin an effect must be shown within to be negligible: the smallest effect of
    interest less the noise floor (None without one, or when the floor leaves nothing)."""
    sesoi, floor = _number(values, "sesoi"), _number(values, "noise_floor")
    margin = None if sesoi is None else sesoi - (floor or 0.0)
    return margin if margin is not None and margin > 0 else None


def every_tost_seeds(effects: np.ndarray, sds: np.ndarray, margin: float, *, alpha: float,
                     power: float = POWER, max_n: int = MAX_SEEDS) -> int | None:
    """Smallest n at which every component is shown within +-``margin`` (each its own TOST at
    ``alpha``, :func:`dtcore.verdicts.every_negligible`) with joint probability ``power``, the
    components taken as independent: the product of their TOST powers (None: no n up to ``max_n``,
    or an effect at or beyond the margin)."""
    effects, sds = np.abs(np.asarray(effects, dtype=float)), np.asarray(sds, dtype=float)
    if not (effects < margin).all():
        return None

    def joint(n: int) -> float:
        return float(np.prod([tost_power(e, s, margin, n, alpha) if s > 0 else 1.0 for e, s in zip(effects, sds)]))

    return statistics.smallest_n(lambda n: joint(n) >= power, 2, max_n)   # each power, so their product, rises


def _every_path(values: Mapping[str, Any], level: float) -> Need:
    """The components that must clear (the k - e most favourable) each need their seeds at the
    level / (e + 1); their sd is read back from the recorded interval and its confidence. With a
    smallest effect of interest, also the seeds that show every component negligible (joint 80 %
    power), and the cheaper of the two."""
    comps, n, confidence = values.get("components") or [], int(values.get("n") or 0), _number(values, "confidence")
    if not comps or n < 2 or confidence is None:
        return Need("every", None, "no count: too few seeds or components to estimate one")
    half_t = float(stats.t.ppf(0.5 + confidence / 2, n - 1))
    means = np.array([mean for _, mean, _, _ in comps]) - float(values["threshold"])
    sds = np.array([(high - low) / 2 / half_t * math.sqrt(n) for _, _, low, high in comps])
    directional = _every_directional(values, level, means, sds)
    margin = _negligible_margin(values)
    if margin is None:
        return directional
    negligible = _more(every_tost_seeds(means, sds, margin, alpha=level), values)
    if negligible is not None and (directional.seeds is None or negligible < directional.seeds):
        return Need("every or equivalence", negligible,
                    f"about {rough(negligible)} seeds would show every component negligible (each within "
                    f"+-{margin:g}; 80 % power jointly, each at level {level:.2g})")
    return directional


def _every_directional(values: Mapping[str, Any], level: float, means: np.ndarray, sds: np.ndarray) -> Need:
    """The seeds for the components that must clear (``means``: each component's mean minus the threshold)."""
    exceptions = int(values.get("exceptions") or 0)
    effects = means if values.get("direction") in (">", ">=") else -means
    floor = _number(values, "noise_floor")
    if floor is not None and int((np.abs(effects) <= floor).sum()) > exceptions:
        return Need("floor", None, f"not decidable with this estimator at this profile: "
                                   f"{int((np.abs(effects) <= floor).sum())} components lie inside the noise floor "
                                   f"({floor:.3g}), which more seeds do not move")
    must = np.argsort(-effects, kind="stable")[: effects.size - exceptions]
    if (effects[must] <= 0).any():   # it cannot hold at these effects; it is contradicted once e + 1 components
        return _every_against(values, level, effects, sds, exceptions)   # are shown on the other side
    # At one level the count falls as effect / sd rises, so the component with the smallest ratio
    # needs the most seeds: its count is the largest of theirs.
    d = np.divide(effects[must], sds[must], out=np.full(must.size, np.inf), where=sds[must] > 0)
    j = must[int(np.argmin(d))]
    worst = _more(statistics.seeds_needed(effects[j], sds[j], alpha=level / (exceptions + 1), power=POWER,
                                          max_n=MAX_SEEDS), values)
    return Need("every", worst, _seeds(worst, f"would let every component that must clear do so (80 % power each "
                                              f"at level {level:.2g} / {exceptions + 1})"))


def _every_against(values: Mapping[str, Any], level: float, effects: np.ndarray, sds: np.ndarray,
                   exceptions: int) -> Need:
    """The seeds that contradict an "every component" claim leaning the other way (``check_every``:
    e + 1 components each shown on the other side at the level / k)."""
    n = _more(every_against_seeds(effects, sds, exceptions, alpha=level / effects.size), values)
    return Need("every", n, _seeds(n, f"would contradict it: {exceptions + 1} component(s) shown on the other side "
                                      f"(80 % power jointly, each at level {level:.2g} / {effects.size})"))


def every_against_seeds(effects: np.ndarray, sds: np.ndarray, exceptions: int, *, alpha: float,
                        power: float = POWER, max_n: int = MAX_SEEDS) -> int | None:
    """Smallest n at which at least ``exceptions`` + 1 components are shown on the other side of
    the threshold (each by its t test at ``alpha``; ``effects``: each component's mean minus the
    threshold, signed so that > 0 holds) with probability ``power``, the components taken as
    independent (the number shown is Poisson-binomial; None: no n up to ``max_n``)."""
    effects, sds = np.asarray(effects, dtype=float), np.asarray(sds, dtype=float)
    wrong = effects < 0
    if int(wrong.sum()) <= exceptions:
        return None
    d = np.divide(-effects[wrong], sds[wrong], out=np.full(int(wrong.sum()), np.inf), where=sds[wrong] > 0)

    def joint(n: int) -> float:
        at_least = np.zeros(exceptions + 2)   # P(j shown) for j <= e; the last cell P(more than e), absorbing
        at_least[0] = 1.0
        for p in np.where(np.isfinite(d), statistics.t_power(np.where(np.isfinite(d), d, 0.0), n, alpha=alpha), 1.0):
            shifted = np.concatenate([[0.0], at_least[:-1]])
            shifted[-1] += at_least[-1]            # more than e stays more than e
            at_least = at_least * (1 - p) + shifted * p
        return float(at_least[-1])

    return statistics.smallest_n(lambda n: joint(n) >= power, 2, max_n)   # each power, so that chance, rises


def _sign_path(values: Mapping[str, Any], level: float) -> Need:
    agreeing = next(j for j in range(1, 64) if 2 * 0.5 ** j < level)
    n = int(values.get("n") or 0)
    return Need("sign", max(agreeing, n + 1), f"{agreeing} seeds agreeing, none against, would decide it "
                                              f"(sign test at level {level:.2g})")


def _rate_path(values: Mapping[str, Any], level: float) -> Need:
    threshold = float(values["threshold"])

    def first(ok) -> int | None:
        return next((m for m in range(1, 201) if ok(m)), None)

    conf = 1 - level
    floor = max(threshold, _number(values, "paper_rate") or threshold)   # contradicted below the paper's rate
    up = first(lambda m: stats.binomtest(m, m).proportion_ci(conf, method="exact").low > threshold)
    down = first(lambda m: stats.binomtest(0, m).proportion_ci(conf, method="exact").high < floor)
    n = int(values.get("n") or 0)
    seeds = None if up is None and down is None else max(n + 1, min(x for x in (up, down) if x is not None))
    parts = [f"{up} of {up} seeds agreeing would show it holds" if up else "",
             f"{down} of {down} seeds disagreeing would contradict it" if down else ""]
    return Need("rate", seeds, "; ".join(p for p in parts if p) + f" (Clopper-Pearson at level {level:.2g})")


def _runs_path(values: Mapping[str, Any]) -> Need:
    per_env = values.get("per_env") or {}
    min_n = int(values.get("min_n") or 0)
    short = {env: min_n - len(v) for env, v in per_env.items() if len(v) < min_n}
    if not short:
        return Need("runs", None, "no count: the interval straddles the threshold at the runs there are")
    more = max(short.values())
    return Need("runs", min_n, f"{more} more run{'s' if more > 1 else ''} per environment "
                               f"({min_n} each, where the stratified bootstrap's coverage is shown >= 93 %)")


def what_would_decide(values: Mapping[str, Any], level: float) -> Need:
    """What would decide the seed aggregate whose recorded ``values`` are given, at ``level``
    (two-sided for a t test); by the path of its ``method`` (module docstring). A ratio decided on
    the log scale (``log_scale``) is read back on that scale. A claim without a smallest effect of
    interest says why it can never end negligible (``no_sesoi``): no number of seeds shows a null."""
    need = _by_path(values, level)
    reason = values.get("no_sesoi")
    return replace(need, text=f"{need.text}; it cannot end negligible: {reason}") if reason else need


def _by_path(values: Mapping[str, Any], level: float) -> Need:
    if values.get("log_scale") and _number(values, "value") and _number(values, "value") > 0:
        values = {**values, "value": math.log(values["value"]), "threshold": math.log(values["threshold"]),
                  "method": "student-t", "log_scale": False}
    method = str(values.get("method") or "")
    n = int(values.get("n") or 0)
    if method in ("stratified bootstrap", "stratified bootstrap of the IQM") or method.startswith("stratified"):
        return _runs_path(values)
    if n < 2 and method not in ("clopper-pearson", "sign test"):
        return Need("seed", 2, "a second seed (an aggregate needs at least two)")
    if method == "intersection-union t":
        return _every_path(values, level)
    if _floor_blocks(values):   # only showing it negligible (within sesoi less the floor) can still decide it
        t_path = method.startswith("student-t") and _number(values, "sd")
        need = _t_path(values, level, blocked=True) if t_path else None
        return need if need is not None and need.seeds is not None else \
            Need("floor", None, "not decidable with this estimator at this profile: the value lies inside the "
                                "estimator's noise floor, which more seeds do not move")
    if method == "sign test":
        return _sign_path(values, level)
    if method == "clopper-pearson":
        return _rate_path(values, level)
    if _number(values, "sd") is None or _number(values, "value") is None:
        return Need("t", None, "no count: no spread was recorded")
    if method == "tost":
        return _tost_path(values, level)
    return _t_path(values, level)
