"""Input validation shared by every measure of :mod:`dtcore.metrics`: inputs are numpy arrays or
torch tensors (any device, any float dtype), are never modified, are converted to float64 before
any arithmetic, and bad input raises ``ValueError`` naming the argument and its shape (non-finite
values, wrong rank, mismatched sample counts, too few samples)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def shape_of(x: Any) -> tuple[int, ...]:
    """The shape of an array-like as a plain tuple, for error messages."""
    return tuple(int(s) for s in getattr(x, "shape", np.shape(x)))


def as_tensor(x: Any, name: str, *, ndim: int | tuple[int, ...] | None = None, min_samples: int = 0,
              device: str | torch.device | None = None) -> torch.Tensor:
    """``x`` (numpy array or torch tensor) as a float64 torch tensor, validated.

    ``ndim``: the allowed rank(s). ``min_samples``: the least length of axis 0. ``device``: where
    the result lives (default: ``x``'s own device for a tensor, else the CPU). Raises
    ``ValueError`` naming ``name`` and the shape for a wrong rank, too few samples or a non-finite
    entry. The result may share memory with ``x``: callers never write into it.
    """
    if isinstance(x, torch.Tensor):
        t = x.detach().to(device or x.device, torch.float64)
    else:
        try:
            t = torch.as_tensor(np.asarray(x, dtype=np.float64), device=device)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{name} must be a numeric array, got {type(x).__name__}: {err}") from err
    allowed = (ndim,) if isinstance(ndim, int) else ndim
    if allowed is not None and t.ndim not in allowed:
        want = " or ".join(str(d) for d in allowed)
        raise ValueError(f"{name} must have rank {want}, got shape {tuple(t.shape)}")
    if min_samples and (t.ndim == 0 or t.shape[0] < min_samples):
        raise ValueError(f"{name} needs at least {min_samples} samples along axis 0, got shape {tuple(t.shape)}")
    finite = torch.isfinite(t)
    if not bool(finite.all()):
        bad = int(finite.numel() - finite.sum())
        raise ValueError(f"{name} has {bad} non-finite entries (shape {tuple(t.shape)})")
    return t


def as_array(x: Any, name: str, *, ndim: int | tuple[int, ...] | None = None,
             min_samples: int = 0) -> np.ndarray:
    """A float64 numpy copy of ``x`` (numpy array or torch tensor), validated as :func:`as_tensor`.

    The copy is the caller's to modify; ``x`` itself is never touched.
    """
    return as_tensor(x, name, ndim=ndim, min_samples=min_samples, device="cpu").numpy().copy()


def same_samples(names: tuple[str, str], a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> None:
    """Raise ``ValueError`` unless ``a`` and ``b`` have the same number of rows (samples)."""
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"{names[0]} and {names[1]} must have the same number of samples (rows), "
                         f"got shapes {shape_of(a)} and {shape_of(b)}")
