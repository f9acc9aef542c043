"""Mean attention distance: the context-dependence analysis of §5.6.2 and Fig. 10.

Dosovitskiy et al., "An Image is Worth 16x16 Words" (ICLR 2021), App. D.7; Raghu et al. 2021.
For attention probabilities A [..., T, T] (query i, key j), the distance of query i is

    d_i = Σ_j A[i, j] · |i - j|

in token positions (``unit="token"``) or in timesteps (``unit="timestep"``: |t(i) - t(j)| with
t(p) = p // tokens_per_step; a Decision Transformer has 3 tokens R̂, s, a per timestep). Closed
forms: uniform causal attention gives i/2, attending to oneself 0, to the previous token 1.

The true probabilities come from HF GPT-2 with ``attn_implementation="eager"`` (causal,
padding-masked, per head). Left-padded queries should be excluded with ``query_mask``.

:func:`published_attention_distance` keeps the paper's own construction (docs/spec.md §6.7)
only to reproduce Fig. 10: from the ``c_attn`` output [B, T, 3d], the query and key of all heads
merged into one d-dimensional dot product scaled by sqrt(d), softmax over **all** T keys (future
included), the upper triangle then zeroed without renormalising, no padding mask, distances in
token positions, and the mean over all T x T entries (the row-averaged distance divided by T).
For a 1-head body these are the true logits; for multi-head GPT-2 they are not.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from dtcore.metrics.arrays import as_array, shape_of

UNITS = ("token", "timestep")


def _distances(t: int, unit: str, tokens_per_step: int) -> np.ndarray:
    """|i - j| [T, T] in token positions or timesteps."""
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {UNITS}, got {unit!r}")
    if tokens_per_step < 1:
        raise ValueError(f"tokens_per_step must be >= 1, got {tokens_per_step}")
    pos = np.arange(t) if unit == "token" else np.arange(t) // tokens_per_step
    return np.abs(pos[:, None] - pos[None, :]).astype(np.float64)


def _attention(attn: Any) -> np.ndarray:
    a = as_array(attn, "attn")
    if a.ndim < 2 or a.shape[-1] != a.shape[-2] or a.shape[-1] == 0:
        raise ValueError(f"attn must be [..., T, T] (queries x keys), got shape {a.shape}")
    return a


def _query_mask(query_mask: Any, attn_shape: tuple[int, ...]) -> np.ndarray:
    """A boolean mask broadcast to attn_shape[:-1]: aligned with attn's *leading* axes.

    [B, T] for attention [B, H, T, T] masks queries per sample for every head; [T] for all.
    """
    m = as_array(query_mask, "query_mask")
    lead = attn_shape[:-2]
    if m.ndim < 1 or m.shape[-1] != attn_shape[-1] or m.ndim - 1 > len(lead) or m.shape[:-1] != lead[:m.ndim - 1]:
        raise ValueError(f"query_mask must be [T] or [{', '.join(map(str, lead))}][:k] + [T] with T = "
                         f"{attn_shape[-1]} (aligned with attn's leading axes), got shape {m.shape} "
                         f"for attn shape {attn_shape}")
    m = m.reshape(m.shape[:-1] + (1,) * (len(lead) - (m.ndim - 1)) + (m.shape[-1],))
    return np.broadcast_to(m != 0, attn_shape[:-1])


def attention_distance(attn: Any, *, query_mask: Any = None, unit: str = "token",
                       tokens_per_step: int = 3) -> np.ndarray:
    """Per-query mean attention distance [..., T] of attention probabilities [..., T, T].

    d_i = Σ_j A[i, j] |i - j| (token positions or timesteps). Queries where ``query_mask`` is 0
    (e.g. left padding; the mask is aligned with attn's leading axes, [B, T] for [B, H, T, T])
    are nan. Rows are used as given (not renormalised).
    """
    a = _attention(attn)
    d = (a * _distances(a.shape[-1], unit, tokens_per_step)).sum(-1)  # [..., T]
    if query_mask is not None:
        d = np.where(_query_mask(query_mask, a.shape), d, np.nan)
    return d


def mean_attention_distance(attn: Any, *, query_mask: Any = None, exclude_first_query: bool = False,
                            unit: str = "token", tokens_per_step: int = 3) -> float:
    """Mean attention distance: over each row's (valid) queries, then over every leading index.

    ``attn`` [..., T, T], e.g. [B, H, T, T]: first averaged over queries per (sample, head), then
    over samples and heads (Dosovitskiy's order). ``exclude_first_query`` drops each row's first
    valid query (query 0 without padding), whose distance is 0 under a causal mask. Rows without a
    valid query are left out; ``ValueError`` if none remains.
    """
    a = _attention(attn)
    valid = np.ones(a.shape[:-1], dtype=bool) if query_mask is None else _query_mask(query_mask, a.shape).copy()
    if exclude_first_query:
        first = valid & (np.cumsum(valid, axis=-1) == 1)
        valid = valid & ~first
    d = attention_distance(a, unit=unit, tokens_per_step=tokens_per_step)
    counts = valid.sum(-1)  # [...]
    per_row = np.where(valid, d, 0.0).sum(-1)
    rows = counts > 0
    if not np.any(rows):
        raise ValueError(f"no valid query left in attn of shape {a.shape} (query_mask, exclude_first_query)")
    return float(np.mean(per_row[rows] / counts[rows]))


def token_mask_from_steps(step_mask: Any, tokens_per_step: int = 3) -> np.ndarray:
    """A Decision Transformer's timestep mask [B, K] as a token mask [B, tokens_per_step * K]."""
    m = as_array(step_mask, "step_mask", ndim=2)
    return np.repeat(m, tokens_per_step, axis=-1)


def published_attention_distance(c_attn_out: Any, n_embd: int) -> np.ndarray:
    """The paper's d_att per sample [B] from ``attn.c_attn`` outputs [B, T, 3 n_embd] (docs/spec.md §6.7).

    Q = channels [0, d), K = [d, 2d) (all heads merged); W = tril(softmax(Q Kᵀ / sqrt(d)) over all
    keys); d_att = mean over all T x T entries of |i - j| W_ij. Kept only to reproduce Fig. 10.
    """
    c = as_array(c_attn_out, "c_attn_out", ndim=3)
    if n_embd < 1 or c.shape[-1] != 3 * n_embd:
        raise ValueError(f"c_attn_out must be [B, T, 3 * n_embd] with n_embd={n_embd}, got shape {shape_of(c)}")
    q, k = c[..., :n_embd], c[..., n_embd:2 * n_embd]
    logits = q @ np.swapaxes(k, -1, -2) / math.sqrt(n_embd)  # [B, T, T]
    logits = logits - logits.max(-1, keepdims=True)
    w = np.exp(logits)
    w = np.tril(w / w.sum(-1, keepdims=True))  # softmax over all keys, then the future zeroed
    t = c.shape[1]
    return (w * _distances(t, "token", 1)).mean(axis=(-2, -1))
