"""Per-sample gradients, gradient confusion and gradient norms: §5.4, Figs. 5-7 and 18.

Gradient confusion (Sankararaman et al., "The Impact of Neural Network Overparameterization on
Gradient Confusion and Stochastic Gradient Descent", ICML 2020) is defined through the inner
products of per-sample gradients; the paper reports the minimum pairwise cosine over 50 samples.

The published per-sample gradient (docs/spec.md §6.4): the epoch-1 model left in train mode
(dropout on), the loss of one sample, ``clip_grad_norm_`` to 0.25 over **all** model parameters,
then the gradients of the ``transformer.h`` parameters only, flattened in ``named_parameters``
order and concatenated (so every norm is <= 0.25). :func:`per_sample_gradients` computes the same
with ``torch.func`` (``functional_call`` + ``vmap(grad)``) in one batched pass;
:func:`per_sample_gradients_loop` is the published loop of batch-1 backward passes, kept as the
reference and the benchmark's naive form. With dropout on the two draw different dropout masks
(vmap uses ``randomness="different"``), so they are equal only with ``train_mode=False``; that is
how their equality is tested. Use the body's eager attention here: under ``vmap`` torch has no
batching rule for the CPU SDPA kernel and falls back to a slow per-sample loop (with a warning).

The clipping factor is torch's: ``min(1, clip_norm / (total_norm + 1e-6))``, the total norm taken
in float64. Gradients keep the model's dtype; cosines and norms accumulate in float64. Unlike the
published cosine (``+1e-6`` in the denominator) a zero gradient gives ``nan``, not 0.

``loss_fn(model_like, sample_batch) -> scalar`` is called with a callable that has the model's own
call signature and a batch of the caller's type (a dataclass such as ``dtcore.samplers.Batch``, a dict,
or a tuple of tensors) whose tensors have leading dimension 1 (per sample) or N (full batch).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.func import functional_call, grad, vmap

from dtcore.metrics.arrays import shape_of

CLIP_OVER = ("all", "selected")
LossFn = Callable[[Callable[..., Any], Any], torch.Tensor]


def _split_batch(batch: Any) -> tuple[dict[str, torch.Tensor], Callable[[dict[str, torch.Tensor]], Any], int]:
    """(per-sample tensors by field, rebuild(fields) -> a batch of the caller's type, N).

    Tensors with leading dimension N are split per sample; other fields are carried unchanged.
    """
    if dataclasses.is_dataclass(batch) and not isinstance(batch, type):
        fields = {f.name: getattr(batch, f.name) for f in dataclasses.fields(batch)}
        rebuild_all = lambda d: dataclasses.replace(batch, **d)  # noqa: E731
    elif isinstance(batch, Mapping):
        fields = dict(batch)
        rebuild_all = lambda d: type(batch)(d) if type(batch) is not dict else d  # noqa: E731
    elif isinstance(batch, (tuple, list)):
        fields = {str(i): v for i, v in enumerate(batch)}
        ctor = (lambda vals: type(batch)(*vals)) if hasattr(batch, "_fields") else type(batch)
        rebuild_all = lambda d: ctor([d[str(i)] for i in range(len(batch))])  # noqa: E731
    else:
        raise ValueError(f"batch must be a dataclass, a mapping or a tuple of tensors, got {type(batch).__name__}")
    tensors = {k: v for k, v in fields.items() if isinstance(v, torch.Tensor) and v.ndim > 0}
    if not tensors:
        raise ValueError(f"batch holds no tensor with a leading sample dimension: fields {list(fields)}")
    n = next(iter(tensors.values())).shape[0]
    for k, v in tensors.items():
        if v.shape[0] != n:
            raise ValueError(f"batch.{k} has shape {tuple(v.shape)}: every tensor needs the same leading "
                             f"dimension N = {n}")
    static = {k: v for k, v in fields.items() if k not in tensors}
    return tensors, (lambda d: rebuild_all({**static, **d})), n


def _trainable(model: torch.nn.Module, prefix: str) -> tuple[list[str], list[torch.nn.Parameter], list[bool]]:
    """Names and parameters that require grad, and which of them are read out (name starts with prefix)."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    keep = [n.startswith(prefix) for n, _ in named]
    if not any(keep):
        raise ValueError(f"no trainable parameter name starts with params_prefix={prefix!r}; "
                         f"the first are {[n for n, _ in named][:5]}")
    return [n for n, _ in named], [p for _, p in named], keep


def _check_clip(clip_norm: float | None, clip_over: str) -> None:
    if clip_over not in CLIP_OVER:
        raise ValueError(f"clip_over must be one of {CLIP_OVER}, got {clip_over!r}")
    if clip_norm is not None and not clip_norm > 0:
        raise ValueError(f"clip_norm must be positive or None, got {clip_norm}")


def _clip_factor(grads: Sequence[torch.Tensor], keep: list[bool], clip_norm: float | None, clip_over: str,
                 batched: bool) -> torch.Tensor:
    """torch's clip_grad_norm_ factor min(1, c / (||g|| + 1e-6)): [N] (batched) or a scalar.

    Per-tensor norms in the gradients' dtype (as ``clip_grad_norm_``), combined in float64.
    """
    used = [g for g, k in zip(grads, keep) if k or clip_over == "all"]
    dims = 1 if batched else 0
    sq = sum(torch.linalg.vector_norm(g.flatten(dims), dim=-1).to(torch.float64).square() for g in used)
    if clip_norm is None:
        return torch.ones_like(sq)
    return (clip_norm / (sq.sqrt() + 1e-6)).clamp(max=1.0)


def _read_out(grads: Sequence[torch.Tensor], keep: list[bool], factor: torch.Tensor) -> torch.Tensor:
    """The kept gradients [c, *shape] flattened, concatenated and scaled by factor [c]: [c, P]."""
    out = torch.cat([g.flatten(1) for g, k in zip(grads, keep) if k], dim=1)  # [c, P], contiguous
    return out.mul_(factor.to(out.dtype)[:, None])


class _Modes:
    """Sets train/eval mode for the duration of a ``with`` block and restores every module's own."""

    def __init__(self, model: torch.nn.Module, train_mode: bool) -> None:
        self.model, self.train_mode = model, train_mode

    def __enter__(self) -> None:
        self.saved = [(m, m.training) for m in self.model.modules()]
        self.model.train(self.train_mode)

    def __exit__(self, *exc: Any) -> None:
        for m, mode in self.saved:
            m.training = mode


def per_sample_gradients(model: torch.nn.Module, batch: Any, loss_fn: LossFn, *,
                         params_prefix: str = "transformer.h.", clip_norm: float | None = 0.25,
                         clip_over: str = "all", train_mode: bool = True,
                         chunk_size: int | None = None) -> torch.Tensor:
    """Clipped per-sample gradients [N, P] of the ``params_prefix`` parameters, by torch.func.

    For each sample: grad of ``loss_fn`` on that sample alone; multiplied by torch's clipping
    factor for ``clip_norm`` over all trainable parameters (``clip_over="all"``, published) or the
    selected ones (``"selected"``); ``clip_norm=None`` leaves it unclipped; then the selected
    gradients flattened in ``named_parameters`` order. ``train_mode`` sets dropout on (published)
    or off for the call; the model's modes are restored after. ``chunk_size`` samples at a time
    bounds memory. The model and its ``.grad`` fields are not modified.
    """
    _check_clip(clip_norm, clip_over)
    tensors, rebuild, n = _split_batch(batch)
    names, params, keep = _trainable(model, params_prefix)
    trainable = {k: p.detach() for k, p in zip(names, params)}
    others = {k: p.detach() for k, p in model.named_parameters() if k not in trainable}
    others.update(dict(model.named_buffers()))

    def sample_loss(weights: dict[str, torch.Tensor], sample: dict[str, torch.Tensor]) -> torch.Tensor:
        def model_like(*args: Any, **kwargs: Any) -> Any:
            return functional_call(model, (weights, others), args, kwargs)
        return loss_fn(model_like, rebuild({k: v.unsqueeze(0) for k, v in sample.items()}))

    per_sample = vmap(grad(sample_loss), in_dims=(None, 0), randomness="different")
    step = n if chunk_size is None else max(1, int(chunk_size))
    out = []
    with _Modes(model, train_mode):
        for start in range(0, n, step):
            g = per_sample(trainable, {k: v[start:start + step] for k, v in tensors.items()})
            grads = [g[k] for k in names]  # each [c, *shape]
            factor = _clip_factor(grads, keep, clip_norm, clip_over, batched=True)  # [c]
            out.append(_read_out(grads, keep, factor))  # [c, P]
    return out[0] if len(out) == 1 else torch.cat(out)  # [N, P]


def _full_gradients(model: torch.nn.Module, batch: Any, loss_fn: LossFn, params: list[torch.nn.Parameter]
                    ) -> list[torch.Tensor]:
    """Gradients of loss_fn(model, batch) by torch.autograd.grad (``.grad`` fields untouched)."""
    grads = torch.autograd.grad(loss_fn(model, batch), params, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for g, p in zip(grads, params)]


def per_sample_gradients_loop(model: torch.nn.Module, batch: Any, loss_fn: LossFn, *,
                              params_prefix: str = "transformer.h.", clip_norm: float | None = 0.25,
                              clip_over: str = "all", train_mode: bool = True) -> torch.Tensor:
    """The published procedure [N, P]: one batch-1 backward pass per sample, clip, read out.

    Same options and output as :func:`per_sample_gradients`; the reference for its equality test
    and the naive form of the benchmark.
    """
    _check_clip(clip_norm, clip_over)
    tensors, rebuild, n = _split_batch(batch)
    _, params, keep = _trainable(model, params_prefix)
    rows = []
    with _Modes(model, train_mode):
        for i in range(n):
            grads = _full_gradients(model, rebuild({k: v[i:i + 1] for k, v in tensors.items()}), loss_fn, params)
            factor = _clip_factor(grads, keep, clip_norm, clip_over, batched=False)
            rows.append(_read_out([g[None] for g in grads], keep, factor[None])[0])
    return torch.stack(rows)  # [N, P]


def per_parameter_grad_norms(model: torch.nn.Module, batch: Any, loss_fn: LossFn, *,
                             params_prefix: str = "transformer.h.", clip_norm: float | None = 0.25,
                             clip_over: str = "all", train_mode: bool = True) -> list[tuple[str, float]]:
    """(name, ||∇θ_p||) per ``params_prefix`` parameter of one full-batch, globally clipped gradient.

    As published for Figs. 7 and 18 (docs/spec.md §6.4): the loss of the whole batch, dropout on, clipped to
    ``clip_norm`` over all parameters, norms in ``named_parameters`` order.
    """
    _check_clip(clip_norm, clip_over)
    _split_batch(batch)  # validates the batch
    names, params, keep = _trainable(model, params_prefix)
    with _Modes(model, train_mode):
        grads = _full_gradients(model, batch, loss_fn, params)
    factor = float(_clip_factor(grads, keep, clip_norm, clip_over, batched=False))
    return [(name, float(torch.linalg.vector_norm(g.to(torch.float64))) * factor)
            for name, g, k in zip(names, grads, keep) if k]


def parameter_columns(model: torch.nn.Module, params_prefix: str = "transformer.h.") -> list[tuple[str, slice]]:
    """(name, columns) of each read-out parameter in the rows [N, P] of :func:`per_sample_gradients`.

    The trainable parameters whose name starts with ``params_prefix``, in ``named_parameters``
    order (the names of :func:`per_parameter_grad_norms`), each flattened to ``numel`` columns.
    """
    names, params, keep = _trainable(model, params_prefix)
    out, start = [], 0
    for name, p, k in zip(names, params, keep):
        if k:
            out.append((name, slice(start, start + p.numel())))
            start += p.numel()
    return out


def _subset_weights(subsets: Any, n: int, device: torch.device) -> torch.Tensor:
    """[R, N] weights 1/m_r on the rows of each subset r (a row listed twice counts twice)."""
    rows = [np.asarray(s) for s in subsets]
    if not rows or any(r.ndim != 1 or r.size == 0 or not np.issubdtype(r.dtype, np.integer) for r in rows):
        raise ValueError(f"subsets must be a non-empty sequence of non-empty 1-D integer index arrays, got "
                         f"shapes {[shape_of(r) for r in rows[:3]]}")
    if any(r.min() < 0 or r.max() >= n for r in rows):
        raise ValueError(f"subsets must index rows in [0, {n}) of grads")
    weights = np.zeros((len(rows), n))
    for w, r in zip(weights, rows):
        np.add.at(w, r, 1.0 / r.size)
    return torch.from_numpy(weights).to(device)


def mean_gradient_norms(grads: Any, columns: Sequence[slice], subsets: Any, *,
                        columns_per_chunk: int = 1 << 20) -> np.ndarray:
    """[R, Q]: the L2 norm of parameter q's part of the mean gradient of each subset r of samples.

    ``grads`` [N, P]: per-sample gradients (rows); ``columns``: Q column ranges (one per
    parameter, e.g. from :func:`parameter_columns`); ``subsets``: R index arrays into the rows,
    of any lengths m_r (an [R, m] array of half-samples, ``[range(N)]`` for the whole batch; a row
    listed twice counts twice). With G_q = g[:, q] g[:, q]ᵀ [N, N], the per-parameter Gram matrix,
    and w_r the subset's weights 1/m_r::

        || (1/m_r) Σ_{i ∈ S_r} g_i[q] || = sqrt(w_rᵀ G_q w_r)

    so each G_q is formed once (float64, by column chunks) and any number of subsets costs [N, N]
    products. The price of the Gram form: where a mean nearly cancels, its norm carries an absolute
    error of about sqrt(float64 eps) * max_i ||g_i[q]|| (1e-8 of the largest row).
    """
    g = _grad_matrix(grads)
    n, p = g.shape
    cols = list(columns)
    if not cols or any(not isinstance(c, slice) or c.step not in (None, 1) or c.start is None
                       or c.stop is None or not 0 <= c.start <= c.stop <= p for c in cols):
        raise ValueError(f"columns must be a non-empty list of step-1 slices within the {p} columns of grads, "
                         f"got {cols[:3]}{'...' if len(cols) > 3 else ''}")
    weights = _subset_weights(subsets, n, g.device)                               # [R, N]
    grams = torch.zeros(len(cols), n, n, dtype=torch.float64, device=g.device)   # [Q, N, N]
    for q, c in enumerate(cols):
        for start in range(c.start, c.stop, columns_per_chunk):
            block = g[:, start:min(start + columns_per_chunk, c.stop)].to(torch.float64)
            grams[q] += block @ block.T
    sq = torch.einsum("rn,qnk,rk->rq", weights, grams, weights)                    # [R, Q]
    return sq.clamp_min(0).sqrt().cpu().numpy()


def norm_ratio(norms: Sequence[tuple[str, float]] | Mapping[str, float], *,
               keep: Sequence[str] | None = None) -> list[tuple[str, float]]:
    """Each norm over the sum of all norms (Fig. 7, as published: not of squared norms).

    ``keep``: names reported on their own, in that order, followed by ``("others", sum of the rest)``;
    without it every name is reported.
    """
    items = list(norms.items()) if isinstance(norms, Mapping) else [(str(k), v) for k, v in norms]
    values = np.array([float(v) for _, v in items], dtype=np.float64)
    if values.size == 0 or not np.all(np.isfinite(values)) or np.any(values < 0):
        raise ValueError(f"norms must be a non-empty list of finite, non-negative values, got shape {values.shape}")
    total = values.sum()
    if total == 0:
        raise ValueError(f"norms sum to 0 over {values.size} parameters: the ratio is undefined")
    ratios = {name: v / total for (name, _), v in zip(items, values)}
    if keep is None:
        return list(ratios.items())
    missing = [k for k in keep if k not in ratios]
    if missing:
        raise ValueError(f"keep names {missing} are not among the norms' {len(ratios)} names")
    rest = float(sum(v for k, v in ratios.items() if k not in keep))
    return [(k, float(ratios[k])) for k in keep] + [("others", rest)]


def _grad_matrix(grads: Any) -> torch.Tensor:
    """grads [N, P] as a tensor (no copy for a tensor, shared memory for numpy), validated."""
    g = grads.detach() if isinstance(grads, torch.Tensor) else torch.from_numpy(np.asarray(grads))
    if g.ndim != 2 or not g.is_floating_point():
        raise ValueError(f"grads must be a float [N, P] matrix, got shape {shape_of(grads)} of dtype {g.dtype}")
    if not bool(torch.isfinite(g).all()):
        raise ValueError(f"grads has non-finite entries (shape {tuple(g.shape)})")
    return g


def cosine_matrix(grads: Any, *, columns_per_chunk: int = 1 << 20) -> np.ndarray:
    """Pairwise cosines [N, N] of the rows of grads [N, P], accumulated in float64 by column chunks.

    A zero row gives nan in its row and column. Values are clipped to [-1, 1] (rounding only).
    """
    g = _grad_matrix(grads)
    gram = torch.zeros(g.shape[0], g.shape[0], dtype=torch.float64, device=g.device)
    for start in range(0, g.shape[1], columns_per_chunk):
        block = g[:, start:start + columns_per_chunk].to(torch.float64)
        gram += block @ block.T
    norms = torch.sqrt(torch.diagonal(gram))
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = (gram / (norms[:, None] * norms[None, :])).cpu().numpy()
    return np.where(np.isnan(cos), np.nan, np.clip(cos, -1.0, 1.0))


def gradient_confusion(grads: Any, include_self_pairs: bool = False) -> float:
    """Minimum pairwise cosine of per-sample gradients [N, P]: the paper's gradient confusion.

    ``include_self_pairs=True`` is the published variant (all N² ordered pairs; the self pairs
    are 1, so it differs only when N = 1). nan when a gradient is zero (its cosines are undefined).
    """
    g = _grad_matrix(grads)
    if g.shape[0] < (1 if include_self_pairs else 2):
        raise ValueError(f"grads needs at least 2 samples (rows) for a pairwise cosine, got shape {tuple(g.shape)}")
    cos = cosine_matrix(g)
    if not include_self_pairs:
        cos = cos[~np.eye(cos.shape[0], dtype=bool)]
    return float(np.min(cos))
