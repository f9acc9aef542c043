"""The null of an "every component" claim (``dtcore.verdicts.every_negligible``, issue #30 point
2): negligible when every component's effect is shown within +-sesoi, an intersection-union of
per-component TOSTs each at 5 %. Simulated with the project's own decision rule, vectorised over
2000 draws and checked draw by draw against ``check_every``, at the shapes of the claims with a
smallest effect of interest, §5.6.2's blocks (4 in the mini body, 12 in the paper's, all but one
or two), and App. G.3's 3 epochs, at n = 3, 5 and 10 seeds.
"""

from __future__ import annotations

import numpy as np
import pytest

from dtcore.deciding import what_would_decide
from dtcore.verdicts import Criterion, check_every, check_every_units, every_negligible

SESOI = 1.0
CRIT = Criterion("sec5_6_2.synthetic", "a gap per block", ">", 0.0, None, "test", SESOI)
DRAWS = 2000
ALPHA = 0.05
TOLERANCE = ALPHA + 3 * (ALPHA * (1 - ALPHA) / DRAWS) ** 0.5   # 3 Monte Carlo standard errors
SHAPES = [(4, 1), (12, 1), (12, 2), (3, 0)]          # (components, exceptions)
IDS = [f"{k}-components-but-{e}" for k, e in SHAPES]


def _draws(means: np.ndarray, sds: np.ndarray, n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(means, sds, size=(DRAWS, n, means.size))   # [R, n, k]


def _agrees_with_check_every(x: np.ndarray, shown: np.ndarray, exceptions: int, draws: int = 40) -> None:
    """The vectorised rule is check_every's, draw by draw (on the first ``draws``)."""
    outcomes = [check_every(CRIT, xi, exceptions=exceptions).outcome == "negligible" for xi in x[:draws]]
    assert outcomes == shown[:draws].tolist()


@pytest.mark.parametrize("n", [3, 5, 10])
@pytest.mark.parametrize("k, exceptions", SHAPES, ids=IDS)
def test_an_effect_on_the_margin_is_falsely_negligible_at_most_5_percent(k, exceptions, n):
    """The least favourable truth: one component exactly on +sesoi (then -sesoi) and every other
    component surely within it (effect 0, a hundredth of the spread), so that only the one TOST
    stands between it and a false "negligible"; and every component on the margin."""
    sds = np.full(k, 0.01)
    sds[0] = 1.0
    for edge in (SESOI, -SESOI):
        means = np.zeros(k)
        means[0] = edge
        x = _draws(means, sds, n, seed=k * 100 + n + int(edge > 0))
        shown = every_negligible(CRIT, x)[0]
        assert shown.mean() <= TOLERANCE, (edge, shown.mean())
        _agrees_with_check_every(x, shown, exceptions)
    assert every_negligible(CRIT, _draws(np.full(k, SESOI), np.ones(k), n, seed=k + n))[0].mean() <= TOLERANCE


@pytest.mark.parametrize("k", [4, 12])
def test_a_true_null_is_shown_negligible_with_power_from_20_seeds_at_a_sesoi_of_one_sd(k):
    """Every block's effect exactly 0, per-seed sd equal to the smallest effect of interest: shown
    negligible in 97 % (4 blocks) / 91 % (12 blocks) of 20,000 draws at 20 seeds, 41 % / 6 % at 10;
    never at 3 (docs/statistics.md, "The null of an every claim")."""
    x = _draws(np.zeros(k), np.full(k, SESOI), 20, seed=k)
    shown = every_negligible(CRIT, x)[0]
    assert shown.mean() >= 0.85, shown.mean()
    _agrees_with_check_every(x, shown, exceptions=1)
    assert every_negligible(CRIT, _draws(np.zeros(k), np.full(k, SESOI), 3, seed=k + 1))[0].mean() <= 0.01


def test_a_negligible_every_claim_records_its_least_clear_component_and_the_iut_p():
    x = np.random.default_rng(7).normal([0.0, 0.0, 0.3], 0.2, size=(20, 3))
    decision = check_every(CRIT, x, labels=("block 0", "block 1", "block 2"))
    assert decision.outcome == "negligible" and "each of the 3 components' 90 % interval" in decision.message
    p = every_negligible(CRIT, x)[1]
    assert decision.values["p_value"] == pytest.approx(p.max()) and decision.values["value"] == pytest.approx(
        x[:, 2].mean())
    assert decision.values["confidence"] == 0.90 and [c[0] for c in decision.values["components"]] == [
        "block 0", "block 1", "block 2"]


def test_an_exception_outside_the_margin_keeps_the_claim_from_negligible():
    """Every component, the exceptions included: a block 1 that moves (the paper's own exception)
    is not the null of the claim."""
    x = np.random.default_rng(8).normal([0.0, -3.0, 0.0, 0.0], 0.1, size=(20, 4))
    assert check_every(CRIT, x, exceptions=1).outcome == "inconclusive"
    assert check_every(CRIT, np.delete(x, 1, axis=1)).outcome == "negligible"


def test_a_noise_floor_narrows_the_margin_and_a_floor_at_sesoi_never_shows_it():
    x = np.random.default_rng(9).normal(0.3, 0.05, size=(20, 4))
    assert check_every(CRIT, x).outcome == "negligible"
    assert check_every(CRIT, x, floor=0.5).outcome == "negligible"          # margin 0.5: still shown
    assert check_every(CRIT, x, floor=0.75).outcome == "inconclusive"       # margin 0.25: not
    assert check_every(CRIT, x - 0.3, floor=SESOI).outcome == "inconclusive"


def test_one_seed_shows_every_component_negligible_from_its_half_samples():
    values = np.array([0.1, -0.1, 0.0, 0.05])
    narrow = values + np.linspace(-0.01, 0.01, 200)[:, None]
    decided = check_every_units(CRIT, values, narrow, units="analysis samples", n_units=100, exceptions=1)
    assert decided.outcome == "negligible" and decided.values["method"].endswith("(smallest effect of interest)")
    wide = values + np.linspace(-2, 2, 200)[:, None]
    assert check_every_units(CRIT, values, wide, units="analysis samples", n_units=100).outcome == "inconclusive"


def test_the_seeds_stated_to_show_it_negligible_do_so_70_to_90_percent_of_the_time():
    """What would decide it (dtcore.deciding): every component within sesoi, each at 80 % power
    jointly; simulated at the stated count from the observed means and spreads."""
    rng = np.random.default_rng(10)
    means, sd = np.array([0.1, -0.2, 0.0, 0.15]), 1.0
    z = rng.standard_normal((3, 4))
    observed = means + sd * (z - z.mean(axis=0)) / z.std(axis=0, ddof=1)   # exactly these means and sds
    decision = check_every(CRIT, observed, exceptions=1)
    need = what_would_decide(decision.values, ALPHA)
    assert decision.outcome == "inconclusive" and need.path == "every or equivalence" and need.seeds is not None
    x = rng.normal(means, sd, size=(DRAWS, need.seeds, 4))
    rate = every_negligible(CRIT, x)[0].mean()
    assert 0.70 <= rate <= 0.90, (need, rate)
    assert f"about {need.seeds} seeds would show every component negligible" in decision.message
