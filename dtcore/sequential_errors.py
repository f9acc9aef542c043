"""The error of the sequential design (:mod:`dtcore.sequential`) over all its looks, for each
decision rule of :mod:`dtcore.verdicts`, by simulation (issue #31; ``docs/statistics.md``,
"Sequential design").

One claim is run through the looks as :func:`dtcore.sequential.close_look` runs it, R
replications at once (:func:`through_looks`): at look k its rule decides on the first n_k seeds
and records a p-value, :func:`dtcore.sequential.boundary_p` puts it on the boundaries' scale, the
claim's repeated p-value is the smallest :meth:`~dtcore.sequential.Design.repeated_p` so far, and
Benjamini-Hochberg over a family of one (:func:`~dtcore.sequential.decided_now`) decides it with
the look's raw outcome, frozen from then on. Futility is left out: it is non-binding and only
lowers the error, so the rates are upper bounds.

A rule (:data:`Rule`) maps [R, n] per-seed values to each replication's outcome and recorded p:

- the discrete ones (:func:`tabulated`): the sign test's and the rate rule's outcome and p depend
  only on how many of the n seeds lie on one side, so the verdict function itself
  (:func:`~dtcore.verdicts.check_sign`, :func:`~dtcore.verdicts.check_rate`) is called once per
  count and look, and indexed;
- the continuous ones (:func:`t_rule`, :func:`log_rule`, :func:`within_rule`,
  :func:`sesoi_rule`, the first and last also under a declared skew): :func:`~dtcore.verdicts.check_aggregate`'s and
  :func:`~dtcore.verdicts.check_log_aggregate`'s rules over rows, from
  :func:`dtcore.statistics.t_test_p_rows` (``tests/test_sequential.py`` checks that they agree
  with the verdict functions sample by sample).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from dtcore import skew as skewed, statistics
from dtcore.sequential import Design, boundary_p, decided_now
from dtcore.verdicts import CONFIDENCE, POWER, Decision

LEVEL = 1 - CONFIDENCE       # the fixed-sample rules' two-sided level
Rule = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]   # [R, n] -> (outcome [R], recorded p [R])


@dataclass(frozen=True)
class Simulated:
    """One claim through the looks: the share of replications decided with each outcome."""

    holds: float          # share decided "holds" (above the threshold, for a ">" claim)
    contradicted: float   # share decided "contradicted"
    negligible: float     # share decided "negligible" (an equivalence shown)
    mean_seeds: float     # average seeds when it stops (decided, or the last look)
    reps: int


def through_looks(design: Design, values: np.ndarray, rule: Rule, method: str) -> Simulated:
    """The sequential procedure of one claim decided by ``rule`` (recording its p as ``method``
    does) over ``values`` [R, N], N at least the last look's seeds: look k reads ``values[:, :n_k]``."""
    reps = values.shape[0]
    repeated = np.ones(reps)
    decided = np.full(reps, "", dtype="<U12")
    seeds = np.full(reps, float(design.looks[-1]))
    open_ = np.ones(reps, dtype=bool)
    for k, n in enumerate(design.looks):
        outcome, p = rule(values[:, :n])
        repeated = np.minimum(repeated, design.repeated_p(k, boundary_p(p, outcome, method)))
        decisive = np.isin(outcome, ("holds", "contradicted", "negligible"))
        now = decided_now(repeated[:, None], decisive[:, None], design.alpha)[:, 0] & open_
        decided[now], seeds[now] = outcome[now], n
        open_ &= ~now
    return Simulated(float(np.mean(decided == "holds")), float(np.mean(decided == "contradicted")),
                     float(np.mean(decided == "negligible")), float(seeds.mean()), reps)


def simulate(design: Design, effect: float, *, reps: int, seed: int = 0) -> Simulated:
    """``reps`` replications of a ">" claim at threshold 0 whose per-seed values are N(effect, 1),
    decided by the seed aggregate's t test (:func:`t_rule`)."""
    x = np.random.default_rng(seed).normal(effect, 1.0, (reps, design.looks[-1]))
    return through_looks(design, x, t_rule(0.0), "student-t")


# -- the rules over rows --------------------------------------------------------------------

def t_rule(threshold: float, skew: str | None = None) -> Rule:
    """check_aggregate for a ">" claim: its 95 % t interval wholly above (holds) or below
    (contradicted) ``threshold``, i.e. the two-sided t p below 5 %; records that p. ``skew``: a
    declared skew, the t quantiles under that shape (:func:`dtcore.skew.t_test_p_rows`)."""
    def rule(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p = statistics.t_test_p_rows(x, threshold) if skew is None else skewed.t_test_p_rows(x, threshold, skew)
        side = np.where(x.mean(axis=1) > threshold, "holds", "contradicted")
        return np.where(p < LEVEL, side, "inconclusive"), p
    return rule


def log_rule(threshold: float) -> Rule:
    """check_log_aggregate for a ">" claim on positive ratios: :func:`t_rule` on their logs."""
    inner = t_rule(float(np.log(threshold)))
    return lambda x: inner(np.log(x))


def _one_sided(x: np.ndarray, at: float, upper: bool) -> np.ndarray:
    """[R] one-sided p of the t statistic of mean == ``at``: P(T >= t) (``upper``) or P(T <= t)."""
    p2 = statistics.t_test_p_rows(x, at)
    return np.where((x.mean(axis=1) > at) == upper, p2 / 2, 1 - p2 / 2)


def _tost(x: np.ndarray, margin: float) -> tuple[np.ndarray, np.ndarray]:
    """[R] statistics.tost's p_equivalent (the larger one-sided p against -+margin) and
    p_different (one-sided, |mean| beyond the margin on the mean's side)."""
    p_equivalent = np.maximum(_one_sided(x, -margin, True), _one_sided(x, margin, False))
    p_different = np.where(x.mean(axis=1) >= 0, _one_sided(x, margin, True), _one_sided(x, -margin, False))
    return p_equivalent, p_different


def within_rule(margin: float) -> Rule:
    """check_aggregate for direction "within" ``margin``: holds when the 90 % interval lies inside
    (p_equivalent below 5 %), else contradicted when the 95 % interval lies wholly beyond a
    margin (p_different below 2.5 %); records p_different when contradicted, else p_equivalent."""
    def rule(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p_eq, p_diff = _tost(x, margin)
        holds, different = p_eq < LEVEL, p_diff < LEVEL / 2
        outcome = np.where(holds, "holds", np.where(different, "contradicted", "inconclusive"))
        return outcome, np.where(different & ~holds, p_diff, p_eq)
    return rule


def sesoi_rule(threshold: float, sesoi: float, skew: str | None = None) -> Rule:
    """check_aggregate for a ">" claim with a smallest effect of interest: negligible (recording
    the TOST p) when the effect is shown within +-``sesoi``, else :func:`t_rule`; ``skew`` as there."""
    t = t_rule(threshold, skew)

    def rule(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        outcome, p = t(x)
        p_eq = _tost(x - threshold, sesoi)[0] if skew is None else skewed.tost_p_rows(x - threshold, sesoi, skew)
        negligible = p_eq < LEVEL
        return np.where(negligible, "negligible", outcome), np.where(negligible, p_eq, p)
    return rule


def tabulated(decide: Callable[[Sequence[bool]], Decision]) -> Rule:
    """A rule over [R, n] booleans (a seed on the holding side, or a success) whose outcome and p
    depend only on their count: ``decide`` (a verdict function) on k True and n - k False, for
    every k, once per n."""
    tables: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def rule(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = x.shape[1]
        if n not in tables:
            made = [decide([True] * k + [False] * (n - k)) for k in range(n + 1)]
            tables[n] = (np.array([d.outcome for d in made]), np.array([d.values["p_value"] for d in made]))
        outcome, p = tables[n]
        k = x.sum(axis=1)
        return outcome[k], p[k]
    return rule


def futile_t(mean: np.ndarray, sd: np.ndarray, level: float, max_seeds: int) -> np.ndarray:
    """The t path of the futility rule over arrays (for simulations): the seeds
    :func:`dtcore.statistics.seeds_needed` would ask for at ``level`` exceed ``max_seeds``, i.e. the
    t test's power at ``max_seeds`` seeds is below :data:`dtcore.verdicts.POWER`."""
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.where(sd > 0, np.abs(mean) / sd, np.inf)
    return statistics.t_power(d, max_seeds, alpha=level) < POWER
