"""§5.1 Activation similarity: debiased linear CKA of each hooked layer between epoch 0 and the
final epoch (Fig. 1), and between layers of fine-tuned models (App. D.4, D.5), under the paper's
token slice (App. D.1) and the published channel slice (as-run, docs/deviations.md 2).

Per-seed cells carry the spread of the statistic over half-samples of the analysis batch (the
same half-samples for every body). Thresholds the paper read off its 12-block, 100k-step runs are
restated scale-free for the ``paper`` definition and kept as the paper's number for ``as-run``
(docs/deviations.md 26-27)."""

from __future__ import annotations

import numpy as np

from dtcore import analyses
from dtcore.claim import Claim, Measured, figure
from dtcore.measures import cka_profile, layernorm_share, mean_diagonal_cka, off_diagonal_median

MODE = {"paper": "token", "as-run": "channel"}
DEFINITIONS = ("paper", "as-run")
SAMPLES = "analysis samples"
PAPER_ABOVE = 34 / 108     # App. D.3: 34 of Random Init's 108 hooked layers lie above 0.23
PAPER_CKA_THRESHOLD = 0.23

# Why these claims declare no smallest effect of interest (docs/statistics.md, "Negligible effects").
NO_SESOI = ("the paper shows CKA only as curves and heat maps, which bracket these values in overlapping "
            "ranges: no size of the difference follows")

CHANGE_MORE = Claim(
    "sec5_1.pretrained_change_representations_more",
    quote="We observe that the CKAs of pre-trained models (GPT2 and iGPT) are uniformly low across layers except "
          "for a few layers, indicating that pre-trained models largely change representation", source="§5.1",
    note="mean diagonal CKA between pre- and post-fine-tuning activations, Random Init minus the pre-trained body",
    statistic="mean diagonal CKA(epoch 0, final) of Random Init minus that of the pre-trained body",
    direction=">", threshold=0.0,
    basis="§5.1 and Fig. 1: Random Init keeps a sawtooth up to ~0.9, GPT2 mostly 0.05-0.3, iGPT < 0.1",
    bodies=("random",), variants={"token": ("state", "action", "return"), "backbone": ("gpt2", "igpt")},
    definitions=DEFINITIONS, units=SAMPLES,
    sesoi_basis=NO_SESOI)


@CHANGE_MORE.measure
def random_minus_pretrained_cka(cell):
    mode = MODE[cell.definition]
    ours = mean_diagonal_cka(cell, cell.backbone, cell.token, mode)
    rand = mean_diagonal_cka(cell, "random", cell.token, mode)
    return (rand - ours).with_extras(**{f"mean_cka_{cell.backbone}": ours.value, "mean_cka_random": rand.value})


@CHANGE_MORE.drawing
def cka_per_layer(cell):
    mode, series = MODE[cell.definition], {}
    for b in (cell.backbone, "random"):
        diag, _ = cka_profile(cell, b, cell.token, mode)
        series[b] = {"x": np.linspace(0, 107, len(diag)).tolist(), "y": diag.tolist()}   # "normalised layer" (Fig. 1)
    return [figure("cka_diagonal", figure="Fig. 1", title=f"{cell.env} seed {cell.seed}, {cell.token} token "
                   f"({mode} slice)", type="lines", xlabel="normalised layer", ylabel="CKA(epoch 0, final)",
                   series=series, hline=PAPER_CKA_THRESHOLD)]   # Fig. 1 (a)'s dashed line: LAYERNORMS' as-run rule


SHALLOW_PROFILE = Claim(
    "sec5_1.random_more_similar_from_middle_to_shallow",
    quote="for the randomly initialized model (Random Init), the representations have a higher similarity to "
          "the initial state from the middle to the shallow layers", source="§5.1",
    note="Random Init's own depth profile: its mean diagonal CKA over the shallow half of the hooked layers "
         "minus that over the deep half (state token)",
    statistic="Random Init's mean diagonal CKA, shallow half of the layers minus deep half", direction=">",
    threshold=0.0, basis="§5.1, Fig. 1 (a): Random Init's CKA is highest from the middle to the shallow layers",
    bodies=("random",), definitions=DEFINITIONS, units=SAMPLES,
    sesoi_basis=NO_SESOI)


@SHALLOW_PROFILE.measure
def random_shallow_minus_deep(cell):
    mode = MODE[cell.definition]
    return (mean_diagonal_cka(cell, "random", "state", mode, depth=(0.0, 0.5))
            - mean_diagonal_cka(cell, "random", "state", mode, depth=(0.5, 1.0)))


LAYERNORMS = Claim(
    "sec5_1.random_similar_layers_are_layernorms",
    quote="we obtain layer names with CKA values above a threshold (dashed line at 0.23 in Fig. 1 (a)). Then, we "
          "find that most of them are layer normalization layers", source="§5.1",
    note="paper: the same share of layers as the paper's (34 of 108), ranked by CKA; as-run: CKA > 0.23 (App. D.3)",
    statistic="share of LayerNorms among Random Init's most similar layers (paper: top 34/108 by CKA; as-run: "
              "CKA > 0.23)", direction=">", threshold=0.5, paper_value=24 / 34,
    basis="§5.1, App. D.3: 34 layers above 0.23, 24 of them LayerNorms", bodies=("random",),
    definitions=DEFINITIONS, units=SAMPLES, aggregate="sign")   # a share of a few layers: discrete


@LAYERNORMS.measure
def layernorm_share_of_similar_layers(cell):
    diag, reps = cka_profile(cell, "random", "state", MODE[cell.definition])
    names = analyses.layer_labels(cell.run("random"))
    rule = {"top_fraction": PAPER_ABOVE} if cell.definition == "paper" else {"threshold": PAPER_CKA_THRESHOLD}
    return Measured(layernorm_share(diag, names, **rule), np.array([layernorm_share(r, names, **rule) for r in reps]),
                    SAMPLES, cell.profile.analysis.batch_size,
                    extras={"layernorm_share_of_all_layers": float(np.mean([".ln_" in n for n in names]))})


PAIRS = (("gpt2", "igpt"), ("gpt2", "random"), ("igpt", "random"))

CROSS_LOW = Claim(
    "sec5_1.cross_model_cka_low",
    quote="CKA values in these heat maps are small, confirming that different models learn different "
          "representations", source="App. D.4",
    note="paper: smaller than the CKA between different layers of one model (App. D.5); as-run: below 0.3",
    statistic="median cross-model CKA minus (paper) the median within-model CKA of the same models / (as-run) 0.3",
    direction="<", threshold=0.0, basis="App. D.4: CKA values between different fine-tuned models are small",
    bodies=("gpt2", "igpt", "random"), definitions=DEFINITIONS,
    no_units="the cross-model CKA matrices are not replicated over half-samples",
    sesoi_basis=NO_SESOI)


def _cka(cell, a: str, b: str, mode: str) -> np.ndarray:
    return np.asarray(analyses.cka_cross(cell.store, cell.cache, cell.run(a), cell.run(b), token="state", mode=mode),
                      dtype=np.float64)


@CROSS_LOW.measure
def cross_minus_within_model_cka(cell):
    mode = MODE[cell.definition]
    cross = float(np.nanmedian(np.concatenate([_cka(cell, a, b, mode).ravel() for a, b in PAIRS])))
    if cell.definition == "as-run":
        return cross - 0.3
    within = float(np.median([off_diagonal_median(_cka(cell, b, b, mode)) for b in ("gpt2", "igpt", "random")]))
    return Measured(cross - within, extras={"median_cross_model_cka": cross, "median_within_model_cka": within})


GPT2_COORDINATES = Claim(
    "sec5_1.gpt2_layers_coordinate",
    quote="the randomly initialized model has an almost equally divided lattice structure, while pre-trained "
          "models have some block-like structure", source="App. D.5.1",
    note="the median CKA between different layers of fine-tuned GPT2 minus that of Random Init (state token, "
         "token slice)",
    statistic="median CKA between different layers of fine-tuned GPT2 minus that of Random Init (state token)",
    direction=">", threshold=0.0,
    basis="App. D.5.1: Random Init has an evenly divided lattice, GPT2 a block-like structure where layers have "
          "similar representations", bodies=("gpt2", "random"), per_seed=False,
    sesoi_basis=NO_SESOI)


@GPT2_COORDINATES.measure
def gpt2_minus_random_layer_similarity(cell) -> float:
    return (off_diagonal_median(_cka(cell, "gpt2", "gpt2", MODE["paper"]))
            - off_diagonal_median(_cka(cell, "random", "random", MODE["paper"])))
