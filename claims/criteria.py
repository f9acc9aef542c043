"""Criteria of the claim tests: a claim's statistic, direction and threshold, stated before any run,
and the decision rules that turn measurements into holds / contradicted / inconclusive.

The outcomes (``dtcore/verdicts.py``):

- **holds**: the test passes;
- **contradicted**: the test fails with an ``AssertionError`` whose message gives the measured
  value, its interval, the threshold, the direction and the paper's value;
- **inconclusive**: the interval straddles the threshold, there are too few seeds, or the value
  lies inside the estimator's noise floor. The test raises :class:`Inconclusive` and its message
  says why and, for a seed aggregate, about how many seeds would decide it;
- **descriptive**: a per-seed statistic with no sampling units inside the run; the test raises
  :class:`Descriptive` and the report shows the value without counting it.

Three decision rules (``docs/statistics.md``):

- :func:`check_aggregate`: the seed aggregate. A 95 % Student-t interval of the mean of the
  per-seed values; an equality claim (direction ``"within"``) is a TOST against the margin.
- :func:`check_units`: one seed, decided by the spread of the statistic over half-samples of
  its own sampling units (evaluation episodes, analysis samples).
- :func:`describe`: one seed, no units: recorded, not decided.

A claim test is tied to its criterion with ``@claim(CRITERION)`` (the ``claim`` marker with the
criterion's id and section), so an id is written once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import pytest
from scipy import stats

from dtcore import statistics
from dtcore.verdicts import RECORD_KEYS, Descriptive, Inconclusive

__all__ = ["Criterion", "Inconclusive", "Descriptive", "claim", "check_aggregate", "check_units",
           "check_rate", "check_interval", "describe", "record_figure"]

RecordProperty = Callable[[str, Any], None]
_DIRECTIONS = {">": "greater than", "<": "less than", ">=": "at least", "<=": "at most",
               "within": "within +-"}
CONFIDENCE = 0.95      # two-sided level of every interval; TOST uses the 90 % interval (5 % each side)
POWER = 0.8            # the power a "seeds needed" estimate aims at


def section_of(claim_id: str) -> str:
    """The paper section of a claim id: ``sec5_6_1.x`` -> "5.6.1", ``table1.x`` -> "Table 1",
    ``appG3.x`` -> "App. G.3"."""
    prefix = claim_id.split(".")[0]
    if prefix.startswith("sec"):
        return prefix[3:].replace("_", ".")
    if prefix.startswith("table"):
        return f"Table {prefix[5:]}"
    if prefix.startswith("app"):
        return f"App. {prefix[3]}.{prefix[4:]}" if len(prefix) > 4 else f"App. {prefix[3:]}"
    raise ValueError(f"claim id {claim_id!r} must start with secN_M, tableN or appXN")


@dataclass(frozen=True)
class Criterion:
    claim_id: str              # e.g. "sec5_3.pretrained_change_parameters_less"; the prefix gives the section
    statistic: str             # what is measured, in words, with its unit
    direction: str             # ">", "<", ">=", "<=": holds when `value direction threshold`;
                               # "within": holds when |value| <= threshold (an equivalence margin)
    threshold: float           # fixed before the run, from the paper's text, tables or figures
    paper_value: float | None  # the paper's own value of the statistic, where it gives one
    source: str                # where the threshold and paper value come from (section, table, docs)

    def __post_init__(self) -> None:
        if self.direction not in _DIRECTIONS:
            raise ValueError(f"direction must be one of {list(_DIRECTIONS)}, got {self.direction!r}")
        if self.direction == "within" and not self.threshold > 0:
            raise ValueError(f"an equivalence margin must be > 0, got {self.threshold}")
        section_of(self.claim_id)

    @property
    def section(self) -> str:
        return section_of(self.claim_id)

    def holds(self, value: float) -> bool:
        t = self.threshold
        return {">": value > t, "<": value < t, ">=": value >= t, "<=": value <= t,
                "within": abs(value) <= t}[self.direction]

    def describe(self) -> str:
        return f"{self.statistic} {self.direction} {self.threshold:g} ({self.source})"


def claim(crit: Criterion) -> pytest.MarkDecorator:
    """The ``claim`` marker of a test of ``crit``: its id and section come from the criterion."""
    return pytest.mark.claim(id=crit.claim_id, section=crit.section)


def _record(record: RecordProperty, crit: Criterion, definition: str | None, **values: Any) -> None:
    unknown = sorted(set(values).difference(RECORD_KEYS))
    if unknown:
        raise ValueError(f"record keys {unknown} are not in dtcore.verdicts.RECORD_KEYS, the names the report reads")
    record("claim_id", crit.claim_id)
    record("statistic", crit.statistic)
    record("direction", crit.direction)
    record("threshold", crit.threshold)
    record("paper_value", crit.paper_value)
    record("criterion", crit.describe())
    if definition is not None:
        record("definition", definition)
    for k, v in values.items():
        record(k, v)


def _paper(crit: Criterion) -> str:
    return "not given" if crit.paper_value is None else f"{crit.paper_value:g}"


def _contradicted(crit: Criterion, what: str, value: float, interval: str) -> str:
    return (f"{crit.claim_id}: {what} {value:.4g} {interval} is not {_DIRECTIONS[crit.direction]} "
            f"the threshold {crit.threshold:g} ({crit.statistic}; paper's value: {_paper(crit)}; "
            f"source: {crit.source})")


def _side(crit: Criterion, low: float, high: float) -> str:
    """Where an interval lies for a directional criterion: "holds", "contradicted" or "straddles"."""
    lo_holds, hi_holds = crit.holds(low), crit.holds(high)
    if lo_holds and hi_holds:
        return "holds"
    if not lo_holds and not hi_holds:
        return "contradicted"
    return "straddles"


def _within_side(margin: float, i90: tuple[float, float], i95: tuple[float, float]) -> str:
    """Equivalence: holds when the 90 % interval is inside [-margin, margin]; contradicted when
    the 95 % interval is wholly beyond it on one side."""
    if -margin <= i90[0] and i90[1] <= margin:
        return "holds"
    if i95[0] > margin or i95[1] < -margin:
        return "contradicted"
    return "straddles"


def _floor_check(crit: Criterion, value: float, floor: float | None) -> str | None:
    if floor is None or not math.isfinite(floor):
        return None
    reference = 0.0 if crit.direction == "within" else crit.threshold
    if abs(value - reference) <= floor:
        return (f"{crit.claim_id}: the value {value:.4g} lies within the estimator's noise floor "
                f"({floor:.3g}) of {reference:g}: the difference cannot be told from noise")
    return None


# -- one seed -------------------------------------------------------------------------------

def check_units(crit: Criterion, value: float, reps: Sequence[float], record: RecordProperty, *,
                units: str, n_units: int, definition: str | None = None,
                floor: float | None = None) -> None:
    """Decide a claim on one env and seed from the statistic ``value`` and its half-sample
    replicates ``reps`` over ``n_units`` sampling ``units`` (e.g. "evaluation episodes"):
    holds / contradicted when the 95 % interval (90 % for an equivalence) lies wholly on one side,
    else inconclusive. ``floor``: the estimator's noise floor (inconclusive inside it)."""
    value = float(value)
    level = 0.90 if crit.direction == "within" else CONFIDENCE
    iv = statistics.replicate_interval(value, reps, n_units, level)
    _record(record, crit, definition, value=value, ci_low=iv.low, ci_high=iv.high, confidence=level,
            method="half-sample", n=1, units=units, n_units=int(n_units), noise_floor=floor)
    if not math.isfinite(value):
        raise Inconclusive(f"{crit.claim_id}: the statistic is {value} ({crit.statistic}); cannot decide")
    if not (math.isfinite(iv.low) and math.isfinite(iv.high)):
        raise Inconclusive(f"{crit.claim_id}: too few finite replicates over the {units} to give an interval")
    reason = _floor_check(crit, value, floor)
    if reason:
        raise Inconclusive(reason)
    text = f"({level:.0%} interval over {n_units} {units}: [{iv.low:.4g}, {iv.high:.4g}])"
    if crit.direction == "within":
        i95 = statistics.replicate_interval(value, reps, n_units, CONFIDENCE)
        side = _within_side(crit.threshold, (iv.low, iv.high), (i95.low, i95.high))
    else:
        side = _side(crit, iv.low, iv.high)
    if side == "holds":
        return
    if side == "contradicted":
        raise AssertionError(_contradicted(crit, "measured", value, text))
    raise Inconclusive(f"{crit.claim_id}: the {text[1:-1]} of {value:.4g} straddles the threshold "
                       f"{crit.threshold:g} ({crit.statistic})")


def describe(crit: Criterion, value: float, record: RecordProperty, *, why: str,
             definition: str | None = None, floor: float | None = None) -> None:
    """Record a per-seed value that has no sampling units inside its run (``why`` says so) and
    raise :class:`Descriptive`: the report shows it beside the criterion, never as a verdict.
    Inside the estimator's noise ``floor`` the cell is inconclusive instead."""
    value = float(value)
    _record(record, crit, definition, value=value, n=1, method="descriptive", noise_floor=floor)
    reason = _floor_check(crit, value, floor)
    if reason:
        raise Inconclusive(reason)
    side = ("would hold" if crit.holds(value) else "would not hold") if math.isfinite(value) else "is undefined"
    raise Descriptive(f"{crit.claim_id}: {value:.4g} {side} against {crit.direction} {crit.threshold:g}; "
                      f"descriptive only: {why}")


# -- the seed aggregate ---------------------------------------------------------------------

def _seeds_needed(crit: Criterion, mean: float, sd: float) -> int | None:
    if crit.direction == "within":
        gap = crit.threshold - abs(mean)   # > 0: toward equivalence (TOST, 5 % one-sided); < 0: a difference
        return statistics.seeds_needed(gap, sd, alpha=0.05, sides=1 if gap > 0 else 2, power=POWER)
    return statistics.seeds_needed(mean - crit.threshold, sd, alpha=1 - CONFIDENCE, power=POWER)


def check_aggregate(crit: Criterion, per_seed_values: Sequence[float], record: RecordProperty, *,
                    definition: str | None = None, floor: float | None = None) -> None:
    """Decide a claim on the per-seed values of one env (paired per-seed differences where two
    bodies are compared): the 95 % Student-t interval of their mean lies wholly on the holding side
    (holds), wholly on the other (contradicted), or straddles the threshold (inconclusive, with the
    seeds that would decide it at 80 % power). Direction ``"within"``: a TOST against the margin.
    Fewer than two finite values are inconclusive; ``floor``: the estimator's noise floor."""
    x = np.asarray([float(v) for v in per_seed_values], dtype=np.float64)
    finite = x[np.isfinite(x)]
    if finite.size < 2:
        _record(record, crit, definition, value=float(np.mean(finite)) if finite.size else float("nan"),
                n=int(finite.size), per_seed=x.tolist(), method="student-t")
        raise Inconclusive(f"{crit.claim_id}: {finite.size} finite per-seed value(s); a seed aggregate "
                           f"needs at least 2 seeds")
    if crit.direction == "within":
        eq = statistics.tost(finite, crit.threshold)
        iv, p, method = eq.interval90, eq.p_equivalent, "tost"
        side = _within_side(crit.threshold, (eq.interval90.low, eq.interval90.high),
                            (eq.interval95.low, eq.interval95.high))
        if side == "contradicted":
            iv, p = eq.interval95, eq.p_different
    elif float(np.ptp(finite)) == 0.0:
        _tied(crit, finite, x, record, definition)
        return
    else:
        iv = statistics.t_interval(finite, CONFIDENCE)
        p, method = statistics.t_test_p(finite, crit.threshold), "student-t"
        side = _side(crit, iv.low, iv.high)
    needed = _seeds_needed(crit, iv.value, iv.sd)
    level = 0.90 if method == "tost" and side != "contradicted" else CONFIDENCE
    _record(record, crit, definition, value=iv.value, ci_low=iv.low, ci_high=iv.high, confidence=level,
            method=method, n=iv.n, per_seed=x.tolist(), sd=iv.sd, p_value=p, seeds_needed=needed,
            noise_floor=floor)
    reason = _floor_check(crit, iv.value, floor)
    if reason:
        raise Inconclusive(reason)
    text = f"({level:.0%} {'TOST' if method == 'tost' else 't'} interval [{iv.low:.4g}, {iv.high:.4g}])"
    if side == "holds":
        return
    if side == "contradicted":
        raise AssertionError(_contradicted(crit, f"mean over {iv.n} seeds", iv.value, text))
    raise Inconclusive(f"{crit.claim_id}: the {text[1:-1]} of the mean {iv.value:.4g} over {iv.n} seeds "
                       f"straddles the threshold {crit.threshold:g}; {_needs(needed, iv.n)}")


def _tied(crit: Criterion, finite: np.ndarray, x: np.ndarray, record: RecordProperty,
          definition: str | None) -> None:
    """Every seed gave the same value (a discrete statistic: a count, a share of blocks): a t
    interval would have zero width. Decide by the sign test instead: all n seeds on one side of
    the threshold is significant at 5 % from n = 6 on (two-sided p = 2 / 2^n)."""
    value, n = float(finite[0]), int(finite.size)
    p = min(1.0, 2 * 0.5 ** n)
    needed = next(m for m in range(n, 64) if 2 * 0.5 ** m < 1 - CONFIDENCE)
    _record(record, crit, definition, value=value, ci_low=value, ci_high=value, confidence=CONFIDENCE,
            method="sign test", n=n, per_seed=x.tolist(), sd=0.0, p_value=p,
            seeds_needed=needed if p >= 1 - CONFIDENCE else None)
    text = f"all {n} seeds gave {value:.4g} (sign test, p = {p:.3g})"
    if p >= 1 - CONFIDENCE:
        raise Inconclusive(f"{crit.claim_id}: {text}: identical values carry no spread for a t interval, and "
                           f"a sign test needs {needed} seeds agreeing to decide")
    if not crit.holds(value):
        raise AssertionError(_contradicted(crit, f"every one of {n} seeds gave", value, f"({text})"))


def check_rate(crit: Criterion, successes: Sequence[bool], record: RecordProperty, *,
               definition: str | None = None) -> None:
    """Decide a claim on a yes/no outcome per seed: the 95 % Clopper-Pearson interval of the rate
    of successes against ``crit.threshold`` (a chance rate, e.g. 1 / number of blocks)."""
    if crit.direction not in (">", ">="):
        raise ValueError(f"{crit.claim_id}: a rate criterion needs direction > or >=, got {crit.direction}")
    k, n = int(sum(bool(s) for s in successes)), len(successes)
    if n == 0:
        _record(record, crit, definition, value=float("nan"), n=0, method="clopper-pearson")
        raise Inconclusive(f"{crit.claim_id}: no seed to count")
    ci = stats.binomtest(k, n).proportion_ci(CONFIDENCE, method="exact")
    p = float(stats.binomtest(k, n, crit.threshold).pvalue)
    needed = next((m for m in range(n, 201) if stats.binomtest(m, m, crit.threshold).pvalue < 1 - CONFIDENCE), None)
    _record(record, crit, definition, value=k / n, ci_low=float(ci.low), ci_high=float(ci.high),
            confidence=CONFIDENCE, method="clopper-pearson", n=n, per_seed=[bool(s) for s in successes],
            p_value=p, seeds_needed=needed if k == n and ci.low <= crit.threshold else None)
    text = f"(95 % Clopper-Pearson interval [{ci.low:.3g}, {ci.high:.3g}], {k} of {n} seeds)"
    side = _side(crit, float(ci.low), float(ci.high))
    if side == "holds":
        return
    if side == "contradicted":
        raise AssertionError(_contradicted(crit, "rate", k / n, text))
    more = f"; even {needed} seeds out of {needed} would be needed" if needed and k == n else ""
    raise Inconclusive(f"{crit.claim_id}: the rate {k}/{n} {text} straddles the chance rate "
                       f"{crit.threshold:.3g}{more}")


def check_interval(crit: Criterion, interval: statistics.Interval, record: RecordProperty, *, method: str,
                   definition: str | None = None, min_n: int = 1, **values: Any) -> None:
    """Decide a claim on an interval computed elsewhere (e.g. a stratified bootstrap over
    environments): wholly on one side of the threshold, or inconclusive. Fewer than ``min_n``
    sampling units (a percentile bootstrap of 2-3 runs is about [min, max]) are inconclusive."""
    _record(record, crit, definition, value=interval.value, ci_low=interval.low, ci_high=interval.high,
            confidence=CONFIDENCE, method=method, n=interval.n, **values)
    if interval.n < min_n:
        raise Inconclusive(f"{crit.claim_id}: {interval.n} runs; a {method} interval needs at least {min_n} "
                           f"(with a handful of runs its percentile interval is about [min, max] and under-covers)")
    text = f"({CONFIDENCE:.0%} {method} interval [{interval.low:.4g}, {interval.high:.4g}])"
    side = _side(crit, interval.low, interval.high)
    if side == "holds":
        return
    if side == "contradicted":
        raise AssertionError(_contradicted(crit, "measured", interval.value, text))
    raise Inconclusive(f"{crit.claim_id}: the {text[1:-1]} of {interval.value:.4g} straddles the threshold "
                       f"{crit.threshold:g}")


def _needs(needed: int | None, n: int) -> str:
    if needed is None:
        return "no number of seeds decides it at the observed effect (about zero)"
    two = (" (two seeds decide only an effect above 9 standard deviations: t(0.975, 1) = 12.7)"
           if n == 2 else "")
    return f"about {needed} seeds would decide it with 80 % power at the observed effect and spread{two}"


def record_figure(record: RecordProperty, kind: str, data: dict[str, Any]) -> None:
    """Record the data of a figure for the report to redraw (JSON-able lists and numbers):
    ``record_property("figure:<kind>", data)``."""
    record(f"figure:{kind}", data)
