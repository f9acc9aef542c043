"""Centred kernel alignment (CKA): the activation similarity of §5.1 and App. D.

Kornblith, Norouzi, Lee, Hinton, "Similarity of Neural Network Representations Revisited"
(ICML 2019); the debiased estimator of Nguyen, Raghu, Kornblith, "Do Wide and Deep Networks Learn
the Same Things?" (ICLR 2021), which the paper's code used (docs/spec.md §6.1).

For X [n, p1] and Y [n, p2] (rows are samples) with Gram matrices K = X Xᵀ and L = Y Yᵀ::

    CKA = <K̃, L̃>_F / (||K̃||_F ||L̃||_F)

- biased: K̃ = H K H, H = I - 11ᵀ/n (Kornblith's Eq. 2 is the same value in feature space);
- debiased: K̃ is Székely and Rizzo's (2014) U-centring: zero the diagonal, column means over
  n-2, subtract sum(means) / (2(n-1)), subtract from rows and columns, zero the diagonal again.
  <K̃, L̃>_F / (n(n-3)) is the unbiased HSIC; the value can be slightly negative (not clipped).

Differences from the paper's code, on purpose (docs/metrics.md, CKA): no ``1e-6`` in the
denominator (it biases small-magnitude activations), and ``nan`` (undefined) instead of 0 when a
representation is constant across samples. Features are column-centred in float64 before the
Gram matrix is formed; both centrings are invariant to that, and it keeps float32 activations with
large means accurate.

For Decision Transformer activations [B, 3K, d] (tokens R̂_1, s_1, a_1, ..., R̂_K, s_K, a_K),
:func:`select_tokens` offers the paper's slice (App. D.1: the last timestep's token, [B, d]) and
the slice the published code computed (one feature channel at all 3K positions, [B, 3K]).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from dtcore.metrics.arrays import as_tensor, same_samples, shape_of

Acts = Sequence[Any] | Mapping[str, Any]

# Position of each token type within one timestep's (R̂, s, a) triple, counted from the end.
TOKEN_OFFSET = {"return": -3, "state": -2, "action": -1}


def _samples(x: Any, name: str, debiased: bool, device: str | torch.device | None = None) -> torch.Tensor:
    """x as a float64 [n, p] tensor with enough rows for the estimator (n >= 4 when debiased)."""
    return as_tensor(x, name, ndim=2, min_samples=4 if debiased else 2, device=device)


def _is_constant(x: torch.Tensor) -> bool:
    """True when every sample (row) equals the first: CKA is undefined."""
    return bool((x == x[:1]).all())


def centre_gram(gram: torch.Tensor, debiased: bool) -> torch.Tensor:
    """H K H (biased) or the U-centred K̃ (debiased, n >= 4) of a symmetric Gram matrix [..., n, n]
    (leading dimensions are a batch of independent matrices)."""
    n = gram.shape[-1]
    if not debiased:
        means = gram.mean(-2)                                        # [..., n]
        means = means - means.mean(-1, keepdim=True) / 2
        return gram - means[..., :, None] - means[..., None, :]
    off_diagonal = 1 - torch.eye(n, dtype=gram.dtype, device=gram.device)
    off = gram * off_diagonal                                        # zero the diagonal
    means = off.sum(-2) / (n - 2)                                    # [..., n]
    means = means - means.sum(-1, keepdim=True) / (2 * (n - 1))
    centred = off - means[..., :, None] - means[..., None, :]
    return centred * off_diagonal                                    # zero it again


def linear_gram(x: torch.Tensor) -> torch.Tensor:
    """K = Xc Xcᵀ [n, n] from column-centred features (the same centred K as from X itself)."""
    xc = x - x.mean(0)
    return xc @ xc.T


def rbf_gram(x: torch.Tensor, threshold: float) -> torch.Tensor | None:
    """RBF kernel exp(-d² / (2 σ²)), σ = threshold * sqrt(median of all n² squared distances).

    Kornblith's convention: the median runs over every entry, the zero diagonal included. Returns
    None when that median is 0 (more than half the pairs coincide): the bandwidth is undefined.
    """
    gram = linear_gram(x)
    sq = torch.diagonal(gram)
    dist2 = (sq[:, None] + sq[None, :] - 2 * gram).clamp_min(0)  # [n, n]
    median = float(np.median(dist2.cpu().numpy()))  # numpy's: the mean of the two middle values
    if median == 0:
        return None
    return torch.exp(-dist2 / (2 * threshold**2 * median))


def _cka_from_grams(k: torch.Tensor | None, l: torch.Tensor | None, debiased: bool) -> float:
    if k is None or l is None:
        return math.nan
    kc, lc = centre_gram(k, debiased), centre_gram(l, debiased)
    denom = float(torch.linalg.norm(kc) * torch.linalg.norm(lc))
    if denom == 0:
        return math.nan
    return float((kc * lc).sum()) / denom


def linear_cka(x: Any, y: Any, debiased: bool = False) -> float:
    """Linear CKA of x [n, p1] and y [n, p2] in Gram form; nan when either is constant.

    ``debiased=True`` uses U-centring (needs n >= 4), the estimator of the paper's code.
    """
    xt, yt = _samples(x, "x", debiased), _samples(y, "y", debiased)
    same_samples(("x", "y"), xt, yt)
    if _is_constant(xt) or _is_constant(yt):
        return math.nan
    return _cka_from_grams(linear_gram(xt), linear_gram(yt), debiased)


def rbf_cka(x: Any, y: Any, threshold: float = 0.8, debiased: bool = False) -> float:
    """CKA with RBF kernels, bandwidth ``threshold * sqrt(median squared distance)`` (Kornblith).

    nan when either input is constant or its median squared distance is 0.
    """
    if not threshold > 0:
        raise ValueError(f"threshold must be positive, got {threshold}")
    xt, yt = _samples(x, "x", debiased), _samples(y, "y", debiased)
    same_samples(("x", "y"), xt, yt)
    if _is_constant(xt) or _is_constant(yt):
        return math.nan
    return _cka_from_grams(rbf_gram(xt, threshold), rbf_gram(yt, threshold), debiased)


def _feature_hsic(xc: torch.Tensor, yc: torch.Tensor, debiased: bool) -> torch.Tensor:
    """<K̃, L̃>_F from column-centred features without forming n x n matrices.

    Biased: ||Xcᵀ Yc||²_F. Debiased (Song et al. 2012 on centred data, d_i = ||x_i||²):
    ||Xcᵀ Yc||²_F - n/(n-2) dₓ·d_y + (Σ dₓ)(Σ d_y) / ((n-1)(n-2)).
    """
    cross = (xc.T @ yc).square().sum()
    if not debiased:
        return cross
    n = xc.shape[0]
    dx, dy = xc.square().sum(1), yc.square().sum(1)
    return cross - n / (n - 2) * (dx @ dy) + dx.sum() * dy.sum() / ((n - 1) * (n - 2))


def feature_space_linear_cka(x: Any, y: Any, debiased: bool = False) -> float:
    """Linear CKA from feature covariances: the value of :func:`linear_cka`, cheaper when n > p."""
    xt, yt = _samples(x, "x", debiased), _samples(y, "y", debiased)
    same_samples(("x", "y"), xt, yt)
    if _is_constant(xt) or _is_constant(yt):
        return math.nan
    xc, yc = xt - xt.mean(0), yt - yt.mean(0)
    xx, yy = _feature_hsic(xc, xc, debiased), _feature_hsic(yc, yc, debiased)
    if not (xx > 0 and yy > 0):
        return math.nan
    return float(_feature_hsic(xc, yc, debiased) / torch.sqrt(xx * yy))


def _layers(acts: Acts, name: str) -> list[tuple[str, Any]]:
    """(label for error messages, matrix) per layer, in order."""
    if isinstance(acts, Mapping):
        items = [(f"{name}[{key!r}]", a) for key, a in acts.items()]
    else:
        items = [(f"{name}[{i}]", a) for i, a in enumerate(acts)]
    if not items:
        raise ValueError(f"{name} must hold at least one activation matrix, got none")
    return items


def _same_samples(acts: Acts, name: str, debiased: bool, device: str | torch.device | None,
                  n: int | None) -> tuple[list[torch.Tensor], int]:
    """Every layer's [n, p_l] samples, checked to share n (the first layer's, unless given)."""
    out = []
    for label, act in _layers(acts, name):
        x = _samples(act, label, debiased, device)
        n = x.shape[0] if n is None else n
        if x.shape[0] != n:
            raise ValueError(f"{label} must have {n} samples (rows) like the other layers, got shape {shape_of(act)}")
        out.append(x)
    return out, n


def _centred_grams(acts: Acts, name: str, debiased: bool, device: str | torch.device | None,
                   n: int | None = None) -> tuple[torch.Tensor, int]:
    """Every layer's centred Gram matrix, flattened: [L, n*n] (a nan row for a constant layer)."""
    rows = []
    samples, n = _same_samples(acts, name, debiased, device, n)
    for x in samples:
        gram = centre_gram(linear_gram(x), debiased).flatten()
        rows.append(torch.full_like(gram, math.nan) if _is_constant(x) else gram)
    return torch.stack(rows), n


def cka_matrix(acts_a: Acts, acts_b: Acts | None = None, debiased: bool = True, *,
               device: str | torch.device | None = None) -> np.ndarray:
    """Linear CKA between every layer of ``acts_a`` and every layer of ``acts_b``: [La, Lb].

    ``acts_a`` / ``acts_b``: sequences (or name -> array mappings, in order) of [n, p_l] matrices
    over the same n samples; ``acts_b=None`` compares ``acts_a`` with itself. Each centred Gram
    matrix is computed once; the matrix is one product of the normalised [L, n²] stacks, on
    ``device`` (default: the inputs' device). Equals the double loop of :func:`linear_cka`.
    """
    grams_a, n = _centred_grams(acts_a, "acts_a", debiased, device)
    grams_b = grams_a if acts_b is None else _centred_grams(acts_b, "acts_b", debiased, grams_a.device, n)[0]
    unit_a = grams_a / torch.linalg.norm(grams_a, dim=1, keepdim=True)  # 0/0 -> nan, as it should
    unit_b = unit_a if acts_b is None else grams_b / torch.linalg.norm(grams_b, dim=1, keepdim=True)
    return (unit_a @ unit_b.T).cpu().numpy()  # [La, Lb]


def _subset_indices(indices: Any, n: int, debiased: bool) -> torch.Tensor:
    """indices as an int64 [R, m] tensor of distinct sample indices in [0, n) per row, validated."""
    arr = np.asarray(indices)
    if arr.ndim != 2 or arr.shape[0] == 0 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"indices must be a non-empty integer [R, m] array, got shape {shape_of(indices)} "
                         f"of dtype {arr.dtype}")
    least = 4 if debiased else 2
    if arr.shape[1] < least:
        raise ValueError(f"indices needs at least {least} samples per subset, got shape {arr.shape}")
    if arr.min() < 0 or arr.max() >= n:
        raise ValueError(f"indices must lie in [0, {n}), got values {arr.min()}..{arr.max()} (shape {arr.shape})")
    if (np.diff(np.sort(arr, axis=1), axis=1) == 0).any():
        raise ValueError(f"indices must not repeat a sample within a subset (shape {arr.shape}): a repeated "
                         "row is a duplicated sample, which the debiased estimator cannot take")
    return torch.from_numpy(arr.astype(np.int64))


def _grams_and_labels(acts: Acts, name: str, debiased: bool, device: str | torch.device | None,
                      n: int | None) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Every layer's linear Gram matrix [L, n, n] over all n samples, and [L, n] labels that are
    equal exactly where two samples of a layer are equal (to tell constant subsets). Layers of
    one width share one batched product."""
    xs, labels = [], []
    samples, n = _same_samples(acts, name, debiased, device, n)
    for x in samples:
        xs.append(x - x.mean(0))                                              # [n, p_l] centred
        labels.append(torch.unique(x, dim=0, return_inverse=True)[1])
    grams = torch.empty(len(xs), n, n, dtype=torch.float64, device=xs[0].device)  # [L, n, n]
    for width in {x.shape[1] for x in xs}:
        same = [i for i, x in enumerate(xs) if x.shape[1] == width]
        group = torch.stack([xs[i] for i in same])                            # [G, n, p]
        grams[same] = group @ group.transpose(1, 2)
    return grams, torch.stack(labels), n


def _subset_hsic(k: torch.Tensor, l: torch.Tensor, w: torch.Tensor, debiased: bool) -> torch.Tensor:
    """<K̃_S, L̃_S>_F up to a factor common to every pair, for each layer and subset: [L, R].

    k, l [L, n, n] Gram matrices (diagonal zeroed when debiased); w [R, n] the 0/1 indicator of
    each subset S of m samples. With t = wᵀ(K∘L)w = tr(K_S L_S), s = wᵀKw = 1ᵀK_S1 and
    u = Σ_j w_j (Kw)_j (Lw)_j = 1ᵀK_S L_S 1 (Song et al. 2012)::

        debiased (m(m-3) HSIC_1):  t + s_K s_L / ((m-1)(m-2)) - 2 u / (m-2)
        biased   (tr(K_S H L_S H)): t + s_K s_L / m² - 2 u / m
    """
    m = float(w[0].sum())
    kw, lw = k @ w.T, l @ w.T                                     # [L, n, R]
    t = ((k * l) @ w.T * w.T).sum(1)                              # [L, R]
    s_k, s_l = (kw * w.T).sum(1), (lw * w.T).sum(1)               # [L, R]
    u = (kw * lw * w.T).sum(1)                                    # [L, R]
    if debiased:
        return t + s_k * s_l / ((m - 1) * (m - 2)) - 2 * u / (m - 2)
    return t + s_k * s_l / m**2 - 2 * u / m


def cka_replicates(acts_a: Acts, acts_b: Acts, indices: Any, debiased: bool = True, *,
                   device: str | torch.device | None = None) -> np.ndarray:
    """Linear CKA of layer l of ``acts_a`` with layer l of ``acts_b`` on subsets of the samples: [R, L].

    ``acts_a`` / ``acts_b``: the same number L of [n, p_l] matrices (sequences or name -> array
    mappings, in order) over the same n samples; ``indices`` [R, m]: R subsets of m distinct
    sample indices, e.g. the half-samples of :func:`dtcore.statistics.half_sample_indices`.
    Entry [r, l] equals ``linear_cka(a_l[indices[r]], b_l[indices[r]], debiased)`` (the U-centred
    estimator when debiased): nan where a layer is constant on the subset.

    Each layer's Gram matrix K = Xc Xcᵀ is formed once over all n samples; a subset's Gram matrix
    is its [m, m] sub-block. Features centred over all n instead of over the subset shift every
    subset row by one vector, which adds terms u_i + u_j + c to K; both centrings remove them, so
    the value is the subset's own. The three HSIC terms of every subset are quadratic forms in the
    subset's indicator vector (:func:`_subset_hsic`), so all R subsets of all L layers take a few
    [L, n, n] @ [n, R] products, on ``device`` (default: the inputs').
    """
    grams_a, labels_a, n = _grams_and_labels(acts_a, "acts_a", debiased, device, None)
    grams_b, labels_b, _ = _grams_and_labels(acts_b, "acts_b", debiased, grams_a.device, n)
    if grams_a.shape[0] != grams_b.shape[0]:
        raise ValueError(f"acts_a and acts_b must hold the same number of layers, got {grams_a.shape[0]} "
                         f"and {grams_b.shape[0]}")
    idx = _subset_indices(indices, n, debiased).to(grams_a.device)             # [R, m]
    w = torch.zeros(idx.shape[0], n, dtype=torch.float64, device=grams_a.device)
    w.scatter_(1, idx, 1.0)                                                    # [R, n] indicators
    if debiased:
        off_diagonal = 1 - torch.eye(n, dtype=torch.float64, device=grams_a.device)
        grams_a, grams_b = grams_a * off_diagonal, grams_b * off_diagonal
    cross = _subset_hsic(grams_a, grams_b, w, debiased)                        # [L, R]
    self_a = _subset_hsic(grams_a, grams_a, w, debiased)
    self_b = _subset_hsic(grams_b, grams_b, w, debiased)
    out = (cross / torch.sqrt(self_a * self_b)).T                              # [R, L]
    for labels in (labels_a, labels_b):
        sub = labels[:, idx]                                                   # [L, R, m]
        out[(sub == sub[..., :1]).all(-1).T] = math.nan                        # constant on the subset
    return out.cpu().numpy()


class MinibatchCKA:
    """Linear CKA accumulated over minibatches (Nguyen, Raghu, Kornblith 2021, §3.1).

    ``update(acts_a, acts_b)`` adds each batch's HSIC estimates (unbiased HSIC_1 when debiased,
    else HSIC_0 = tr(K̃ L̃)/(n-1)²); ``compute()`` returns [La, Lb] = Σ HSIC(K, L) /
    sqrt(Σ HSIC(K, K) Σ HSIC(L, L)). The self terms are squared Frobenius norms, never negative,
    so no square root of a negative sum. With one batch, or equal batches, it equals
    :func:`cka_matrix` on that batch.
    """

    def __init__(self, debiased: bool = True, *, device: str | torch.device | None = None) -> None:
        self.debiased = debiased
        self.device = device
        self.batches = 0
        self._cross: torch.Tensor | None = None   # [La, Lb]
        self._self_a: torch.Tensor | None = None  # [La]
        self._self_b: torch.Tensor | None = None  # [Lb]

    def update(self, acts_a: Acts, acts_b: Acts | None = None) -> None:
        """Add one minibatch: the same n samples through both models (``acts_b=None``: a vs a)."""
        grams_a, n = _centred_grams(acts_a, "acts_a", self.debiased, self.device)
        grams_b = grams_a if acts_b is None else _centred_grams(acts_b, "acts_b", self.debiased, grams_a.device, n)[0]
        scale = n * (n - 3) if self.debiased else (n - 1) ** 2
        cross = grams_a @ grams_b.T / scale
        self_a, self_b = grams_a.square().sum(1) / scale, grams_b.square().sum(1) / scale
        if self._cross is None:
            self._cross, self._self_a, self._self_b = cross, self_a, self_b
        elif cross.shape != self._cross.shape:
            raise ValueError(f"minibatch layer counts changed: got a [{cross.shape[0]} x {cross.shape[1]}] "
                             f"batch after [{self._cross.shape[0]} x {self._cross.shape[1]}] ones")
        else:
            self._cross, self._self_a, self._self_b = self._cross + cross, self._self_a + self_a, self._self_b + self_b
        self.batches += 1

    def compute(self) -> np.ndarray:
        """The accumulated CKA matrix [La, Lb]; nan where a layer was constant in some batch."""
        if self._cross is None:
            raise ValueError("MinibatchCKA.compute() needs at least one update() first")
        return (self._cross / torch.sqrt(self._self_a[:, None] * self._self_b[None, :])).cpu().numpy()


def select_tokens(act: Any, token: str, mode: str = "token") -> Any:
    """The slice of a Decision Transformer activation [B, 3K, d] that goes into CKA.

    ``token`` in {"return", "state", "action"}. ``mode="token"``: the last timestep's token
    vector, ``act[:, -3 / -2 / -1, :]`` -> [B, d] (the paper, App. D.1). ``mode="channel"``: what
    the published code computed (docs/spec.md §6.1), ``act[:, :, -3 / -2 / -1]`` -> [B, 3K], feature channel
    d-3 / d-2 / d-1 at every position. Returns a copy of the same type (numpy or torch) as ``act``.
    """
    if token not in TOKEN_OFFSET:
        raise ValueError(f"token must be one of {sorted(TOKEN_OFFSET)}, got {token!r}")
    if mode not in ("token", "channel"):
        raise ValueError(f"mode must be 'token' (paper) or 'channel' (as run), got {mode!r}")
    shape = shape_of(act)
    if len(shape) != 3 or shape[1] % 3 != 0 or shape[1] == 0:
        raise ValueError(f"act must be [B, 3K, d] with 3K a positive multiple of 3, got shape {shape}")
    if mode == "channel" and shape[2] < 3:
        raise ValueError(f"act needs at least 3 feature channels for mode='channel', got shape {shape}")
    idx = TOKEN_OFFSET[token]
    out = act[:, idx, :] if mode == "token" else act[:, :, idx]
    return out.clone() if isinstance(out, torch.Tensor) else np.array(out, copy=True)
