"""The headline policy over the decision rules' outcomes (``docs/statistics.md``, "The
correction"; ``reports/headline.py`` renders it): :func:`speaking_definition` (which definition's
seed aggregate speaks for a claim), :func:`conjunction` and :func:`conjunction_p` (a claim stated
for every variant, and its one p-value in the correction family), :func:`corrected_outcome` (a
decisive verdict whose adjusted p is at least :data:`ALPHA` is inconclusive after the correction:
Benjamini-Hochberg primary, Holm beside it), :func:`next_step_level` (the level an undecided claim
must reach) and :func:`premise_outcome`. The correction family is every declared claim x selected
environment where it is stated (``dtcore.claim.claim_family``), whatever ran: a claim not run
counts as p = 1, so ``-k`` changes no verdict.
"""

from __future__ import annotations

import math
from typing import Sequence

from dtcore.verdicts import DECISIVE

ALPHA = 0.05           # level of the corrections: false discovery rate (BH, primary), family-wise (Holm)
DEFINITION_PREFERENCE = ("paper", None, "as-run", "sound")   # which definition's aggregate speaks
NOT_TESTED = "not tested"


def speaking_definition(definitions: Sequence[str | None]) -> str | None:
    """Of the definitions a claim ran under, the one whose seed aggregate speaks for it in the
    headline: the paper's, else the claim's only one, else as-run, else sound."""
    present = set(definitions)
    for d in DEFINITION_PREFERENCE:
        if d in present:
            return d
    return sorted(d for d in present if d)[0]


def conjunction(outcomes: Sequence[str]) -> str:
    """The outcome of a claim stated for every variant: contradicted if any variant is, else error
    if any errs, else inconclusive if any is, else negligible if any variant's effect is (the claim
    does not hold meaningfully for it), else holds; descriptive / skipped variants carry no verdict
    and are left out (all of them descriptive -> descriptive, else skipped)."""
    decided = [o for o in outcomes if o not in ("descriptive", "skipped")]
    if not decided:
        return "descriptive" if outcomes and all(o == "descriptive" for o in outcomes) else "skipped"
    for o in ("contradicted", "error", "inconclusive", "negligible"):
        if o in decided:
            return o
    return "holds"


def conjunction_p(outcomes: Sequence[str], pvalues: Sequence[float | None]) -> float | None:
    """The p-value of a claim stated for every variant, for the correction family of claims:
    holds only when every variant holds, an intersection-union test whose p is the largest of the
    variants'; contradicted (or negligible) when any variant is, so the smallest such p times the
    number of variants (Bonferroni); undecided, the largest of the variants' p (1 where one is
    missing, or no variant carries a verdict); None when a decisive variant recorded no p (an
    interval-only rule: left uncorrected, and the report says so)."""
    outcome = conjunction(outcomes)
    if outcome == "holds":
        ps = [p for o, p in zip(outcomes, pvalues) if o == "holds"]
        return None if any(p is None for p in ps) else max(ps)
    if outcome in ("contradicted", "negligible"):
        ps = [p for o, p in zip(outcomes, pvalues) if o == outcome]
        return None if any(p is None for p in ps) else min(1.0, len(outcomes) * min(ps))
    if outcome in ("descriptive", "skipped") or any(p is None for p in pvalues):
        return 1.0
    return max(pvalues)


def corrected_outcome(outcome: str, p_adjusted: float | None) -> str:
    """A decisive outcome whose adjusted p-value (Benjamini-Hochberg or Holm over the family) is
    at least :data:`ALPHA` is inconclusive after the correction; anything else is unchanged."""
    if outcome in DECISIVE and p_adjusted is not None and p_adjusted >= ALPHA:
        return "inconclusive"
    return outcome


def next_step_level(p_adjusted: Sequence[float], m: int) -> float:
    """The level an undecided claim's p must reach to be decided by Benjamini-Hochberg when the
    others stay as they are: the next step, (R + 1) x alpha / m, R the claims decided now."""
    decided = sum(1 for p in p_adjusted if p is not None and math.isfinite(p) and p < ALPHA)
    return min(ALPHA, (decided + 1) * ALPHA / max(m, 1))


def premise_outcome(outcomes: Sequence[str]) -> str:
    """The premise from its parts' outcomes: contradicted if any part is, else negligible if any
    part's effect is shown too small to matter (the premise does not hold at this scale), else
    error if any errs, else "not tested" if any part is (or there is no part), else inconclusive
    if any is, else holds. A part without a verdict (descriptive, skipped) is "not tested"."""
    parts = [NOT_TESTED if o in ("descriptive", "skipped") else o for o in outcomes]
    if not parts:
        return NOT_TESTED
    for o in ("contradicted", "negligible", "error", NOT_TESTED, "inconclusive"):
        if o in parts:
            return o
    return "holds"
