"""Hypothesis strategies for the metric property tests, as named values.

Random matrices are drawn from a seeded numpy Generator inside ``map`` (never ``filter``), so
Hypothesis searches over sizes, seeds and scales while every example stays well conditioned.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

seeds = st.integers(min_value=0, max_value=2**32 - 1)


def _gaussian(n: int, p: int, seed: int, offset: float = 0.0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, p)) + offset


def sample_matrix(n: tuple[int, int] = (6, 40), p: tuple[int, int] = (1, 12)) -> st.SearchStrategy[np.ndarray]:
    """A Gaussian [n, p] matrix (rows are samples) with n and p in the given ranges."""
    return st.tuples(st.integers(*n), st.integers(*p), seeds).map(lambda t: _gaussian(*t))


def paired_matrices(n: tuple[int, int] = (6, 40), p: tuple[int, int] = (1, 12)
                    ) -> st.SearchStrategy[tuple[np.ndarray, np.ndarray]]:
    """Two Gaussian matrices [n, p1], [n, p2] over the same n samples, y partly dependent on x."""
    def build(t: tuple[int, int, int, int, float]) -> tuple[np.ndarray, np.ndarray]:
        n_, p1, p2, seed, mix = t
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((n_, p1))
        y = mix * x @ rng.standard_normal((p1, p2)) + rng.standard_normal((n_, p2))
        return x, y
    return st.tuples(st.integers(*n), st.integers(*p), st.integers(*p), seeds,
                     st.floats(0.0, 3.0)).map(build)


def orthogonal(p: int, seed: int) -> np.ndarray:
    """A random p x p orthogonal matrix (QR of a Gaussian, signs fixed)."""
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((p, p)))
    return q * np.sign(np.diag(r))


positive_scales = st.floats(min_value=1e-3, max_value=1e3)
offsets = st.floats(min_value=-100.0, max_value=100.0)


def gradient_rows(n: tuple[int, int] = (2, 12), p: tuple[int, int] = (1, 30)) -> st.SearchStrategy[np.ndarray]:
    """Per-sample gradients [N, P]: Gaussian rows with random positive norms (never zero)."""
    def build(t: tuple[int, int, int]) -> np.ndarray:
        n_, p_, seed = t
        rng = np.random.default_rng(seed)
        g = rng.standard_normal((n_, p_))
        g[np.linalg.norm(g, axis=1) == 0, 0] = 1.0
        return g * rng.uniform(0.01, 10.0, size=(n_, 1))
    return st.tuples(st.integers(*n), st.integers(*p), seeds).map(build)


def causal_attention(t: tuple[int, int] = (1, 24), lead: tuple[int, int] = (1, 3)
                     ) -> st.SearchStrategy[np.ndarray]:
    """Row-stochastic causal attention [B, T, T] (zero above the diagonal, rows sum to 1)."""
    def build(args: tuple[int, int, int]) -> np.ndarray:
        b, t_, seed = args
        logits = np.random.default_rng(seed).standard_normal((b, t_, t_)) * 2
        logits = np.where(np.tril(np.ones((t_, t_), dtype=bool)), logits, -np.inf)
        w = np.exp(logits - logits.max(-1, keepdims=True))
        return w / w.sum(-1, keepdims=True)
    return st.tuples(st.integers(*lead), st.integers(*t), seeds).map(build)


def parameter_dicts(sets: tuple[int, int] = (1, 5)) -> st.SearchStrategy[tuple[dict, dict, dict]]:
    """Three name -> array mappings with the same names and shapes (three 'checkpoints')."""
    def build(args: tuple[int, int]) -> tuple[dict, dict, dict]:
        k, seed = args
        rng = np.random.default_rng(seed)
        shapes = [tuple(int(s) for s in rng.integers(1, 5, size=rng.integers(1, 3))) for _ in range(k)]
        return tuple({f"transformer.h.{i}.w": rng.standard_normal(s) for i, s in enumerate(shapes)}
                     for _ in range(3))
    return st.tuples(st.integers(*sets), seeds).map(build)


def series(length: tuple[int, int] = (1, 40)) -> st.SearchStrategy[np.ndarray]:
    """A 1-D series of learning-curve-like values."""
    return st.tuples(st.integers(*length), seeds).map(
        lambda t: np.random.default_rng(t[1]).standard_normal(t[0]).cumsum())
