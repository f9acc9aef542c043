"""§5.3 Parameter similarity: L2 distance and cosine similarity of the body's parameters between
epoch 0 and the final epoch (Figs. 3, 4), as one concatenated vector (App. F.1's text, paper) or
as the median over parameter sets as published (as-run, docs/deviations.md 15).

A distance between two checkpoints has no sampling units inside the run: per-seed cells are
descriptive, and the seed aggregate decides."""

from __future__ import annotations

from dtcore.claim import Claim, Measured, figure
from dtcore import analyses
from dtcore.measures import block_l2, depth_correlation, parameter_stats

NO_UNITS = "a distance between two checkpoints has no sampling units inside the run"
CHANGE_AXIS = {"l2": "L2 distance, epoch 0 to final", "cosine": "cosine similarity, epoch 0 to final"}   # Figs. 3, 4
LESS = dict(quote="Overall, We observe that l_2 distance is small and cosine similarity is large for pre-trained "
                  "models, meaning that the parameters of pre-trained models do not change that much",
            source="§5.3", bodies=("random",), definitions=("paper", "as-run"), no_units=NO_UNITS)

LESS_L2 = Claim(
    "sec5_3.pretrained_change_parameters_less", **LESS,
    statistic="L2 distance of Random Init minus that of the pre-trained body", direction=">", threshold=0.0,
    basis="§5.3, Fig. 3: Random ~10-65 per set, GPT2 ~5-25 beyond block 1, iGPT <= 22",
    variants={"stat": ("l2",), "backbone": ("gpt2", "igpt")},
    sesoi_basis="an L2 distance grows with the parameter count and the length of training, so Fig. 3's sizes do "
                "not carry over to another scale")
COSINE = dict(statistic="cosine similarity of the pre-trained body minus that of Random Init", direction=">",
              threshold=0.0, basis="§5.3, Fig. 4: GPT2 ~0.95-1, iGPT ~1, Random weights ~0.05-0.7",
              variants={"stat": ("cosine",), "backbone": ("gpt2", "igpt")})
LESS_COSINE = Claim("sec5_3.pretrained_change_parameters_less", **{**LESS, "definitions": ("paper",)}, **COSINE,
    sesoi_basis="in one concatenated vector each parameter set weighs by its norm, which Fig. 4 does not give: "
                "the figure bounds no gap")
# As run (the median over parameter sets) Fig. 4 gives the paper's size, and a cosine is scale-free;
# for one concatenated vector it does not (the sets' weights in it depend on their norms).
LESS_COSINE_AS_RUN = Claim(
    "sec5_3.pretrained_change_parameters_less", **{**LESS, "definitions": ("as-run",)}, **COSINE, sesoi=0.3,
    sesoi_basis="half the smallest gap Fig. 4 allows for the median over parameter sets (values read from the "
                "published figure): GPT2's sets ~0.95-1 but for a few (median >= 0.95), iGPT's ~1; Random Init's 144 "
                "sets are 72 biases at cosine 0 (zero at epoch 0), 48 weights at 0.05-0.7 and 24 LayerNorm weights "
                "~1, so its median is (0 + its smallest weight) / 2 <= 0.35: a gap >= 0.6. A cosine is scale-free, "
                "so the size carries over to mini")


@LESS_L2.measure
@LESS_COSINE.measure
@LESS_COSINE_AS_RUN.measure
def pretrained_minus_random_change(cell) -> float:
    ours, rand = parameter_stats(cell, cell.backbone)[cell.stat], parameter_stats(cell, "random")[cell.stat]
    return rand - ours if cell.stat == "l2" else ours - rand


@LESS_L2.drawing
@LESS_COSINE.drawing
@LESS_COSINE_AS_RUN.drawing
def per_parameter_set(cell):
    series = {}
    for b in (cell.backbone, "random"):
        pc = analyses.parameter_change(cell.store, cell.cache, cell.run(b))
        series[b] = {"labels": [n.removeprefix("transformer.h.") for n in pc["names"]], "values": pc[cell.stat]}
    return [figure(f"param_{cell.stat}", figure="Fig. 3" if cell.stat == "l2" else "Fig. 4",
                   title=f"{cell.env} seed {cell.seed}: {cell.stat} per parameter set", type="bars",
                   xlabel="parameter set", ylabel=CHANGE_AXIS[cell.stat], series=series)]


SHALLOW = dict(quote="We indeed observe that the shallow layer l_2 distance of the pre-trained model shows relatively "
                     "large changes", source="§5.3", variants={"backbone": ("gpt2", "igpt")})
SHALLOW_PAPER = Claim(
    "sec5_3.largest_change_in_shallow_blocks", **SHALLOW,
    statistic="Spearman correlation between block depth and the block's total L2 change", direction="<",
    threshold=0.0, basis="§5.3, Fig. 3: GPT2 moves most in blocks 0-1 of 12; iGPT in its first ~8 of 24",
    definitions=("paper",), no_units=NO_UNITS, aggregate="sign")   # a rank correlation over a few blocks


@SHALLOW_PAPER.measure
def depth_change_correlation(cell):
    sums = block_l2(cell, cell.backbone)
    return Measured(depth_correlation(sums), extras={"l2_per_block": sums})


def _first_third(cell) -> list[int]:
    n = len(block_l2(cell, cell.backbone))
    return [b for b in range(n) if b / n < 1 / 3]


SHALLOW_ARGMAX = Claim(
    "sec5_3.largest_change_in_shallow_blocks", **SHALLOW,
    statistic="rate of seeds whose largest-change block lies in the first third of the body", direction=">",
    threshold=lambda cell: len(_first_third(cell)) / len(block_l2(cell, cell.backbone)),
    basis="§5.3, Fig. 3 (the paper's cut: the first third of the blocks), against its chance rate",
    definitions=("as-run",), per_seed=False, aggregate="rate")


@SHALLOW_ARGMAX.measure
def largest_change_in_first_third(cell) -> bool:
    sums = block_l2(cell, cell.backbone)
    return max(range(len(sums)), key=sums.__getitem__) in _first_third(cell)
