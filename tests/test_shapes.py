"""The seed aggregate at the shapes the claims' per-seed values really have (issue #30, point 5;
docs/statistics.md, "Skewed seeds and a second mode"): 20000 draws each at the profiles' seed
counts 3, 5, 8 and 10, with each claim's own criterion and the seed aggregate's rules over rows
(``dtcore.sequential_errors``: check_aggregate's and check_log_aggregate's rules, vectorised;
:func:`test_the_rules_over_rows_decide_as_the_claims_own_verdicts` checks them against the verdict
functions at every claim below, draw by draw).

- Skewed values whose claim is about a **mean** (a failing body's score near its floor, a ratio
  under a ceiling, a difference of minima over pairs, a lead over a body that sometimes fails):
  the claims declare ``skew`` and the t quantiles come from that shape (``dtcore.skew``). Drawn
  with the mean exactly on the threshold (and on threshold +- sesoi for the equivalence test).
  The plain t interval falsely decides the skewed side 7-8 % of the time for a lognormal of
  sigma 0.5 and 16-18 % for sigma 1; the declared skew keeps 2.5 % per side.
- Ratios whose claim is about a **ratio** (``log_scale``): drawn with the median (the geometric
  mean) exactly on the threshold.
- A **second mode** (a failed seed among learning ones, Table 4): no rule of a mean or a geometric
  mean keeps its rate when the mode is rare; the claims of the body the paper shows it for are
  decided on the median seed by the sign test, drawn with the median exactly on the threshold.
"""

from __future__ import annotations

import importlib
import math
from pathlib import Path

import numpy as np
import pytest

from dtcore.registry import declared
from dtcore.sequential_errors import log_rule, sesoi_rule, t_rule, tabulated
from dtcore.verdicts import check_aggregate, check_log_aggregate, check_sign

ROOT = Path(__file__).resolve().parent.parent
CLAIMS = declared([importlib.import_module(f"claims.{p.stem}") for p in sorted((ROOT / "claims").glob("test_*.py"))])
DRAWS = 20000
SEEDS = (3, 5, 8, 10)      # the profiles' seed counts and the sequential design's first looks
SIGMAS = (0.5, 1.0)
MIRROR = {"right": "left", "left": "right"}


def bound(nominal: float) -> float:
    """A rate whose true value is ``nominal`` reads up to 3 Monte Carlo standard errors above it."""
    return nominal + 3 * math.sqrt(nominal * (1 - nominal) / DRAWS)


def claim(claim_id: str):
    return next(c for c in CLAIMS if c.id == claim_id)


def decide(c, x: np.ndarray, *, skew: str | None = "declared") -> np.ndarray:
    """[DRAWS] outcomes of claim ``c``'s seed aggregate over the rows of ``x`` [DRAWS, n]: its
    declared rule (``skew="declared"``), or the t under another ``skew`` (None: Student's). The
    rules over rows are for ">" claims: a "<" claim is decided on the mirrored values, the same
    outcome (an interval wholly below a threshold is wholly above its mirror image)."""
    crit = c.criterion()
    skew = c.skew if skew == "declared" else skew
    if c.log_scale:
        return (log_rule(crit.threshold)(x) if c.direction == ">" else log_rule(1 / crit.threshold)(1 / x))[0]
    if c.aggregate == "sign":   # the outcome and p depend only on how many seeds lie on the claim's side
        step = 1.0 if c.direction == ">" else -1.0
        return tabulated(lambda toward: check_sign(crit, [crit.threshold + (step if t else -step) for t in toward]))(
            x > crit.threshold if c.direction == ">" else x < crit.threshold)[0]
    threshold = crit.threshold
    if c.direction == "<":
        x, threshold, skew = -x, -threshold, MIRROR.get(skew)
    rule = t_rule(threshold, skew) if crit.sesoi is None else sesoi_rule(threshold, crit.sesoi, skew)
    return rule(x)[0]


def rate(outcomes: np.ndarray, outcome: str) -> float:
    return float(np.mean(outcomes == outcome))


def lognormal(rng: np.random.Generator, sigma: float, n: int, *, mean: float, sd: float, skew: str) -> np.ndarray:
    """[DRAWS, n] per-seed values a + b exp(sigma Z) with this mean and sd, mirrored for left skew."""
    z = np.exp(sigma * rng.standard_normal((DRAWS, n)))
    centred = (z - math.exp(sigma ** 2 / 2)) / math.sqrt((math.exp(sigma ** 2) - 1) * math.exp(sigma ** 2))
    return mean + sd * (centred if skew == "right" else -centred)


def minimum_difference(rng: np.random.Generator, n: int, *, ratio: float, mean: float, sd: float) -> np.ndarray:
    """[DRAWS, n] differences of two minima over many pairs (each a Gumbel minimum), the second
    ``ratio`` times as spread (a pre-trained body's confusion pinned near -1), with this mean and sd."""
    x = -rng.gumbel(0.0, 1.0, (DRAWS, n)) + rng.gumbel(0.0, ratio, (DRAWS, n))
    centred = (x + np.euler_gamma * (1 - ratio)) / (math.pi / math.sqrt(6) * math.sqrt(1 + ratio ** 2))
    return mean + sd * centred


def two_modes(rng: np.random.Generator, n: int, *, share: float, common: tuple[float, float],
              rare: tuple[float, float]) -> np.ndarray:
    """[DRAWS, n] seeds from a ``common`` (mean, sd) normal mode, each from the ``rare`` one with
    probability ``share``."""
    pick = rng.random((DRAWS, n)) < share
    return np.where(pick, rng.normal(*rare, (DRAWS, n)), rng.normal(*common, (DRAWS, n)))


# -- the claims that declare a skew --------------------------------------------------------

SKEWED = [c for c in CLAIMS if c.skew is not None]
FAILING = ("table1.igpt_catastrophic", "appG3.igpt_without_clipping_still_catastrophic")
SECOND_MODE = ("table2.random_init_learns_without_context_off_hopper",
               "sec5_5.random_init_fails_without_context_on_hopper")


def test_the_audited_claims_declare_their_shape():
    """docs/statistics.md's audit: the claims whose per-seed values are skewed and decided on a
    mean declare the side; those of the body with a second mode in the paper (Random Init K=1,
    Table 4) are decided on the median seed."""
    assert {c.id: c.skew for c in SKEWED} == {
        **{cid: "right" for cid in FAILING}, "sec5_5.gpt2_learns_faster_than_random_without_context": "right",
        "sec5_4.igpt_gradient_norms_collapse_to_clip": "left", "sec5_4.pretrained_larger_gradient_confusion": "left"}
    for cid in SECOND_MODE:
        assert claim(cid).aggregate == "sign" and not claim(cid).log_scale


@pytest.mark.parametrize("n", SEEDS)
def test_the_plain_t_falsely_decides_the_skewed_side_of_lognormal_seeds(n):
    """Before: each skewed claim under Student's t, lognormal values skewed to its side with the
    mean on the threshold (spread 5 x any smallest effect of interest): the side the skew favours
    is falsely decided above 2.5 % at sigma 0.5 and above 10 % at sigma 1."""
    rng = np.random.default_rng(100 + n)
    for c in SKEWED:
        crit = c.criterion()
        favoured = "holds" if (c.direction == "<") == (c.skew == "right") else "contradicted"
        for sigma, at_least in ((0.5, bound(0.025)), (1.0, 0.10)):
            x = lognormal(rng, sigma, n, mean=crit.threshold, sd=5 * (crit.sesoi or 1.0), skew=c.skew)
            assert rate(decide(c, x, skew=None), favoured) > at_least, (c.id, sigma)


@pytest.mark.parametrize("n", SEEDS)
@pytest.mark.parametrize("claim_id", [c.id for c in SKEWED])
def test_a_declared_skew_keeps_each_side_at_its_rate_with_the_mean_on_the_threshold(claim_id, n):
    """Lognormal per-seed values of sigma 0.5 and 1, skewed to the declared side, their mean
    exactly on the threshold (spread 1 and 5 x any smallest effect of interest): falsely holds,
    falsely contradicted at most 2.5 % each."""
    c = claim(claim_id)
    crit = c.criterion()
    rng = np.random.default_rng(200 + n)
    for sigma in SIGMAS:
        for spread in (1.0, 5.0):
            x = lognormal(rng, sigma, n, mean=crit.threshold, sd=spread * (crit.sesoi or 1.0), skew=c.skew)
            outcomes = decide(c, x)
            for wrong in ("holds", "contradicted"):
                assert rate(outcomes, wrong) <= bound(0.025), (sigma, spread, wrong, rate(outcomes, wrong))


@pytest.mark.parametrize("n", SEEDS)
@pytest.mark.parametrize("claim_id", [c.id for c in SKEWED if c.sesoi is not None])
def test_a_declared_skew_shows_an_effect_on_the_margin_negligible_at_most_5_percent(claim_id, n):
    """The mean exactly on the threshold +- the smallest effect of interest, lognormal values of
    sigma 0.5 and 1 skewed to the declared side: falsely negligible at most 5 % on each margin
    (Student's TOST: about 21 % on the margin the skew favours)."""
    c = claim(claim_id)
    crit = c.criterion()
    rng = np.random.default_rng(300 + n)
    for sigma in SIGMAS:
        for margin in (crit.sesoi, -crit.sesoi):
            x = lognormal(rng, sigma, n, mean=crit.threshold + margin, sd=crit.sesoi, skew=c.skew)
            assert rate(decide(c, x), "negligible") <= bound(0.05), (sigma, margin)


@pytest.mark.parametrize("n", SEEDS)
def test_gradient_confusion_keeps_its_rate_for_a_difference_of_minima(n):
    """The confusion claim's own shape: Random Init's minimum over pairs minus a pre-trained
    body's three times tighter one (Gumbel minima), the mean on the threshold (spread 1 and 5 x
    sesoi): false holds and false contradicted at most 2.5 %; Student's t: 3-5 % false holds."""
    c = claim("sec5_4.pretrained_larger_gradient_confusion")
    crit = c.criterion()
    rng = np.random.default_rng(400 + n)
    for spread in (1.0, 5.0):
        outcomes = decide(c, minimum_difference(rng, n, ratio=1 / 3, mean=crit.threshold, sd=spread * crit.sesoi))
        assert rate(outcomes, "holds") <= bound(0.025) and rate(outcomes, "contradicted") <= bound(0.025)


@pytest.mark.parametrize("n", SEEDS)
def test_the_rules_over_rows_decide_as_the_claims_own_verdicts(n):
    """The vectorised rules above give each claim's own seed aggregate (check_aggregate with its
    declared skew, check_log_aggregate, check_sign) draw by draw, at effects spread so that every
    outcome occurs."""
    rng = np.random.default_rng(450 + n)
    for c in [*SKEWED, *(c for c in CLAIMS if c.log_scale), *(claim(cid) for cid in SECOND_MODE)]:
        crit = c.criterion()
        scale = crit.sesoi or (crit.threshold / 4 if c.log_scale else 1.0)
        x = lognormal(rng, 1.0, n, mean=0.0, sd=scale, skew=c.skew or "right")[:150] \
            + crit.threshold + scale * rng.uniform(-4, 4, (150, 1))
        x = np.abs(x) if c.log_scale else x
        if c.log_scale:
            verdicts = [check_log_aggregate(crit, row).outcome for row in x]
        elif c.aggregate == "sign":
            verdicts = [check_sign(crit, row).outcome for row in x]
        else:
            verdicts = [check_aggregate(crit, row, skew=c.skew).outcome for row in x]
        assert decide(c, x).tolist() == verdicts, c.id


# -- ratios on the log scale ---------------------------------------------------------------

@pytest.mark.parametrize("n", SEEDS)
def test_a_ratio_on_the_log_scale_keeps_its_rate_with_the_median_on_the_threshold(n):
    """Every log-scale claim's criterion; lognormal ratios of sigma 0.5 and 1 whose median (their
    geometric mean) lies exactly on the threshold: false holds, false contradicted at most 2.5 %."""
    rng = np.random.default_rng(500 + n)
    for c in (c for c in CLAIMS if c.log_scale):
        for sigma in SIGMAS:
            outcomes = decide(c, c.criterion().threshold * np.exp(sigma * rng.standard_normal((DRAWS, n))))
            assert rate(outcomes, "holds") <= bound(0.025) and rate(outcomes, "contradicted") <= bound(0.025)


# -- a second mode -------------------------------------------------------------------------

FAILED = (math.log(0.03), 0.5)    # log K=1 / K=20 ratio of a failed seed (Table 4: about 2 against 71)
LEARNED = (0.0, 0.05)             # log ratio of a seed that learns without context


@pytest.mark.parametrize("n", SEEDS)
def test_a_rare_failed_seed_breaks_the_log_scale_rule_of_a_ratio(n):
    """Before: Random Init K=1 / K=20 on the log scale with Table 4's failed-seed mode, the
    geometric mean exactly on 0.8 (one seed in 16 fails): it holds falsely 52-78 % of the time,
    nearly whenever no seed fails (the chance (1 - share)^n)."""
    c = claim("table2.random_init_learns_without_context_off_hopper")
    threshold = c.criterion().threshold
    share = math.log(threshold) / FAILED[0]
    x = np.exp(two_modes(np.random.default_rng(600 + n), n, share=share, common=LEARNED, rare=FAILED))
    held = rate(log_rule(threshold)(x)[0], "holds")
    assert 0.4 < held <= (1 - share) ** n + 3 * math.sqrt(0.25 / DRAWS), held


@pytest.mark.parametrize("n", SEEDS)
@pytest.mark.parametrize("claim_id", SECOND_MODE)
def test_the_median_seed_keeps_its_rate_under_a_second_mode(claim_id, n):
    """After: Random Init K=1's claims on the median seed (the sign test), its seeds from two modes
    (failed and learning) with the median exactly on the threshold: false holds, false
    contradicted at most 2.5 % each; below 6 seeds the sign test decides nothing, and says so."""
    c = claim(claim_id)
    crit = c.criterion()
    rng = np.random.default_rng(700 + n)
    if c.log_scale or claim_id.startswith("table2"):      # a K=1 / K=20 ratio: half the seeds failed
        x = np.exp(two_modes(rng, n, share=0.5, common=LEARNED, rare=FAILED))
        x = np.where(x > crit.threshold, np.maximum(x, crit.threshold * 1.01), np.minimum(x, crit.threshold * 0.99))
    else:                                                 # a score: half the seeds learned
        x = two_modes(rng, n, share=0.5, common=(2.0, 1.5), rare=(60.0, 5.0))
    outcomes = decide(c, x)
    assert rate(outcomes, "holds") <= bound(0.025) and rate(outcomes, "contradicted") <= bound(0.025)
    if n < 6:
        assert "decides from 6 seeds agreeing" in check_sign(crit, np.full(n, crit.threshold / 2)).message


# A rare mode each mean claim's seeds could hide, with the mean exactly on the threshold, and the
# outcome it makes false: a failing iGPT seed that learns (one in 8.5), a Random Init K=1 seed that
# fails under GPT2's lead (one in 10, Table 4).
HIDDEN = {"table1.igpt_catastrophic": (dict(share=8 / 68, common=(2.0, 1.5), rare=(70.0, 5.0)), "holds"),
          "appG3.igpt_without_clipping_still_catastrophic": (dict(share=8 / 68, common=(2.0, 1.5), rare=(70.0, 5.0)),
                                                             "holds"),
          "sec5_5.gpt2_learns_faster_than_random_without_context": (
              dict(share=0.1, common=(-6.0, 3.0), rare=(54.0, 5.0)), "contradicted")}


@pytest.mark.parametrize("n", SEEDS)
@pytest.mark.parametrize("claim_id", list(HIDDEN))
def test_a_mean_under_a_rare_second_mode_is_decided_falsely_only_when_no_seed_shows_it(claim_id, n):
    """Where a mean claim's seeds could hide a rare mode, no rule of a mean keeps 2.5 % at a few
    seeds: the declared-skew t decides falsely (iGPT: 20-47 % false holds; GPT2's lead: 4-30 %
    false contradicted), never more often than the chance (1 - share)^n that no seed shows the
    mode (docs/statistics.md states it for these claims)."""
    c = claim(claim_id)
    mode, wrong = HIDDEN[claim_id]
    assert c.criterion().threshold == pytest.approx((1 - mode["share"]) * mode["common"][0]
                                                    + mode["share"] * mode["rare"][0])   # the mean on it
    x = two_modes(np.random.default_rng(800 + n), n, **mode)
    assert rate(decide(c, x), wrong) <= (1 - mode["share"]) ** n + 3 * math.sqrt(0.25 / DRAWS)
