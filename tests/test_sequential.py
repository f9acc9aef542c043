"""The sequential design (dtcore.sequential), checked by simulation with the project's own
decision rules: each claim's error per side over all looks for every rule (t, sign test, rate
against the paper's, TOST, log scale), the family's error under the global null for claims that
share runs (t claims, and a family mixing every rule; beside true effects its false discovery
rate), the seeds it saves at a 1-sd effect, the budget, a resumed procedure and the plan's
time for the runs not yet in the cache. Every simulation has at least 2000 replications,
vectorised over them."""

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest
from scipy import stats

from dtcore import sequential, sequential_errors, statistics
from dtcore.deciding import what_would_decide
from dtcore.sequential import Design, Observation, SequentialState, looks_for
from dtcore.sequential_errors import (FamilyRun, family_through_looks, log_rule, sesoi_rule, simulate, t_rule,
                                      tabulated, through_looks, within_rule)
from dtcore.policy import ALPHA
from dtcore.verdicts import Criterion, check_aggregate, check_log_aggregate, check_rate, check_sign

REPS = 20000
DESIGN = Design(looks_for(20))


def tolerance(rate: float, reps: int) -> float:
    """Three Monte Carlo standard errors of a rate estimated from ``reps`` replications."""
    return 3 * math.sqrt(rate * (1 - rate) / reps)


def test_the_looks_are_fixed_counts_up_to_the_maximum():
    assert looks_for(20) == (3, 5, 8, 12, 16, 20)
    assert looks_for(10) == (3, 5, 8, 10)
    assert looks_for(40) == (3, 5, 8, 12, 16, 20, 27, 36, 40)


def test_the_boundaries_spend_the_level_over_the_looks():
    """Little at 3 seeds, the nominal level rises look by look and the last look's stays below the
    level; a p exactly on a look's boundary has repeated p alpha."""
    levels, spent = DESIGN.levels(), DESIGN.spent()
    assert levels[0] < 0.002 and np.all(np.diff(levels) > 0) and levels[-1] < ALPHA
    assert spent[-1] == pytest.approx(ALPHA) and np.all(np.diff(spent) > 0)
    for k, level in enumerate(levels):
        assert float(DESIGN.repeated_p(k, level)) == pytest.approx(ALPHA, rel=1e-6)
    assert float(DESIGN.repeated_p(2, 0.9)) == 1.0


@pytest.mark.parametrize("spending", sequential.SPENDING)
def test_a_claim_at_the_threshold_is_falsely_decided_at_most_2_5_percent_per_side_over_all_looks(spending):
    sim = simulate(Design(looks_for(20), spending=spending), 0.0, reps=REPS, seed=7)
    for rate in (sim.holds, sim.contradicted):
        assert rate <= ALPHA / 2 + tolerance(ALPHA / 2, REPS), sim


def _family_null(reps: int, seed: int) -> float:
    """The whole procedure on six synthetic claims sharing three runs per seed (a, b, c; claims
    a, b, c, a - b, a - c, b - c, all at their threshold): the share of replications in which any
    claim is decided, i.e. the family-wise (here also the false-discovery) rate."""
    looks, max_seeds = DESIGN.looks, DESIGN.looks[-1]
    runs = np.random.default_rng(seed).normal(size=(reps, max_seeds, 3))
    shared = np.stack([runs[..., 0], runs[..., 1], runs[..., 2], runs[..., 0] - runs[..., 1],
                       runs[..., 0] - runs[..., 2], runs[..., 1] - runs[..., 2]], axis=-1)    # [R, n, m]
    m = shared.shape[-1]
    repeated = np.ones((reps, m))
    open_ = np.ones((reps, m), dtype=bool)
    decided = np.zeros((reps, m), dtype=bool)
    for k, n in enumerate(looks):
        x = shared[:, :n]
        p = np.stack([statistics.t_test_p_rows(x[..., j], 0.0) for j in range(m)], axis=1)
        repeated = np.where(open_, np.minimum(repeated, DESIGN.repeated_p(k, p)), repeated)
        decisive = p < ALPHA                                         # the raw 95 % interval excludes it
        now = sequential.decided_now(repeated, decisive | decided) & open_
        decided |= now
        open_ &= ~now
        level = float(DESIGN.levels()[-1])
        futile = sequential_errors.futile_t(x.mean(axis=1), x.std(axis=1, ddof=1), level, max_seeds)
        open_ &= ~futile
    return float(decided.any(axis=1).mean())


def test_the_corrected_family_error_is_at_most_5_percent_under_the_global_null_with_shared_runs():
    rate = _family_null(4000, seed=3)
    assert rate <= ALPHA + tolerance(ALPHA, 4000), rate


def test_at_a_1_sd_effect_it_needs_at_most_70_percent_of_the_fixed_designs_seeds_at_the_same_power():
    """The fixed design: the fewest seeds whose t test at 5 % has at least the sequential design's
    simulated power at a 1-sd effect (statistics.t_power, as seeds_needed counts them)."""
    sim = simulate(DESIGN, 1.0, reps=REPS, seed=11)
    fixed = next(n for n in range(2, 100) if statistics.t_power(1.0, n, alpha=ALPHA) >= sim.holds)
    assert sim.holds > 0.95 and sim.contradicted < 0.001
    assert sim.mean_seeds <= 0.7 * fixed, (sim, fixed)


@pytest.mark.parametrize("mean, sd, n", [(0.3, 1.0, 5), (1.0, 1.0, 3), (0.05, 1.0, 8), (2.0, 0.5, 3), (0.4, 2.0, 12)])
def test_the_vectorised_futility_rule_agrees_with_what_would_decide(mean, sd, n):
    level, max_seeds = float(DESIGN.levels()[-1]), 20
    need = what_would_decide({"method": "student-t", "n": n, "value": mean, "sd": sd, "threshold": 0.0}, level)
    futile = need.seeds is None or need.seeds > max_seeds
    assert bool(sequential_errors.futile_t(np.array(mean), np.array(sd), level, max_seeds)) == futile


# -- every decision rule's error over the looks -------------------------------------------------

RULE_REPS = 20000
SIGN = Criterion("sec5_1.a_share", "a share of a few layers", ">", 0.5, None, "a test")
WITHIN = Criterion("table1.alike", "a difference within a margin", "within", 2.0, None, "a test")
SESOI = Criterion("table1.better", "a difference", ">", 0.0, None, "a test", sesoi=1.0)
T = Criterion("sec5_3.larger", "a difference", ">", 0.0, None, "a test")
RATIO = Criterion("table1.ratio", "a ratio", ">", 0.5, None, "a test")
PAPER_RATE = 0.8   # the rate claims' paper_rate (sec5_6_1.block_one_is_the_exception, appG2's top two)


def _normal(mean: float, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(mean, 1.0, (RULE_REPS, DESIGN.looks[-1]))


def _coin(rate: float, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((RULE_REPS, DESIGN.looks[-1])) < rate


def _sign_rule() -> sequential_errors.Rule:
    return tabulated(lambda toward: check_sign(SIGN, [1.0 if t else 0.0 for t in toward]))


def _rate_rule(threshold: float, paper_rate: float | None = PAPER_RATE) -> sequential_errors.Rule:
    crit = Criterion("sec5_6_1.a_rate", "a rate of seeds", ">", threshold, None, "a test")
    return tabulated(lambda successes: check_rate(crit, successes, paper_rate=paper_rate))


@dataclass(frozen=True)
class RuleCase:
    """A rule's claim at the edge of a false verdict: the outcomes that are false there and the
    rule's nominal rate for each (its fixed-sample rate: 2.5 % a side, 5 % for TOST's 90 %)."""

    id: str
    values: Callable[[], np.ndarray]           # [R, max seeds] per-seed values
    rule: Callable[[], sequential_errors.Rule]
    method: str                                # the rule's recorded method (dtcore.sequential.boundary_p)
    nominal: dict


RULE_CASES = [
    RuleCase("the sign test with its median on the threshold", lambda: _coin(0.5, 21),
             _sign_rule, "sign test", {"holds": 0.025, "contradicted": 0.025}),
    *[RuleCase(f"the rate rule at its threshold {thr:.3g}", lambda thr=thr: _coin(thr, 22),
               lambda thr=thr: _rate_rule(thr), "clopper-pearson", {"holds": 0.025})
      for thr in (1 / 12, 0.25, 0.5)],
    *[RuleCase(f"the rate rule over threshold {thr:.3g} at the paper's rate", lambda: _coin(PAPER_RATE, 23),
               lambda thr=thr: _rate_rule(thr), "clopper-pearson", {"contradicted": 0.025})
      for thr in (1 / 12, 0.25, 0.5)],
    RuleCase("the rate rule at its threshold 1/3 without a paper's rate (sec5_3's first third)",
             lambda: _coin(1 / 3, 28), lambda: _rate_rule(1 / 3, None), "clopper-pearson",
             {"holds": 0.025, "contradicted": 0.025}),
    *[RuleCase(f"TOST with the mean on a margin of {m:g} sd", lambda m=m: _normal(m, 24), lambda m=m: within_rule(m),
               "tost", {"holds": 0.05, "contradicted": 0.025}) for m in (0.5, 2.0)],
    RuleCase("the t interval with a smallest effect of interest, at the threshold", lambda: _normal(0.0, 25),
             lambda: sesoi_rule(0.0, 0.25), "student-t", {"holds": 0.025, "contradicted": 0.025}),
    *[RuleCase(f"a smallest effect of interest of {s:g} sd, the effect on it", lambda s=s: _normal(s, 26),
               lambda s=s: sesoi_rule(0.0, s), "student-t", {"negligible": 0.05}) for s in (0.5, 1.0)],
    RuleCase("the log-scale t with lognormal ratios at the threshold",
             lambda: np.exp(_normal(math.log(RATIO.threshold), 27)), lambda: log_rule(RATIO.threshold),
             "student-t (log scale)", {"holds": 0.025, "contradicted": 0.025}),
    *[RuleCase(f"the t for {skew}-skewed seeds with lognormal values, their mean on the threshold",
               lambda skew=skew: _lognormal(skew, 28), lambda skew=skew: t_rule(0.0, skew), f"student-t ({skew} skew)",
               {"holds": 0.025, "contradicted": 0.025}) for skew in ("right", "left")],
]


def _lognormal(skew: str, seed: int) -> np.ndarray:
    """Lognormal (sigma 1) per-seed values with mean 0, mirrored for left skew."""
    z = np.exp(np.random.default_rng(seed).standard_normal((RULE_REPS, DESIGN.looks[-1]))) - math.exp(0.5)
    return z if skew == "right" else -z


@pytest.mark.parametrize("case", RULE_CASES, ids=[c.id for c in RULE_CASES])
def test_every_rule_decides_falsely_at_most_its_nominal_rate_over_all_looks(case):
    """Each rule through the default design's looks and boundaries with its own recorded p
    (dtcore.sequential.boundary_p), as close_look decides a claim: the false outcomes' rates."""
    sim = through_looks(DESIGN, case.values(), case.rule(), case.method)
    for outcome, nominal in case.nominal.items():
        assert getattr(sim, outcome) <= nominal + tolerance(nominal, RULE_REPS), (outcome, sim)


def test_tost_decides_a_difference_beyond_its_margin_only_with_its_one_sided_p_doubled():
    """TOST's "different" records a one-sided p decided below 2.5 %; the boundaries spend a
    two-sided level, so read as recorded it is falsely decided 4.2 % of the time at the margin."""
    raw = through_looks(DESIGN, _normal(2.0, 24), within_rule(2.0), method="")
    assert raw.contradicted > ALPHA / 2 + 4 * tolerance(ALPHA / 2, RULE_REPS), raw


def test_close_look_meets_the_boundaries_with_the_tost_difference_p_doubled():
    """At the last look (nominal p 0.031) a recorded p of 0.02 decides a t claim; a TOST
    "different" with the same one-sided p is read as 0.04 and stays undecided."""
    def closed(method: str) -> sequential.Track:
        key = "table1.alike|hopper"
        state = sequential.start([key], DESIGN)
        state.looks_done = len(DESIGN.looks) - 1
        sequential.close_look(state, {key: Observation("contradicted", 0.02, 20, ({"method": method},))}, 0.0)
        return state.claims[key]

    assert 0.02 < DESIGN.levels()[-1] < 0.04
    assert closed("student-t").status == "decided"
    tost = closed("tost")
    assert tost.status != "decided" and tost.repeated_p == pytest.approx(float(DESIGN.repeated_p(5, 0.04)))


@pytest.mark.parametrize("n", [3, 8, 20])
def test_the_rules_over_rows_agree_with_the_verdict_functions(n):
    """The simulations' vectorised rules give check_aggregate's and check_log_aggregate's outcome
    and recorded p, seed sample by seed sample (means spread so that every outcome occurs)."""
    rng = np.random.default_rng(n)
    x = rng.normal(rng.uniform(-4, 4, (60, 1)), rng.uniform(0.3, 2.0, (60, 1)), (60, n))
    pairs = [(within_rule(WITHIN.threshold), lambda v: check_aggregate(WITHIN, v), x),
             (sesoi_rule(0.0, SESOI.sesoi), lambda v: check_aggregate(SESOI, v), x),
             (t_rule(0.0), lambda v: check_aggregate(T, v), x),
             (t_rule(0.0, "right"), lambda v: check_aggregate(T, v, skew="right"), x),
             (sesoi_rule(0.0, SESOI.sesoi, "left"), lambda v: check_aggregate(SESOI, v, skew="left"), x),
             (log_rule(RATIO.threshold), lambda v: check_log_aggregate(RATIO, v), np.exp(x / 2))]
    seen = set()
    for rule, verdict, values in pairs:
        outcome, p = rule(values)
        for i, row in enumerate(values):
            d = verdict(row)
            assert outcome[i] == d.outcome, (row, outcome[i], d.outcome)
            assert p[i] == pytest.approx(d.values["p_value"], rel=1e-9, abs=1e-12), (row, d.outcome)
            seen.add(d.outcome)
    assert seen == {"holds", "contradicted", "negligible", "inconclusive"}


# -- a family mixing every rule, under Benjamini-Hochberg ----------------------------------------

FAMILY_REPS = 20000
NORMAL_AT = stats.norm.ppf   # a run's value below NORMAL_AT(q) has probability q: a success at rate q


@dataclass(frozen=True)
class FamilyMember:
    """A claim of a family whose members share three runs per seed (a, b, c, independent N(0, 1)
    per seed): its rule, the values it reads from the runs and the outcomes false at them."""

    id: str
    rule: Callable[[], sequential_errors.Rule]
    method: str                                                       # as in RuleCase
    values: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]   # runs a, b, c [R, n] -> its values [R, n]
    false: tuple[str, ...]


# Every rule at its threshold or margin, where every outcome it can decide is false (the smallest
# effect of interest's "negligible" is true at its threshold, and all but never decided at 0.25 sd).
GLOBAL_NULL = [
    FamilyMember("the t test on a paired difference", lambda: t_rule(0.0), "student-t", lambda a, b, c: a - b,
                 ("holds", "contradicted")),
    FamilyMember("the sign test", _sign_rule, "sign test", lambda a, b, c: a - c > 0,
                 ("holds", "contradicted")),
    FamilyMember("the rate rule at its threshold 1/3 without a paper's rate", lambda: _rate_rule(1 / 3, None),
                 "clopper-pearson", lambda a, b, c: b < NORMAL_AT(1 / 3), ("holds", "contradicted")),
    FamilyMember("TOST with the mean on its margin of 2 sd", lambda: within_rule(2.0), "tost",
                 lambda a, b, c: (b - c) / math.sqrt(2) + 2.0, ("holds", "contradicted")),
    FamilyMember("TOST with the mean on its lower margin of 0.5 sd", lambda: within_rule(0.5), "tost",
                 lambda a, b, c: (a + b) / math.sqrt(2) - 0.5, ("holds", "contradicted")),
    FamilyMember("the log-scale t", lambda: log_rule(RATIO.threshold), "student-t (log scale)",
                 lambda a, b, c: RATIO.threshold * np.exp(c), ("holds", "contradicted")),
    FamilyMember("the t with a smallest effect of interest of 0.25 sd", lambda: sesoi_rule(0.0, 0.25), "student-t",
                 lambda a, b, c: (a + c) / math.sqrt(2), ("holds", "contradicted")),
]
# The rules that have no such point, each at the edge of its false outcomes, where its other
# outcome is true and often decided (the rate claims' paper's rate lies above their threshold).
PARTIAL_NULL = GLOBAL_NULL + [
    FamilyMember("the rate rule over threshold 1/12 at the paper's rate", lambda: _rate_rule(1 / 12),
                 "clopper-pearson", lambda a, b, c: a < NORMAL_AT(PAPER_RATE), ("contradicted",)),
    FamilyMember("the rate rule at its threshold 0.5 under the paper's rate", lambda: _rate_rule(0.5),
                 "clopper-pearson", lambda a, b, c: c < NORMAL_AT(0.5), ("holds",)),
    FamilyMember("a smallest effect of interest of 0.5 sd, the effect on it", lambda: sesoi_rule(0.0, 0.5),
                 "student-t", lambda a, b, c: b + 0.5, ("negligible", "contradicted")),
]


def _runs(reps: int, seed: int, spread: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs a, b, c [R, max seeds], each with a mean drawn per replication from +-``spread``."""
    rng = np.random.default_rng(seed)
    runs = rng.normal(rng.uniform(-spread, spread, (reps, 1, 3)), 1.0, (reps, DESIGN.looks[-1], 3))
    return runs[..., 0], runs[..., 1], runs[..., 2]


def _members(family: list[FamilyMember], runs: tuple[np.ndarray, ...]) -> list[sequential_errors.Member]:
    return [(m.rule(), m.method, m.values(*runs)) for m in family]


def _one_by_one(members: list[sequential_errors.Member]) -> FamilyRun:
    """Each member decided as a family of one: no correction across them."""
    runs = [family_through_looks(DESIGN, [m]) for m in members]
    outcomes, seeds = zip(*((r.outcomes, r.seeds) for r in runs))
    return FamilyRun(np.concatenate(outcomes, axis=1), np.concatenate(seeds, axis=1))


def test_a_family_of_every_rule_sharing_runs_is_falsely_decided_at_most_5_percent_under_the_global_null():
    """Every rule's claim at its threshold or margin, reading correlated values of three shared
    runs, decided through the looks by Benjamini-Hochberg over the family's repeated p-values:
    any false decision (the family-wise rate, here also the false discovery rate) at most 5 %;
    decided one by one, without the correction, well above it."""
    members = _members(GLOBAL_NULL, _runs(FAMILY_REPS, seed=31))
    false = [m.false for m in GLOBAL_NULL]
    corrected, alone = family_through_looks(DESIGN, members).error(false), _one_by_one(members).error(false)
    assert corrected.family_wise <= ALPHA + tolerance(ALPHA, FAMILY_REPS), corrected
    assert alone.family_wise > ALPHA + 4 * tolerance(ALPHA, FAMILY_REPS), alone


def test_beside_true_effects_the_mixed_family_keeps_its_false_discovery_rate_at_most_5_percent():
    """The global null's members with the rate rules at their paper's rate or threshold and a
    smallest effect of interest on its margin, whose other outcome is true: their true decisions
    lower Benjamini-Hochberg's bar for the rest, so its guarantee is the false discovery rate (the
    family-wise rate is 7.8 %, docs/statistics.md); decided one by one, well above 5 %."""
    members = _members(PARTIAL_NULL, _runs(FAMILY_REPS, seed=32))
    false = [m.false for m in PARTIAL_NULL]
    corrected, alone = family_through_looks(DESIGN, members).error(false), _one_by_one(members).error(false)
    assert corrected.decided > 1.5, corrected
    assert corrected.false_discovery <= ALPHA + tolerance(ALPHA, FAMILY_REPS), corrected
    assert alone.false_discovery > ALPHA + 4 * tolerance(ALPHA, FAMILY_REPS), alone


def test_the_family_simulation_decides_as_close_look_does_replication_by_replication():
    """The mixed family with effects spread so that members are decided at every look: each
    replication through close_look (no futility: its observations carry no seed count), the same
    outcome at the same look for every member."""
    reps, family = 60, PARTIAL_NULL
    members = _members(family, _runs(reps, seed=33, spread=1.5))
    run = family_through_looks(DESIGN, members)
    keys = [f"{m.id}|hopper" for m in family]
    for r in range(reps):
        state = sequential.start(keys, DESIGN)
        for n in DESIGN.looks:
            observed = {}
            for key, (rule, method, values) in zip(keys, members):
                outcome, p = rule(values[r:r + 1, :n])
                observed[key] = Observation(str(outcome[0]), float(p[0]), n, ({"method": method},))
            sequential.close_look(state, observed, 0.0)
        decided = [state.claims[k] if state.claims[k].status == "decided" else None for k in keys]
        assert [t.outcome if t else "" for t in decided] == run.outcomes[r].tolist(), r
        assert [DESIGN.looks[t.look if t else -1] for t in decided] == run.seeds[r].tolist(), r
    assert 0 < (run.outcomes != "").mean() < 1 and len(set(run.seeds[run.outcomes != ""])) >= 4


# -- the procedure over rounds ---------------------------------------------------------------

EFFECTS = {"sec5_3.big|hopper": 2.0, "sec5_3.medium|hopper": 0.9, "sec5_3.none|hopper": 0.0,
           "sec5_3.small|hopper": 0.3, "sec5_3.against|hopper": -1.5}
VALUES = {key: np.random.default_rng(i).normal(effect, 1.0, 20) for i, (key, effect) in enumerate(EFFECTS.items())}


def fake_round(hours_per_claim: float, interrupt_at: int | None = None):
    """A round that 'builds' the look's seeds of the open claims: the first n of each claim's fixed
    per-seed values, decided by the real seed aggregate (check_aggregate)."""
    def round_(k, open_keys):
        if k == interrupt_at:
            raise KeyboardInterrupt
        n = DESIGN.looks[k]
        out = {}
        for key in open_keys:
            d = check_aggregate(Criterion(key.split("|")[0], "a statistic", ">", 0.0, None, "a test"), VALUES[key][:n])
            out[key] = Observation(d.outcome, d.values.get("p_value"), n, (d.values,))
        return out, hours_per_claim * len(open_keys)
    return round_


def test_the_procedure_decides_the_clear_claims_early_and_stops_the_rest():
    state = sequential.run(sequential.start(list(EFFECTS), DESIGN), fake_round(0.1))
    block = sequential.report_block(state)["claims"]
    assert block["sec5_3.big|hopper"]["status"] == "decided" and block["sec5_3.big|hopper"]["outcome"] == "holds"
    assert block["sec5_3.against|hopper"]["outcome"] == "contradicted"
    assert block["sec5_3.none|hopper"]["status"] in ("futility", "max seeds")
    decided = [c for c in block.values() if c["status"] == "decided"]
    assert all(c["error_spent"] <= ALPHA and c["look"] >= 1 for c in decided)


def test_the_budget_holds_within_one_round():
    budget, per_claim = 1.0, 0.15
    state = sequential.run(sequential.start(list(EFFECTS), DESIGN, budget_hours=budget), fake_round(per_claim))
    largest_round = per_claim * len(EFFECTS)
    assert budget <= state.spent_hours < budget + largest_round
    assert any(t.status == "budget" for t in state.claims.values())


def test_an_interrupted_procedure_resumed_from_its_saved_state_reaches_the_same_decisions(tmp_path):
    whole = sequential.run(sequential.start(list(EFFECTS), DESIGN), fake_round(0.1))
    path = tmp_path / "sequential.json"
    state = sequential.start(list(EFFECTS), DESIGN)
    with pytest.raises(KeyboardInterrupt):
        sequential.run(state, fake_round(0.1, interrupt_at=2), save=lambda s: s.save(path))
    resumed = sequential.run(SequentialState.load(path), fake_round(0.1), save=lambda s: s.save(path))
    assert resumed.looks_done >= 2
    assert sequential.report_block(resumed)["claims"] == sequential.report_block(whole)["claims"]



def test_a_member_k_leaves_out_is_never_run_and_counts_as_p_1_in_the_correction():
    """``-k``: a deselected member is never asked for, keeps repeated p 1 and stays in the
    Benjamini-Hochberg family, so the others' decisions are those of the whole family with it at p 1."""
    out, asked = "sec5_3.big|hopper", []
    whole = fake_round(0.1)

    def round_(k, open_keys):
        asked.append(list(open_keys))
        return whole(k, open_keys)

    state = sequential.run(sequential.start(list(EFFECTS), DESIGN, deselected={out: "-k leaves it out"}), round_)
    assert asked and not any(out in keys for keys in asked)
    track = state.claims[out]
    assert (track.status, track.repeated_p, track.look, track.reason) == (sequential.DESELECTED, 1.0, None,
                                                                          "-k leaves it out")
    assert all(t.status in sequential.STOPS for k, t in state.claims.items() if k != out)


BODY_MEANS = {"gpt2": 2.0, "random": 0.0, "igpt": 0.0}
SHARED = {"table1.gpt2_beats_random|hopper": ("gpt2", "random"), "table1.random_beats_igpt|hopper": ("random", "igpt"),
          "table1.gpt2_beats_igpt|hopper": ("gpt2", "igpt")}


def cached_round(cache: dict, trained: list, interrupt_at: tuple[int, int] | None = None):
    """A round over runs shared between claims (a claim compares two bodies' runs, seed by seed):
    it 'trains' into ``cache`` (listed in ``trained``) only the runs of the look's open claims not
    already there, 0.1 h each, and decides each claim by the real seed aggregate on the paired
    differences; ``interrupt_at`` (look, runs): a Ctrl-C after that many runs of that look."""
    names = list(BODY_MEANS)

    def round_(k, open_keys):
        n, built = DESIGN.looks[k], 0
        for key in open_keys:
            for body in SHARED[key]:
                for seed in range(n):
                    if (body, seed) in cache:
                        continue
                    if interrupt_at == (k, built):
                        raise KeyboardInterrupt
                    cache[body, seed] = np.random.default_rng([names.index(body), seed]).normal(BODY_MEANS[body])
                    trained.append((body, seed))
                    built += 1
        out = {}
        for key in open_keys:
            a, b = SHARED[key]
            diff = [cache[a, s] - cache[b, s] for s in range(n)]
            d = check_aggregate(Criterion(key.split("|")[0], "a difference", ">", 0.0, None, "a test"), diff)
            out[key] = Observation(d.outcome, d.values.get("p_value"), n, (d.values,))
        return out, 0.1 * built
    return round_


def test_a_procedure_interrupted_inside_a_round_resumes_from_the_cache_and_trains_no_run_twice(tmp_path):
    """Ctrl-C halfway through look 3's runs; the same command resumes from the state saved at look
    2 and the runs in the cache: the same decisions, and every run trained once, as without it."""
    whole_cache, whole_trained = {}, []
    whole = sequential.run(sequential.start(list(SHARED), DESIGN), cached_round(whole_cache, whole_trained))
    path, cache, trained = tmp_path / "sequential.json", {}, []
    with pytest.raises(KeyboardInterrupt):
        sequential.run(sequential.start(list(SHARED), DESIGN), cached_round(cache, trained, interrupt_at=(2, 4)),
                       save=lambda s: s.save(path))
    assert SequentialState.load(path).looks_done == 2
    resumed = sequential.run(SequentialState.load(path), cached_round(cache, trained), save=lambda s: s.save(path))
    assert sequential.report_block(resumed)["claims"] == sequential.report_block(whole)["claims"]
    assert sorted(trained) == sorted(whole_trained) and len(set(trained)) == len(trained)
    assert [h["decided"] for h in resumed.history] == [h["decided"] for h in whole.history]


# -- the plan ---------------------------------------------------------------------------------

def _declared():
    import importlib
    from pathlib import Path

    from dtcore import registry

    root = Path(__file__).resolve().parent.parent
    return registry.declared([importlib.import_module(f"claims.{p.stem}") for p in sorted((root / "claims").glob("test_*.py"))])


def test_the_plan_shows_looks_boundaries_budget_and_the_runs_of_round_one_with_their_time():
    from dtcore.build_progress import run_cost
    from dtcore.profiles import get_profile
    from dtcore.sequential_plan import make_plan

    profile = get_profile("smoke")
    plan = make_plan(profile, _declared(), ["hopper"], max_seeds=5, budget_hours=2.0, seconds_per_cost=0.01)
    text = plan.text()
    assert "budget: 2 CPU hours" in text and "max seeds: 5" in text and "round one" in text
    assert plan.design.looks == (3, 5) and plan.seeds[:2] == profile.seeds
    first = plan.runs(0, plan.family)
    assert {s.seed for s in first} == set(plan.seeds[:3]) and all(s.env == "hopper" for s in first)
    assert plan.hours(first) == pytest.approx(sum(run_cost(profile, s) for s in first) * 0.01 / 3600)
    assert all(s.id in text for s in first)


def test_the_plans_round_one_time_counts_only_the_runs_not_complete_in_the_cache():
    """A fake store with every other run of round one complete: the plan lists those as in the
    cache and times only the others; with all of them complete, round one costs nothing."""
    from dtcore.build_progress import minutes, run_cost
    from dtcore.profiles import get_profile
    from dtcore.sequential_plan import make_plan

    class FakeStore:
        def __init__(self, cached):
            self.cached = set(cached)

        def complete(self, spec):
            return spec in self.cached

    profile = get_profile("smoke")
    plan = make_plan(profile, _declared(), ["hopper"], max_seeds=5, seconds_per_cost=0.5)
    first = plan.runs(0, plan.family)
    store = FakeStore(first[::2])
    train = [s for s in first if s not in store.cached]
    assert plan.to_train(first, store.complete) == train and plan.to_train(first) == first
    seconds = sum(run_cost(profile, s) for s in train) * 0.5
    assert plan.hours(plan.to_train(first, store.complete)) == pytest.approx(seconds / 3600)
    text = plan.text(store.complete)
    assert f"{len(store.cached)} in the cache, {len(train)} to train, about {minutes(seconds)} of CPU time" in text
    assert all(f"  {s.id}  (in the cache)" in text for s in store.cached)
    assert not any(f"  {s.id}  (in the cache)" in text for s in train)
    every = sum(run_cost(profile, s) for s in first) * 0.5
    assert f"about {minutes(every)} of CPU time" in plan.text() and "in the cache" not in plan.text()
    assert f"{len(first)} in the cache, 0 to train, about {minutes(0)}" in plan.text(FakeStore(first).complete)


def test_a_look_builds_only_the_new_seeds_of_the_runs_its_open_claims_read():
    from dtcore.profiles import get_profile
    from dtcore.sequential_plan import make_plan

    profile = get_profile("mini")
    plan = make_plan(profile, _declared(), ["hopper"], max_seeds=8)
    every = plan.runs(2, plan.scheduled)
    assert {s.seed for s in every} == set(plan.seeds[5:8])
    # Two representation claims on the K=20 runs: the three bodies' K=20 runs, no K1 / block run.
    k20 = plan.runs(2, ["sec5_4.pretrained_larger_gradient_confusion|hopper",
                        "sec5_3.largest_change_in_shallow_blocks|hopper"])
    assert {(s.backbone, s.variant) for s in k20} == {("gpt2", "K20"), ("igpt", "K20"), ("random", "K20")}
    assert len(k20) == 9 and set(k20) < set(every)
    # Block replacement: Random Init's K=1 run and its block runs, nothing of the other bodies.
    blocks = plan.runs(2, ["sec5_6_1.single_block_speeds_learning|hopper"])
    assert {(s.backbone, s.variant) for s in blocks} == {("random", "K1")} | {
        ("random", f"block{i}") for i in profile.block_indices()}
    # A claim over three environments cannot run on hopper alone: left out, with why, never built.
    h2 = "appH2.hopper_return_carries_least_action_information|"
    assert h2 in plan.family and h2 not in plan.scheduled and "--envs leaves out" in plan.left_out[h2]
    assert plan.runs(1, []) == []


def test_a_frozen_claim_runs_at_the_seeds_of_the_look_that_froze_it():
    from dtcore.profiles import get_profile
    from dtcore.sequential import Track
    from dtcore.sequential_plan import make_plan

    plan = make_plan(get_profile("mini"), _declared(), ["hopper"], max_seeds=8)
    tracks = {m: Track() for m in plan.family}
    decided, futile = plan.scheduled[0], plan.scheduled[1]
    tracks[decided] = Track(status="decided", look=0, seeds=3)
    tracks[futile] = Track(status="futility", look=1, seeds=0)   # stopped before any p was recorded
    seeds = plan.member_seeds(2, tracks)
    assert seeds[decided] == list(plan.seeds[:3]) and seeds[futile] == list(plan.seeds[:5])
    assert all(seeds[m] == list(plan.seeds[:8]) for m in plan.scheduled if m not in (decided, futile))
    assert set(seeds) == set(plan.scheduled)


def test_a_cell_that_reads_a_run_its_claim_does_not_declare_is_an_error():
    from types import SimpleNamespace

    from dtcore.claim import Claim
    from dtcore.profiles import get_profile
    from fixtures.cells import RunsOfCell, UndeclaredRun

    got = []
    store = SimpleNamespace(profile=get_profile("mini"), get=lambda *a: got.append(a) or SimpleNamespace(key=a))
    claim = Claim("sec5_5.demo", quote="q", source="§5.5", statistic="s", direction=">", threshold=0.0, basis="b",
                  bodies=("random",), reads=("K1",), shows=("gpt2",), no_units="demo", sesoi_basis="b")
    runs = RunsOfCell(store, claim, {})
    runs.get("hopper", "random", 0, "K1")
    runs.get("hopper", "gpt2", 0, "K1")          # a body its figures show
    for body, variant in (("random", "K20"), ("igpt", "K1"), ("random", "block0")):
        with pytest.raises(UndeclaredRun, match=f"sec5_5.demo read the {variant} run of {body}"):
            runs.get("hopper", body, 0, variant)
    assert got == [("hopper", "random", 0, "K1"), ("hopper", "gpt2", 0, "K1")]
    with pytest.raises(ValueError, match="reads=.*name the run variants"):
        RunsOfCell(store, Claim("sec5_5.bad", quote="q", source="§5.5", statistic="s", direction=">", threshold=0.0,
                                basis="b", reads=("K2",), no_units="demo", sesoi_basis="b"), {})


def test_member_seeds_narrow_a_verdicts_cells_and_its_aggregate_to_its_seeds():
    from dtcore.grid import Selection
    from dtcore.profiles import get_profile
    from fixtures.cells import places

    claims = {c.id: c for c in _declared()}
    sel = Selection.of(get_profile("mini"), ["hopper"], range(8))
    claim = claims["sec5_4.pretrained_larger_gradient_confusion"]
    full = places(claim, sel, narrowed=True)
    frozen = places(claim, sel, narrowed=True, member_seeds={f"{claim.id}|hopper": (0, 1, 2, 99)})
    assert {w.seed for w in full} == set(range(8)) | {None}
    assert {w.seed for w in frozen} == {0, 1, 2, None}
    assert {w.seeds for w in frozen if w.seed is None} == {(0, 1, 2)}
    per_seed = [w for w in full if w.seed is not None]
    assert len([w for w in frozen if w.seed is not None]) == len(per_seed) * 3 // 8
    assert len([w for w in frozen if w.seed is None]) == len(full) - len(per_seed)
    assert places(claim, sel, narrowed=True, member_seeds={f"{claim.id}|hopper": ()}) == []


def test_a_looks_cpu_hours_are_its_trained_runs_own_time_times_the_cpus_each_held():
    from types import SimpleNamespace

    from dtcore.grid import RunSpec
    from dtcore.sequential_plan import trained_hours

    specs = [RunSpec("hopper", s, "gpt2", "K20") for s in range(3)]
    walls = {specs[0]: 1800.0, specs[1]: 3600.0}   # the third failed: not complete
    store = SimpleNamespace(complete=lambda s: s in walls,
                            run=lambda s: SimpleNamespace(provenance={"wall_time_s": walls[s]}))
    assert trained_hours(store, specs) == pytest.approx(1.5)
    assert trained_hours(store, specs, cpus=4) == pytest.approx(6.0)


def test_k_narrows_the_plan_to_the_verdicts_whose_cells_pytest_keeps(tmp_path, monkeypatch):
    """``claims --until-decided -k``: the members come from pytest's own collection of the claim
    files (``--selected-members``); the plan runs only theirs, the rest of the family stays in it."""
    import argparse

    from dtcore import cli
    from dtcore.profiles import get_profile
    from dtcore.sequential_plan import make_plan, seed_order

    monkeypatch.setenv("DTCORE_CACHE", str(tmp_path / "cache"))
    profile = get_profile("smoke")
    args = argparse.Namespace(profile="smoke", envs=("hopper",), seeds=None, backbones=None, workers=2, report=None,
                              k="table1 and not across", regen=False, prebuild=True, max_seeds=4)
    selected = cli._selected_members(args, seed_order(profile, 4))
    assert selected == {"table1.igpt_catastrophic|hopper", "table1.igpt_far_below_random|hopper",
                        "table1.gpt2_beats_random_on_hopper|hopper"}
    whole = make_plan(profile, _declared(), ["hopper"], max_seeds=4)
    first_ln = "sec5_4.igpt_first_layernorm_dominates|hopper"
    plan = make_plan(profile, _declared(), ["hopper"], max_seeds=4, selected={first_ln})
    assert plan.family == whole.family and plan.scheduled == (first_ln,)
    assert {(s.backbone, s.variant) for s in plan.runs(0, plan.scheduled)} == {("igpt", "K20")}
    assert f"-k keeps 1 of the {len(whole.family)} verdicts" in plan.text()
    with pytest.raises(cli.BadInputError, match="selects no claim"):
        cli._selected_members(argparse.Namespace(**{**vars(args), "k": "no_such_claim"}), seed_order(profile, 4))


@pytest.mark.slow
@pytest.mark.trains
def test_claims_until_decided_runs_two_looks_end_to_end_on_the_smoke_profile(tmp_path):
    """``dtcore claims --until-decided`` on smoke hopper up to 5 seeds (looks 3 and 5), for the
    claims of §5.1 and §5.4 (one of them stays open to look 2): the sequential block of claims.json
    records both looks and a status per claim, and the page shows it (about 2 min on 2 cores)."""
    import json
    import os
    import re
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    report = tmp_path / "claims.html"
    env = dict(os.environ, DTCORE_CACHE=str(tmp_path / "cache"), PYTHONPATH=str(root))
    rc = subprocess.call([sys.executable, "-m", "dtcore", "claims", "--profile", "smoke", "--envs", "hopper",
                          "--until-decided", "--max-seeds", "5", "--budget", "5", "-k", "sec5_1 or sec5_4",
                          "--report", str(report)], cwd=root, env=env)
    assert rc == 0
    block = json.loads(report.with_suffix(".json").read_text())["sequential"]
    assert block["design"]["looks"] == [3, 5] and [(h["look"], h["seeds"]) for h in block["history"]] == [(1, 3), (2, 5)]
    claims = block["claims"]
    kept = {m for m, c in claims.items() if c["status"] != sequential.DESELECTED}   # -k picks tests by name
    assert {m for m in claims if m.startswith(("sec5_1.", "sec5_4."))} <= kept
    assert all(c["status"] in sequential.STOPS for m, c in claims.items() if m in kept)
    assert "--envs leaves out" in claims["appH2.hopper_return_carries_least_action_information|"]["reason"]
    assert all(c["reason"] == "-k sec5_1 or sec5_4 leaves it out" for m, c in claims.items()
               if m not in kept and not m.startswith("appH2."))
    # Look 2 trained seeds 3-4 of the runs the claims still open after look 1 read, and no other run.
    from dtcore.profiles import get_profile
    from dtcore.sequential_plan import key, make_plan

    plan = make_plan(get_profile("smoke"), _declared(), ["hopper"], max_seeds=5)
    open_at_two = [m for m, c in claims.items() if c["look"] == 2]
    trained = {json.loads(p.read_text())["run"] for p in (tmp_path / "cache" / "runs").glob("*/provenance.json")}
    assert open_at_two and {r for r in trained if re.search("-seed[34]-", r)} == {
        s.id for s in plan.runs(1, open_at_two)}
    # Each verdict of the report is shown as it was frozen: at the seeds of its last observation
    # (the App. G.3 claims' one noclip seed at smoke records no p, so no observation).
    rows = json.loads(report.with_suffix(".json").read_text())["headline"]["rows"]
    shown = {key(r["claim_id"], r.get("env") or ""): r["n"] for r in rows
             if r.get("n") is not None and claims[key(r["claim_id"], r.get("env") or "")]["seeds"]}
    assert len(shown) >= 10 and shown == {m: claims[m]["seeds"] for m in shown}
    assert {claims[m]["look"] for m in shown} == {1, 2}
    # The page is drawn again from that JSON: the design's looks, every member, and beside a verdict
    # of look 2 its look.
    html = report.read_text()
    assert '<section id="sequential">' in html and "<b>looks done</b> 2 of 2" in html
    assert block["plan"]["budget_hours"] == 5 and "<b>plan registered</b>" in html   # before round one
    assert '<tr class="look" data-look="1">' in html and '<tr class="look" data-look="2">' in html
    assert all(f'data-member="{m}"' in html for m in claims)
    assert re.search(r'<small class="sequential-mark">(decided|stopped) at look 2 \(5 seeds\)', html)


def test_an_interrupted_runs_page_shows_the_looks_it_closed(tmp_path, monkeypatch):
    """After every look the report's JSON gets the design so far and the page is drawn again from
    it, so a run stopped during look 2 leaves a page whose "Sequential design" shows look 1."""
    import json
    from pathlib import Path

    from dtcore import cli, sequential_plan
    from reports.model import Report

    monkeypatch.setenv("DTCORE_CACHE", str(tmp_path / "cache"))
    report = tmp_path / "claims.html"
    looks = []

    def a_look(args, seconds):       # look 1 writes a report without verdicts; look 2 is interrupted
        looks.append(args.seeds)
        if len(looks) == 2:
            raise KeyboardInterrupt
        Path(args.report).with_suffix(".json").write_text(Report((), profile="smoke").to_json())
        seconds["claims"] = 1.0
        return 0

    monkeypatch.setattr(cli, "_cmd_claims", a_look)
    monkeypatch.setattr(sequential_plan, "trained_hours", lambda store, train, cpus: 0.25)
    argv = ["claims", "--profile", "smoke", "--envs", "hopper", "--until-decided", "--max-seeds", "4",
            "--report", str(report)]
    with pytest.raises(KeyboardInterrupt):
        cli._cmd_until_decided(cli.build_parser().parse_args(argv))
    assert [len(s) for s in looks] == [3, 4]
    block = json.loads(report.with_suffix(".json").read_text())["sequential"]
    assert block["looks_done"] == 1 and [h["look"] for h in block["history"]] == [1]
    html = report.read_text()
    assert '<section id="sequential">' in html and "<b>looks done</b> 1 of 2" in html


def test_the_plan_is_registered_before_round_one_and_resuming_under_another_budget_is_refused(tmp_path,
                                                                                              monkeypatch):
    import json

    from dtcore import cli

    monkeypatch.setenv("DTCORE_CACHE", str(tmp_path / "cache"))
    report = tmp_path / "not yet made" / "claims.html"   # the report's folder is made with the plan
    registered = []

    def no_round(state, round_, *, save=None, say=None):   # the state on disk as round one would find it
        registered.append(json.loads(report.with_suffix(".sequential.json").read_text()))
        raise KeyboardInterrupt

    monkeypatch.setattr(sequential, "run", no_round)
    argv = ["claims", "--profile", "smoke", "--envs", "hopper", "--until-decided", "--max-seeds", "4",
            "--report", str(report)]
    with pytest.raises(KeyboardInterrupt):
        cli._cmd_until_decided(cli.build_parser().parse_args(argv + ["--budget", "2"]))
    (plan,) = [s["plan"] for s in registered]
    assert plan["budget_hours"] == 2 and plan["max_seeds"] == 4 and plan["design"]["looks"] == [3, 4]
    assert plan["registered"] and plan["commit"] and plan["round_one"] and registered[0]["looks_done"] == 0
    with pytest.raises(cli.BadInputError, match="another plan's state"):
        cli._cmd_until_decided(cli.build_parser().parse_args(argv + ["--budget", "3"]))
    with pytest.raises(KeyboardInterrupt):                 # the same command resumes its registered plan
        cli._cmd_until_decided(cli.build_parser().parse_args(argv + ["--budget", "2"]))
    assert registered[1]["plan"] == plan


@pytest.mark.parametrize("content", ["{}", '{"design": {"looks": [3, 4], "alpha"', "[]", '{"design": {}, "claims": 3}',
                                     "\x00\x01"], ids=["empty-object", "cut-short", "a-list", "wrong-fields", "binary"])
def test_a_damaged_state_file_is_one_line_naming_it_and_saying_to_remove_it(tmp_path, monkeypatch, capsys, content):
    from dtcore import cli

    monkeypatch.setenv("DTCORE_CACHE", str(tmp_path / "cache"))
    report = tmp_path / "claims.html"
    state = report.with_suffix(".sequential.json")
    state.write_text(content)
    monkeypatch.setattr(sequential, "run", lambda *a, **kw: pytest.fail("a damaged state was resumed"))
    argv = ["claims", "--profile", "smoke", "--envs", "hopper", "--until-decided", "--max-seeds", "4",
            "--report", str(report)]
    assert cli.main(argv) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert f"{state} is not a sequential design's saved state" in line
    assert "remove it to start afresh (the runs stay in the cache)" in line
