"""§5.3 Parameter similarity: L2 distance and cosine similarity of the body's parameters between
epoch 0 and the final epoch (Figs. 3, 4), per parameter set (as run, spec §6.3) or as one
concatenated vector (App. F.1's text, paper)."""

from __future__ import annotations

import pytest

from claims.criteria import Criterion, check, check_aggregate, record_figure
from claims.measures import largest_change_depth, parameter_stats
from fixtures import analyses

DEFINITIONS = pytest.mark.parametrize("definition", ["paper", "as-run"])
PRETRAINED = pytest.mark.parametrize("backbone", ["gpt2", "igpt"])
STATS = pytest.mark.parametrize("stat", ["l2", "cosine"])

LESS_CHANGE = {
    "l2": Criterion("sec5_3.pretrained_change_parameters_less",
                    "L2 distance of Random Init minus that of the pre-trained body", ">", 0.0, None,
                    "§5.3, Fig. 3: Random ~10-65 per set, GPT2 ~5-25 beyond block 1, iGPT <= 22"),
    "cosine": Criterion("sec5_3.pretrained_change_parameters_less",
                        "cosine similarity of the pre-trained body minus that of Random Init", ">", 0.0, None,
                        "§5.3, Fig. 4: GPT2 ~0.95-1, iGPT ~1, Random weights ~0.05-0.7"),
}
SHALLOW = Criterion(
    "sec5_3.largest_change_in_shallow_blocks", "relative depth of the block with the largest total L2 change",
    "<", 1 / 3, None, "§5.3, Fig. 3: GPT2 moves most in blocks 0-1 of 12; iGPT in its first ~8 of 24")


@pytest.mark.claim(id="sec5_3.pretrained_change_parameters_less", section="5.3")
@pytest.mark.trains
@DEFINITIONS
@STATS
@PRETRAINED
def test_pretrained_models_change_parameters_less(env, seed, backbone, stat, definition, runs, analysis_cache,
                                                  needs, record_property):
    """§5.3: "the parameters of the pre-trained models do not change so much compared with the
    randomly initialized model" (smaller L2 distance, larger cosine similarity)."""
    needs(backbone, "random")
    ours = parameter_stats(runs, analysis_cache, env, seed, backbone, definition)[stat]
    rand = parameter_stats(runs, analysis_cache, env, seed, "random", definition)[stat]
    record_property(f"{stat}_{backbone}", ours)
    record_property(f"{stat}_random", rand)
    series = {}
    for b in (backbone, "random"):
        pc = analyses.parameter_change(runs, analysis_cache, runs.get(env, b, seed, "K20"))
        series[b] = {"labels": [n.removeprefix("transformer.h.") for n in pc["names"]], "values": pc[stat]}
    record_figure(record_property, f"param_{stat}", {
        "figure": "Fig. 3" if stat == "l2" else "Fig. 4", "title": f"{env} seed {seed}: {stat} per parameter set",
        "type": "bars", "xlabel": "parameter set", "ylabel": stat, "series": series})
    value = rand - ours if stat == "l2" else ours - rand
    check(LESS_CHANGE[stat], value, record_property, definition=definition)


@pytest.mark.claim(id="sec5_3.pretrained_change_parameters_less", section="5.3")
@pytest.mark.trains
@DEFINITIONS
@STATS
@PRETRAINED
def test_pretrained_models_change_parameters_less_across_seeds(env, seeds, backbone, stat, definition, runs,
                                                               analysis_cache, needs, record_property):
    """§5.3 (seed aggregate): pre-trained parameters move less than Random Init's."""
    needs(backbone, "random")
    values = []
    for s in seeds:
        ours = parameter_stats(runs, analysis_cache, env, s, backbone, definition)[stat]
        rand = parameter_stats(runs, analysis_cache, env, s, "random", definition)[stat]
        values.append(rand - ours if stat == "l2" else ours - rand)
    check_aggregate(LESS_CHANGE[stat], values, record_property, definition=definition)


@pytest.mark.claim(id="sec5_3.largest_change_in_shallow_blocks", section="5.3")
@pytest.mark.trains
@PRETRAINED
def test_pretrained_models_change_most_in_shallow_blocks(env, seed, backbone, runs, analysis_cache, needs,
                                                         record_property):
    """§5.3: "the parameters in the shallow layers of the pre-trained models change more than the
    deeper layers"."""
    needs(backbone)
    depth, sums = largest_change_depth(runs, analysis_cache, env, seed, backbone)
    record_property("l2_per_block", sums)
    check(SHALLOW, depth, record_property)
