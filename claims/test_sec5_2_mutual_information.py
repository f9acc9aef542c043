"""§5.2 Mutual information: MINE estimates of Î(X;T) (input token vs the s_K activation) and
Î(Y;T) (the label a_K vs the activation at each position) at the middle block's MLP output of the
final checkpoints (Fig. 2, docs/spec.md §6.2); the same without considering context, per timestep at the
s_t token (App. E.3); and the MI between data of one timestep across environments (App. H.2).

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
from dtcore import analyses

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


# -- App. E.3: without considering context ----------------------------------------------------

NO_CONTEXT = Criterion(
    "appE3.random_carries_more_information_without_context",
    "min(Î_Random - Î_GPT2, Î_GPT2 - Î_iGPT) of the per-timestep MI averaged over the context, nats", ">", 0.0,
    None, "App. E.3, Fig. 17: Random Init generally has more information on input and label; iGPT almost none "
    "on the label")


def _step_means(runs, cache, env, seed, definition, quantity) -> tuple[float, float]:
    """(margin of the context-averaged curves, its noise floor)."""
    per_step = {b: analyses.mutual_information_per_step(runs, cache, runs.get(env, b, seed, "K20"),
                                                        estimator=ESTIMATOR[definition])
                for b in ("random", "gpt2", "igpt")}

    def margin(curves) -> float:
        r, g, i = (float(np.nanmean(curves[b][quantity])) for b in ("random", "gpt2", "igpt"))
        return min(r - g, g - i)

    return margin(per_step), mi_noise_floor(per_step, quantity, margin)


@claim(NO_CONTEXT)
@pytest.mark.trains
@ESTIMATORS
@QUANTITIES
def test_random_init_carries_more_information_without_context_across_seeds(env, seeds, quantity, definition, runs,
                                                                           analysis_cache, needs, record_property):
    """App. E.3: with Î(s_t; T_t(s_t)) and Î(a_t; T_t(s_t)) averaged over the context, "we again
    observe that the randomly initialized model generally has more information on input and label,
    and iGPT has almost nothing about label-related information" (seed aggregate)."""
    needs("gpt2", "igpt", "random")
    pairs = [_step_means(runs, analysis_cache, env, s, definition, quantity) for s in seeds]
    check_aggregate(NO_CONTEXT, [m for m, _ in pairs], record_property, definition=definition,
                    floor=float(np.nanmean([f for _, f in pairs])))


# -- App. H.2: data MI across environments ----------------------------------------------------

HOPPER_RTG = Criterion(
    "appH2.hopper_return_carries_least_action_information",
    "median over timesteps of Î(R̂_t; a_t) on hopper minus the smaller of halfcheetah's and walker2d's, nats",
    "<", 0.0, 1.05 - 1.43, "App. H.2, Fig. 22b: median ≈ 1.05 on hopper vs ≈ 1.43 / 1.58")
H2_ENVS = ("hopper", "halfcheetah", "walker2d")


def _h2(runs, cache, seed, definition) -> tuple[float, float]:
    data = {e: analyses.data_mutual_information(runs, cache, e, seed=seed, estimator=ESTIMATOR[definition])
            for e in H2_ENVS}

    def margin(curves) -> float:
        med = {e: float(np.nanmedian(curves[e]["ra"])) for e in H2_ENVS}
        return med["hopper"] - min(med["halfcheetah"], med["walker2d"])

    return margin(data), mi_noise_floor(data, "ra", margin)


@claim(HOPPER_RTG)
@pytest.mark.trains
@ESTIMATORS
def test_hopper_return_to_go_carries_the_least_action_information(seeds, definition, runs, analysis_cache,
                                                                  record_property):
    """App. H.2: "the estimated mutual information between return-to-go and action is smaller on
    average for Hopper than for other environments (Fig. 22 (b))" — MI between data of the same
    timestep, no model; the seeds seed the estimator (seed aggregate)."""
    missing = [e for e in H2_ENVS if e not in runs.selection.envs]
    if missing:
        pytest.skip(f"this claim compares the three environments; --envs excluded {', '.join(missing)}")
    pairs = [_h2(runs, analysis_cache, s, definition) for s in seeds]
    check_aggregate(HOPPER_RTG, [m for m, _ in pairs], record_property, definition=definition,
                    floor=float(np.nanmean([f for _, f in pairs])))
