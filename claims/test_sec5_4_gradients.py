"""§5.4 Gradients at the epoch-1 checkpoint (dropout on, as published; spec §6.4): gradient
confusion (Fig. 5), per-sample clipped gradient norms (Fig. 6), iGPT's per-parameter gradient
norms (Figs. 7, 18), and training iGPT without clipping (App. G.3, Figs. 19-20)."""

from __future__ import annotations

import numpy as np
import pytest

from claims.conftest import seeds_from
from claims.criteria import Criterion, check, check_aggregate, record_figure
from claims.measures import first_layernorm_share, gradients, log_series

PRETRAINED = pytest.mark.parametrize("backbone", ["gpt2", "igpt"])
SELF_PAIRS = {"paper": "confusion", "as-run": "confusion_with_self"}

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
NOCLIP = Criterion(
    "sec5_4.no_clipping_lowers_igpt_action_error",
    "mean last-batch action error of iGPT with clipping minus without, over the no-clip run's epochs", ">", 0.0,
    0.6, "App. G.3, Fig. 19: ~0.83-1.27 with clipping vs ~0.35-0.55 without")


@pytest.mark.claim(id="sec5_4.pretrained_larger_gradient_confusion", section="5.4")
@pytest.mark.trains
@pytest.mark.parametrize("definition", ["paper", "as-run"])
@PRETRAINED
def test_pretrained_models_have_larger_gradient_confusion(env, seed, backbone, definition, runs, analysis_cache,
                                                          needs, record_property):
    """§5.4: "the gradient confusion of the pre-trained models is larger than that of the randomly
    initialized model" (as-run includes the self-pairs; the paper's definition excludes them)."""
    needs(backbone, "random")
    ours = gradients(runs, analysis_cache, env, seed, backbone)[SELF_PAIRS[definition]]
    rand = gradients(runs, analysis_cache, env, seed, "random")[SELF_PAIRS[definition]]
    record_property(f"confusion_{backbone}", ours)
    record_property("confusion_random", rand)
    record_figure(record_property, "gradient_confusion", {
        "figure": "Fig. 5", "title": f"{env} seed {seed}: gradient confusion", "type": "bars",
        "xlabel": "body", "ylabel": "min pairwise cosine",
        "series": {"confusion": {"labels": [backbone, "random"], "values": [ours, rand]}}})
    check(CONFUSION, rand - ours, record_property, definition=definition)


@pytest.mark.claim(id="sec5_4.pretrained_larger_gradient_confusion", section="5.4")
@pytest.mark.trains
@pytest.mark.parametrize("definition", ["paper", "as-run"])
@PRETRAINED
def test_pretrained_models_have_larger_gradient_confusion_across_seeds(env, seeds, backbone, definition, runs,
                                                                       analysis_cache, needs, record_property):
    """§5.4 (seed aggregate): pre-trained gradient confusion exceeds Random Init's."""
    needs(backbone, "random")
    key = SELF_PAIRS[definition]
    values = [gradients(runs, analysis_cache, env, s, "random")[key]
              - gradients(runs, analysis_cache, env, s, backbone)[key] for s in seeds]
    check_aggregate(CONFUSION, values, record_property, definition=definition)


def _norms(runs, cache, env, seed, backbone) -> np.ndarray:
    return np.asarray(gradients(runs, cache, env, seed, backbone)["norms"], dtype=float)


@pytest.mark.claim(id="sec5_4.igpt_gradient_norms_collapse_to_clip", section="5.4")
@pytest.mark.trains
def test_igpt_gradient_norms_collapse_onto_the_clip_value(env, seed, runs, analysis_cache, needs, record_property):
    """§5.4: "the gradient norm of iGPT collapses by gradient clipping": its per-sample clipped
    norms sit at the clip value 0.25."""
    needs("igpt")
    clip = runs.get(env, "igpt", seed, "K20").config.train.grad_clip
    norms = {b: _norms(runs, analysis_cache, env, seed, b) for b in ("gpt2", "igpt", "random")
             if b in runs.selection.backbones}
    record_property("iqr_igpt", float(np.subtract(*np.percentile(norms["igpt"], [75, 25]))))
    record_figure(record_property, "gradient_norms", {
        "figure": "Fig. 6", "title": f"{env} seed {seed}: per-sample clipped gradient norms", "type": "boxes",
        "xlabel": "body", "ylabel": "norm", "series": {"norm": {b: v.tolist() for b, v in norms.items()}},
        "hline": clip})
    check(IGPT_AT_CLIP, float(np.median(norms["igpt"])) / clip, record_property)


@pytest.mark.claim(id="sec5_4.gpt2_gradient_norms_below_igpt", section="5.4")
@pytest.mark.trains
def test_gpt2_gradient_norms_lie_below_igpts(env, seed, runs, analysis_cache, needs, record_property):
    """§5.4, Fig. 6: GPT2's per-sample clipped gradient norms lie clearly below iGPT's."""
    needs("gpt2", "igpt")
    value = float(np.median(_norms(runs, analysis_cache, env, seed, "igpt"))
                  - np.median(_norms(runs, analysis_cache, env, seed, "gpt2")))
    check(GPT2_BELOW_IGPT, value, record_property)


@pytest.mark.claim(id="sec5_4.igpt_first_layernorm_dominates", section="5.4")
@pytest.mark.trains
def test_igpt_first_layernorm_has_the_largest_gradient_norms(env, seed, runs, analysis_cache, needs,
                                                             record_property):
    """§5.4: "the gradient norms of the first layer normalization [of iGPT] are significantly
    larger than the others" (Fig. 7: 0.ln_1.bias and 0.ln_1.weight)."""
    needs("igpt")
    g = gradients(runs, analysis_cache, env, seed, "igpt")
    top = sorted(zip(g["param_norms"], g["param_names"]), reverse=True)[:2]
    record_property("top_two_parameters", [n.removeprefix("transformer.h.") for _, n in top])
    share = first_layernorm_share(g)
    record_figure(record_property, "gradient_norm_ratio", {
        "figure": "Fig. 7", "title": f"{env} seed {seed}: iGPT gradient-norm ratio", "type": "bars",
        "xlabel": "parameter", "ylabel": "norm / sum of norms",
        "series": {"igpt": {"labels": ["0.ln_1 (w + b)", "others"], "values": [share, 1 - share]}}})
    check(FIRST_LN, share, record_property)


@seeds_from("noclip_seeds")
@pytest.mark.claim(id="sec5_4.no_clipping_lowers_igpt_action_error", section="5.4")
@pytest.mark.trains
def test_igpt_without_gradient_clipping_has_lower_action_error(env, seed, runs, needs, record_property):
    """App. G.3: "the action error of iGPT without gradient clipping is lower than that with
    gradient clipping" in the first epochs."""
    needs("igpt")
    noclip = log_series(runs.get(env, "igpt", seed, "noclip"), "last_batch_action_error")
    clipped = log_series(runs.get(env, "igpt", seed, "K20"), "last_batch_action_error", len(noclip))
    record_figure(record_property, "noclip_action_error", {
        "figure": "Fig. 19", "title": f"{env} seed {seed}: iGPT last-batch action error", "type": "lines",
        "xlabel": "epoch", "ylabel": "action error",
        "series": {"clipped": {"x": list(range(1, len(clipped) + 1)), "y": clipped},
                   "no clipping": {"x": list(range(1, len(noclip) + 1)), "y": noclip}}})
    check(NOCLIP, float(np.mean(clipped) - np.mean(noclip)), record_property)
