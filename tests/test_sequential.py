"""The sequential design (dtcore.sequential), checked by simulation with the project's own t
statistics: each claim's error per side over all looks, the family's error under the global null
for claims that share runs, the seeds it saves at a 1-sd effect, the budget, and a resumed
procedure. Every simulation has at least 2000 replications, vectorised over them."""

import math

import numpy as np
import pytest

from dtcore import sequential, statistics
from dtcore.deciding import what_would_decide
from dtcore.sequential import Design, Observation, SequentialState, looks_for, simulate
from dtcore.policy import ALPHA
from dtcore.verdicts import Criterion, check_aggregate

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
    for rate in (sim.upper, sim.lower):
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
        futile = sequential.futile_t(x.mean(axis=1), x.std(axis=1, ddof=1), float(DESIGN.levels()[-1]), max_seeds)
        open_ &= ~futile
    return float(decided.any(axis=1).mean())


def test_the_corrected_family_error_is_at_most_5_percent_under_the_global_null_with_shared_runs():
    rate = _family_null(4000, seed=3)
    assert rate <= ALPHA + tolerance(ALPHA, 4000), rate


def test_at_a_1_sd_effect_it_needs_at_most_70_percent_of_the_fixed_designs_seeds_at_the_same_power():
    """The fixed design: the fewest seeds whose t test at 5 % has at least the sequential design's
    simulated power at a 1-sd effect (statistics.t_power, as seeds_needed counts them)."""
    sim = simulate(DESIGN, 1.0, reps=REPS, seed=11)
    fixed = next(n for n in range(2, 100) if statistics.t_power(1.0, n, alpha=ALPHA) >= sim.upper)
    assert sim.upper > 0.95 and sim.lower < 0.001
    assert sim.mean_seeds <= 0.7 * fixed, (sim, fixed)


@pytest.mark.parametrize("mean, sd, n", [(0.3, 1.0, 5), (1.0, 1.0, 3), (0.05, 1.0, 8), (2.0, 0.5, 3), (0.4, 2.0, 12)])
def test_the_vectorised_futility_rule_agrees_with_what_would_decide(mean, sd, n):
    level, max_seeds = float(DESIGN.levels()[-1]), 20
    need = what_would_decide({"method": "student-t", "n": n, "value": mean, "sd": sd, "threshold": 0.0}, level)
    futile = need.seeds is None or need.seeds > max_seeds
    assert bool(sequential.futile_t(np.array(mean), np.array(sd), level, max_seeds)) == futile


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


def test_a_look_builds_only_the_new_seeds_of_the_runs_some_open_claim_needs():
    from dtcore.profiles import get_profile
    from dtcore.sequential_plan import make_plan

    plan = make_plan(get_profile("smoke"), _declared(), ["hopper"], max_seeds=5)
    every = plan.runs(1, plan.family)
    assert {s.seed for s in every} == set(plan.seeds[3:5])
    one = next(k for k in plan.family if len(plan.bodies[k.split("|")[0]]) == 1)
    assert set(plan.runs(1, [one])) < set(every)
    assert plan.runs(1, []) == []


@pytest.mark.slow
@pytest.mark.trains
def test_claims_until_decided_runs_two_looks_end_to_end_on_the_smoke_profile(tmp_path):
    """``dtcore claims --until-decided`` on smoke hopper up to 4 seeds (looks 3 and 4): the
    sequential block of claims.json records both looks and a status per claim (about 5 min on a
    cold cache on 2 cores)."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    report = tmp_path / "claims.html"
    env = dict(os.environ, DTCORE_CACHE=str(tmp_path / "cache"), PYTHONPATH=str(root))
    rc = subprocess.call([sys.executable, "-m", "dtcore", "claims", "--profile", "smoke", "--envs", "hopper",
                          "--until-decided", "--max-seeds", "4", "--budget", "5", "--report", str(report)],
                         cwd=root, env=env)
    assert rc == 0
    block = json.loads(report.with_suffix(".json").read_text())["sequential"]
    assert block["design"]["looks"] == [3, 4] and [h["seeds"] for h in block["history"]] == [3, 4]
    assert all(c["status"] in sequential.STOPS for c in block["claims"].values())
