"""Criteria of the claim tests: a claim's statistic, direction and threshold, stated before any run,
and the three outcomes a claim can have.

- **holds**: the test passes;
- **contradicted**: the test fails with an ``AssertionError`` whose message gives the measured
  value, the threshold, the direction and the paper's value;
- **inconclusive**: the evidence cannot decide (a non-finite statistic; a seed-aggregate bootstrap
  interval that straddles the threshold). The test raises :class:`Inconclusive`; the report plugin
  shows it as its own outcome (``I`` in the terminal, "inconclusive" in the report), never as a
  silent skip.

Every number is recorded with ``record_property`` under the keys listed in :data:`RECORD_KEYS`, so
the report can show it beside the paper's value. Seed aggregates use ``scipy.stats.bootstrap``
(percentile interval of the mean over seeds) rather than the paper's mean +- std of two seeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
from scipy import stats

RecordProperty = Callable[[str, Any], None]
RECORD_KEYS = ("claim_id", "statistic", "direction", "threshold", "paper_value", "value",
               "ci_low", "ci_high", "n", "definition", "criterion")
_DIRECTIONS = {">": "greater than", "<": "less than", ">=": "at least", "<=": "at most"}


class Inconclusive(Exception):
    """The measured evidence cannot decide the claim (reported as its own outcome)."""


@dataclass(frozen=True)
class Criterion:
    claim_id: str              # e.g. "sec5_3.pretrained_change_parameters_less"
    statistic: str             # what is measured, in words, with its unit
    direction: str             # ">", "<", ">=", "<=": the claim holds when `value direction threshold`
    threshold: float           # fixed before the run, from the paper's text, tables or figures
    paper_value: float | None  # the paper's own value of the statistic, where it gives one
    source: str                # where the threshold and paper value come from (section, table, spec §)

    def __post_init__(self) -> None:
        if self.direction not in _DIRECTIONS:
            raise ValueError(f"direction must be one of {list(_DIRECTIONS)}, got {self.direction!r}")

    def holds(self, value: float) -> bool:
        t = self.threshold
        return {">": value > t, "<": value < t, ">=": value >= t, "<=": value <= t}[self.direction]

    def describe(self) -> str:
        return f"{self.statistic} {self.direction} {self.threshold:g} ({self.source})"


def _record(record: RecordProperty, crit: Criterion, definition: str | None, **values: Any) -> None:
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


def _message(crit: Criterion, value: float, what: str) -> str:
    paper = "not given" if crit.paper_value is None else f"{crit.paper_value:g}"
    return (f"{crit.claim_id}: {what} {value:.4g} is not {_DIRECTIONS[crit.direction]} the threshold "
            f"{crit.threshold:g} ({crit.statistic}; paper's value: {paper}; source: {crit.source})")


def check(crit: Criterion, value: float, record: RecordProperty, *, definition: str | None = None) -> None:
    """Decide a claim on one measured value (one env and seed)."""
    value = float(value)
    _record(record, crit, definition, value=value, n=1)
    if not math.isfinite(value):
        raise Inconclusive(f"{crit.claim_id}: the statistic is {value} ({crit.statistic}); cannot decide")
    assert crit.holds(value), _message(crit, value, "measured")


def inconclusive(crit: Criterion, value: float, record: RecordProperty, reason: str, *,
                 definition: str | None = None) -> None:
    """Record the measured value and declare the claim undecidable for ``reason``."""
    _record(record, crit, definition, value=float(value), n=1)
    raise Inconclusive(f"{crit.claim_id}: {reason}")


def bootstrap_interval(values: Sequence[float], confidence: float = 0.95, n_resamples: int = 9999,
                       seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (scipy.stats.bootstrap)."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"values must be a non-empty 1-D sequence, got shape {x.shape}")
    if np.ptp(x) == 0:
        return float(x[0]), float(x[0])
    res = stats.bootstrap((x,), np.mean, confidence_level=confidence, n_resamples=n_resamples,
                          method="percentile", rng=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def check_aggregate(crit: Criterion, values: Sequence[float], record: RecordProperty, *,
                    definition: str | None = None, confidence: float = 0.95) -> None:
    """Decide a claim on the per-seed values of one env: the bootstrap interval of their mean must
    lie wholly on the holding side (holds), wholly on the other side (contradicted), or it straddles
    the threshold (inconclusive). Fewer than two finite values are inconclusive."""
    x = np.asarray([float(v) for v in values], dtype=np.float64)
    finite = x[np.isfinite(x)]
    if finite.size < 2:
        _record(record, crit, definition, value=float(np.mean(finite)) if finite.size else float("nan"),
                n=int(finite.size), per_seed=x.tolist())
        raise Inconclusive(f"{crit.claim_id}: {finite.size} finite per-seed value(s); a seed aggregate needs 2")
    lo, hi = bootstrap_interval(finite, confidence)
    mean = float(finite.mean())
    _record(record, crit, definition, value=mean, ci_low=lo, ci_high=hi, n=int(finite.size),
            per_seed=x.tolist())
    low_holds, high_holds = crit.holds(lo), crit.holds(hi)
    if low_holds and high_holds:
        return
    if not low_holds and not high_holds:
        raise AssertionError(_message(crit, mean, f"mean over {finite.size} seeds") +
                             f"; {confidence:.0%} bootstrap interval [{lo:.4g}, {hi:.4g}]")
    raise Inconclusive(f"{crit.claim_id}: the {confidence:.0%} bootstrap interval [{lo:.4g}, {hi:.4g}] of "
                       f"the mean {mean:.4g} straddles the threshold {crit.threshold:g} ({crit.statistic})")


def record_figure(record: RecordProperty, kind: str, data: dict[str, Any]) -> None:
    """Record the data of a figure for the report to redraw (JSON-able lists and numbers):
    ``record_property("figure:<kind>", data)``."""
    record(f"figure:{kind}", data)
