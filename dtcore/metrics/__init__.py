"""The measures behind each finding of Takagi (NeurIPS 2022), as pure functions.

One module per measure, each naming the paper section it serves:

- :mod:`~dtcore.metrics.cka`: linear / RBF CKA, biased and debiased, layer x layer matrices, a
  minibatch accumulator and per-layer values on subsets of the samples (§5.1, App. D;
  ``paper-spec.md`` §6.1).
- :mod:`~dtcore.metrics.mine`: MINE (Donsker-Varadhan, EMA-corrected gradient), in-sample as
  published and held-out, batched over many estimators; a Gaussian plug-in cross-check (§5.2,
  App. E; spec §6.2).
- :mod:`~dtcore.metrics.params`: L2 distance and cosine of parameters before/after fine-tuning
  (§5.3, App. F; spec §6.3).
- :mod:`~dtcore.metrics.gradients`: clipped per-sample gradients (torch.func), gradient
  confusion, per-parameter gradient norms, of the full batch and of the mean gradient of subsets
  of samples (§5.4; spec §6.4).
- :mod:`~dtcore.metrics.attention`: mean attention distance, true and as published (§5.6.2;
  spec §6.7).
- :mod:`~dtcore.metrics.smoothing`: the exponential moving average of Fig. 9 (spec §6.6).

The contract shared by every function here, implemented once by :func:`as_tensor`: inputs are
numpy arrays or torch tensors (any device, any float dtype), are never modified, are converted
to float64 before any arithmetic, and bad input raises ``ValueError`` naming the argument and its
shape (non-finite values, wrong rank, mismatched sample counts, too few samples).
"""

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


# The public API, importable from the package (the helpers above come first: the modules use them).
from dtcore.metrics.attention import (  # noqa: E402
    attention_distance,
    mean_attention_distance,
    published_attention_distance,
    token_mask_from_steps,
)
from dtcore.metrics.cka import (  # noqa: E402
    MinibatchCKA,
    cka_matrix,
    cka_replicates,
    feature_space_linear_cka,
    linear_cka,
    rbf_cka,
    select_tokens,
)
from dtcore.metrics.gradients import (  # noqa: E402
    cosine_matrix,
    gradient_confusion,
    mean_gradient_norms,
    norm_ratio,
    parameter_columns,
    per_parameter_grad_norms,
    per_sample_gradients,
    per_sample_gradients_loop,
)
from dtcore.metrics.mine import MIEstimate, gaussian_mi, mine, mine_many  # noqa: E402
from dtcore.metrics.params import ParamChange, concatenated_parameter_change, parameter_changes  # noqa: E402
from dtcore.metrics.smoothing import ema  # noqa: E402

__all__ = [
    "MIEstimate", "MinibatchCKA", "ParamChange", "as_array", "as_tensor", "attention_distance", "cka_matrix",
    "cka_replicates", "concatenated_parameter_change", "cosine_matrix", "ema", "feature_space_linear_cka",
    "gaussian_mi", "gradient_confusion", "linear_cka", "mean_attention_distance", "mean_gradient_norms",
    "mine", "mine_many", "norm_ratio", "parameter_changes", "parameter_columns", "per_parameter_grad_norms",
    "per_sample_gradients", "per_sample_gradients_loop", "published_attention_distance",
    "rbf_cka", "same_samples", "select_tokens", "shape_of", "token_mask_from_steps",
]
