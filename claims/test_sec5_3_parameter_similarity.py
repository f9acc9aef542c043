"""§5.3 Parameter similarity: L2 distance and cosine similarity of the body's parameters between
epoch 0 and the final epoch (Figs. 3, 4), as one concatenated vector (App. F.1's text, paper) or
as the median over parameter sets as published (as-run, docs/deviations.md 15).

A distance between two checkpoints has no sampling units inside the run: per-seed cells are
descriptive, and the seed aggregate decides."""

from __future__ import annotations

import pytest

from claims.criteria import Criterion, check_aggregate, check_rate, claim, describe, record_figure
from claims.measures import block_l2, depth_correlation, parameter_stats
from dtcore import analyses

DEFINITIONS = pytest.mark.parametrize("definition", ["paper", "as-run"])
PRETRAINED = pytest.mark.parametrize("backbone", ["gpt2", "igpt"])
STATS = pytest.mark.parametrize("stat", ["l2", "cosine"])
NO_UNITS = "a distance between two checkpoints has no sampling units inside the run"

LESS_CHANGE = {
    "l2": Criterion("sec5_3.pretrained_change_parameters_less",
                    "L2 distance of Random Init minus that of the pre-trained body", ">", 0.0, None,
                    "§5.3, Fig. 3: Random ~10-65 per set, GPT2 ~5-25 beyond block 1, iGPT <= 22"),
    "cosine": Criterion("sec5_3.pretrained_change_parameters_less",
                        "cosine similarity of the pre-trained body minus that of Random Init", ">", 0.0, None,
                        "§5.3, Fig. 4: GPT2 ~0.95-1, iGPT ~1, Random weights ~0.05-0.7"),
}
SHALLOW = Criterion(
    "sec5_3.largest_change_in_shallow_blocks",
    "Spearman correlation between block depth and the block's total L2 change", "<", 0.0, None,
    "§5.3, Fig. 3: GPT2 moves most in blocks 0-1 of 12; iGPT in its first ~8 of 24")
SHALLOW_ARGMAX = Criterion(
    "sec5_3.largest_change_in_shallow_blocks",
    "rate of seeds whose largest-change block lies in the first third of the body", ">", 1 / 3, None,
    "§5.3, Fig. 3 (the paper's cut: the first third of the blocks), against its chance rate")


def _less(runs, cache, env, seed, backbone, stat, definition) -> float:
    ours = parameter_stats(runs, cache, env, seed, backbone, definition)[stat]
    rand = parameter_stats(runs, cache, env, seed, "random", definition)[stat]
    return rand - ours if stat == "l2" else ours - rand


@claim(LESS_CHANGE["l2"])
@pytest.mark.trains
@DEFINITIONS
@STATS
@PRETRAINED
def test_pretrained_models_change_parameters_less(env, seed, backbone, stat, definition, runs, analysis_cache,
                                                  needs, record_property):
    """§5.3: "the parameters of the pre-trained models do not change so much compared with the
    randomly initialized model" (smaller L2 distance, larger cosine similarity)."""
    needs(backbone, "random")
    series = {}
    for b in (backbone, "random"):
        pc = analyses.parameter_change(runs, analysis_cache, runs.get(env, b, seed, "K20"))
        series[b] = {"labels": [n.removeprefix("transformer.h.") for n in pc["names"]], "values": pc[stat]}
    record_figure(record_property, f"param_{stat}", {
        "figure": "Fig. 3" if stat == "l2" else "Fig. 4", "title": f"{env} seed {seed}: {stat} per parameter set",
        "type": "bars", "xlabel": "parameter set", "ylabel": stat, "series": series})
    describe(LESS_CHANGE[stat], _less(runs, analysis_cache, env, seed, backbone, stat, definition), record_property,
             definition=definition, why=NO_UNITS)


@claim(LESS_CHANGE["l2"])
@pytest.mark.trains
@DEFINITIONS
@STATS
@PRETRAINED
def test_pretrained_models_change_parameters_less_across_seeds(env, seeds, backbone, stat, definition, runs,
                                                               analysis_cache, needs, record_property):
    """§5.3 (seed aggregate of the paired per-seed differences)."""
    needs(backbone, "random")
    values = [_less(runs, analysis_cache, env, s, backbone, stat, definition) for s in seeds]
    check_aggregate(LESS_CHANGE[stat], values, record_property, definition=definition)


@claim(SHALLOW)
@pytest.mark.trains
@PRETRAINED
def test_pretrained_models_change_most_in_shallow_blocks(env, seed, backbone, runs, analysis_cache, needs,
                                                         record_property):
    """§5.3: "the parameters in the shallow layers of the pre-trained models change more than the
    deeper layers"."""
    needs(backbone)
    sums = block_l2(runs, analysis_cache, env, seed, backbone)
    record_property("l2_per_block", sums)
    describe(SHALLOW, depth_correlation(sums), record_property, definition="paper", why=NO_UNITS)


@claim(SHALLOW)
@pytest.mark.trains
@PRETRAINED
@DEFINITIONS
def test_pretrained_models_change_most_in_shallow_blocks_across_seeds(env, seeds, backbone, definition, runs,
                                                                      analysis_cache, needs, record_property):
    """§5.3 (seed aggregate). paper: the depth-change rank correlation is negative (scale-free);
    as-run: the largest-change block lies in the first third more often than its chance rate
    for the number of blocks (the paper's cut, docs/deviations.md 28)."""
    needs(backbone)
    sums = [block_l2(runs, analysis_cache, env, s, backbone) for s in seeds]
    if definition == "paper":
        check_aggregate(SHALLOW, [depth_correlation(x) for x in sums], record_property, definition=definition)
        return
    n_blocks = len(sums[0])
    first_third = [b for b in range(n_blocks) if b / n_blocks < 1 / 3]
    crit = Criterion(SHALLOW_ARGMAX.claim_id, SHALLOW_ARGMAX.statistic, ">", len(first_third) / n_blocks, None,
                     f"{SHALLOW_ARGMAX.source}: {len(first_third)} of {n_blocks} blocks")
    check_rate(crit, [int(max(range(n_blocks), key=x.__getitem__)) in first_third for x in sums], record_property,
               definition=definition)
