"""§5.4 Gradients at the epoch-1 checkpoint (dropout on, as published; docs/spec.md §6.4): gradient
confusion (Fig. 5), per-sample clipped gradient norms (Fig. 6), iGPT's per-parameter gradient
norms (Fig. 7, App. G.2), and training iGPT without clipping (App. G.3, Figs. 19-20).

Per-seed cells carry the spread over half-samples of the analysis samples (paired across bodies).
Gradient confusion has one definition: the minimum cosine over pairs of different samples; the
published code's self-pairs have cosine 1 and are never the minimum, so it computes the same number."""

from __future__ import annotations

import numpy as np
import pytest

from claims.criteria import (Criterion, check_aggregate, check_rate, check_units, claim, describe,
                             record_figure)
from claims.measures import (Measured, confusion, first_layernorm_share, gradients, log_series, median_norm,
                             scored, top_two_parameters)

PRETRAINED = pytest.mark.parametrize("backbone", ["gpt2", "igpt"])
ERROR_KEY = {"paper": "last_batch_action_error", "sound": "action_error"}

CONFUSION = Criterion(
    "sec5_4.pretrained_larger_gradient_confusion",
    "gradient confusion (min pairwise cosine) of Random Init minus that of the pre-trained body", ">", 0.0, None,
    "§5.4, Fig. 5 (hopper): GPT2 -0.97, iGPT -0.87, Random -0.39")
IGPT_AT_CLIP = Criterion(
    "sec5_4.igpt_gradient_norms_collapse_to_clip", "median per-sample clipped gradient norm of iGPT / clip value",
    ">", 0.95, 0.248 / 0.25, "§5.4, Fig. 6: iGPT's norms cluster at the clip value 0.25 (median ~0.248)")
GPT2_BELOW_IGPT = Criterion(
    "sec5_4.gpt2_gradient_norms_below_igpt", "median gradient norm of iGPT minus that of GPT2", ">", 0.0,
    0.248 - 0.184, "§5.4, Fig. 6: GPT2 median ~0.184, iGPT ~0.248")
FIRST_LN = Criterion(
    "sec5_4.igpt_first_layernorm_dominates", "share of 0.ln_1 (weight + bias) in iGPT's per-parameter gradient norms",
    ">", 0.5, 0.89, "§5.4, Fig. 7: 0.ln_1.bias ~0.54 + 0.ln_1.weight ~0.35")
TOP_TWO = Criterion(
    "appG2.igpt_top_two_gradient_norms_are_first_layernorm",
    "rate of seeds whose two largest iGPT per-parameter gradient norms are 0.ln_1.bias and 0.ln_1.weight",
    ">", 0.5, 1.0, "App. G.2: two peaks, 0.ln_1.weight and 0.ln_1.bias")
NOCLIP = Criterion(
    "appG3.no_clipping_lowers_igpt_action_error",
    "smallest per-epoch drop of iGPT's action error without clipping (clipped minus unclipped)", ">", 0.0,
    None, "App. G.3, Fig. 19: lower at every one of the first 10 epochs (~0.83-1.27 vs ~0.35-0.55)")
NOCLIP_STILL_BAD = Criterion(
    "appG3.igpt_without_clipping_still_catastrophic", "normalised score of iGPT trained without clipping",
    "<", 10.0, None, "App. G.3, Fig. 20: no clipping does not solve the catastrophic performance (< ~200 return)")


def _confusion_gap(runs, cache, env, seed, backbone) -> Measured:
    return (confusion(runs, gradients(runs, cache, env, seed, "random"))
            - confusion(runs, gradients(runs, cache, env, seed, backbone)))


@claim(CONFUSION)
@pytest.mark.trains
@PRETRAINED
def test_pretrained_models_have_larger_gradient_confusion(env, seed, backbone, runs, analysis_cache, needs,
                                                          record_property):
    """§5.4: "the gradient confusion of the pre-trained models is larger than that of the randomly
    initialized model"."""
    needs(backbone, "random")
    ours = confusion(runs, gradients(runs, analysis_cache, env, seed, backbone)).value
    rand = confusion(runs, gradients(runs, analysis_cache, env, seed, "random")).value
    record_figure(record_property, "gradient_confusion", {
        "figure": "Fig. 5", "title": f"{env} seed {seed}: gradient confusion", "type": "bars",
        "xlabel": "body", "ylabel": "min pairwise cosine",
        "series": {"confusion": {"labels": [backbone, "random"], "values": [ours, rand]}}})
    m = _confusion_gap(runs, analysis_cache, env, seed, backbone)
    check_units(CONFUSION, m.value, m.reps, record_property, units=m.units, n_units=m.n_units)


@claim(CONFUSION)
@pytest.mark.trains
@PRETRAINED
def test_pretrained_models_have_larger_gradient_confusion_across_seeds(env, seeds, backbone, runs, analysis_cache,
                                                                       needs, record_property):
    """§5.4 (seed aggregate of the paired per-seed differences)."""
    needs(backbone, "random")
    values = [_confusion_gap(runs, analysis_cache, env, s, backbone).value for s in seeds]
    check_aggregate(CONFUSION, values, record_property)


def _at_clip(runs, cache, env, seed) -> Measured:
    clip = runs.get(env, "igpt", seed, "K20").config.train.grad_clip
    m = median_norm(runs, gradients(runs, cache, env, seed, "igpt"))
    return Measured(m.value / clip, m.reps / clip, m.units, m.n_units)


@claim(IGPT_AT_CLIP)
@pytest.mark.trains
def test_igpt_gradient_norms_collapse_onto_the_clip_value(env, seed, runs, analysis_cache, needs, record_property):
    """§5.4: "the gradient norm of iGPT collapses by gradient clipping": its per-sample clipped
    norms sit at the clip value 0.25."""
    needs("igpt")
    clip = runs.get(env, "igpt", seed, "K20").config.train.grad_clip
    norms = {b: np.asarray(gradients(runs, analysis_cache, env, seed, b)["norms"]) for b in ("gpt2", "igpt", "random")
             if b in runs.selection.backbones}
    record_figure(record_property, "gradient_norms", {
        "figure": "Fig. 6", "title": f"{env} seed {seed}: per-sample clipped gradient norms", "type": "boxes",
        "xlabel": "body", "ylabel": "norm", "series": {"norm": {b: v.tolist() for b, v in norms.items()}},
        "hline": clip})
    m = _at_clip(runs, analysis_cache, env, seed)
    check_units(IGPT_AT_CLIP, m.value, m.reps, record_property, units=m.units, n_units=m.n_units)


@claim(IGPT_AT_CLIP)
@pytest.mark.trains
def test_igpt_gradient_norms_collapse_onto_the_clip_value_across_seeds(env, seeds, runs, analysis_cache, needs,
                                                                       record_property):
    """§5.4, Fig. 6 (seed aggregate)."""
    needs("igpt")
    check_aggregate(IGPT_AT_CLIP, [_at_clip(runs, analysis_cache, env, s).value for s in seeds], record_property)


def _norm_gap(runs, cache, env, seed) -> Measured:
    return (median_norm(runs, gradients(runs, cache, env, seed, "igpt"))
            - median_norm(runs, gradients(runs, cache, env, seed, "gpt2")))


@claim(GPT2_BELOW_IGPT)
@pytest.mark.trains
def test_gpt2_gradient_norms_lie_below_igpts(env, seed, runs, analysis_cache, needs, record_property):
    """§5.4, Fig. 6: GPT2's per-sample clipped gradient norms lie clearly below iGPT's."""
    needs("gpt2", "igpt")
    m = _norm_gap(runs, analysis_cache, env, seed)
    check_units(GPT2_BELOW_IGPT, m.value, m.reps, record_property, units=m.units, n_units=m.n_units)


@claim(GPT2_BELOW_IGPT)
@pytest.mark.trains
def test_gpt2_gradient_norms_lie_below_igpts_across_seeds(env, seeds, runs, analysis_cache, needs, record_property):
    """Fig. 6 (seed aggregate of the paired per-seed differences)."""
    needs("gpt2", "igpt")
    check_aggregate(GPT2_BELOW_IGPT, [_norm_gap(runs, analysis_cache, env, s).value for s in seeds], record_property)


@claim(FIRST_LN)
@pytest.mark.trains
def test_igpt_first_layernorm_has_the_largest_gradient_norms(env, seed, runs, analysis_cache, needs,
                                                             record_property):
    """§5.4: "weights and biases of the first layer norm module dominate the norm" (Fig. 7:
    0.ln_1.bias and 0.ln_1.weight)."""
    needs("igpt")
    m = first_layernorm_share(runs, gradients(runs, analysis_cache, env, seed, "igpt"))
    record_figure(record_property, "gradient_norm_ratio", {
        "figure": "Fig. 7", "title": f"{env} seed {seed}: iGPT gradient-norm ratio", "type": "bars",
        "xlabel": "parameter", "ylabel": "norm / sum of norms",
        "series": {"igpt": {"labels": ["0.ln_1 (w + b)", "others"], "values": [m.value, 1 - m.value]}}})
    check_units(FIRST_LN, m.value, m.reps, record_property, units=m.units, n_units=m.n_units)


@claim(FIRST_LN)
@pytest.mark.trains
def test_igpt_first_layernorm_has_the_largest_gradient_norms_across_seeds(env, seeds, runs, analysis_cache, needs,
                                                                          record_property):
    """Fig. 7 (seed aggregate)."""
    needs("igpt")
    values = [first_layernorm_share(runs, gradients(runs, analysis_cache, env, s, "igpt")).value for s in seeds]
    check_aggregate(FIRST_LN, values, record_property)


def _top_two_is_first_ln(runs, cache, env, seed) -> bool:
    return set(top_two_parameters(gradients(runs, cache, env, seed, "igpt"))) == {"0.ln_1.weight", "0.ln_1.bias"}


@claim(TOP_TWO)
@pytest.mark.trains
def test_igpt_top_two_gradient_norms_are_the_first_layernorm(env, seed, runs, analysis_cache, needs,
                                                             record_property):
    """App. G.2: "Noticing that two peaks exist in the figure, we check the label of the parameter
    sets and find that they are 0.ln_1.weight and 0.ln_1.bias"."""
    needs("igpt")
    record_property("top_two_parameters", top_two_parameters(gradients(runs, analysis_cache, env, seed, "igpt")))
    describe(TOP_TWO, float(_top_two_is_first_ln(runs, analysis_cache, env, seed)), record_property,
             why="one full-batch gradient: a yes or no, no sampling units")


@claim(TOP_TWO)
@pytest.mark.trains
def test_igpt_top_two_gradient_norms_are_the_first_layernorm_across_seeds(env, seeds, runs, analysis_cache, needs,
                                                                          record_property):
    """App. G.2 (seed aggregate: the rate of seeds, Clopper-Pearson interval)."""
    needs("igpt")
    check_rate(TOP_TWO, [_top_two_is_first_ln(runs, analysis_cache, env, s) for s in seeds], record_property)


def _noclip_drop(runs, env, seed, definition) -> tuple[float, dict[str, list[float]]]:
    noclip = log_series(runs.get(env, "igpt", seed, "noclip"), ERROR_KEY[definition])
    clipped = log_series(runs.get(env, "igpt", seed, "K20"), ERROR_KEY[definition], len(noclip))
    drop = float(np.min(np.asarray(clipped) - np.asarray(noclip[:len(clipped)]))) if clipped else float("nan")
    return drop, {"clipped": clipped, "no clipping": noclip}


NOCLIP_ERRORS = pytest.mark.parametrize("definition", ["paper", "sound"])


@claim(NOCLIP)
@pytest.mark.seeds_from("noclip_seeds")
@pytest.mark.trains
@NOCLIP_ERRORS
def test_igpt_without_gradient_clipping_has_lower_action_error(env, seed, definition, runs, needs,
                                                               record_property):
    """App. G.3: "action error is much smaller for no gradient clipping condition" — at every
    epoch (paper: the last training batch's error, as in Fig. 19; sound: a fixed held-out batch)."""
    needs("igpt")
    drop, curves = _noclip_drop(runs, env, seed, definition)
    record_figure(record_property, "noclip_action_error", {
        "figure": "Fig. 19", "title": f"{env} seed {seed}: iGPT action error ({definition})", "type": "lines",
        "xlabel": "epoch", "ylabel": "action error",
        "series": {k: {"x": list(range(1, len(v) + 1)), "y": v} for k, v in curves.items()}})
    describe(NOCLIP, drop, record_property, definition=definition,
             why="the training log keeps one action error per epoch, with no sampling units")


@claim(NOCLIP)
@pytest.mark.seeds_from("noclip_seeds")
@pytest.mark.trains
@NOCLIP_ERRORS
def test_igpt_without_gradient_clipping_has_lower_action_error_across_seeds(env, seeds, definition, runs, needs,
                                                                            record_property):
    """App. G.3 (seed aggregate over the no-clipping seeds)."""
    needs("igpt")
    check_aggregate(NOCLIP, [_noclip_drop(runs, env, s, definition)[0] for s in seeds], record_property,
                    definition=definition)


RETURNS = pytest.mark.parametrize("definition", ["paper", "as-run"])


@claim(NOCLIP_STILL_BAD)
@pytest.mark.seeds_from("noclip_seeds")
@pytest.mark.trains
@RETURNS
def test_igpt_without_gradient_clipping_is_still_catastrophic(env, seed, definition, runs, analysis_cache, needs,
                                                              record_property):
    """App. G.3: "eliminating gradient clipping does not immediately solve the catastrophic
    performance at least up to 10 epochs" (Fig. 20)."""
    needs("igpt")
    m = scored(runs, analysis_cache, runs.get(env, "igpt", seed, "noclip"), definition)
    check_units(NOCLIP_STILL_BAD, m.value, m.reps, record_property, units=m.units, n_units=m.n_units,
                definition=definition)


@claim(NOCLIP_STILL_BAD)
@pytest.mark.seeds_from("noclip_seeds")
@pytest.mark.trains
@RETURNS
def test_igpt_without_gradient_clipping_is_still_catastrophic_across_seeds(env, seeds, definition, runs,
                                                                           analysis_cache, needs, record_property):
    """App. G.3 (seed aggregate)."""
    needs("igpt")
    values = [scored(runs, analysis_cache, runs.get(env, "igpt", s, "noclip"), definition).value for s in seeds]
    check_aggregate(NOCLIP_STILL_BAD, values, record_property, definition=definition)
