"""The EMA of Fig. 9 (dtcore.metrics.smoothing), against the published scipy call."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy.signal import lfilter

from dtcore.metrics.smoothing import ema
from tests.strategies import series


@given(x=series(), alpha=st.floats(0.0, 0.95))
def test_the_published_flag_reproduces_lfilter_with_zi_equal_to_the_first_point(x, alpha):
    published, _ = lfilter([1 - alpha], [1, -alpha], x, zi=[x[0]])
    np.testing.assert_allclose(ema(x, alpha, published_first_point=True), published, rtol=1e-12, atol=1e-12)


def test_the_published_first_point_is_one_point_two_times_the_first_value():
    x = np.array([2.0, 4.0, 4.0])
    np.testing.assert_allclose(ema(x, published_first_point=True), [2.4, 0.2 * 4 + 0.8 * 2.4, 0.2 * 4 + 0.8 * 2.72])
    np.testing.assert_allclose(ema(x), [2.0, 2.4, 2.72])


@given(x=series(), alpha=st.floats(0.0, 0.95))
def test_the_default_starts_at_the_first_value_and_follows_the_recurrence(x, alpha):
    y = ema(x, alpha)
    assert y[0] == x[0]
    np.testing.assert_allclose(y[1:], (1 - alpha) * x[1:] + alpha * y[:-1], rtol=1e-12, atol=1e-12)


@given(value=st.floats(-1e3, 1e3), length=st.integers(1, 30))
def test_a_constant_curve_stays_constant(value, length):
    np.testing.assert_allclose(ema(np.full(length, value)), value, rtol=1e-12, atol=1e-9)


def test_torch_input_is_accepted_and_left_unchanged():
    x = torch.tensor([1.0, 3.0])
    np.testing.assert_allclose(ema(x), [1.0, 1.4])
    assert x.tolist() == [1.0, 3.0]


@pytest.mark.parametrize(("x", "alpha", "match"), [
    (np.ones((2, 2)), 0.8, "rank 1"), (np.array([1.0, np.nan]), 0.8, "non-finite"),
    (np.array([]), 0.8, "at least 1 samples"), (np.ones(3), 1.0, "alpha"),
])
def test_bad_inputs_raise_value_errors(x, alpha, match):
    with pytest.raises(ValueError, match=match):
        ema(x, alpha)
