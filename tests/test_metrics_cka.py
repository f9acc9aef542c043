"""CKA (dtcore.metrics.cka): identities, invariances, two formulas, the published demo values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from dtcore.metrics import cka
from dtcore.metrics.cka import (
    MinibatchCKA,
    cka_matrix,
    cka_replicates,
    feature_space_linear_cka,
    linear_cka,
    rbf_cka,
    select_tokens,
)
from dtcore.statistics import half_sample_indices
from tests.strategies import offsets, orthogonal, paired_matrices, positive_scales, sample_matrix, seeds

ESTIMATORS = {
    "linear": lambda x, y: linear_cka(x, y),
    "linear-debiased": lambda x, y: linear_cka(x, y, debiased=True),
    "feature-space": lambda x, y: feature_space_linear_cka(x, y),
    "feature-space-debiased": lambda x, y: feature_space_linear_cka(x, y, debiased=True),
    "rbf": lambda x, y: rbf_cka(x, y, threshold=0.8),
    "rbf-debiased": lambda x, y: rbf_cka(x, y, threshold=0.8, debiased=True),
}
LINEAR = [k for k in ESTIMATORS if not k.startswith("rbf")]


def demo_data() -> tuple[np.ndarray, np.ndarray]:
    """The google-research demo: numpy seed 1337, X = randn(100, 10), Y = X + randn(100, 10)."""
    rs = np.random.RandomState(1337)
    x = rs.randn(100, 10)
    return x, x + rs.randn(100, 10)


def test_the_published_demo_case_gives_the_published_values():
    x, y = demo_data()
    assert linear_cka(x, y) == pytest.approx(0.55761, abs=5e-6)
    assert linear_cka(x, y, debiased=True) == pytest.approx(0.51346, abs=5e-6)
    assert rbf_cka(x, y, threshold=0.5) == pytest.approx(0.65483, abs=5e-6)


@pytest.mark.parametrize("name", ESTIMATORS)
@given(x=sample_matrix())
def test_a_representation_compared_with_itself_gives_one(name, x):
    assert ESTIMATORS[name](x, x) == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("name", ESTIMATORS)
@given(xy=paired_matrices())
def test_cka_is_symmetric_and_bounded(name, xy):
    x, y = xy
    a, b = ESTIMATORS[name](x, y), ESTIMATORS[name](y, x)
    assert a == pytest.approx(b, abs=1e-10)
    lower = -1.0 if "debiased" in name else 0.0  # debiased CKA can be slightly negative: not clipped
    assert lower - 1e-12 <= a <= 1.0 + 1e-12


@pytest.mark.parametrize("name", LINEAR)
@given(xy=paired_matrices(), seed=seeds, scale=positive_scales)
def test_linear_cka_is_invariant_to_orthogonal_maps_and_isotropic_scaling(name, xy, seed, scale):
    x, y = xy
    q = orthogonal(x.shape[1], seed)
    assert ESTIMATORS[name](scale * x @ q, y) == pytest.approx(ESTIMATORS[name](x, y), abs=1e-8)


@pytest.mark.parametrize("debiased", [False, True])
@given(xy=paired_matrices(), seed=seeds, scale=positive_scales)
def test_rbf_cka_is_invariant_to_orthogonal_maps_and_isotropic_scaling(debiased, xy, seed, scale):
    x, y = xy
    q = orthogonal(x.shape[1], seed)
    assert rbf_cka(scale * x @ q, y, debiased=debiased) == pytest.approx(rbf_cka(x, y, debiased=debiased), abs=1e-7)


@pytest.mark.parametrize("name", LINEAR)
def test_linear_cka_is_not_invariant_to_a_general_invertible_linear_map(name):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 6))
    y = x[:, :2] + 0.3 * rng.standard_normal((60, 2))
    stretch = np.diag([1.0, 1.0, 30.0, 30.0, 30.0, 30.0])  # invertible, not orthogonal x scalar
    assert np.linalg.matrix_rank(stretch) == 6
    assert abs(ESTIMATORS[name](x @ stretch, y) - ESTIMATORS[name](x, y)) > 0.2


@pytest.mark.parametrize("debiased", [False, True])
@given(xy=paired_matrices(), shift=offsets)
def test_gram_and_feature_space_forms_agree(debiased, xy, shift):
    x, y = xy
    gram = linear_cka(x + shift, y, debiased=debiased)
    feature = feature_space_linear_cka(x + shift, y, debiased=debiased)
    assert feature == pytest.approx(gram, abs=1e-8)


def test_debiased_cka_of_independent_data_tends_to_zero_while_biased_stays_inflated():
    rng = np.random.default_rng(0)

    def mean_cka(n: int, debiased: bool) -> float:
        return float(np.mean([linear_cka(rng.standard_normal((n, 64)), rng.standard_normal((n, 64)), debiased)
                              for _ in range(8)]))

    biased_small, biased_large = mean_cka(32, False), mean_cka(256, False)
    debiased_small, debiased_large = mean_cka(32, True), mean_cka(256, True)
    assert biased_small > 0.4 and biased_large > 0.1, (biased_small, biased_large)
    assert biased_large < biased_small
    assert abs(debiased_small) < 0.1 and abs(debiased_large) < 0.01, (debiased_small, debiased_large)


@pytest.mark.parametrize("debiased", [False, True])
def test_float32_input_with_large_means_stays_accurate(debiased):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((100, 20))
    y = x @ rng.standard_normal((20, 30)) + rng.standard_normal((100, 30))
    reference = linear_cka(x, y, debiased=debiased)
    x32 = (x + rng.uniform(80, 120, size=20)).astype(np.float32)   # offsets near 100, like LayerNorm/GELU outputs
    y32 = (y + rng.uniform(80, 120, size=30)).astype(np.float32)
    assert linear_cka(x32, y32, debiased=debiased) == pytest.approx(reference, abs=1e-5)
    from_torch = linear_cka(torch.from_numpy(x32), torch.from_numpy(y32), debiased=debiased)
    assert from_torch == pytest.approx(reference, abs=1e-5)


@pytest.mark.parametrize("name", ESTIMATORS)
def test_a_constant_representation_gives_nan_not_zero(name):
    x = np.random.default_rng(2).standard_normal((10, 3))
    assert math.isnan(ESTIMATORS[name](np.full((10, 4), 7.5), x))
    assert math.isnan(ESTIMATORS[name](x, np.zeros((10, 2))))


def test_no_epsilon_in_the_denominator_so_tiny_activations_keep_their_value():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((10, 3))
    y = x + 0.5 * rng.standard_normal((10, 3))
    for debiased in (False, True):
        assert linear_cka(1e-4 * x, 1e-4 * y, debiased) == pytest.approx(linear_cka(x, y, debiased), abs=1e-10)


@pytest.mark.parametrize(("bad", "match"), [
    ((np.ones((5, 2)), np.ones((6, 2))), "same number of samples"),
    ((np.ones(5), np.ones((5, 2))), "rank 2"),
    ((np.array([[1.0, np.nan]] * 5), np.ones((5, 2))), "non-finite"),
    ((np.ones((1, 2)), np.ones((1, 2))), "at least 2 samples"),
])
def test_bad_inputs_raise_value_errors_naming_the_argument_and_shape(bad, match):
    with pytest.raises(ValueError, match=match):
        linear_cka(*bad)


def test_debiased_cka_needs_four_samples():
    x = np.random.default_rng(4).standard_normal((3, 2))
    with pytest.raises(ValueError, match=r"x needs at least 4 samples.*\(3, 2\)"):
        linear_cka(x, x, debiased=True)
    assert linear_cka(x, x) == pytest.approx(1.0)


def test_inputs_are_never_modified():
    x, y = demo_data()
    xc, yc = x.copy(), y.copy()
    xt = torch.from_numpy(x.copy())
    for fn in ESTIMATORS.values():
        fn(x, y)
    cka_matrix([x, y], [y], debiased=True)
    linear_cka(xt, y, debiased=True)
    np.testing.assert_array_equal(x, xc)
    np.testing.assert_array_equal(y, yc)
    np.testing.assert_array_equal(xt.numpy(), xc)


@pytest.mark.parametrize("debiased", [False, True])
def test_cka_matrix_equals_the_double_loop_of_linear_cka(debiased):
    rng = np.random.default_rng(5)
    acts_a = [rng.standard_normal((12, p)) + 3 for p in (4, 7, 2)]
    acts_b = {f"layer{i}": rng.standard_normal((12, p)) @ rng.standard_normal((p, p)) for i, p in enumerate((5, 3))}
    acts_b["layer0"] = acts_b["layer0"] + acts_a[0] @ rng.standard_normal((4, 5))
    got = cka_matrix(acts_a, acts_b, debiased=debiased)
    want = np.array([[linear_cka(a, b, debiased) for b in acts_b.values()] for a in acts_a])
    assert got.shape == (3, 2)
    np.testing.assert_allclose(got, want, atol=1e-10)


def test_cka_matrix_of_a_model_with_itself_is_symmetric_with_a_unit_diagonal_and_nan_for_constant_layers():
    rng = np.random.default_rng(6)
    acts = [rng.standard_normal((10, 4)), np.ones((10, 3)), rng.standard_normal((10, 6))]
    m = cka_matrix(acts)
    np.testing.assert_allclose(np.diag(m)[[0, 2]], 1.0, atol=1e-12)
    assert np.all(np.isnan(m[1])) and np.all(np.isnan(m[:, 1]))
    np.testing.assert_allclose(m, m.T, atol=1e-12)


def test_cka_matrix_computes_each_gram_matrix_once(monkeypatch):
    calls = []
    original = cka.linear_gram
    monkeypatch.setattr(cka, "linear_gram", lambda x: calls.append(x.shape) or original(x))
    rng = np.random.default_rng(7)
    cka_matrix([rng.standard_normal((8, 3)) for _ in range(5)], [rng.standard_normal((8, 2)) for _ in range(4)])
    assert len(calls) == 5 + 4


def test_cka_matrix_accepts_torch_tensors_and_rejects_mismatched_sample_counts():
    rng = np.random.default_rng(8)
    a = [torch.from_numpy(rng.standard_normal((9, 3))).float() for _ in range(2)]
    np.testing.assert_allclose(cka_matrix(a, a, device="cpu"), cka_matrix([t.numpy() for t in a]), atol=1e-12)
    with pytest.raises(ValueError, match=r"acts_b\[0\] must have 9 samples.*\(7, 3\)"):
        cka_matrix(a, [rng.standard_normal((7, 3))])


@pytest.mark.parametrize("debiased", [False, True])
def test_the_minibatch_accumulator_agrees_with_the_full_computation_when_batches_are_equal(debiased):
    rng = np.random.default_rng(9)
    acts_a = [rng.standard_normal((16, 5)) for _ in range(3)]
    acts_b = [acts_a[0] @ rng.standard_normal((5, 4)) + rng.standard_normal((16, 4)), rng.standard_normal((16, 2))]
    acc = MinibatchCKA(debiased=debiased)
    for _ in range(3):
        acc.update(acts_a, acts_b)
    assert acc.batches == 3
    np.testing.assert_allclose(acc.compute(), cka_matrix(acts_a, acts_b, debiased=debiased), atol=1e-12)


@given(seed=seeds, batches=st.integers(2, 5))
def test_the_minibatch_accumulator_is_the_ratio_of_summed_hsic_and_ignores_batch_order(seed, batches):
    rng = np.random.default_rng(seed)
    data = [(rng.standard_normal((8, 3)), rng.standard_normal((8, 2))) for _ in range(batches)]
    forward, backward = MinibatchCKA(), MinibatchCKA()
    for x, y in data:
        forward.update([x], [y])
    for x, y in reversed(data):
        backward.update([x], [y])
    np.testing.assert_allclose(forward.compute(), backward.compute(), atol=1e-12)
    grams = [(cka.centre_gram(cka.linear_gram(torch.from_numpy(x)), True),
              cka.centre_gram(cka.linear_gram(torch.from_numpy(y)), True)) for x, y in data]
    xy = sum(float((k * l).sum()) for k, l in grams)
    xx = sum(float((k * k).sum()) for k, _ in grams)
    yy = sum(float((l * l).sum()) for _, l in grams)
    assert forward.compute()[0, 0] == pytest.approx(xy / math.sqrt(xx * yy), abs=1e-12)


def test_the_minibatch_accumulator_needs_an_update_and_fixed_layer_counts():
    acc = MinibatchCKA()
    with pytest.raises(ValueError, match="at least one update"):
        acc.compute()
    rng = np.random.default_rng(10)
    acc.update([rng.standard_normal((6, 2))])
    with pytest.raises(ValueError, match="layer counts changed"):
        acc.update([rng.standard_normal((6, 2))] * 2)


@pytest.mark.parametrize("debiased", [False, True])
@given(xy=paired_matrices(n=(8, 40)), seed=seeds, shift=offsets)
def test_cka_replicates_equal_linear_cka_on_each_subset(debiased, xy, seed, shift):
    x, y = xy
    rng = np.random.default_rng(seed)
    acts_a = [x + shift, rng.standard_normal((len(x), 3))]
    acts_b = {"first": y, "second": acts_a[1] @ rng.standard_normal((3, 2)) + rng.standard_normal((len(x), 2))}
    idx = half_sample_indices(len(x), draws=5, seed=seed)                        # [5, n // 2]
    got = cka_replicates(acts_a, acts_b, idx, debiased=debiased)
    want = np.array([[linear_cka(a[i], b[i], debiased) for a, b in zip(acts_a, acts_b.values())] for i in idx])
    assert got.shape == (5, 2)
    np.testing.assert_allclose(got, want, atol=1e-9)


def test_cka_replicates_are_nan_exactly_where_a_layer_is_constant_on_the_subset():
    rng = np.random.default_rng(11)
    x = rng.standard_normal((8, 3))
    partly = x.copy()
    partly[:4] = 7.0                                                             # rows 0-3 equal
    idx = np.array([[0, 1, 2, 3], [0, 1, 2, 4], [4, 5, 6, 7]])
    got = cka_replicates([x, partly, np.ones((8, 2))], [x, x, x], idx)
    np.testing.assert_allclose(got[:, 0], 1.0, atol=1e-12)
    assert np.isnan(got[0, 1]) and np.isfinite(got[1:, 1]).all()
    assert np.isnan(got[:, 2]).all()


def test_cka_replicates_centre_on_the_full_sample_value_and_spread_as_one_over_root_n():
    spreads = {}
    for n in (40, 400):
        rng = np.random.default_rng(12)
        x = rng.standard_normal((n, 5))
        y = x @ rng.standard_normal((5, 5)) + 2.0 * rng.standard_normal((n, 5))
        reps = cka_replicates([x], [y], half_sample_indices(n, draws=400, seed=0))[:, 0]
        full = linear_cka(x, y, debiased=True)
        assert abs(np.median(reps) - full) < 0.5 * reps.std(), (n, full, np.median(reps), reps.std())
        spreads[n] = reps.std()
    assert 0.15 < spreads[400] / spreads[40] < 0.6, spreads                     # sqrt(40 / 400) = 0.32


def test_cka_replicates_reject_bad_subsets():
    rng = np.random.default_rng(13)
    x = [rng.standard_normal((10, 3))]
    with pytest.raises(ValueError, match="repeat a sample"):
        cka_replicates(x, x, np.array([[0, 1, 2, 2]]))
    with pytest.raises(ValueError, match=r"lie in \[0, 10\)"):
        cka_replicates(x, x, np.array([[0, 1, 2, 10]]))
    with pytest.raises(ValueError, match="at least 4 samples"):
        cka_replicates(x, x, np.array([[0, 1, 2]]))
    with pytest.raises(ValueError, match="integer"):
        cka_replicates(x, x, np.array([[0.0, 1.0, 2.0, 3.0]]))
    with pytest.raises(ValueError, match="same number of layers"):
        cka_replicates(x, x * 2, np.array([[0, 1, 2, 3]]))
    with pytest.raises(ValueError, match=r"acts_b\[0\] must have 10 samples"):
        cka_replicates(x, [rng.standard_normal((9, 3))], np.array([[0, 1, 2, 3]]))


@pytest.mark.parametrize("debiased", [False, True])
def test_centre_gram_centres_a_batch_of_gram_matrices_one_by_one(debiased):
    rng = np.random.default_rng(14)
    grams = torch.stack([cka.linear_gram(torch.from_numpy(rng.standard_normal((7, 3)))) for _ in range(6)])
    batched = cka.centre_gram(grams.reshape(2, 3, 7, 7), debiased).reshape(6, 7, 7)
    for g, b in zip(grams, batched):
        torch.testing.assert_close(b, cka.centre_gram(g, debiased), rtol=0, atol=1e-12)


def _positional_activation(b: int = 2, k: int = 4, d: int = 5) -> np.ndarray:
    """act[b, pos, ch] = 1000 b + 10 pos + ch, so every slice says where it came from."""
    bb, pp, cc = np.meshgrid(np.arange(b), np.arange(3 * k), np.arange(d), indexing="ij")
    return (1000 * bb + 10 * pp + cc).astype(np.float64)


@pytest.mark.parametrize(("token", "position"), [("return", 9), ("state", 10), ("action", 11)])
def test_token_mode_takes_the_last_timesteps_token_vector(token, position):
    act = _positional_activation()
    got = select_tokens(act, token, mode="token")
    assert got.shape == (2, 5)
    np.testing.assert_array_equal(got, act[:, position, :])


@pytest.mark.parametrize(("token", "channel"), [("return", 2), ("state", 3), ("action", 4)])
def test_channel_mode_reproduces_the_published_slice_of_one_feature_channel(token, channel):
    act = torch.from_numpy(_positional_activation())
    got = select_tokens(act, token, mode="channel")
    assert isinstance(got, torch.Tensor) and got.shape == (2, 12)
    np.testing.assert_array_equal(got.numpy(), act.numpy()[:, :, channel])
    got[0, 0] = -1.0
    assert act[0, 0, channel] != -1.0  # a copy, not a view into the caller's activations


def test_select_tokens_rejects_unknown_tokens_modes_and_shapes():
    act = _positional_activation()
    with pytest.raises(ValueError, match="token must be one of"):
        select_tokens(act, "reward", "token")
    with pytest.raises(ValueError, match="mode must be"):
        select_tokens(act, "state", "position")
    with pytest.raises(ValueError, match=r"\[B, 3K, d\].*\(2, 10, 5\)"):
        select_tokens(act[:, :10], "state", "token")
