"""The decision rules, in one place: how measured values become holds / contradicted /
negligible / inconclusive for one claim cell (``docs/statistics.md`` explains each rule).

The outcomes of a claim cell:

- ``holds``: the interval lies wholly on the claim's side of the threshold;
- ``contradicted``: it lies wholly on the other side;
- ``negligible``: a claim with a smallest effect of interest (``Criterion.sesoi``) whose effect
  the equivalence test shows within it: too small to matter at this scale, either way;
- ``inconclusive``: it straddles the threshold, there are too few seeds, or the value lies inside
  the estimator's noise floor; the message says why and what would decide it;
- ``descriptive``: a per-seed statistic with no sampling units inside its run: shown, never counted;
- ``error``: any other exception (a broken run or analysis, never a verdict);
- ``skipped``: not run (e.g. a claim whose bodies the selection left out).

The decision rules return a :class:`Decision` (outcome, message, the recorded values); the pytest
plugin records the values and signals the outcome (an ``AssertionError`` for contradicted,
:class:`Inconclusive`, :class:`Descriptive`), which the report plugin reads back. The rules:

- :func:`check_aggregate`: the seed aggregate, a 95 % Student-t interval of the mean of the
  per-seed values; an equality claim (direction ``"within"``) is a TOST against the margin; every
  seed on one value (no spread) is decided by the sign test. A claim whose per-seed values are
  declared skewed gets the t statistic's quantiles under that shape (:mod:`dtcore.skew`).
- :func:`check_units`: one seed, decided by the spread of the statistic over half-samples of its
  own sampling units (evaluation episodes, analysis samples).
- :func:`describe`: one seed, no units: recorded, not decided.
- :func:`check_rate`: a yes / no per seed, the Clopper-Pearson interval of the rate.
- :func:`check_sign`: a discrete per-seed statistic, the exact sign test at every n.
- :func:`check_interval`: an interval computed elsewhere (a stratified bootstrap over
  environments).
- :func:`check_every` / :func:`check_every_units`: a claim stated for every component (epoch,
  position, block) but at most a few: an interval per component, decided as an
  intersection-union test, never on a minimum of noisy estimates; with a smallest effect of
  interest, negligible when every component is shown within it (:func:`every_negligible`).

The headline policy over these outcomes (which cell speaks for a claim, the conjunction over
variants, the correction, the premise) is :mod:`dtcore.policy`; what would decide an undecided
verdict is :mod:`dtcore.deciding`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

import numpy as np
from scipy import stats

from dtcore import deciding, skew as skewed, statistics

OUTCOMES = ("holds", "contradicted", "negligible", "inconclusive", "descriptive", "error", "skipped")
DECISIVE = ("holds", "contradicted", "negligible")
CONFIDENCE = 0.95      # two-sided level of every interval; TOST uses the 90 % interval (5 % each side)
TWO_SEEDS = " (two seeds decide only an effect above 9 standard deviations: t(0.975, 1) = 12.7)"
MIN_UNITS = 20         # a per-seed half-sample interval needs this many units (docs/statistics.md, "One seed")
POWER = 0.8            # the power a "seeds needed" estimate aims at

# What a claim cell records (the report reads these names).
RECORD_KEYS = (
    "claim_id", "statistic", "direction", "threshold", "paper_value", "criterion", "definition",
    "value",          # the statistic: per-seed value, or the mean over seeds
    "ci_low", "ci_high", "confidence",  # its interval and level
    "method",         # "student-t" | "tost" | "half-sample" | "descriptive" | "sign test" | ...
    "n",              # seeds (aggregate) or 1 (per-seed cell)
    "units", "n_units",  # per-seed cells: what the sampling units are and how many
    "per_seed", "sd",  # aggregates: the per-seed values and their standard deviation
    "per_env",        # across-environment aggregates (IQM): the runs' values by environment
    "p_value",        # aggregates: two-sided p of "mean == threshold" (TOST: p of equivalence)
    "seeds_needed",   # aggregates: seeds for 80 % power at the observed effect and spread
    "noise_floor",    # the spread of the estimator's null, where the claim has one
    "components",     # "every component" claims: [label, value, low, high] of each component
    "exceptions",     # "every component" claims: how many components may fail
    "sesoi",          # the smallest effect of interest (a negligible outcome), where the claim has one
    "no_sesoi",       # where it has none, why it can never end negligible
    "min_n",          # pooled claims: the runs per environment the interval needs
    "paper_rate",     # rate claims: the rate the paper's own words claim (contradicted below it)
    "log_scale",      # a ratio decided on the log scale (value and interval: geometric mean, back-transformed)
    "skew",           # the side the per-seed values are declared skewed to: the t quantiles under that shape
)
_DIRECTIONS = {">": "greater than", "<": "less than", ">=": "at least", "<=": "at most",
               "within": "within +-"}


class Inconclusive(Exception):
    """The measured evidence cannot decide the claim (reported as its own outcome)."""


class Descriptive(Exception):
    """A per-seed statistic without sampling units: shown in the report, not counted as a verdict."""


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
    sesoi: float | None = None  # the smallest effect of interest around the threshold: within it the
                                # effect is "negligible" (an equivalence test), registered before the run
    no_sesoi: str = ""          # without one: why the claim can never end "negligible" (recorded)

    def __post_init__(self) -> None:
        if self.direction not in _DIRECTIONS:
            raise ValueError(f"direction must be one of {list(_DIRECTIONS)}, got {self.direction!r}")
        if self.direction == "within" and not self.threshold > 0:
            raise ValueError(f"an equivalence margin must be > 0, got {self.threshold}")
        if self.sesoi is not None and (self.direction == "within" or not self.sesoi > 0):
            raise ValueError(f"a smallest effect of interest must be > 0 and belongs to a directional claim, "
                             f"got {self.sesoi} with direction {self.direction!r}")
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


@dataclass(frozen=True)
class Decision:
    """The outcome of one claim cell, its message and the values it records."""

    outcome: str                     # holds | contradicted | inconclusive | descriptive
    message: str = ""
    values: dict[str, Any] = field(default_factory=dict)


def _values(crit: Criterion, definition: str | None, **values: Any) -> dict[str, Any]:
    unknown = sorted(set(values).difference(RECORD_KEYS))
    if unknown:
        raise ValueError(f"record keys {unknown} are not in dtcore.verdicts.RECORD_KEYS, the names the report reads")
    out = {"claim_id": crit.claim_id, "statistic": crit.statistic, "direction": crit.direction,
           "threshold": crit.threshold, "paper_value": crit.paper_value, "criterion": crit.describe()}
    if crit.no_sesoi:
        out["no_sesoi"] = crit.no_sesoi
    if definition is not None:
        out["definition"] = definition
    return {**out, **values}


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


def _decided(side: str, values: dict[str, Any], contradicted: str, straddles: str) -> Decision:
    if side == "holds":
        return Decision("holds", "", values)
    if side == "contradicted":
        return Decision("contradicted", contradicted, values)
    return Decision("inconclusive", straddles, values)


# -- one seed -------------------------------------------------------------------------------

def _too_few_units(n_units: int, units: str) -> str:
    """Why a per-seed cell with fewer than :data:`MIN_UNITS` units is descriptive."""
    return (f"only {n_units} {units}: a half-sample interval keeps its 95 % from {MIN_UNITS} units "
            f"(at 10 bimodal episodes it decides falsely 4.4 % of the time per side)")


def check_units(crit: Criterion, value: float, reps: Sequence[float], *, units: str, n_units: int,
                definition: str | None = None, floor: float | None = None) -> Decision:
    """Decide a claim on one env and seed from the statistic ``value`` and its half-sample
    replicates ``reps`` over ``n_units`` sampling ``units`` (e.g. "evaluation episodes"):
    holds / contradicted when the 95 % interval (90 % for an equivalence) lies wholly on one side,
    else inconclusive. ``floor``: the estimator's noise floor (inconclusive inside it)."""
    value = float(value)
    if n_units < MIN_UNITS:
        return describe(crit, value, definition=definition, floor=floor, why=_too_few_units(n_units, units))
    level = 0.90 if crit.direction == "within" else CONFIDENCE
    iv = statistics.replicate_interval(value, reps, n_units, level)
    values = _values(crit, definition, value=value, ci_low=iv.low, ci_high=iv.high, confidence=level,
                     method="half-sample", n=1, units=units, n_units=int(n_units), noise_floor=floor)
    if not math.isfinite(value):
        return Decision("inconclusive", f"{crit.claim_id}: the statistic is {value} ({crit.statistic}); "
                                        f"cannot decide", values)
    if not (math.isfinite(iv.low) and math.isfinite(iv.high)):
        return Decision("inconclusive", f"{crit.claim_id}: too few finite replicates over the {units} to "
                                        f"give an interval", values)
    reason = _floor_check(crit, value, floor)
    if reason:
        return Decision("inconclusive", reason, values)
    text = f"({level:.0%} interval over {n_units} {units}: [{iv.low:.4g}, {iv.high:.4g}])"
    if crit.direction == "within":
        i95 = statistics.replicate_interval(value, reps, n_units, CONFIDENCE)
        side = _within_side(crit.threshold, (iv.low, iv.high), (i95.low, i95.high))
    else:
        side = _side(crit, iv.low, iv.high)
    return _decided(side, values, _contradicted(crit, "measured", value, text),
                    f"{crit.claim_id}: the {text[1:-1]} of {value:.4g} straddles the threshold "
                    f"{crit.threshold:g} ({crit.statistic})")


def describe(crit: Criterion, value: float, *, why: str, definition: str | None = None,
             floor: float | None = None) -> Decision:
    """A per-seed value that has no sampling units inside its run (``why`` says so): recorded
    beside the criterion, never a verdict. Inside the estimator's noise ``floor`` the cell is
    inconclusive instead."""
    value = float(value)
    values = _values(crit, definition, value=value, n=1, method="descriptive", noise_floor=floor)
    reason = _floor_check(crit, value, floor)
    if reason:
        return Decision("inconclusive", reason, values)
    side = ("would hold" if crit.holds(value) else "would not hold") if math.isfinite(value) else "is undefined"
    return Decision("descriptive", f"{crit.claim_id}: {value:.4g} {side} against {crit.direction} "
                                   f"{crit.threshold:g}; descriptive only: {why}", values)


# -- the seed aggregate ---------------------------------------------------------------------

def _negligible(crit: Criterion, finite: np.ndarray, floor: float | None,
                skew: str | None = None) -> tuple[statistics.Equivalence, bool]:
    """The equivalence test of the effect (mean minus threshold) against the smallest effect of
    interest: shown negligible when its 90 % interval lies inside [-sesoi, sesoi], narrowed by a
    noise ``floor`` (which bounds the estimator's bias) to [-(sesoi - floor), sesoi - floor]; under
    a declared ``skew`` with that shape's one-sided tests (:func:`dtcore.skew.tost`)."""
    margin = crit.sesoi - (floor if floor is not None and math.isfinite(floor) else 0.0)
    eq = statistics.tost(finite - crit.threshold, crit.sesoi) if skew is None else \
        skewed.tost(finite - crit.threshold, crit.sesoi, skew)
    return eq, margin > 0 and -margin <= eq.interval90.low and eq.interval90.high <= margin


def _less_floor(floor: float | None) -> str:
    return f" less the noise floor {floor:.3g}" if floor is not None and math.isfinite(floor) else ""


def check_log_aggregate(crit: Criterion, per_seed_values: Sequence[float], *,
                        definition: str | None = None) -> Decision:
    """:func:`check_aggregate` for a ratio (a positive, right-skewed per-seed statistic): decided on
    the log scale, where a lognormal spread is normal and the t interval keeps its rate (on the
    original scale it falsely contradicts 10-19 % of the time at n = 2-10); recorded back on the
    original scale as the geometric mean and its interval."""
    x = np.asarray([float(v) for v in per_seed_values], dtype=np.float64)
    if crit.sesoi is not None or crit.direction == "within" or not crit.threshold > 0:
        raise ValueError(f"{crit.claim_id}: a log-scale aggregate takes a directional criterion with a positive "
                         f"threshold and no smallest effect of interest")
    if (x[np.isfinite(x)] <= 0).any():
        values = _values(crit, definition, value=float(np.nanmean(x)), n=int(np.isfinite(x).sum()),
                         per_seed=x.tolist(), method="student-t (log scale)")
        return Decision("inconclusive", f"{crit.claim_id}: a per-seed ratio is not positive ({x.tolist()}): the "
                                        f"log-scale aggregate of a ratio cannot read it", values)
    logged = replace(crit, threshold=math.log(crit.threshold))
    decision = check_aggregate(logged, np.log(x), definition=definition)
    values = dict(decision.values, threshold=crit.threshold, criterion=crit.describe(), per_seed=x.tolist(),
                  method="student-t (log scale)", log_scale=True)
    for key in ("value", "ci_low", "ci_high"):
        if isinstance(values.get(key), float):
            values[key] = math.exp(values[key])
    gm, n = values["value"], values.get("n")
    text = (f"(95 % t interval of the mean log ratio, back-transformed: [{values.get('ci_low', math.nan):.4g}, "
            f"{values.get('ci_high', math.nan):.4g}])")
    if decision.outcome == "contradicted":
        return Decision("contradicted", _contradicted(crit, f"geometric mean over {n} seeds", gm, text), values)
    if decision.outcome == "inconclusive":
        need = deciding.what_would_decide(values, 1 - CONFIDENCE)
        return Decision("inconclusive", f"{crit.claim_id}: the geometric mean {gm:.4g} over {n} seeds {text} does not "
                                        f"clear the threshold {crit.threshold:g}; {need.uncorrected}", values)
    return Decision(decision.outcome, decision.message, values)


def check_aggregate(crit: Criterion, per_seed_values: Sequence[float], *, definition: str | None = None,
                    floor: float | None = None, skew: str | None = None) -> Decision:
    """Decide a claim on the per-seed values of one env (paired per-seed differences where two
    bodies are compared): the 95 % Student-t interval of their mean lies wholly on the holding side
    (holds), wholly on the other (contradicted), or straddles the threshold (inconclusive, with
    what would decide it, :func:`dtcore.deciding.what_would_decide`). With a smallest effect of
    interest (``crit.sesoi``), an effect shown within it by the equivalence test is
    **negligible**, whichever side the t interval lies on: the paper's direction and its opposite
    are then both too small to matter at this scale. Direction ``"within"``: a TOST against the
    margin. Fewer than two finite values are inconclusive; ``floor``: the estimator's noise floor.
    ``skew`` ("right" / "left", declared from the statistic's definition): the interval, its p and
    the equivalence test take the t statistic's quantiles under that shape (:mod:`dtcore.skew`):
    wider on the side a skewed sample of a few seeds misstates."""
    x = np.asarray([float(v) for v in per_seed_values], dtype=np.float64)
    finite = x[np.isfinite(x)]
    if skew is not None and crit.direction == "within":
        raise ValueError(f"{crit.claim_id}: a declared skew belongs to a directional claim")
    if finite.size < 2:
        values = _values(crit, definition, value=float(np.mean(finite)) if finite.size else float("nan"),
                         n=int(finite.size), per_seed=x.tolist(), method="student-t", seeds_needed=2)
        return Decision("inconclusive", f"{crit.claim_id}: {finite.size} finite per-seed value(s); a seed "
                                        f"aggregate needs at least 2 seeds: a second seed would give one", values)
    if crit.direction == "within":
        eq = statistics.tost(finite, crit.threshold)
        iv, p, method = eq.interval90, eq.p_equivalent, "tost"
        side = _within_side(crit.threshold, (eq.interval90.low, eq.interval90.high),
                            (eq.interval95.low, eq.interval95.high))
        if side == "contradicted":
            iv, p = eq.interval95, eq.p_different
    elif float(np.ptp(finite)) == 0.0:   # no spread for a t interval: the sign test (a tie on the threshold: p = 1)
        return check_sign(crit, x, definition=definition)
    elif skew is not None:
        iv = skewed.interval(finite, skew, CONFIDENCE)
        p, method = skewed.t_test_p(finite, crit.threshold, skew), f"student-t ({skew} skew)"
        side = _side(crit, iv.low, iv.high)
    else:
        iv = statistics.t_interval(finite, CONFIDENCE)
        p, method = statistics.t_test_p(finite, crit.threshold), "student-t"
        side = _side(crit, iv.low, iv.high)
    level = 0.90 if method == "tost" and side != "contradicted" else CONFIDENCE
    values = _values(crit, definition, value=iv.value, ci_low=iv.low, ci_high=iv.high, confidence=level,
                     method=method, n=iv.n, per_seed=x.tolist(), sd=iv.sd, p_value=p, noise_floor=floor,
                     sesoi=crit.sesoi, **({"skew": skew} if skew else {}))
    need = deciding.what_would_decide(values, 1 - CONFIDENCE)
    values["seeds_needed"] = need.seeds
    if crit.sesoi is not None:   # before the floor: an effect shown within sesoi - floor is negligible either way
        eq, negligible = _negligible(crit, finite, floor, skew)
        if negligible:
            values.update(ci_low=eq.interval90.low + crit.threshold, ci_high=eq.interval90.high + crit.threshold,
                          confidence=0.90, p_value=eq.p_equivalent, method="tost (smallest effect of interest)"
                          + (f", {skew} skew" if skew else ""))
            return Decision("negligible", f"{crit.claim_id}: negligible at this scale: the 90 % interval "
                                          f"[{values['ci_low']:.4g}, {values['ci_high']:.4g}] of the mean "
                                          f"{iv.value:.4g} lies within {crit.threshold:g} +- {crit.sesoi:g}, "
                                          f"the smallest effect of interest{_less_floor(floor)} ({crit.statistic})",
                            values)
    reason = _floor_check(crit, iv.value, floor)
    if reason:
        return Decision("inconclusive", f"{reason}; {need.uncorrected}", values)
    kind = "TOST" if method == "tost" else "t" if skew is None else f"t (for {skew}-skewed seeds)"
    text = f"({level:.0%} {kind} interval [{iv.low:.4g}, {iv.high:.4g}])"
    return _decided(side, values, _contradicted(crit, f"mean over {iv.n} seeds", iv.value, text),
                    f"{crit.claim_id}: the {text[1:-1]} of the mean {iv.value:.4g} over {iv.n} seeds "
                    f"straddles the threshold {crit.threshold:g}; {need.uncorrected}{TWO_SEEDS if iv.n == 2 else ''}")


def check_sign(crit: Criterion, per_seed_values: Sequence[float], *, definition: str | None = None) -> Decision:
    """Decide a claim whose per-seed statistic is discrete (a share of a few layers, a rank
    correlation over a few blocks) by the exact sign test: the seeds strictly on the holding side
    against those strictly on the other, a seed on the threshold counting for neither (two-sided
    binomial p at 5 %). The one rule for such a statistic at every n, so that more agreeing evidence
    never turns a verdict away (a t interval on some seeds and a sign test on tied ones did)."""
    x = np.asarray([float(v) for v in per_seed_values], dtype=np.float64)
    finite = x[np.isfinite(x)]
    toward = (finite > crit.threshold) if crit.direction in (">", ">=") else (finite < crit.threshold)
    away = (finite < crit.threshold) if crit.direction in (">", ">=") else (finite > crit.threshold)
    k, m = int(toward.sum()), int(away.sum())
    p = float(stats.binomtest(k, k + m, 0.5).pvalue) if k + m else 1.0
    needed = next(j for j in range(1, 64) if 2 * 0.5 ** j < 1 - CONFIDENCE)   # seeds agreeing: 6
    value = float(np.median(finite)) if finite.size else float("nan")
    values = _values(crit, definition, value=value, method="sign test", n=int(finite.size), per_seed=x.tolist(),
                     p_value=p, seeds_needed=max(needed, k + m + 1) if p >= 1 - CONFIDENCE else None)
    text = f"{k} of {finite.size} seeds beyond the threshold {crit.threshold:g}, {m} short of it (sign test, p = {p:.3g})"
    if p >= 1 - CONFIDENCE:
        return Decision("inconclusive", f"{crit.claim_id}: {text}; {deciding.UNCORRECTED}a sign test decides from "
                                        f"{needed} seeds agreeing", values)
    if m > k:
        return Decision("contradicted", _contradicted(crit, "the median over seeds", value, f"({text})"), values)
    return Decision("holds", "", values)


def check_rate(crit: Criterion, successes: Sequence[bool], *, definition: str | None = None,
               paper_rate: float | None = None) -> Decision:
    """Decide a claim on a yes/no outcome per seed by the 95 % Clopper-Pearson interval of the rate
    of successes: holds when it lies wholly above ``crit.threshold`` (the weaker reading: a chance
    rate, or "most seeds"); contradicted when it lies wholly below it, or wholly below
    ``paper_rate``, the rate the paper's own words claim ("only block 1", "the two peaks are":
    read as at least this share of seeds), which takes precedence. Either way a decidable number
    of seeds exists (:func:`dtcore.deciding.what_would_decide`); the p-value in the family is the
    exact binomial test against the bound that decides (two-sided)."""
    if crit.direction not in (">", ">="):
        raise ValueError(f"{crit.claim_id}: a rate criterion needs direction > or >=, got {crit.direction}")
    k, n = int(sum(bool(s) for s in successes)), len(successes)
    if n == 0:
        return Decision("inconclusive", f"{crit.claim_id}: no seed to count",
                        _values(crit, definition, value=float("nan"), n=0, method="clopper-pearson"))
    ci = stats.binomtest(k, n).proportion_ci(CONFIDENCE, method="exact")
    below_paper = paper_rate is not None and ci.high < paper_rate
    bound = paper_rate if below_paper else crit.threshold
    p = float(stats.binomtest(k, n, bound).pvalue)
    values = _values(crit, definition, value=k / n, ci_low=float(ci.low), ci_high=float(ci.high),
                     confidence=CONFIDENCE, method="clopper-pearson", n=n, per_seed=[bool(s) for s in successes],
                     p_value=p, paper_rate=paper_rate)
    need = deciding.what_would_decide(values, 1 - CONFIDENCE)
    values["seeds_needed"] = need.seeds
    text = f"(95 % Clopper-Pearson interval [{ci.low:.3g}, {ci.high:.3g}], {k} of {n} seeds)"
    if below_paper:
        return Decision("contradicted", f"{crit.claim_id}: the rate {k}/{n} {text} lies below {paper_rate:g}, the "
                                        f"rate the paper's words claim ({crit.statistic}; source: {crit.source})",
                        values)
    return _decided(_side(crit, float(ci.low), float(ci.high)), values, _contradicted(crit, "rate", k / n, text),
                    f"{crit.claim_id}: the rate {k}/{n} {text} straddles {crit.threshold:.3g}"
                    + (f" and reaches the paper's {paper_rate:g}" if paper_rate is not None else "")
                    + f"; {need.uncorrected}")


def too_few_runs(recorded: Mapping[str, Any]) -> int | None:
    """The fewest runs behind an interval computed elsewhere (per environment of its ``per_env``,
    else in all: ``n``) when they are fewer than its ``min_n``, so that :func:`check_interval`
    refuses the interval (it is recorded, but decides nothing); None otherwise."""
    per_env = recorded.get("per_env") or {}
    fewest = min(len(v) for v in per_env.values()) if per_env else int(recorded.get("n") or 0)
    return fewest if fewest < int(recorded.get("min_n") or 0) else None


def check_interval(crit: Criterion, interval: statistics.Interval, *, method: str, definition: str | None = None,
                   min_n: int = 1, per_env: Mapping[str, Sequence[float]] | None = None, **values: Any) -> Decision:
    """Decide a claim on an interval computed elsewhere (a stratified bootstrap over environments):
    wholly on one side of the threshold, or inconclusive. Fewer than ``min_n`` runs in an
    environment of ``per_env`` (in all, without it) are inconclusive: the stratified percentile
    bootstrap covers 89-90 % at 5 runs per environment and 93-95 % from 15 (docs/statistics.md)."""
    recorded = _values(crit, definition, value=interval.value, ci_low=interval.low, ci_high=interval.high,
                       confidence=CONFIDENCE, method=method, n=interval.n, min_n=min_n,
                       **({"per_env": {e: list(v) for e, v in per_env.items()}} if per_env else {}), **values)
    fewest = too_few_runs(recorded)
    if fewest is not None:
        where = "per environment" if per_env else "in all"
        need = deciding.what_would_decide(recorded, 1 - CONFIDENCE)
        recorded["seeds_needed"] = need.seeds
        return Decision("inconclusive", f"{crit.claim_id}: {fewest} runs {where}; a {method} interval needs at least "
                                        f"{min_n} {where} to keep its 95 %: {need.text}", recorded)
    text = f"({CONFIDENCE:.0%} {method} interval [{interval.low:.4g}, {interval.high:.4g}])"
    return _decided(_side(crit, interval.low, interval.high), recorded,
                    _contradicted(crit, "measured", interval.value, text),
                    f"{crit.claim_id}: the {text[1:-1]} of {interval.value:.4g} straddles the threshold "
                    f"{crit.threshold:g}")


# -- "every component" claims: intersection-union ------------------------------------------

def _every_levels(k: int, exceptions: int) -> tuple[float, float]:
    """(confidence of each component's interval for "holds", for "contradicted").

    "Every component but at most ``e``" holds when at least k - e components clear the threshold,
    each at one-sided level 2.5 % / (e + 1): any configuration where the claim is false has e + 1
    components on the wrong side, and one of them must clear for "holds", so the false-holds rate
    is at most (e + 1) x 2.5 % / (e + 1). With e = 0 this is the intersection-union test (each
    component at 2.5 %, no correction). "Contradicted" needs e + 1 components wholly on the wrong
    side at one-sided 2.5 % / k each (Bonferroni over the k components): where the claim is true,
    one of them is a component that truly clears."""
    alpha = (1 - CONFIDENCE) / 2
    return 1 - 2 * alpha / (exceptions + 1), 1 - 2 * alpha / k


def _every_decision(crit: Criterion, means: np.ndarray, holding: np.ndarray, against: np.ndarray, *,
                    exceptions: int, labels: Sequence[str], floor: float | None, values: dict[str, Any],
                    what: str) -> Decision:
    """``holding`` / ``against``: [k, 2] intervals of the components at the two levels of
    :func:`_every_levels`."""
    k = means.size
    outside = np.ones(k, dtype=bool) if floor is None or not math.isfinite(floor) else \
        np.abs(means - crit.threshold) > floor
    clears = [bool(o and crit.holds(lo) and crit.holds(hi)) for (lo, hi), o in zip(holding, outside)]
    wrong = [bool(o and not crit.holds(lo) and not crit.holds(hi)) for (lo, hi), o in zip(against, outside)]
    need = k - exceptions
    but = f" (all but {exceptions})" if exceptions else ""
    if sum(clears) >= need:
        return Decision("holds", "", values)
    if sum(wrong) >= exceptions + 1:
        names = ", ".join(labels[j] for j in np.flatnonzero(wrong))
        return Decision("contradicted", f"{crit.claim_id}: {what}: {sum(wrong)} of {k} components lie wholly on the "
                                        f"wrong side of {crit.threshold:g} ({names}; each at 95 % / {k}, "
                                        f"Bonferroni), where at most {exceptions} may ({crit.statistic}; source: "
                                        f"{crit.source})", values)
    blocked = int((~outside).sum())
    floor_text = f"; {blocked} lie within the estimator's noise floor ({floor:.3g})" if blocked else ""
    return Decision("inconclusive", f"{crit.claim_id}: {what}: {sum(clears)} of {k} components clear "
                                    f"{crit.threshold:g}{but} and {sum(wrong)} lie wholly on the other side; "
                                    f"{need} must clear for it to hold{floor_text}", values)


NEGLIGIBLE_EVERY = "intersection-union tost (smallest effect of interest)"


def every_negligible(crit: Criterion, per_seed: np.ndarray, floor: float | None = None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The null of an "every component" claim with a smallest effect of interest: negligible when
    **every** component's effect (its mean over the seeds minus the threshold) is shown within
    +-``crit.sesoi`` by its own equivalence test at 5 % (TOST, the 90 % t interval), the
    exceptions included: an intersection-union test, so each component at the claim's level, no
    correction. A noise ``floor`` (which bounds the estimator's bias) narrows the margin to
    sesoi - floor. ``per_seed`` [..., n, k] (leading axes: replications of a simulation) ->
    (shown [...], each component's p [..., k], its 90 % interval around the threshold [..., k, 2])."""
    if crit.sesoi is None:
        raise ValueError(f"{crit.claim_id}: a negligible 'every component' claim needs a smallest effect of interest")
    margin = crit.sesoi - (floor if floor is not None and math.isfinite(floor) else 0.0)
    p, interval = statistics.tost_columns(np.asarray(per_seed, dtype=np.float64) - crit.threshold, margin)
    return (p < 0.05).all(axis=-1), p, interval + crit.threshold   # TOST at 5 %: the 90 % interval inside


def _every_negligible(crit: Criterion, means: np.ndarray, intervals: np.ndarray, labels: Sequence[str],
                      values: dict[str, Any], *, what: str, p: np.ndarray | None = None) -> Decision:
    """The negligible outcome of an "every component" claim: records the component whose
    equivalence is least clear (the largest p, or the interval reaching furthest from the
    threshold) with its 90 % interval, every component's 90 % interval, and the IUT's p (the largest)."""
    w = int(np.argmax(p)) if p is not None else int(np.argmax(np.abs(intervals - crit.threshold).max(axis=1)))
    values.update(value=float(means[w]), ci_low=float(intervals[w, 0]), ci_high=float(intervals[w, 1]),
                  confidence=0.90, components=_components(labels, means, intervals),
                  **({"p_value": float(p[w])} if p is not None else {}))
    return Decision("negligible", f"{crit.claim_id}: negligible at this scale: {what}, each of the {means.size} "
                                  f"components' 90 % interval lies within {crit.threshold:g} +- {crit.sesoi:g}, the "
                                  f"smallest effect of interest{_less_floor(values.get('noise_floor'))} (the "
                                  f"furthest: {labels[w]}, [{intervals[w, 0]:.4g}, {intervals[w, 1]:.4g}]; "
                                  f"{crit.statistic})", values)


def _weakest(means: np.ndarray, crit: Criterion, exceptions: int) -> int:
    """The component that decides "holds": the (exceptions + 1)-th least favourable mean."""
    order = np.argsort(means if crit.direction in (">", ">=") else -means, kind="stable")
    return int(order[min(exceptions, means.size - 1)])


def check_every(crit: Criterion, per_seed: np.ndarray, *, exceptions: int = 0, labels: Sequence[str] = (),
                definition: str | None = None, floor: float | None = None) -> Decision:
    """Decide a claim stated for every component (epoch, position, block) but at most
    ``exceptions``, over the seeds: ``per_seed`` [n, k] holds each seed's k components; each
    component gets its own Student-t interval over the seeds (:func:`_every_levels`), and no
    minimum or order statistic of noisy estimates is decided on. A component undefined (nan) on
    all but one seed is left out; a seed with any other undefined component is dropped. A
    component within the noise ``floor`` of the threshold neither clears nor contradicts. Records
    the deciding component (the (exceptions + 1)-th least favourable mean) as the value, with its
    interval, and as the p-value the (exceptions + 1)-th largest of the components' two-sided p.
    With a smallest effect of interest (``crit.sesoi``) the claim is **negligible** when every
    component is shown within it (:func:`every_negligible`), whichever side the intervals lie on."""
    x = np.asarray(per_seed, dtype=np.float64)
    if x.ndim != 2 or crit.direction == "within":
        raise ValueError(f"{crit.claim_id}: check_every takes [seeds, components] values and a directional criterion")
    labels = list(labels) or [f"component {j}" for j in range(x.shape[1])]
    defined = np.isfinite(x).sum(axis=0) >= 2            # a component undefined on a seed is left out
    x, labels = x[:, defined], [lab for lab, d in zip(labels, defined) if d]
    finite = x[np.isfinite(x).all(axis=1)]
    n, k = finite.shape
    if n < 2 or not 0 <= exceptions < k:
        values = _values(crit, definition, value=float("nan"), n=int(n), method="intersection-union t")
        return Decision("inconclusive", f"{crit.claim_id}: {n} seed(s) with every component finite and {k} "
                                        f"component(s); a seed aggregate needs at least 2 seeds and more components "
                                        f"than the {exceptions} exception(s)", values)
    hold_level, against_level = _every_levels(k, exceptions)
    holding = statistics.t_interval_rows(finite.T, hold_level)       # [k, 2]: each component's t interval
    against = statistics.t_interval_rows(finite.T, against_level)
    means, sd = finite.mean(axis=0), finite.std(axis=0, ddof=1)
    p_each = statistics.t_test_p_rows(finite.T, crit.threshold)   # each component's two-sided p
    w = _weakest(means, crit, exceptions)
    values = _values(crit, definition, value=float(means[w]), ci_low=float(holding[w, 0]),
                     ci_high=float(holding[w, 1]), confidence=hold_level, method="intersection-union t", n=int(n),
                     per_seed=x[:, w].tolist(), sd=float(sd[w]), p_value=float(np.sort(p_each)[::-1][exceptions]),
                     noise_floor=floor, components=_components(labels, means, holding), exceptions=exceptions,
                     sesoi=crit.sesoi)
    need = deciding.what_would_decide(values, 1 - CONFIDENCE)
    values["seeds_needed"] = need.seeds
    if crit.sesoi is not None:   # the null first, as in check_aggregate: shown negligible beats a clearing interval
        shown, p_eq, iv90 = every_negligible(crit, finite, floor)
        if shown:
            j = int(np.argmax(p_eq))
            values.update(per_seed=x[:, j].tolist(), sd=float(sd[j]), method=NEGLIGIBLE_EVERY)
            return _every_negligible(crit, means, iv90, labels, values, what=f"over {n} seeds", p=p_eq)
    decision = _every_decision(crit, means, holding, against, exceptions=exceptions, labels=labels, floor=floor,
                               values=values, what=f"over {n} seeds")
    if decision.outcome == "inconclusive":
        decision = Decision("inconclusive", f"{decision.message}; {need.uncorrected}", values)
    if decision.outcome == "contradicted":   # its p: the (e + 1)-th smallest wrong-side p, times k (Bonferroni)
        wrong = np.sort(p_each[[not crit.holds(float(m)) for m in means]])
        values["p_value"] = float(min(1.0, k * wrong[exceptions]))
    return decision


def check_every_units(crit: Criterion, values: Sequence[float], reps: np.ndarray, *, units: str, n_units: int,
                      exceptions: int = 0, labels: Sequence[str] = (), definition: str | None = None) -> Decision:
    """:func:`check_every` on one seed: each component's interval from its half-sample replicates
    ``reps`` [R, k] over the run's ``units``; negligible when every component's 90 % interval lies
    within the threshold +- ``crit.sesoi``."""
    v = np.asarray(values, dtype=np.float64)
    r = np.asarray(reps, dtype=np.float64).reshape(-1, v.size)
    k = v.size
    labels = list(labels) or [f"component {j}" for j in range(k)]
    if n_units < MIN_UNITS:
        w = _weakest(v, crit, exceptions)
        return describe(crit, float(v[w]), definition=definition,
                        why=f"{_too_few_units(n_units, units)}; shown: the weakest component")
    hold_level, against_level = _every_levels(k, exceptions)

    def intervals(level: float) -> np.ndarray:
        ivs = [statistics.replicate_interval(v[j], r[:, j], n_units, level) for j in range(k)]
        return np.array([[iv.low, iv.high] for iv in ivs])

    holding, against = intervals(hold_level), intervals(against_level)
    w = _weakest(v, crit, exceptions)
    recorded = _values(crit, definition, value=float(v[w]), ci_low=float(holding[w, 0]), ci_high=float(holding[w, 1]),
                       confidence=hold_level, method="intersection-union half-sample", n=1, units=units,
                       n_units=int(n_units), components=_components(labels, v, holding), sesoi=crit.sesoi)
    if not (np.isfinite(v).all() and np.isfinite(holding).all()):
        return Decision("inconclusive", f"{crit.claim_id}: too few finite replicates over the {units} to give "
                                        f"every component an interval", recorded)
    if crit.sesoi is not None:   # each component's 90 % interval inside threshold +- sesoi (IUT, as in check_every)
        iv90 = intervals(0.90)
        if (np.abs(iv90 - crit.threshold) < crit.sesoi).all():
            recorded["method"] = "intersection-union half-sample (smallest effect of interest)"
            return _every_negligible(crit, v, iv90, labels, recorded, what=f"over {n_units} {units}")
    return _every_decision(crit, v, holding, against, exceptions=exceptions, labels=labels, floor=None,
                           values=recorded, what=f"over {n_units} {units}")


def _components(labels: Sequence[str], means: np.ndarray, intervals: np.ndarray) -> list[list]:
    return [[str(lab), float(m), float(lo), float(hi)] for lab, m, (lo, hi) in zip(labels, means, intervals)]
