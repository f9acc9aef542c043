"""§5.2 Mutual information: MINE estimates of Î(X;T) (input token vs the s_K activation) and
Î(Y;T) (the label a_K vs the activation at each position) at the middle block's MLP output of the
final checkpoints (Fig. 2, spec §6.2).

Two estimators (docs/deviations.md 21): ``paper``, the published in-sample estimator (the
analysis batch, trained and read on the same samples) with the profile's critic (paper profile:
3 x 400 for 1000 iterations, as published; mini: 2 x 32 for 100 iterations), and ``sound``, the
held-out estimator (half the samples train the critic, the other half are read). Both run beside
the same estimator on shuffled pairs (true MI 0). The noise floor of a comparison is twice the
spread of those null estimates plus the size of the same comparison made on them (a bias of the
estimator that depends on the token, e.g. on its dimension, shows up there); a comparison inside
it is inconclusive. A MINE estimate has no replicates over samples (retraining the critic per
half-sample costs hours), so per-seed cells are descriptive outside the floor."""

from __future__ import annotations

import numpy as np
import pytest

from claims.criteria import Criterion, check_aggregate, claim, describe, record_figure
from claims.measures import mi_curves, mi_noise_floor, mi_ordering_margin, rtg_label_margin

ESTIMATORS = pytest.mark.parametrize("definition", ["paper", "sound"])
QUANTITIES = pytest.mark.parametrize("quantity", ["ixt", "iyt"])
ESTIMATOR = {"paper": "in-sample", "sound": "held-out"}
NO_UNITS = "one MINE estimate per position, without replicates over the samples"

ORDERING = Criterion(
    "sec5_2.random_carries_more_information",
    "median over token positions of min(Î_Random - Î_GPT2, Î_GPT2 - Î_iGPT), nats", ">", 0.0, None,
    "§5.2, Fig. 2: Random > GPT2 > iGPT at (almost) all positions, iGPT near 0")
RTG_LABEL = Criterion(
    "sec5_2.gpt2_rtg_tokens_carry_label_information",
    "median over timesteps of GPT2's Î(Y;T) at R̂_t minus the larger of that at s_t and a_t, nats", ">", 0.0, None,
    "§5.2, Fig. 2: for GPT2 the return-to-go tokens carry the most label information")


def _floor(curves, quantity) -> float:
    return mi_noise_floor(curves, quantity, lambda c: mi_ordering_margin(c, quantity))


def _curves(runs, cache, env, seed, definition):
    return {b: mi_curves(runs, cache, env, seed, b, ESTIMATOR[definition]) for b in ("random", "gpt2", "igpt")}


@claim(ORDERING)
@pytest.mark.trains
@ESTIMATORS
@QUANTITIES
def test_random_init_carries_more_information_than_pretrained(env, seed, quantity, definition, runs,
                                                              analysis_cache, needs, record_property):
    """§5.2: "the mutual information between the representation and the data is larger in the
    randomly initialized model than the pre-trained models" (Random > GPT2 > iGPT)."""
    needs("gpt2", "igpt", "random")
    curves = _curves(runs, analysis_cache, env, seed, definition)
    for b, c in curves.items():
        record_property(f"median_{quantity}_{b}", float(np.nanmedian(c[quantity])))
    floor = _floor(curves, quantity)
    record_figure(record_property, "mi_positions", {
        "figure": "Fig. 2", "title": f"{env} seed {seed}: {quantity.upper()} ({ESTIMATOR[definition]}), block "
        f"{curves['gpt2']['block']}", "type": "lines", "xlabel": "token position", "ylabel": "MI (nats)",
        "series": {b: {"x": c["positions"], "y": c[quantity]} for b, c in curves.items()}, "hline": floor})
    describe(ORDERING, mi_ordering_margin(curves, quantity), record_property, definition=definition,
             floor=floor, why=NO_UNITS)


@claim(ORDERING)
@pytest.mark.trains
@ESTIMATORS
@QUANTITIES
def test_random_init_carries_more_information_than_pretrained_across_seeds(env, seeds, quantity, definition, runs,
                                                                           analysis_cache, needs, record_property):
    """§5.2 (seed aggregate): Random > GPT2 > iGPT at most token positions, beyond the noise floor."""
    needs("gpt2", "igpt", "random")
    curves = [_curves(runs, analysis_cache, env, s, definition) for s in seeds]
    floor = float(np.nanmean([_floor(c, quantity) for c in curves]))
    check_aggregate(ORDERING, [mi_ordering_margin(c, quantity) for c in curves], record_property,
                    definition=definition, floor=floor)


def _rtg(runs, cache, env, seed, definition) -> tuple[float, float]:
    c = mi_curves(runs, cache, env, seed, "gpt2", ESTIMATOR[definition])
    return rtg_label_margin(c["iyt"]), mi_noise_floor({"gpt2": c}, "iyt", lambda s: rtg_label_margin(s["gpt2"]["iyt"]))


@claim(RTG_LABEL)
@pytest.mark.trains
@ESTIMATORS
def test_gpt2_return_tokens_carry_the_most_label_information(env, seed, definition, runs, analysis_cache, needs,
                                                             record_property):
    """§5.2: for GPT2, "the mutual information between the representation of return-to-go tokens
    and the label is larger than the others"."""
    needs("gpt2")
    margin, floor = _rtg(runs, analysis_cache, env, seed, definition)
    describe(RTG_LABEL, margin, record_property, definition=definition, floor=floor, why=NO_UNITS)


@claim(RTG_LABEL)
@pytest.mark.trains
@ESTIMATORS
def test_gpt2_return_tokens_carry_the_most_label_information_across_seeds(env, seeds, definition, runs,
                                                                          analysis_cache, needs, record_property):
    """§5.2 (seed aggregate), beyond the noise floor."""
    needs("gpt2")
    pairs = [_rtg(runs, analysis_cache, env, s, definition) for s in seeds]
    check_aggregate(RTG_LABEL, [m for m, _ in pairs], record_property, definition=definition,
                    floor=float(np.nanmean([f for _, f in pairs])))
