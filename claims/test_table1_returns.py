"""Table 1: normalised scores of GPT2, iGPT and Random Init fine-tuned with K = 20, under D4RL's
normalisation (paper) and the published code's dataset-mean normalisation (as-run, docs/deviations.md 1).

The score of a run is the paper's early stopping without its winner's curse: the epoch with the
best mean return on the per-epoch evaluation episodes, scored on fresh episodes (other reset
seeds) that played no part in choosing it (docs/statistics.md). The biased best-of-epochs value,
the last epoch and the mean of the last three epochs are shown beside it (Table 1's table).

The premise of the mechanism findings (``premise=``), from scale-free parts: GPT2 above Random Init
on hopper (negligible when the gap is shown within 5 points), within a few points elsewhere, and
iGPT far below Random Init (its score under half of Random Init's). iGPT's absolute "< 10" of the
paper's D4RL scale stays a claim of its own, not a part of the premise."""

from __future__ import annotations

import numpy as np

from dtcore import statistics
from dtcore.claim import A_LEVEL, Claim, Pooled, figure, table
from dtcore.measures import SCORE_DEFINITIONS, score_curve, score_summary, scored

# Paper, Table 1 (as reported, dataset-mean normalisation): GPT2 / iGPT / Random Init.
TABLE1 = {"hopper": (79.5, 2.6, 67.7), "halfcheetah": (48.4, 1.3, 48.6), "walker2d": (71.2, 4.3, 71.0)}
BODIES = ("gpt2", "igpt", "random")
SCORES = dict(definitions=SCORE_DEFINITIONS, units="scored episodes")
MIN_BOOTSTRAP_RUNS = 15   # per environment: the stratified bootstrap covers >= 93 % from 15 (docs/statistics.md)

IGPT_CATASTROPHIC = Claim(
    "table1.igpt_catastrophic", **SCORES,
    quote="the bad performance of the model pre-trained with image data", source="Abstract",
    note="Table 1: iGPT's normalised score is 2.6 / 1.3 / 4.3 on hopper / halfcheetah / walker2d.",
    statistic="normalised score of iGPT (K=20, selected epoch on fresh episodes)", direction="<", threshold=10.0,
    basis="Table 1: 2.6 / 1.3 / 4.3 (we allow < 10)", bodies=("igpt",), shows=("gpt2", "random"), skew="right",
    skew_basis="a failing body's score sits near the floor of a policy that never learned (about 0, which it cannot "
               "fall far below) against a threshold of 10: a seed that learns a little is a long upper tail",
    sesoi_basis=A_LEVEL)
IGPT_FAR_BELOW_RANDOM = Claim(
    "table1.igpt_far_below_random", **SCORES,
    quote="the bad performance of the model pre-trained with image data", source="Abstract",
    note="the premise's scale-free reading of Table 1: iGPT scores 0.04 / 0.03 / 0.06 of Random Init's.",
    statistic="normalised score of iGPT / that of Random Init (same seed)", direction="<", threshold=0.5,
    paper_value=TABLE1["hopper"][1] / TABLE1["hopper"][2],
    basis="Table 1: 2.6 / 67.7, 1.3 / 48.6, 4.3 / 71.0 = 0.04 / 0.03 / 0.06; 'far worse' restated scale-free as "
          "under half of Random Init's score (registered 2026-12-06, after the 3-seed mini verdict of the absolute "
          "< 10 was public)",
    bodies=("igpt", "random"), log_scale=True, premise="iGPT far below Random Init (score ratio < 0.5)",
    sesoi_basis=A_LEVEL)
GPT2_BEATS_RANDOM_HOPPER = Claim(
    "table1.gpt2_beats_random_on_hopper", **SCORES,
    quote="on hopper GPT2 reaches 79.5 against Random Init's 67.7", source="Table 1", paraphrase=True,
    statistic="score GPT2 - score Random Init (hopper)", direction=">", threshold=0.0,
    paper_value=TABLE1["hopper"][0] - TABLE1["hopper"][2], basis="Table 1: 79.5 vs 67.7",
    sesoi=5.0, sesoi_basis="the 5-point margin within which Table 1's GPT2 and Random Init 'score alike' "
                           "(table1.gpt2_close_to_random); under half the paper's 11.8-point gap",
    bodies=("gpt2", "random"), envs=("hopper",), premise="GPT2 above Random Init")
GPT2_CLOSE_TO_RANDOM = Claim(
    "table1.gpt2_close_to_random", **SCORES,
    quote="on halfcheetah and walker2d GPT2 and Random Init score alike (48.4 vs 48.6, 71.2 vs 71.0)",
    source="Table 1", paraphrase=True, note="a TOST of the paired difference against a 5-point margin",
    statistic="score GPT2 - score Random Init (equivalence margin)", direction="within", threshold=5.0,
    basis="Table 1: within a few points (48.4 vs 48.6; 71.2 vs 71.0); margin 5 points fixed before any run",
    bodies=("gpt2", "random"), envs=("halfcheetah", "walker2d"), premise="GPT2 within 5 points of Random Init")


@IGPT_CATASTROPHIC.measure
def igpt_score(cell):
    return scored(cell, "igpt")


@IGPT_FAR_BELOW_RANDOM.measure
def igpt_over_random(cell):
    """iGPT's score over Random Init's on one seed; the two runs' episodes are drawn apart."""
    return scored(cell, "igpt", draw=1) / scored(cell, "random", draw=2)


# The docstring below is registered with the statistic (claims/registry.json): since 5a5445a the two
# runs of a seed are scored from the same start states (paired by start state), and their
# half-samples are drawn apart, which widens the per-seed interval (conservative).
@GPT2_BEATS_RANDOM_HOPPER.measure
@GPT2_CLOSE_TO_RANDOM.measure
def gpt2_minus_random(cell):
    """GPT2 - Random Init on one seed; the two runs' episodes are independent (own half-samples)."""
    return scored(cell, "gpt2", draw=1) - scored(cell, "random", draw=2)


@IGPT_CATASTROPHIC.drawing
def table_and_curves(cell):
    bodies = [b for b in BODIES if b in cell.store.selection.backbones]
    summaries = {b: score_summary(cell, b) for b in bodies}
    columns = list(next(iter(summaries.values())))
    curves = {b: score_curve(cell.run(b), cell.definition) for b in bodies}
    return [
        table("table1", title=f"Table 1 ({cell.env}, seed {cell.seed}, {cell.definition} normalisation)",
              columns=["body", *columns], rows=[[b, *[round(float(summaries[b][c]), 2) for c in columns]]
                                                for b in bodies],
              paper_rows=[[b, TABLE1[cell.env][BODIES.index(b)]] for b in bodies]
              if cell.definition == "as-run" else None),
        figure("learning_curves", figure="Table 1", title=f"{cell.env} seed {cell.seed}: normalised score per "
               f"epoch (K=20)", type="lines", xlabel="epoch", ylabel=f"normalised score ({cell.definition})",
               series={b: {"x": [e for e, _ in c], "y": [s for _, s in c], **_selected(cell, b)}
                       for b, c in curves.items()})]


def _selected(cell, body: str) -> dict:
    """The epoch a score of Table 1 reads, ringed on the learning curve (``scored``: the selected
    epoch; the sound definition reads the last checkpoints, no one epoch)."""
    return {} if cell.definition == "sound" else {"mark": {"x": cell.run(body).best_epoch, "label": "selected epoch"}}


# -- across environments (rliable) ------------------------------------------------------------

IGPT_IQM = Claim(
    "table1.igpt_catastrophic_across_envs", definitions=("paper", "as-run"),
    quote="iGPT fails on every environment", source="Table 1", paraphrase=True,
    note="the interquartile mean of its scores over all selected environments and seeds, with a stratified "
         "bootstrap interval (seeds resampled within each environment; Agarwal et al. 2021)",
    statistic="IQM of iGPT's scores over the selected environments", direction="<", threshold=10.0,
    paper_value=float(np.mean([v[1] for v in TABLE1.values()])),
    basis="Table 1 (rliable aggregate, Agarwal et al. 2021)", bodies=("igpt",), scope="all", per_seed=False,
    sesoi_basis=A_LEVEL,
    pooled=lambda by_env: Pooled(statistics.stratified_bootstrap(by_env, statistics.iqm),
                                 "stratified bootstrap of the IQM", MIN_BOOTSTRAP_RUNS, per_env=by_env))
GPT2_IMPROVES = Claim(
    "table1.gpt2_improves_on_random_across_envs", definitions=("paper", "as-run"),
    quote="language pre-training helps on hopper and matches Random Init elsewhere", source="Table 1",
    paraphrase=True,
    note="the probability that a GPT2 run outscores a Random Init run of the same environment, averaged over "
         "the selected environments, with a stratified bootstrap interval (Agarwal et al. 2021)",
    statistic="probability that a GPT2 run scores above a Random Init run", direction=">", threshold=0.5,
    basis="Table 1: better on hopper, equal elsewhere (rliable probability of improvement)",
    sesoi_basis="Table 1 gives per-environment scores, not a size for the probability of improvement: none is "
                "declared",
    bodies=("gpt2", "random"), scope="all", per_seed=False, pooled=lambda by_env: _improvement(by_env))


@IGPT_IQM.measure
def igpt_scored(cell) -> float:
    return scored(cell, "igpt").value


@GPT2_IMPROVES.measure
def gpt2_and_random_scores(cell) -> tuple[float, float]:
    return scored(cell, "gpt2").value, scored(cell, "random").value


def _improvement(by_env: dict[str, list[tuple[float, float]]]) -> Pooled:
    gpt2 = {e: [g for g, _ in pairs] for e, pairs in by_env.items()}
    rand = {e: [r for _, r in pairs] for e, pairs in by_env.items()}
    return Pooled(statistics.probability_of_improvement(gpt2, rand), "stratified bootstrap", MIN_BOOTSTRAP_RUNS,
                  per_env={e: [list(p) for p in pairs] for e, pairs in by_env.items()}, extras={"iqm_gpt2": statistics.iqm(np.concatenate(list(gpt2.values()))),
                          "iqm_random": statistics.iqm(np.concatenate(list(rand.values())))})
