"""Mean attention distance (dtcore.metrics.attention): closed forms, masks, the published construction."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from transformers import GPT2Config, GPT2Model

from dtcore.metrics.attention import (
    attention_distance,
    mean_attention_distance,
    published_attention_distance,
    token_mask_from_steps,
)
from tests.strategies import causal_attention


def uniform_causal(t: int) -> np.ndarray:
    w = np.tril(np.ones((t, t)))
    return w / w.sum(-1, keepdims=True)


def previous_token(t: int) -> np.ndarray:
    w = np.eye(t, k=-1)
    w[0, 0] = 1.0  # query 0 can only attend to itself
    return w


@pytest.mark.parametrize("t", [1, 2, 7, 60])
def test_uniform_causal_attention_gives_half_the_query_index(t):
    np.testing.assert_allclose(attention_distance(uniform_causal(t)), np.arange(t) / 2, atol=1e-12)
    assert mean_attention_distance(uniform_causal(t)) == pytest.approx((t - 1) / 4)


def test_attending_to_oneself_gives_zero_and_to_the_previous_token_gives_one():
    np.testing.assert_array_equal(attention_distance(np.eye(9)), np.zeros(9))
    np.testing.assert_array_equal(attention_distance(previous_token(9)), [0.0] + [1.0] * 8)
    assert mean_attention_distance(previous_token(9), exclude_first_query=True) == pytest.approx(1.0)


def test_timestep_units_count_whole_r_s_a_triples():
    d = attention_distance(previous_token(9), unit="timestep")
    np.testing.assert_array_equal(d, [0, 0, 0, 1, 0, 0, 1, 0, 0])  # only R̂_t looks back a timestep
    np.testing.assert_allclose(attention_distance(uniform_causal(6), unit="timestep"),
                               [0, 0, 0, 3 / 4, 3 / 5, 3 / 6], atol=1e-12)


def test_padded_queries_are_nan_per_query_and_left_out_of_the_mean():
    attn = np.stack([uniform_causal(6), uniform_causal(6)])[:, None].repeat(2, axis=1)  # [B=2, H=2, T, T]
    mask = np.array([[1, 1, 1, 1, 1, 1], [0, 0, 0, 1, 1, 1]])  # sample 1 left-padded by 3 tokens
    d = attention_distance(attn, query_mask=mask)
    assert d.shape == (2, 2, 6)
    assert np.isnan(d[1, :, :3]).all() and np.isfinite(d[0]).all()
    np.testing.assert_allclose(d[1, :, 3:], [[1.5, 2.0, 2.5]] * 2)
    # per (sample, head) mean over valid queries, then over samples and heads
    assert mean_attention_distance(attn, query_mask=mask) == pytest.approx((1.25 + 2.0) / 2)
    # the first valid query of each row dropped: sample 0 loses query 0, sample 1 loses query 3
    assert mean_attention_distance(attn, query_mask=mask, exclude_first_query=True) == pytest.approx((1.5 + 2.25) / 2)


def test_step_masks_expand_to_three_tokens_per_timestep():
    np.testing.assert_array_equal(token_mask_from_steps(np.array([[0, 1]])), [[0, 0, 0, 1, 1, 1]])


@given(attn=causal_attention())
def test_causal_attention_distances_lie_between_zero_and_the_query_index(attn):
    d = attention_distance(attn)
    t = attn.shape[-1]
    assert np.all(d >= -1e-12) and np.all(d <= np.arange(t) + 1e-9)
    assert mean_attention_distance(attn) <= (t - 1) / 2 + 1e-9


def test_bad_shapes_and_masks_raise_value_errors():
    with pytest.raises(ValueError, match=r"\[\.\.\., T, T\].*\(2, 3\)"):
        attention_distance(np.ones((2, 3)))
    with pytest.raises(ValueError, match="query_mask"):
        attention_distance(np.ones((2, 4, 4)), query_mask=np.ones((3, 4)))
    with pytest.raises(ValueError, match="no valid query"):
        mean_attention_distance(np.eye(3), query_mask=np.zeros(3))
    with pytest.raises(ValueError, match="unit"):
        attention_distance(np.eye(3), unit="step")


def test_the_published_construction_on_a_hand_made_case():
    # T = 2, n_embd = 1: q = (1, 2), k = (0, 1). Row 1 logits q_1 k_j = (0, 2): softmax over both
    # keys gives w_10 = 1 / (1 + e²); the upper triangle is zeroed; D = [[0, 1], [1, 0]].
    c = np.array([[[1.0, 0.0, 9.0], [2.0, 1.0, 9.0]]])  # [B=1, T=2, 3d]
    w10 = 1 / (1 + math.e**2)
    np.testing.assert_allclose(published_attention_distance(c, n_embd=1), [w10 / 4], rtol=1e-12)


def test_the_published_construction_is_the_row_mean_distance_of_an_unrenormalised_matrix_over_t():
    rng = np.random.default_rng(0)
    b, t, d = 3, 12, 8
    c = rng.standard_normal((b, t, 3 * d))
    q, k = c[..., :d], c[..., d:2 * d]
    logits = q @ k.transpose(0, 2, 1) / math.sqrt(d)
    w = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)  # all keys, future included
    tril = np.tril(w)
    assert not np.allclose(tril.sum(-1), 1.0)  # rows no longer sum to 1
    want = attention_distance(tril).mean(-1) / t
    np.testing.assert_allclose(published_attention_distance(torch.from_numpy(c), n_embd=d), want, rtol=1e-10)
    with pytest.raises(ValueError, match=r"3 \* n_embd"):
        published_attention_distance(c, n_embd=5)


def test_true_gpt2_attention_probabilities_give_zero_for_the_first_query():
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=1, n_embd=16, n_layer=1, n_head=2, n_positions=12, bos_token_id=0,
                     eos_token_id=0, attn_implementation="eager")
    model = GPT2Model(cfg).eval()
    with torch.no_grad():
        out = model(inputs_embeds=torch.randn(2, 12, 16), output_attentions=True)
    attn = out.attentions[0]  # [B, H, T, T]
    d = attention_distance(attn)
    assert d.shape == (2, 2, 12)
    np.testing.assert_allclose(d[..., 0], 0.0, atol=1e-7)
    assert 0 < mean_attention_distance(attn) < 11 / 2
