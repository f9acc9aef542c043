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

from dtcore import analyses
from dtcore.claim import Claim, Components, Measured, figure
from dtcore.measures import mi_curves, mi_noise_floor, mi_ordering_components, rtg_label_margin

ESTIMATOR = {"paper": "in-sample", "sound": "held-out"}
ESTIMATORS = ("paper", "sound")
NO_UNITS = "one MINE estimate per position, without replicates over the samples"
BODIES = ("random", "gpt2", "igpt")

# Why these claims declare no smallest effect of interest (docs/statistics.md, "Negligible effects").
NO_SESOI = ("a MINE estimate is a lower bound that shrinks toward zero with a weaker critic, so estimates shown "
            "alike are not mutual informations shown alike")

ORDERING = Claim(
    "sec5_2.random_carries_more_information",
    quote="We observe that the randomly initialized model consistently has higher mutual information both for "
          "input and label than pre-trained models. Given the catastrophic performance of iGPT, it is "
          "understandable that iGPT representations have almost no information", source="§5.2",
    note="Random > GPT2 > iGPT at every token position, each gap decided on its own",
    statistic="Î_Random - Î_GPT2 and Î_GPT2 - Î_iGPT at each token position, nats", direction=">",
    threshold=0.0, basis="§5.2, Fig. 2: Random > GPT2 > iGPT at (almost) all positions, iGPT near 0",
    bodies=BODIES, variants={"quantity": ("ixt", "iyt")}, definitions=ESTIMATORS, no_units=NO_UNITS,
    exceptions=0,
    sesoi_basis=NO_SESOI)


def _curves(cell) -> dict:
    return {b: mi_curves(cell, b, ESTIMATOR[cell.definition]) for b in BODIES}


def _floor(curves: dict, q: str) -> float:
    """The noise floor of one gap: twice the spread of the shuffled-pairs estimates plus the median
    size of the gaps between the bodies' shuffled curves (measures.mi_noise_floor)."""
    return mi_noise_floor(curves, q, lambda c: float(np.nanmedian(np.abs(mi_ordering_components(c, q)))))


@ORDERING.measure
def ordering_gaps(cell):
    curves, q = _curves(cell), cell.quantity
    positions = curves["gpt2"]["positions"]
    labels = (*(f"position {p}: Random - GPT2" for p in positions), *(f"position {p}: GPT2 - iGPT" for p in positions))
    return Components(mi_ordering_components(curves, q), labels, floor=_floor(curves, q),
                      extras={f"median_{q}_{b}": float(np.nanmedian(c[q])) for b, c in curves.items()})


@ORDERING.drawing
def mi_per_position(cell):
    curves, q = _curves(cell), cell.quantity
    return [figure("mi_positions", figure="Fig. 2", title=f"{cell.env} seed {cell.seed}: {q.upper()} "
                   f"({ESTIMATOR[cell.definition]}), block {curves['gpt2']['block']}", type="lines",
                   xlabel="token position", ylabel="MI (nats)",
                   series={b: {"x": c["positions"], "y": c[q]} for b, c in curves.items()}, hline=_floor(curves, q))]


RTG_LABEL = Claim(
    "sec5_2.gpt2_rtg_tokens_carry_label_information",
    quote="We also notice that for label the language-pre-trained model has consistently higher mutual "
          "information for a specific token type (return-to-go)", source="§5.2",
    statistic="median over timesteps of GPT2's Î(Y;T) at R̂_t minus the larger of that at s_t and a_t, nats",
    direction=">", threshold=0.0,
    basis="§5.2, Fig. 2: for GPT2 the return-to-go tokens carry the most label information",
    bodies=("gpt2",), definitions=ESTIMATORS, no_units=NO_UNITS,
    sesoi_basis=NO_SESOI)


@RTG_LABEL.measure
def rtg_label_gap(cell):
    c = mi_curves(cell, "gpt2", ESTIMATOR[cell.definition])
    return Measured(rtg_label_margin(c["iyt"]),
                    floor=mi_noise_floor({"gpt2": c}, "iyt", lambda s: rtg_label_margin(s["gpt2"]["iyt"])))


# -- App. E.3: without considering context ----------------------------------------------------

NO_CONTEXT = Claim(
    "appE3.random_carries_more_information_without_context",
    quote="We again observe that the randomly initialized model generally has more information on input and "
          "label", source="App. E.3",
    note="Î(s_t; T_t(s_t)) and Î(a_t; T_t(s_t)) averaged over the context, Random Init against the larger of "
         "GPT2 and iGPT",
    statistic="Î_Random minus the larger of Î_GPT2 and Î_iGPT, of the per-timestep MI averaged over the "
              "context, nats", direction=">", threshold=0.0, basis="App. E.3, Fig. 17: Random Init generally "
    "has more information on input and label", bodies=BODIES, variants={"quantity": ("ixt", "iyt")},
    definitions=ESTIMATORS, per_seed=False,
    sesoi_basis=NO_SESOI)


@NO_CONTEXT.measure
def random_minus_pretrained_without_context(cell):
    q = cell.quantity
    per_step = {b: analyses.mutual_information_per_step(cell.store, cell.cache, cell.run(b),
                                                        estimator=ESTIMATOR[cell.definition]) for b in BODIES}

    def margin(curves) -> float:
        r, g, i = (float(np.nanmean(curves[b][q])) for b in BODIES)
        return r - max(g, i)

    return Measured(margin(per_step), floor=mi_noise_floor(per_step, q, margin))


# -- App. H.2: data MI across environments ----------------------------------------------------

H2_ENVS = ("hopper", "halfcheetah", "walker2d")
HOPPER_RTG = Claim(
    "appH2.hopper_return_carries_least_action_information",
    quote="the estimated mutual information between return-to-go and action is smaller on average for Hopper "
          "than for other environments (Fig. 22 (b))", source="App. H.2",
    note="MI between data of the same timestep, no model; the seeds seed the estimator",
    statistic="median over timesteps of Î(R̂_t; a_t) on hopper minus the smaller of halfcheetah's and "
              "walker2d's, nats", direction="<", threshold=0.0, paper_value=1.05 - 1.43,
    basis="App. H.2, Fig. 22b: median ≈ 1.05 on hopper vs ≈ 1.43 / 1.58", definitions=ESTIMATORS,
    scope="all", needs_envs=H2_ENVS, per_seed=False,
    sesoi_basis=NO_SESOI)


@HOPPER_RTG.measure
def hopper_minus_others(cell):
    data = {e: analyses.data_mutual_information(cell.store, cell.cache, e, seed=cell.seed,
                                                estimator=ESTIMATOR[cell.definition]) for e in H2_ENVS}

    def margin(curves) -> float:
        med = {e: float(np.nanmedian(curves[e]["ra"])) for e in H2_ENVS}
        return med["hopper"] - min(med["halfcheetah"], med["walker2d"])

    return Measured(margin(data), floor=mi_noise_floor(data, "ra", margin))
