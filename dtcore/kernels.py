"""Cheaper CPU kernels for the same functions: what ``TrainConfig.kernels = "cpu"`` swaps into a
GPT-2 body while it trains (docs/benchmarks.md, "Where a mini training step spends its time").

A mini K = 20 step (batch 32, 4 x 64 body) profiled on one core of this machine spent about a
third of its time outside the matrix multiplies in four places, each replaced by kernels that
compute the same function (the fourth in :func:`dtcore.train.make_optimizer`):

1. **Dropout masks.** ``torch.bernoulli_`` draws one Mersenne-Twister number per element, about
   10 ns per element here (5 ms for the 460 800 attention probabilities of one 4-head block).
   :func:`keep_mask` draws 64-bit numbers from the same torch generator and cuts each into four
   16-bit lanes; an element is dropped when its lane falls in the lowest ``round(p * 65536)`` of
   the 65536 values, so each element is dropped independently with probability
   :func:`effective_p` (``p`` to within 2^-17: 0.1 -> 0.1000061, 0.2 -> 0.1999969) and kept ones
   are scaled by ``1 / (1 - p)`` as torch does. Four to five times cheaper per element.
2. **Attention.** GPT-2's attention through the eager formula (scores, additive mask, softmax,
   dropout on the probabilities, weighted values) registered with transformers' attention
   interface as :data:`ATTENTION`, with the dropout of (1). SDPA's CPU kernels run at this size
   either the flash kernel (slower than the plain products at T = 60) or, with dropout, the math
   fallback with ``bernoulli_``.
3. **tanh-GELU.** GPT-2's ``gelu_new`` is eight element-wise kernels written in Python, each
   kept for the backward pass; ``torch.nn.GELU(approximate="tanh")`` is the same formula,
   0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), in one kernel forward and one backward.
4. **AdamW.** torch's default AdamW on the CPU loops over the parameters in Python, eight
   kernels each (6.5 ms a step for the 59 tensors of a 4 x 64 body); ``fused=True`` runs the same
   update in one vectorised pass (0.9 ms).

Only the random draws differ from the reference kernels: in eval mode the swapped body computes
the reference function up to float rounding (``tests/test_kernels.py``), and in train mode its
dropout has the distribution above. The swap holds only while :func:`dtcore.train.train` runs
(evaluation rollouts during training included); the body is restored afterwards, so checkpoints,
analyses and hooks see the reference modules.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn
from transformers import AttentionInterface, GPT2Model
from transformers.activations import NewGELUActivation

KERNELS = ("reference", "cpu")    # TrainConfig.kernels
ATTENTION = "dtcore-lanes"        # the attention implementation registered below
LANE_VALUES = 1 << 16             # values of one 16-bit lane


def drop_count(p: float) -> int:
    """How many of the 65536 lane values drop an element: ``round(p * 65536)``."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability must be in [0, 1], got {p}")
    return round(p * LANE_VALUES)


def effective_p(p: float) -> float:
    """The drop probability :func:`keep_mask` realises for a nominal ``p``."""
    return drop_count(p) / LANE_VALUES


def keep_mask(shape: torch.Size | tuple[int, ...], p: float, device: torch.device | str = "cpu") -> torch.Tensor:
    """Boolean mask of ``shape``, each element kept independently with probability
    ``1 - effective_p(p)``, from 16-bit lanes of 64-bit draws of torch's default generator."""
    n = 1
    for size in shape:
        n *= size
    words = torch.empty((n + 3) // 4, dtype=torch.int64, device=device).random_(-(1 << 63), None)
    lanes = words.view(torch.int16)[:n].view(shape)                 # uniform on [-32768, 32767]
    return lanes >= drop_count(p) - LANE_VALUES // 2


def lane_dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Dropout of ``x`` with :func:`keep_mask`: kept elements scaled by ``1 / (1 - p)``."""
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    scale = keep_mask(x.shape, p, x.device).to(x.dtype).mul_(1.0 / (1.0 - p))
    return x * scale


class LaneDropout(nn.Dropout):
    """``nn.Dropout`` with :func:`lane_dropout`'s masks (same ``p``, same name where it sits)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return lane_dropout(x, self.p, self.training)


def lane_attention(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                   attention_mask: torch.Tensor | None, scaling: float | None = None, dropout: float = 0.0,
                   **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    """transformers' eager attention (query/key/value [B, H, T, d]; additive mask [B, 1, T, T])
    with :func:`lane_dropout` on the probabilities and the scale applied to the queries (d < T
    numbers each, not T); returns ([B, T, H, d], probabilities)."""
    if scaling is None:
        scaling = query.size(-1) ** -0.5
    scores = torch.matmul(query * scaling, key.transpose(-1, -2))                   # [B, H, T, T]
    if attention_mask is not None:
        scores = scores + attention_mask
    probs = torch.softmax(scores, dim=-1).type(value.dtype)
    weights = lane_dropout(probs, dropout, module.training)
    return torch.matmul(weights, value).transpose(1, 2), probs


AttentionInterface.register(ATTENTION, lane_attention)


@contextlib.contextmanager
def swapped(body: GPT2Model, kernels: str) -> Iterator[None]:
    """Within the block, ``body`` runs on ``kernels`` (``"reference"``: unchanged; ``"cpu"``:
    the module docstring's swaps 1-3); every module and the attention setting are restored
    afterwards, also on an exception."""
    if kernels not in KERNELS:
        raise ValueError(f"kernels must be one of {KERNELS}, got {kernels!r}")
    if kernels == "reference":
        yield
        return
    replaced: list[tuple[nn.Module, str, nn.Module, nn.Module]] = []   # parent, name, old, new
    for parent in body.modules():
        for name, child in parent.named_children():
            if type(child) is nn.Dropout:
                replaced.append((parent, name, child, LaneDropout(child.p)))
            elif isinstance(child, NewGELUActivation):
                replaced.append((parent, name, child, nn.GELU(approximate="tanh")))
    implementation = body.config._attn_implementation
    try:
        for parent, name, old, new in replaced:
            setattr(parent, name, new.train(old.training))
        body.set_attn_implementation(ATTENTION)
        yield
    finally:
        body.set_attn_implementation(implementation)
        for parent, name, old, new in replaced:
            setattr(parent, name, old.train(new.training))
