"""§5.2 Mutual information: MINE estimates of Î(X;T) (input token vs the s_K activation) and
Î(Y;T) (the label a_K vs the activation at each position) at the middle block's MLP output of the
final checkpoints (Fig. 2, spec §6.2). Two estimators: the published in-sample one (100 samples,
critic 3 x 400; unsound at that size, ``../shared/spec/metric-pitfalls.md``) and the sound held-out
one with a shuffled-pairs baseline."""

from __future__ import annotations

import numpy as np
import pytest

from claims.criteria import Criterion, check, check_aggregate, inconclusive, record_figure
from claims.measures import mi_curves, mi_ordering_share, rtg_label_share

ESTIMATORS = pytest.mark.parametrize("estimator", ["in-sample", "held-out"])
QUANTITIES = pytest.mark.parametrize("quantity", ["ixt", "iyt"])

ORDERING = Criterion(
    "sec5_2.random_carries_more_information",
    "share of token positions with Î(Random) > Î(GPT2) > Î(iGPT)", ">", 0.5, None,
    "§5.2, Fig. 2: Random > GPT2 > iGPT at (almost) all positions, iGPT near 0")
RTG_LABEL = Criterion(
    "sec5_2.gpt2_rtg_tokens_carry_label_information",
    "share of timesteps where GPT2's Î(Y;T) at R̂_t exceeds that at s_t and a_t", ">", 0.5, None,
    "§5.2, Fig. 2: for GPT2 the return-to-go tokens carry the most label information")


def _curves(runs, cache, env, seed, estimator):
    return {b: mi_curves(runs, cache, env, seed, b, estimator) for b in ("random", "gpt2", "igpt")}


def _within_baseline(curves, quantity) -> bool:
    """The held-out estimates of all three bodies lie within the shuffled-pairs baseline's spread."""
    est = np.concatenate([np.asarray(c[quantity], float) for c in curves.values()])
    base = np.concatenate([np.asarray(c[f"{quantity}_shuffled"], float) for c in curves.values()])
    base = base[np.isfinite(base)]
    return bool(base.size) and float(np.nanmax(est)) <= float(np.mean(base) + 2 * np.std(base))


@pytest.mark.claim(id="sec5_2.random_carries_more_information", section="5.2")
@pytest.mark.trains
@ESTIMATORS
@QUANTITIES
def test_random_init_carries_more_information_than_pretrained(env, seed, quantity, estimator, runs,
                                                              analysis_cache, needs, record_property):
    """§5.2: "the mutual information between the representation and the data is larger in the
    randomly initialized model than the pre-trained models" (Random > GPT2 > iGPT)."""
    needs("gpt2", "igpt", "random")
    curves = _curves(runs, analysis_cache, env, seed, estimator)
    record_property("estimator", estimator)
    for b, c in curves.items():
        record_property(f"median_{quantity}_{b}", float(np.nanmedian(c[quantity])))
    record_figure(record_property, "mi_positions", {
        "figure": "Fig. 2", "title": f"{env} seed {seed}: {quantity.upper()} ({estimator}), block "
        f"{curves['gpt2']['block']}", "type": "lines", "xlabel": "token position", "ylabel": "MI (nats)",
        "series": {b: {"x": c["positions"], "y": c[quantity]} for b, c in curves.items()}})
    share = mi_ordering_share(curves, quantity)
    if estimator == "held-out" and _within_baseline(curves, quantity):
        inconclusive(ORDERING, share, record_property, definition=estimator,
                     reason="every held-out estimate lies within the shuffled-pairs baseline (mean + 2 std)")
    check(ORDERING, share, record_property, definition=estimator)


@pytest.mark.claim(id="sec5_2.random_carries_more_information", section="5.2")
@pytest.mark.trains
@ESTIMATORS
@QUANTITIES
def test_random_init_carries_more_information_than_pretrained_across_seeds(env, seeds, quantity, estimator, runs,
                                                                           analysis_cache, needs, record_property):
    """§5.2 (seed aggregate): Random > GPT2 > iGPT at most token positions."""
    needs("gpt2", "igpt", "random")
    values = [mi_ordering_share(_curves(runs, analysis_cache, env, s, estimator), quantity) for s in seeds]
    check_aggregate(ORDERING, values, record_property, definition=estimator)


@pytest.mark.claim(id="sec5_2.gpt2_rtg_tokens_carry_label_information", section="5.2")
@pytest.mark.trains
@ESTIMATORS
def test_gpt2_return_tokens_carry_the_most_label_information(env, seed, estimator, runs, analysis_cache, needs,
                                                             record_property):
    """§5.2: for GPT2, "the mutual information between the representation of return-to-go tokens
    and the label is larger than the others"."""
    needs("gpt2")
    c = mi_curves(runs, analysis_cache, env, seed, "gpt2", estimator)
    check(RTG_LABEL, rtg_label_share(c["iyt"]), record_property, definition=estimator)
