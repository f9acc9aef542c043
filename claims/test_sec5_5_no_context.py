"""§5.5 Fine-tuning with no context (K = 1): scores (Tables 2 and 4) and learning speed against
Random Init (Fig. 8). Scores are the selected epoch on fresh episodes, as in Table 1."""

from __future__ import annotations

import numpy as np
import pytest

from claims.criteria import Criterion, check_aggregate, check_units, claim, record_figure
from claims.measures import Measured, mean_over_epochs, score_curve, scored

DEFINITIONS = pytest.mark.parametrize("definition", ["paper", "as-run"])
# Table 4 (seeds 666 and 42, as reported): GPT2 K=1, Random Init K=1.
TABLE4 = {"hopper": (81.3, -0.3), "halfcheetah": (47.9, 49.2), "walker2d": (71.2, 35.6)}

RANDOM_FAILS = Criterion(
    "sec5_5.random_init_fails_without_context_on_hopper", "normalised score of Random Init with K=1 (hopper)",
    "<", 10.0, TABLE4["hopper"][1], "§5.5, Tables 2/4: Random Init K=1 on hopper -0.24 / -0.3 +- 0.1")
GPT2_LEARNS = Criterion(
    "sec5_5.gpt2_learns_without_context", "score of GPT2 with K=1 / score of GPT2 with K=20",
    ">", 0.8, 81.3 / 79.5, "§5.5, Tables 1 and 4: GPT2 K=1 81.3 / 47.9 / 71.2 vs K=20 79.5 / 48.4 / 71.2")
RANDOM_LEARNS_ELSEWHERE = Criterion(
    "table2.random_init_learns_without_context_off_hopper", "score of Random Init with K=1 / with K=20",
    ">", 0.8, 49.0 / 48.6, "Table 2 (seed 666): Random Init K=1 49.0 / 69.1 on halfcheetah / walker2d, "
    "K=20 48.6 / 71.0")
GPT2_FASTER = Criterion(
    "sec5_5.gpt2_learns_faster_than_random_without_context",
    "mean normalised score over the K=1 run's epochs, GPT2 minus Random Init", ">", 0.0, None,
    "§5.5, Fig. 8: with K=1 GPT2 reaches a high mean return much faster than Random Init")


def _record(record_property, runs, env, seed, definition) -> None:
    series = {}
    for b in ("gpt2", "random"):
        if b not in runs.selection.backbones:
            continue
        for v in ("K1", "K20"):
            c = score_curve(runs.get(env, b, seed, v), definition)
            series[f"{b} {v}"] = {"x": [e for e, _ in c], "y": [s for _, s in c]}
    record_figure(record_property, "k1_learning_curves", {
        "figure": "Fig. 8", "title": f"{env} seed {seed}: normalised score, K=1 vs K=20", "type": "lines",
        "xlabel": "epoch", "ylabel": f"normalised score ({definition})", "series": series})


def _score(runs, cache, env, backbone, seed, variant, definition, draw=0) -> Measured:
    return scored(runs, cache, runs.get(env, backbone, seed, variant), definition, seed=draw)


def _ratio(runs, cache, env, seed, backbone, definition) -> Measured:
    """Score with K=1 over score with K=20 of one body (nan where the K=20 score is not positive)."""
    k1 = _score(runs, cache, env, backbone, seed, "K1", definition, draw=1)
    k20 = _score(runs, cache, env, backbone, seed, "K20", definition, draw=2)
    with np.errstate(divide="ignore", invalid="ignore"):
        reps = np.where(k20.reps > 0, k1.reps / k20.reps, np.nan)
    value = k1.value / k20.value if k20.value > 0 else float("nan")
    return Measured(value, reps, k1.units, min(k1.n_units, k20.n_units))


@claim(RANDOM_FAILS)
@pytest.mark.envs("hopper")
@pytest.mark.trains
@DEFINITIONS
def test_random_init_fails_without_context_on_hopper(env, seed, definition, runs, analysis_cache, needs,
                                                     record_property):
    """§5.5: "removing the context information ... slows down [the convergence] of randomly
    initialized models" — on hopper Random Init with K=1 never learns (Table 2: -0.24)."""
    needs("random")
    _record(record_property, runs, env, seed, definition)
    m = _score(runs, analysis_cache, env, "random", seed, "K1", definition)
    check_units(RANDOM_FAILS, m.value, m.reps, record_property, units=m.units, n_units=m.n_units,
                definition=definition)


@claim(RANDOM_FAILS)
@pytest.mark.envs("hopper")
@pytest.mark.trains
@DEFINITIONS
def test_random_init_fails_without_context_on_hopper_across_seeds(env, seeds, definition, runs, analysis_cache,
                                                                  needs, record_property):
    """§5.5 (seed aggregate): Random Init K=1 stays near 0 on hopper."""
    needs("random")
    values = [_score(runs, analysis_cache, env, "random", s, "K1", definition).value for s in seeds]
    check_aggregate(RANDOM_FAILS, values, record_property, definition=definition)


@claim(GPT2_LEARNS)
@pytest.mark.trains
@DEFINITIONS
def test_gpt2_learns_without_context(env, seed, definition, runs, analysis_cache, needs, record_property):
    """§5.5: "removing the context information doesn't slow down the convergence of
    language-pre-trained models" — GPT2 with K=1 scores like GPT2 with K=20 (Tables 2 and 4)."""
    needs("gpt2")
    m = _ratio(runs, analysis_cache, env, seed, "gpt2", definition)
    check_units(GPT2_LEARNS, m.value, m.reps, record_property, units=m.units, n_units=m.n_units,
                definition=definition)


@claim(GPT2_LEARNS)
@pytest.mark.trains
@DEFINITIONS
def test_gpt2_learns_without_context_across_seeds(env, seeds, definition, runs, analysis_cache, needs,
                                                  record_property):
    """§5.5 (seed aggregate): GPT2 K=1 reaches at least 80 % of its K=20 score."""
    needs("gpt2")
    values = [_ratio(runs, analysis_cache, env, s, "gpt2", definition).value for s in seeds]
    check_aggregate(GPT2_LEARNS, values, record_property, definition=definition)


@claim(RANDOM_LEARNS_ELSEWHERE)
@pytest.mark.envs("halfcheetah", "walker2d")
@pytest.mark.trains
@DEFINITIONS
def test_random_init_learns_without_context_off_hopper(env, seed, definition, runs, analysis_cache, needs,
                                                       record_property):
    """Table 2: without context Random Init still learns on halfcheetah and walker2d (49.0 and
    69.1 with K=1 against 48.6 and 71.0 with K=20); only hopper needs the context."""
    needs("random")
    m = _ratio(runs, analysis_cache, env, seed, "random", definition)
    check_units(RANDOM_LEARNS_ELSEWHERE, m.value, m.reps, record_property, units=m.units, n_units=m.n_units,
                definition=definition)


@claim(RANDOM_LEARNS_ELSEWHERE)
@pytest.mark.envs("halfcheetah", "walker2d")
@pytest.mark.trains
@DEFINITIONS
def test_random_init_learns_without_context_off_hopper_across_seeds(env, seeds, definition, runs, analysis_cache,
                                                                    needs, record_property):
    """Table 2 (seed aggregate); Table 4 notes one failed walker2d seed (35.6 +- 33.5)."""
    needs("random")
    values = [_ratio(runs, analysis_cache, env, s, "random", definition).value for s in seeds]
    check_aggregate(RANDOM_LEARNS_ELSEWHERE, values, record_property, definition=definition)


def _speed(runs, env, seed, definition) -> Measured:
    return (mean_over_epochs(runs, runs.get(env, "gpt2", seed, "K1"), definition, seed=1)
            - mean_over_epochs(runs, runs.get(env, "random", seed, "K1"), definition, seed=2))


@claim(GPT2_FASTER)
@pytest.mark.trains
@DEFINITIONS
def test_gpt2_learns_faster_than_random_init_without_context(env, seed, definition, runs, needs, record_property):
    """§5.5, Fig. 8: "when the context is not provided (K = 1), the GPT2 reaches the high mean
    return much faster than the randomly initialized model" — the area under the normalised
    learning curve of the K=1 runs, GPT2 minus Random Init."""
    needs("gpt2", "random")
    _record(record_property, runs, env, seed, definition)
    m = _speed(runs, env, seed, definition)
    check_units(GPT2_FASTER, m.value, m.reps, record_property, units=m.units, n_units=m.n_units,
                definition=definition)


@claim(GPT2_FASTER)
@pytest.mark.trains
@DEFINITIONS
def test_gpt2_learns_faster_than_random_init_without_context_across_seeds(env, seeds, definition, runs, needs,
                                                                          record_property):
    """Fig. 8 (seed aggregate of the paired per-seed differences)."""
    needs("gpt2", "random")
    check_aggregate(GPT2_FASTER, [_speed(runs, env, s, definition).value for s in seeds], record_property,
                    definition=definition)
