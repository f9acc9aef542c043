"""§5.1 Activation similarity: debiased linear CKA of each hooked layer between epoch 0 and the
final epoch (Fig. 1), under the paper's token slice (App. D.1) and the published channel slice
(as-run, spec §6.1)."""

from __future__ import annotations

import numpy as np
import pytest

from claims.criteria import Criterion, check, check_aggregate, record_figure
from claims.measures import layernorm_share_above, mean_diagonal_cka
from fixtures import analyses

MODE = {"paper": "token", "as-run": "channel"}
TOKENS = pytest.mark.parametrize("token", ["state", "action", "return"])
DEFINITIONS = pytest.mark.parametrize("definition", ["paper", "as-run"])
PRETRAINED = pytest.mark.parametrize("backbone", ["gpt2", "igpt"])

CHANGE_MORE = Criterion(
    "sec5_1.pretrained_change_representations_more",
    "mean diagonal CKA(epoch 0, final) of Random Init minus that of the pre-trained body", ">", 0.0, None,
    "§5.1 and Fig. 1: Random Init keeps a sawtooth up to ~0.9, GPT2 mostly 0.05-0.3, iGPT < 0.1")
LAYERNORMS = Criterion(
    "sec5_1.random_similar_layers_are_layernorms",
    "share of LayerNorms among Random Init layers with CKA > 0.23 (state token)", ">", 0.5, 24 / 34,
    "§5.1, App. D.3: 34 layers above 0.23, 24 of them LayerNorms (threshold 0.23 as in the code)")
CROSS_LOW = Criterion(
    "sec5_1.cross_model_cka_low", "median CKA between layers of different fine-tuned models (state token)",
    "<", 0.3, None, "App. D.4: cross-model CKA values are mostly small (spec §7 claims 15-16)")


@pytest.mark.claim(id="sec5_1.pretrained_change_representations_more", section="5.1")
@pytest.mark.trains
@DEFINITIONS
@TOKENS
@PRETRAINED
def test_pretrained_models_change_representations_more(env, seed, backbone, token, definition, runs,
                                                       analysis_cache, needs, record_property):
    """§5.1: "the pre-trained models changed their representations more largely than the randomly
    initialized model" (mean diagonal CKA between pre- and post-fine-tuning activations)."""
    needs(backbone, "random")
    mode = MODE[definition]
    ours = mean_diagonal_cka(runs, analysis_cache, env, seed, backbone, token, mode)
    rand = mean_diagonal_cka(runs, analysis_cache, env, seed, "random", token, mode)
    record_property(f"mean_cka_{backbone}", ours)
    record_property("mean_cka_random", rand)
    series = {}
    for b in (backbone, "random"):
        diag = analyses.cka_diagonal(runs, analysis_cache, runs.get(env, b, seed, "K20"), token=token, mode=mode)
        x = np.linspace(0, 107, len(diag)).tolist()                   # "normalised layer" 0..107 as Fig. 1
        series[b] = {"x": x, "y": [float(v) for v in diag]}
    record_figure(record_property, "cka_diagonal", {
        "figure": "Fig. 1", "title": f"{env} seed {seed}, {token} token ({mode} slice)", "type": "lines",
        "xlabel": "normalised layer", "ylabel": "CKA(epoch 0, final)", "series": series, "hline": 0.23})
    check(CHANGE_MORE, rand - ours, record_property, definition=definition)


@pytest.mark.claim(id="sec5_1.pretrained_change_representations_more", section="5.1")
@pytest.mark.trains
@DEFINITIONS
@TOKENS
@PRETRAINED
def test_pretrained_models_change_representations_more_across_seeds(env, seeds, backbone, token, definition,
                                                                    runs, analysis_cache, needs, record_property):
    """§5.1 (seed aggregate): Random Init's mean diagonal CKA exceeds the pre-trained body's."""
    needs(backbone, "random")
    mode = MODE[definition]
    values = [mean_diagonal_cka(runs, analysis_cache, env, s, "random", token, mode)
              - mean_diagonal_cka(runs, analysis_cache, env, s, backbone, token, mode) for s in seeds]
    check_aggregate(CHANGE_MORE, values, record_property, definition=definition)


@pytest.mark.claim(id="sec5_1.random_similar_layers_are_layernorms", section="5.1")
@pytest.mark.trains
@DEFINITIONS
def test_random_init_layers_that_stay_similar_are_mostly_layernorms(env, seed, definition, runs,
                                                                    analysis_cache, needs, record_property):
    """§5.1: "most of the layers [of Random Init] whose CKA is higher than 0.23 are layer
    normalization layers" (App. D.3 lists them)."""
    needs("random")
    share, above = layernorm_share_above(runs, analysis_cache, env, seed, MODE[definition], 0.23)
    record_property("layers_above_threshold", above)
    check(LAYERNORMS, share, record_property, definition=definition)


@pytest.mark.claim(id="sec5_1.cross_model_cka_low", section="5.1")
@pytest.mark.trains
@DEFINITIONS
def test_different_fine_tuned_models_have_dissimilar_representations(env, seed, definition, runs,
                                                                     analysis_cache, needs, record_property):
    """App. D.4: the CKA between layers of different fine-tuned models is mostly small."""
    needs("gpt2", "igpt", "random")
    values = []
    for a, b in (("gpt2", "igpt"), ("gpt2", "random"), ("igpt", "random")):
        m = analyses.cka_cross(runs, analysis_cache, runs.get(env, a, seed, "K20"), runs.get(env, b, seed, "K20"),
                               token="state", mode=MODE[definition])
        record_property(f"median_cka_{a}_vs_{b}", float(np.nanmedian(m)))
        values.append(np.asarray(m).ravel())
    check(CROSS_LOW, float(np.nanmedian(np.concatenate(values))), record_property, definition=definition)
