"""§5.6.2 Change of attention distance of the K = 1 runs between epoch 0 and an early epoch, probed
with K = 20 inputs (Fig. 10).

``paper``: the true mean attention distance (real causal, padding-masked attention) at the same
fraction of training as the paper's epoch 4 of 40 (10 %; docs/deviations.md 25). ``as-run``: the
published pseudo-attention construction (docs/spec.md §6.7) at the paper's absolute epoch 4. Per-seed
cells carry the spread over half-samples of the analysis samples (paired across bodies)."""

from __future__ import annotations

import numpy as np
import pytest

from claims.criteria import Criterion, check_aggregate, check_units, claim, record_figure
from claims.measures import Measured, all_but_one, attention_gaps, median_gaps

DEFINITIONS = pytest.mark.parametrize("definition", ["paper", "as-run"])

RANDOM_MOVES_MORE = Criterion(
    "sec5_6_2.random_attention_moves_more",
    "mean over blocks of the median attention-distance gap, Random Init minus GPT2", ">", 0.0, None,
    "§5.6.2, Fig. 10: GPT2's gaps are almost zero, Random Init's are large (blocks 3-10 clearest)")
GPT2_STILL = Criterion(
    "sec5_6_2.gpt2_attention_hardly_moves",
    "second-smallest margin over blocks of Random Init's median block gap above GPT2's block gap",
    ">", 0.0, None, "§5.6.2, Fig. 10: GPT2's gap is near zero in every block except block 1")


def _gaps(runs, cache, env, seed, definition) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {b: median_gaps(runs, attention_gaps(runs, cache, env, seed, b, definition)) for b in ("gpt2", "random")}


def _moves_more(runs, cache, env, seed, definition) -> Measured:
    g = _gaps(runs, cache, env, seed, definition)
    n = min(g["gpt2"][0].size, g["random"][0].size)
    value = float(np.mean(g["random"][0][:n] - g["gpt2"][0][:n]))
    reps = np.mean(g["random"][1][:, :n] - g["gpt2"][1][:, :n], axis=1)
    return Measured(value, reps, "analysis samples", runs.profile.analysis.batch_size)


def _still(runs, cache, env, seed, definition) -> Measured:
    """Random Init's median block gap minus each GPT2 block's gap; the second smallest is > 0 when
    at most one GPT2 block moves more than a typical Random Init block."""
    g = _gaps(runs, cache, env, seed, definition)
    value = float(all_but_one(np.median(g["random"][0]) - g["gpt2"][0]))
    reps = all_but_one(np.median(g["random"][1], axis=1, keepdims=True) - g["gpt2"][1])
    return Measured(value, reps, "analysis samples", runs.profile.analysis.batch_size)


@claim(RANDOM_MOVES_MORE)
@pytest.mark.trains
@DEFINITIONS
def test_random_init_attention_distance_changes_more(env, seed, definition, runs, analysis_cache, needs,
                                                     record_property):
    """§5.6.2: "the attention distance of the pre-trained models changes less than that of the
    randomly initialized models"."""
    needs("gpt2", "random")
    gaps = {b: attention_gaps(runs, analysis_cache, env, seed, b, definition) for b in ("gpt2", "random")}
    for b, g in gaps.items():
        record_property(f"median_gap_{b}", np.median(g, axis=1).tolist())
    record_figure(record_property, "attention_gap", {
        "figure": "Fig. 10", "title": f"{env} seed {seed}: |d(0) - d(E)| per block ({definition})", "type": "boxes",
        "xlabel": "block", "ylabel": "attention-distance gap",
        "series": {b: {f"block {i}": row.tolist() for i, row in enumerate(g)} for b, g in gaps.items()}})
    m = _moves_more(runs, analysis_cache, env, seed, definition)
    check_units(RANDOM_MOVES_MORE, m.value, m.reps, record_property, units=m.units, n_units=m.n_units,
                definition=definition)


@claim(RANDOM_MOVES_MORE)
@pytest.mark.trains
@DEFINITIONS
def test_random_init_attention_distance_changes_more_across_seeds(env, seeds, definition, runs, analysis_cache,
                                                                  needs, record_property):
    """§5.6.2 (seed aggregate of the paired per-seed differences)."""
    needs("gpt2", "random")
    values = [_moves_more(runs, analysis_cache, env, s, definition).value for s in seeds]
    check_aggregate(RANDOM_MOVES_MORE, values, record_property, definition=definition)


@claim(GPT2_STILL)
@pytest.mark.trains
@DEFINITIONS
def test_gpt2_attention_distance_hardly_moves_except_one_block(env, seed, definition, runs, analysis_cache, needs,
                                                               record_property):
    """§5.6.2: "the attention gaps of GPT2 except for block 1 are small" — "almost zero except
    for block 1", while those of Random Init are large."""
    needs("gpt2", "random")
    m = _still(runs, analysis_cache, env, seed, definition)
    check_units(GPT2_STILL, m.value, m.reps, record_property, units=m.units, n_units=m.n_units,
                definition=definition)


@claim(GPT2_STILL)
@pytest.mark.trains
@DEFINITIONS
def test_gpt2_attention_distance_hardly_moves_except_one_block_across_seeds(env, seeds, definition, runs,
                                                                            analysis_cache, needs, record_property):
    """§5.6.2 (seed aggregate)."""
    needs("gpt2", "random")
    values = [_still(runs, analysis_cache, env, s, definition).value for s in seeds]
    check_aggregate(GPT2_STILL, values, record_property, definition=definition)
