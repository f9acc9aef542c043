"""Parameter similarity before and after fine-tuning: §5.3, Figs. 3-4 and App. F.1.

For every parameter tensor of the transformer blocks (``transformer.h.*``; 12 per GPT-2 block, so
144 for 12 blocks and 288 for 24), in the models' ``named_parameters`` order, as the paper's code
computed (docs/spec.md §6.3):

    l2     = ||θ_T - θ_0||_2                       (Frobenius norm of the whole tensor)
    cosine = <vec θ_0, vec θ_T> / (||θ_0|| ||θ_T||)

Difference from the paper's code, on purpose: no ``+1e-6`` in the cosine's denominator, and a
tensor that is zero before or after (every random-init bias, iGPT's new LayerNorm biases) gets
cosine ``nan`` (undefined) instead of 0. App. F.1's text describes one concatenated vector instead
of per-tensor values: :func:`concatenated_parameter_change` computes that.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from dtcore.metrics.arrays import as_array, shape_of


@dataclass(frozen=True)
class ParamChange:
    """How far one parameter set moved between two checkpoints."""

    name: str            # full parameter name, e.g. "transformer.h.0.ln_1.weight"
    l2: float            # ||after - before||_2
    cosine: float        # cos(before, after); nan when either is all zeros
    norm_before: float   # ||before||_2
    norm_after: float    # ||after||_2


def _named(model: Any, name: str) -> list[tuple[str, Any]]:
    """(name, tensor) pairs of a module's parameters or a state-dict-like mapping, in order."""
    if isinstance(model, torch.nn.Module):
        return list(model.named_parameters())
    if isinstance(model, Mapping):
        return list(model.items())
    raise ValueError(f"{name} must be an nn.Module or a name -> tensor mapping, got {type(model).__name__}")


def _selected(before: Any, after: Any, prefix: str) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """The parameter pairs whose names start with ``prefix``, validated and in float64."""
    a = [(n, t) for n, t in _named(before, "before") if n.startswith(prefix)]
    b = [(n, t) for n, t in _named(after, "after") if n.startswith(prefix)]
    if not a:
        names = [n for n, _ in _named(before, "before")][:5]
        raise ValueError(f"no parameter of before starts with prefix {prefix!r}; the first names are {names}")
    if [n for n, _ in a] != [n for n, _ in b]:
        raise ValueError(f"before and after hold different parameter names under {prefix!r}: "
                         f"{len(a)} vs {len(b)} sets, first difference "
                         f"{next(((x, y) for (x, _), (y, _) in zip(a, b) if x != y), None)}")
    out = []
    for (name, ta), (_, tb) in zip(a, b):
        if shape_of(ta) != shape_of(tb):
            raise ValueError(f"parameter {name}: before has shape {shape_of(ta)}, after {shape_of(tb)}")
        out.append((name, as_array(ta, f"before[{name!r}]").ravel(), as_array(tb, f"after[{name!r}]").ravel()))
    return out


def _change(name: str, before: np.ndarray, after: np.ndarray) -> ParamChange:
    nb, na = float(np.linalg.norm(before)), float(np.linalg.norm(after))
    cosine = math.nan if nb == 0 or na == 0 else float(before @ after) / (nb * na)
    return ParamChange(name, float(np.linalg.norm(after - before)), cosine, nb, na)


def parameter_changes(before: Any, after: Any, prefix: str = "transformer.h.") -> list[ParamChange]:
    """L2 distance and cosine per parameter set whose name starts with ``prefix``, in model order.

    ``before`` / ``after``: two models of the same architecture (``nn.Module``) or their
    name -> tensor mappings (state dicts, numpy arrays). Raises ``ValueError`` when the selected
    names or shapes differ or nothing matches ``prefix``.
    """
    return [_change(name, b, a) for name, b, a in _selected(before, after, prefix)]


def concatenated_parameter_change(before: Any, after: Any, prefix: str = "transformer.h.") -> ParamChange:
    """App. F.1's text: every selected parameter concatenated into one vector, one L2 and one cosine."""
    sets = _selected(before, after, prefix)
    b = np.concatenate([s[1] for s in sets])
    a = np.concatenate([s[2] for s in sets])
    return _change(prefix, b, a)
