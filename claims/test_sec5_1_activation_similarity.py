"""§5.1 Activation similarity: debiased linear CKA of each hooked layer between epoch 0 and the
final epoch (Fig. 1), and between layers of fine-tuned models (App. D.4, D.5), under the paper's
token slice (App. D.1) and the published channel slice (as-run, docs/deviations.md 2).

Per-seed cells carry the spread of the statistic over half-samples of the analysis batch (the
same half-samples for every body). Thresholds the paper read off its 12-block, 100k-step runs are
restated scale-free for the ``paper`` definition and kept as the paper's number for ``as-run``
(docs/deviations.md 26-27)."""

from __future__ import annotations

import numpy as np
import pytest

from claims.criteria import Criterion, check_aggregate, check_units, claim, describe, record_figure
from claims.measures import (Measured, cka_profile, layernorm_share, mean_diagonal_cka, off_diagonal_median)
from dtcore import analyses

MODE = {"paper": "token", "as-run": "channel"}
TOKENS = pytest.mark.parametrize("token", ["state", "action", "return"])
DEFINITIONS = pytest.mark.parametrize("definition", ["paper", "as-run"])
PRETRAINED = pytest.mark.parametrize("backbone", ["gpt2", "igpt"])
PAPER_ABOVE = 34 / 108     # App. D.3: 34 of Random Init's 108 hooked layers lie above 0.23
PAPER_CKA_THRESHOLD = 0.23

CHANGE_MORE = Criterion(
    "sec5_1.pretrained_change_representations_more",
    "mean diagonal CKA(epoch 0, final) of Random Init minus that of the pre-trained body", ">", 0.0, None,
    "§5.1 and Fig. 1: Random Init keeps a sawtooth up to ~0.9, GPT2 mostly 0.05-0.3, iGPT < 0.1")
SHALLOW_PROFILE = Criterion(
    "sec5_1.random_more_similar_from_middle_to_shallow",
    "mean diagonal CKA over the shallow half of the layers, Random Init minus GPT2", ">", 0.0, None,
    "§5.1: for Random Init the representations have a higher similarity to the initial state from the middle "
    "to the shallow layers")
LAYERNORMS = Criterion(
    "sec5_1.random_similar_layers_are_layernorms",
    "share of LayerNorms among Random Init's most similar layers (paper: top 34/108 by CKA; as-run: CKA > 0.23)",
    ">", 0.5, 24 / 34, "§5.1, App. D.3: 34 layers above 0.23, 24 of them LayerNorms")
CROSS_LOW = Criterion(
    "sec5_1.cross_model_cka_low",
    "median cross-model CKA minus (paper) the median within-model CKA of the same models / (as-run) 0.3",
    "<", 0.0, None, "App. D.4: CKA values between different fine-tuned models are small")
GPT2_COORDINATES = Criterion(
    "sec5_1.gpt2_layers_coordinate",
    "median CKA between different layers of fine-tuned GPT2 minus that of Random Init (state token)", ">", 0.0, None,
    "App. D.5.1: Random Init has an evenly divided lattice, GPT2 a block-like structure where layers "
    "have similar representations")


@claim(CHANGE_MORE)
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
    record_property(f"mean_cka_{backbone}", ours.value)
    record_property("mean_cka_random", rand.value)
    series = {}
    for b in (backbone, "random"):
        diag, _ = cka_profile(runs, analysis_cache, env, seed, b, token, mode)
        series[b] = {"x": np.linspace(0, 107, len(diag)).tolist(), "y": diag.tolist()}  # "normalised layer" as Fig. 1
    record_figure(record_property, "cka_diagonal", {
        "figure": "Fig. 1", "title": f"{env} seed {seed}, {token} token ({mode} slice)", "type": "lines",
        "xlabel": "normalised layer", "ylabel": "CKA(epoch 0, final)", "series": series})
    m = rand - ours
    check_units(CHANGE_MORE, m.value, m.reps, record_property, units=m.units, n_units=m.n_units,
                definition=definition)


@claim(CHANGE_MORE)
@pytest.mark.trains
@DEFINITIONS
@TOKENS
@PRETRAINED
def test_pretrained_models_change_representations_more_across_seeds(env, seeds, backbone, token, definition,
                                                                    runs, analysis_cache, needs, record_property):
    """§5.1 (seed aggregate): Random Init's mean diagonal CKA exceeds the pre-trained body's."""
    needs(backbone, "random")
    mode = MODE[definition]
    values = [(mean_diagonal_cka(runs, analysis_cache, env, s, "random", token, mode)
               - mean_diagonal_cka(runs, analysis_cache, env, s, backbone, token, mode)).value for s in seeds]
    check_aggregate(CHANGE_MORE, values, record_property, definition=definition)


def _shallow(runs, cache, env, seed, definition) -> Measured:
    mode, half = MODE[definition], (0.0, 0.5)
    return (mean_diagonal_cka(runs, cache, env, seed, "random", "state", mode, depth=half)
            - mean_diagonal_cka(runs, cache, env, seed, "gpt2", "state", mode, depth=half))


@claim(SHALLOW_PROFILE)
@pytest.mark.trains
@DEFINITIONS
def test_random_init_stays_similar_from_the_middle_to_the_shallow_layers(env, seed, definition, runs,
                                                                         analysis_cache, needs, record_property):
    """§5.1: "for the randomly initialized model (Random Init), the representations have a higher
    similarity to the initial state from the middle to the shallow layers" (state token, shallow
    half of the hooked layers, against GPT2)."""
    needs("gpt2", "random")
    m = _shallow(runs, analysis_cache, env, seed, definition)
    check_units(SHALLOW_PROFILE, m.value, m.reps, record_property, units=m.units, n_units=m.n_units,
                definition=definition)


@claim(SHALLOW_PROFILE)
@pytest.mark.trains
@DEFINITIONS
def test_random_init_stays_similar_from_the_middle_to_the_shallow_layers_across_seeds(
        env, seeds, definition, runs, analysis_cache, needs, record_property):
    """§5.1 depth profile (seed aggregate)."""
    needs("gpt2", "random")
    values = [_shallow(runs, analysis_cache, env, s, definition).value for s in seeds]
    check_aggregate(SHALLOW_PROFILE, values, record_property, definition=definition)


def _layernorms(runs, cache, env, seed, definition) -> Measured:
    diag, reps = cka_profile(runs, cache, env, seed, "random", "state", MODE[definition])
    names = analyses.layer_labels(runs.get(env, "random", seed, "K20"))
    rule = ({"top_fraction": PAPER_ABOVE} if definition == "paper" else {"threshold": PAPER_CKA_THRESHOLD})
    return Measured(layernorm_share(diag, names, **rule), np.array([layernorm_share(r, names, **rule) for r in reps]),
                    "analysis samples", runs.profile.analysis.batch_size)


@claim(LAYERNORMS)
@pytest.mark.trains
@DEFINITIONS
def test_random_init_layers_that_stay_similar_are_mostly_layernorms(env, seed, definition, runs,
                                                                    analysis_cache, needs, record_property):
    """§5.1: "we obtain layer names with CKA values above a threshold (dashed line at 0.23 in
    Fig. 1 (a)). Then, we find that most of them are layer normalization layers" (App. D.3).
    paper: the same share of layers as the paper's (34 of 108), ranked by CKA; as-run: CKA > 0.23."""
    needs("random")
    names = analyses.layer_labels(runs.get(env, "random", seed, "K20"))
    record_property("layernorm_share_of_all_layers", float(np.mean([".ln_" in n for n in names])))
    m = _layernorms(runs, analysis_cache, env, seed, definition)
    check_units(LAYERNORMS, m.value, m.reps, record_property, units=m.units, n_units=m.n_units,
                definition=definition)


@claim(LAYERNORMS)
@pytest.mark.trains
@DEFINITIONS
def test_random_init_layers_that_stay_similar_are_mostly_layernorms_across_seeds(env, seeds, definition, runs,
                                                                                 analysis_cache, needs,
                                                                                 record_property):
    """App. D.3 (seed aggregate)."""
    needs("random")
    values = [_layernorms(runs, analysis_cache, env, s, definition).value for s in seeds]
    check_aggregate(LAYERNORMS, values, record_property, definition=definition)


PAIRS = (("gpt2", "igpt"), ("gpt2", "random"), ("igpt", "random"))


def _cka(runs, cache, env, seed, a, b, definition) -> np.ndarray:
    return np.asarray(analyses.cka_cross(runs, cache, runs.get(env, a, seed, "K20"), runs.get(env, b, seed, "K20"),
                                         token="state", mode=MODE[definition]), dtype=np.float64)


def _cross_low(runs, cache, env, seed, definition, record=None) -> float:
    cross = np.concatenate([_cka(runs, cache, env, seed, a, b, definition).ravel() for a, b in PAIRS])
    if definition == "as-run":
        return float(np.nanmedian(cross)) - 0.3
    within = [off_diagonal_median(_cka(runs, cache, env, seed, b, b, definition)) for b in ("gpt2", "igpt", "random")]
    if record is not None:
        record("median_cross_model_cka", float(np.nanmedian(cross)))
        record("median_within_model_cka", float(np.median(within)))
    return float(np.nanmedian(cross)) - float(np.median(within))


@claim(CROSS_LOW)
@pytest.mark.trains
@DEFINITIONS
def test_different_fine_tuned_models_have_dissimilar_representations(env, seed, definition, runs,
                                                                     analysis_cache, needs, record_property):
    """App. D.4: "CKA values in these heat maps are small, confirming that different models learn
    different representations" — paper: smaller than the CKA between different layers of one
    model (App. D.5); as-run: below 0.3."""
    needs("gpt2", "igpt", "random")
    describe(CROSS_LOW, _cross_low(runs, analysis_cache, env, seed, definition, record_property), record_property,
             definition=definition, why="the cross-model CKA matrices are not replicated over half-samples")


@claim(CROSS_LOW)
@pytest.mark.trains
@DEFINITIONS
def test_different_fine_tuned_models_have_dissimilar_representations_across_seeds(env, seeds, definition, runs,
                                                                                  analysis_cache, needs,
                                                                                  record_property):
    """App. D.4 (seed aggregate)."""
    needs("gpt2", "igpt", "random")
    values = [_cross_low(runs, analysis_cache, env, s, definition) for s in seeds]
    check_aggregate(CROSS_LOW, values, record_property, definition=definition)


def _coordination(runs, cache, env, seed) -> float:
    return (off_diagonal_median(_cka(runs, cache, env, seed, "gpt2", "gpt2", "paper"))
            - off_diagonal_median(_cka(runs, cache, env, seed, "random", "random", "paper")))


@claim(GPT2_COORDINATES)
@pytest.mark.trains
def test_gpt2_layers_share_representations_more_than_random_init_across_seeds(env, seeds, runs, analysis_cache,
                                                                              needs, record_property):
    """App. D.5.1: "the randomly initialized model has an almost equally divided lattice structure,
    while pre-trained models have some block-like structure ... some layers of language-pre-trained
    models coordinate to represent information" (seed aggregate, token slice)."""
    needs("gpt2", "random")
    values = [_coordination(runs, analysis_cache, env, s) for s in seeds]
    check_aggregate(GPT2_COORDINATES, values, record_property)
