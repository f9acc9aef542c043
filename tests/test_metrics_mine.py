"""MINE (dtcore.metrics.mine): closed-form Gaussian cases, the shuffled baseline, batching, seeding."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dtcore.metrics.mine import MIEstimate, MineOptions, _auto_group_size, gaussian_mi, mine, mine_many

SMALL = dict(hidden=(16, 16), iters=20, batch_size=16)  # unit-test sized critic and schedule


def correlated_gaussians(n: int, dims: int, rho: float, seed: int) -> tuple[np.ndarray, np.ndarray, float]:
    """x, z [n, dims] with corr(x_k, z_k) = rho per pair; true MI = -dims/2 log(1 - rho²) nats."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dims))
    z = rho * x + math.sqrt(1 - rho**2) * rng.standard_normal((n, dims))
    return x, z, -0.5 * dims * math.log(1 - rho**2)


@pytest.mark.slow
def test_held_out_estimate_approaches_the_closed_form_mi_and_independent_pairs_give_about_zero():
    x, z, truth = correlated_gaussians(5000, 2, 0.8, seed=0)
    x_ind, z_ind, _ = correlated_gaussians(5000, 2, 0.0, seed=1)
    dependent, independent = mine_many([(x, z), (x_ind, z_ind)], hidden=(32, 32), iters=60, batch_size=100,
                                       lr=1e-3, evaluation="held_out", eval_permutations=10, seed=0)
    assert dependent.value == pytest.approx(truth, abs=0.06), (dependent.value, truth)
    assert -0.1 < independent.value <= 0.05, independent.value
    assert -0.1 < dependent.shuffled <= 0.05, dependent.shuffled  # shuffled pairs: true MI 0
    assert dependent.n_train == 2500 and dependent.n_eval == 2500


def test_mine_many_equals_looping_mine_with_the_same_seeds():
    rng = np.random.default_rng(2)
    pairs = [(rng.standard_normal((48, 2)), rng.standard_normal((48, 5))),
             (rng.standard_normal((48, 4)), rng.standard_normal((48, 1))),
             (rng.standard_normal((40, 1)), rng.standard_normal((40, 3)))]  # another n: its own group
    pairs[0] = (pairs[0][0], pairs[0][1] + pairs[0][0] @ rng.standard_normal((2, 5)))
    for evaluation in ("in_sample", "held_out"):
        opts = dict(SMALL, evaluation=evaluation, eval_permutations=3)
        many = mine_many(pairs, seeds=[5, 6, 7], **opts)
        one_by_one = mine_many(pairs, seeds=[5, 6, 7], group_size=1, **opts)
        looped = [mine(x, z, seed=s, **opts) for (x, z), s in zip(pairs, [5, 6, 7])]
        for a, b, c in zip(many, looped, one_by_one):
            assert c.value == pytest.approx(b.value, abs=1e-9)
            assert a.value == pytest.approx(b.value, abs=1e-9)
            assert a.shuffled == pytest.approx(b.shuffled, abs=1e-9)
            np.testing.assert_allclose(a.curve, b.curve, atol=1e-9)
            np.testing.assert_allclose(a.shuffled_curve, b.shuffled_curve, atol=1e-9)


def test_automatic_groups_batch_small_critics_and_run_compute_bound_ones_alone_on_a_cpu():
    paper, mini = MineOptions(hidden=(400, 400, 400)), MineOptions(hidden=(32, 32))
    assert _auto_group_size(paper, 11, 64) == 1  # 351k weights: compute-bound, batching only costs
    assert _auto_group_size(mini, 11, 64) == 4_000_000 // (2 * ((75 + 1) * 32 + 33 * 32 + 33))
    assert _auto_group_size(MineOptions(hidden=(32, 32), baseline=False), 11, 64) == 2 * _auto_group_size(mini, 11, 64)
    assert _auto_group_size(MineOptions(hidden=(400, 400, 400), device="cuda"), 11, 64) == 256


def test_mine_many_gives_every_pair_the_same_seed_unless_told_otherwise():
    x, z, _ = correlated_gaussians(32, 1, 0.5, seed=3)
    a, b = mine_many([(x, z), (x, z)], **SMALL, seed=4)
    assert a.value == b.value and a.seed == b.seed == 4
    c, d = mine_many([(x, z), (x, z)], **SMALL, seeds=[4, 5])
    assert c.value == a.value and d.value != c.value
    with pytest.raises(ValueError, match="one seed per pair"):
        mine_many([(x, z)], seeds=[1, 2], **SMALL)


def test_the_same_seed_repeats_the_estimate_and_another_seed_changes_it():
    x, z, _ = correlated_gaussians(32, 2, 0.6, seed=5)
    first, again, other = (mine(x, z, seed=s, **SMALL) for s in (0, 0, 1))
    assert first.value == again.value and first.shuffled == again.shuffled
    np.testing.assert_array_equal(first.curve, again.curve)
    assert other.value != first.value


def test_estimate_carries_curve_baseline_and_sample_counts():
    x, z, _ = correlated_gaussians(64, 2, 0.9, seed=6)
    est = mine(x, z, **SMALL)
    assert isinstance(est, MIEstimate)
    assert est.curve.shape == (SMALL["iters"],) and np.all(np.isfinite(est.curve))
    assert est.evaluation == "in_sample" and est.n_train == est.n_eval == 64
    assert est.excess == pytest.approx(est.value - est.shuffled)
    bare = mine(x, z, **SMALL, baseline=False)
    assert bare.shuffled is None and bare.shuffled_curve is None and math.isnan(bare.excess)
    assert bare.value == pytest.approx(est.value, abs=1e-12)  # the baseline is an independent estimator
    held = mine(x, z, **SMALL, evaluation="held_out", train_fraction=0.75)
    assert (held.n_train, held.n_eval) == (48, 16)


def test_training_increases_the_bound_on_strongly_dependent_pairs():
    x, z, truth = correlated_gaussians(256, 1, 0.95, seed=7)
    est = mine(x, z, hidden=(32, 32), iters=30, batch_size=64, lr=1e-3)
    assert est.curve[-5:].mean() > est.curve[:5].mean() + 0.3
    assert est.value > est.shuffled + 0.3


def test_huge_critic_outputs_stay_finite_thanks_to_the_stable_log_mean_exp():
    x, z, _ = correlated_gaussians(32, 1, 0.5, seed=8)
    est = mine(1e4 * x, 1e4 * z, **SMALL)  # first-layer pre-activations in the thousands: exp() overflows
    assert np.isfinite(est.value) and np.all(np.isfinite(est.curve))


def test_float32_arithmetic_is_available_and_close_to_float64_after_few_steps():
    x, z, _ = correlated_gaussians(32, 1, 0.5, seed=9)
    a = mine(x, z, **SMALL)
    b = mine(x, z, **SMALL, dtype=torch.float32)
    assert b.value == pytest.approx(a.value, abs=1e-3)


def test_inputs_are_never_modified():
    x, z, _ = correlated_gaussians(32, 2, 0.5, seed=10)
    xc, zt = x.copy(), torch.from_numpy(z.copy())
    mine(x, zt, **SMALL, evaluation="held_out")
    np.testing.assert_array_equal(x, xc)
    np.testing.assert_array_equal(zt.numpy(), z)


@pytest.mark.parametrize(("kwargs", "match"), [
    (dict(x=np.ones((32, 1)), z=np.ones((31, 1))), r"same number of samples.*\(32, 1\).*\(31, 1\)"),
    (dict(x=np.ones(32), z=np.ones((32, 1))), r"x must have rank 2, got shape \(32,\)"),
    (dict(x=np.full((32, 1), np.inf), z=np.ones((32, 1))), "non-finite"),
    (dict(x=np.ones((10, 1)), z=np.ones((10, 1))), "fewer than batch_size=16"),
    (dict(x=np.ones((32, 1)), z=np.ones((32, 1)), evaluation="test"), "evaluation must be"),
    (dict(x=np.ones((32, 1)), z=np.ones((32, 1)), ema_rate=0.0), "ema_rate"),
])
def test_bad_inputs_raise_value_errors_naming_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        mine(**{**SMALL, **kwargs})


def test_the_gaussian_plug_in_estimate_matches_the_closed_form():
    x, z, truth = correlated_gaussians(20000, 3, 0.7, seed=11)
    assert gaussian_mi(x, z) == pytest.approx(truth, abs=0.03)  # sampling sd about 0.009 here
    x_ind, z_ind, _ = correlated_gaussians(20000, 3, 0.0, seed=12)
    assert abs(gaussian_mi(x_ind, z_ind)) < 0.005


def test_the_gaussian_plug_in_estimate_is_invariant_to_invertible_maps_of_each_side():
    x, z, _ = correlated_gaussians(500, 2, 0.5, seed=13)
    rng = np.random.default_rng(14)
    mapped = gaussian_mi(x @ rng.standard_normal((2, 2)) + 3, 5 * z - 1)
    assert mapped == pytest.approx(gaussian_mi(x, z), abs=1e-10)


def test_the_gaussian_plug_in_estimate_needs_more_samples_than_dimensions_or_shrinkage():
    rng = np.random.default_rng(15)
    x, z = rng.standard_normal((10, 6)), rng.standard_normal((10, 6))
    with pytest.raises(ValueError, match="too few samples"):
        gaussian_mi(x, z)
    assert np.isfinite(gaussian_mi(x, z, shrinkage=0.5))
    with pytest.raises(ValueError, match="constant column"):
        gaussian_mi(np.ones((20, 1)), rng.standard_normal((20, 1)))
