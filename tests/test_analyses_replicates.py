"""Within-run uncertainty of the analyses (fixtures/analyses.py): half-sample replicates of CKA
and of the first-LayerNorm gradient share, the pairwise gradient cosines, and the scored returns
of the selected epoch on episodes disjoint from those that selected it.

One tiny random-body run on a synthetic hopper dataset (``tests/tiny_runs.py``) is trained once
for the module, with per-epoch evaluation so that it has a best epoch; every analysis reads it.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from dtcore import analyses, statistics
from dtcore.analysis_cache import AnalysisCache
from tests.tiny_runs import TINY, store, write_dataset

# TINY trained far enough from its initial weights that CKA between epochs leaves 1, with
# analysis sizes at which a spread can be told apart from rounding.
PROFILE = dataclasses.replace(
    TINY, train=dataclasses.replace(TINY.train, lr=1e-2, steps_per_epoch=20, warmup_steps=1),
    analysis=dataclasses.replace(TINY.analysis, batch_size=16, grad_confusion_samples=8,
                                 grad_norm_samples=32, replicates=200))
LARGER_BATCH = dataclasses.replace(PROFILE, analysis=dataclasses.replace(PROFILE.analysis, batch_size=64))


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DTCORE_CACHE", str(root))
        yield root


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("data") / "hopper.pkl", n_trajectories=12, length=40)


def _store(data, root, profile=PROFILE):
    return store(data, profile, root=root, evaluate=True)


@pytest.fixture(scope="module")
def run(data, cache_root):
    return _store(data, cache_root).get("hopper", "random", 0, "K20")


def test_cka_replicates_have_one_row_per_half_sample_and_one_column_per_layer_and_are_cached(data, cache_root, run):
    first = AnalysisCache(cache_root)
    reps = analyses.cka_diagonal_replicates(_store(data, cache_root), first, run, token="state", mode="token")
    assert reps.shape == (PROFILE.analysis.replicates, len(analyses.layer_labels(run)))
    assert len(first.computed) == 1
    again = AnalysisCache(cache_root)
    same = analyses.cka_diagonal_replicates(_store(data, cache_root), again, run, token="state", mode="token")
    assert again.computed == [] and len(again.loaded) == 1
    np.testing.assert_array_equal(same, reps)


def test_identical_epochs_give_cka_one_on_every_half_sample(data, cache_root, run):
    reps = analyses.cka_diagonal_replicates(_store(data, cache_root), AnalysisCache(cache_root), run,
                                            token="state", mode="token", epoch_a=0, epoch_b=0)
    full = analyses.cka_diagonal(_store(data, cache_root), AnalysisCache(cache_root), run,
                                 token="state", mode="token", epoch_a=0, epoch_b=0)
    np.testing.assert_allclose(full, 1.0, atol=1e-9)
    np.testing.assert_allclose(np.nanmean(reps, axis=0), full, atol=1e-9)
    assert np.isfinite(reps).all()


def test_cka_replicates_centre_on_the_full_sample_value_and_spread_less_over_more_samples(data, cache_root, run):
    spreads = {}
    for profile in (PROFILE, LARGER_BATCH):
        s, c = _store(data, cache_root, profile), AnalysisCache(cache_root)
        reps = analyses.cka_diagonal_replicates(s, c, run, token="state", mode="channel")
        full = analyses.cka_diagonal(s, c, run, token="state", mode="channel")
        spread = np.nanstd(reps, axis=0)                                        # [L]
        # the full-sample value lies inside the bulk of its half-sample replicates
        assert np.all(np.abs(np.nanmedian(reps, axis=0) - full) <= 2 * spread + 1e-6), (full, spread)
        spreads[profile.analysis.batch_size] = spread
    assert float(np.median(spreads[64] / spreads[16])) < 0.8, spreads


def test_cosine_matrix_is_symmetric_with_a_unit_diagonal_and_its_off_diagonal_minimum_is_the_confusion(
        data, cache_root, run):
    g = analyses.gradient_analysis(_store(data, cache_root), AnalysisCache(cache_root), run)
    cos = np.asarray(g["cosines"])
    n = PROFILE.analysis.grad_confusion_samples
    assert cos.shape == (n, n)
    np.testing.assert_allclose(cos, cos.T, atol=1e-12)
    np.testing.assert_allclose(np.diag(cos), 1.0, atol=1e-12)
    assert np.all((cos >= -1) & (cos <= 1))
    assert cos[~np.eye(n, dtype=bool)].min() == g["confusion"]


def test_first_layernorm_share_replicates_lie_in_the_unit_interval_around_the_full_batch_share(
        data, cache_root, run):
    g = analyses.gradient_analysis(_store(data, cache_root), AnalysisCache(cache_root), run)
    reps = np.asarray(g["first_ln_share_replicates"])
    assert reps.shape == (PROFILE.analysis.replicates,)
    assert np.all((reps >= 0) & (reps <= 1)) and 0 < g["first_ln_share"] < 1
    lo, hi = np.quantile(reps, [0.1, 0.9])
    assert lo <= g["first_ln_share"] <= hi, (g["first_ln_share"], lo, hi)
    assert abs(float(np.median(reps)) - g["first_ln_share"]) < 0.25 * (reps.max() - reps.min()) + 1e-3


def test_the_selected_epoch_has_the_highest_per_epoch_mean_return_earliest_on_ties(run):
    means = {e: run.mean_return(e) for e in run.eval_returns}
    best = max(means.values())
    assert run.best_epoch == min(e for e, m in means.items() if m == best)


def test_scored_returns_use_episodes_disjoint_from_the_per_epoch_ones_and_are_cached(data, cache_root, run):
    epoch = run.best_epoch
    first = AnalysisCache(cache_root)
    scored = analyses.scored_returns(_store(data, cache_root), first, run, epoch)
    k = PROFILE.scored_episodes
    assert scored["epoch"] == epoch and scored["target"] == run.config.eval.targets[0]
    assert len(scored["returns"]) == k and all(np.isfinite(scored["returns"]))
    start = PROFILE.scored_reset_seed + analyses.SCORED_SEED_STRIDE * run.config.seed   # fresh for every seed
    assert scored["reset_seeds"] == [start + i for i in range(k)]
    per_epoch = {s for rec in run.log for t in rec["eval"]["targets"] for s in t["reset_seeds"]}
    assert per_epoch and not per_epoch & set(scored["reset_seeds"])
    assert len(first.computed) == 1
    again = AnalysisCache(cache_root)
    assert analyses.scored_returns(_store(data, cache_root), again, run, epoch) == scored
    assert again.computed == [] and len(again.loaded) == 1


def test_the_score_window_scores_the_last_checkpoints_each_on_disjoint_fresh_episodes(data, cache_root, run):
    from dtcore.convergence import SCORE_WINDOW, SCORED_EPISODES_PER_CHECKPOINT

    window = analyses.window_scored_returns(_store(data, cache_root), AnalysisCache(cache_root), run)
    trained = [e for e in run.epochs if e >= 1]
    assert [w["epoch"] for w in window] == trained[-SCORE_WINDOW:]     # all of them when fewer (TINY: 2)
    seeds = [s for w in window for s in w["reset_seeds"]]
    assert all(len(w["returns"]) == SCORED_EPISODES_PER_CHECKPOINT for w in window)
    assert len(set(seeds)) == len(seeds)                              # each checkpoint its own episodes
    best = analyses.scored_returns(_store(data, cache_root), AnalysisCache(cache_root), run, run.best_epoch)
    per_epoch = {s for rec in run.log for t in rec["eval"]["targets"] for s in t["reset_seeds"]}
    assert not set(seeds) & (set(best["reset_seeds"]) | per_epoch)


def test_the_sound_score_is_the_window_mean_with_half_samples_within_each_checkpoint(data, cache_root, run):
    from dtcore.claim import Cell
    from dtcore.envs import d4rl_normalised
    from dtcore.measures import scored

    st = _store(data, cache_root)
    cell = Cell(store=st, cache=AnalysisCache(cache_root), env="hopper", seed=0, definition="sound")
    m = scored(cell, "random")
    window = analyses.window_scored_returns(st, AnalysisCache(cache_root), run)
    x = np.array([[d4rl_normalised("hopper", r) for r in w["returns"]] for w in window])   # [k, episodes]
    assert m.value == pytest.approx(x.mean()) and m.n_units == x.size
    halves = statistics.half_sample_indices(x.shape[1], draws=PROFILE.analysis.replicates, seed=0)   # draw 0
    expected = [np.mean([x[k, h].mean() for k in range(x.shape[0])]) for h in halves]   # each checkpoint weighs alike
    np.testing.assert_allclose(m.reps, expected)
