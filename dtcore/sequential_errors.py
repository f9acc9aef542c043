"""The error of the sequential design (:mod:`dtcore.sequential`) over all its looks, for each
decision rule of :mod:`dtcore.verdicts` and for a family mixing them, by simulation (issue #31; ``docs/statistics.md``,
"Sequential design").

A family of claims is run through the looks as :func:`dtcore.sequential.close_look` runs it, R
replications at once (:func:`family_through_looks`): at look k each open member's rule decides on
its first n_k seeds and records a p-value, :func:`dtcore.sequential.boundary_p` puts it on the
boundaries' scale, the member's repeated p-value is the smallest
:meth:`~dtcore.sequential.Design.repeated_p` so far, and Benjamini-Hochberg over every member's
repeated p-value (:func:`~dtcore.sequential.decided_now`) decides the open ones with the look's
raw outcome, frozen from then on. Members that share runs are given values drawn from the same
runs, row by row. One claim (:func:`through_looks`) is a family of one. Futility is left out: it
is non-binding and only lowers the error (a stopped member keeps a repeated p-value at least as
large, and Benjamini-Hochberg is monotone), so the rates are upper bounds.

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
from dtcore.verdicts import CONFIDENCE, DECISIVE, POWER, Decision

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


Member = tuple[Rule, str, np.ndarray]   # (its rule, the method it records, per-seed values [R, N])


@dataclass(frozen=True)
class FamilyError:
    """A family's false decisions over all looks."""

    family_wise: float       # share of replications with at least one member decided falsely
    false_discovery: float   # mean share of false decisions among a replication's decisions (0 without any)
    decided: float           # mean members decided per replication, rightly or not
    reps: int


@dataclass(frozen=True)
class FamilyRun:
    """A family through the looks: the outcome each member is decided with, per replication."""

    outcomes: np.ndarray   # [R, m] the outcome a member is decided with ("" when it never is)
    seeds: np.ndarray      # [R, m] its seeds when it stops (decided, or the last look)

    def error(self, false: Sequence[Sequence[str]]) -> FamilyError:
        """The false decisions when ``false[j]`` are the outcomes false for member j at its values."""
        if len(false) != self.outcomes.shape[1]:
            raise ValueError(f"false must name the false outcomes of each of the {self.outcomes.shape[1]} "
                             f"members, got {len(false)}")
        wrong = np.stack([np.isin(self.outcomes[:, j], f) for j, f in enumerate(false)], axis=1)   # [R, m]
        made = (self.outcomes != "").sum(axis=1)
        return FamilyError(float(wrong.any(axis=1).mean()), float(np.mean(wrong.sum(axis=1) / np.maximum(made, 1))),
                           float(made.mean()), self.outcomes.shape[0])


def family_through_looks(design: Design, members: Sequence[Member]) -> FamilyRun:
    """The sequential procedure of a family of claims, each decided by its own rule (recording its
    p as its method does) over its values [R, N], N at least the last look's seeds; row r of every
    member is replication r (members that share runs share them row by row). At look k each open
    member's rule reads ``values[:, :n_k]``, its boundary p lowers its repeated p-value, and
    Benjamini-Hochberg over all m repeated p-values (a decided member's frozen) decides the open
    members whose raw outcome is decisive, as :func:`dtcore.sequential.close_look` does."""
    reps, m = members[0][2].shape[0], len(members)
    repeated = np.ones((reps, m))
    outcome = np.full((reps, m), "inconclusive", dtype="<U12")   # each member's raw outcome at its last look
    decided = np.full((reps, m), "", dtype="<U12")
    seeds = np.full((reps, m), float(design.looks[-1]))
    open_ = np.ones((reps, m), dtype=bool)
    for k, n in enumerate(design.looks):
        for j, (rule, method, values) in enumerate(members):
            raw, p = rule(values[:, :n])
            at = np.minimum(repeated[:, j], design.repeated_p(k, boundary_p(p, raw, method)))
            repeated[:, j] = np.where(open_[:, j], at, repeated[:, j])
            outcome[:, j] = np.where(open_[:, j], raw, outcome[:, j])
        now = decided_now(repeated, np.isin(outcome, DECISIVE), design.alpha) & open_
        decided[now], seeds[now] = outcome[now], n
        open_ &= ~now
    return FamilyRun(decided, seeds)


def through_looks(design: Design, values: np.ndarray, rule: Rule, method: str) -> Simulated:
    """The sequential procedure of one claim decided by ``rule`` (recording its p as ``method``
    does) over ``values`` [R, N], N at least the last look's seeds: look k reads ``values[:, :n_k]``."""
    run = family_through_looks(design, [(rule, method, values)])
    decided = run.outcomes[:, 0]
    return Simulated(float(np.mean(decided == "holds")), float(np.mean(decided == "contradicted")),
                     float(np.mean(decided == "negligible")), float(run.seeds.mean()), values.shape[0])


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
