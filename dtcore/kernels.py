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
   :class:`LaneDropout` applies the lanes in one C pass forward and one backward (the same lanes,
   so the same bits as the torch form). The 64-bit words come from ``TrainConfig.lanes``
   (:func:`draw_lanes`): torch's generator itself (``"torch"``, 3.4 ns a word here), or a
   SplitMix64 stream that one draw of it seeds (``"splitmix64"``, the mini and smoke profiles:
   0.3 ns a word in C, and a mini step 1.02-1.05x faster).
2. **Attention.** GPT-2's attention through the eager formula (scores, additive mask, softmax,
   dropout on the probabilities, weighted values) registered with transformers' attention
   interface as :data:`ATTENTION`, with the dropout of (1). SDPA's CPU kernels run at this size
   either the flash kernel (slower than the plain products at T = 60) or, with dropout, the math
   fallback with ``bernoulli_``. Where :func:`fusable` allows (float32 on the CPU, head width a
   multiple of 4 up to 32: the 4-head mini bodies) the formula runs in one C kernel per pass,
   :class:`FusedAttention`: row by row, skipping the masked keys at the ends of each row (the
   causal half). It reads the same dropout lanes, drawn as :func:`keep_mask` draws them at the
   same point of the random stream, so only float rounding differs. It reads transformers' head
   views of the query/key/value projection in place and writes the output (and the gradients) in
   the layout the next reshape reads, so no head-layout copies run. At head width 64 (the random
   body's one head) the torch products are faster and run.
3. **The GELUs.** GPT-2's ``gelu_new`` is eight element-wise kernels written in Python, each
   kept for the backward pass; :class:`TanhGELU` computes the same formula,
   0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), in one C pass forward and one backward (or
   ``nn.GELU(approximate="tanh")``'s kernels without C). :class:`QuickGELU` does the same for
   the image body's x sigmoid(1.702 x), three kernels forward and four backward in torch.
4. **AdamW.** torch's default AdamW on the CPU loops over the parameters in Python, eight
   kernels each (6.5 ms a step for the 59 tensors of a 4 x 64 body); ``fused=True`` runs the same
   update in one vectorised pass (0.9 ms).

The C kernels (``dtcore/csrc/``) are built at first use by :mod:`dtcore.native`. ``kernels="cpu"``
requires them (:func:`require_c_kernels`): float rounding differs between them and their
plain-torch forms, so a run id must say which trained it. ``kernels="cpu-torch"`` is the same
functions from the same draws in plain torch, with its own run id (``tests/test_native_kernels.py``).
``kernels="builtin"`` is the route with no code of ours: fused AdamW, transformers'
``gelu_pytorch_tanh``, eager attention and torch's own dropout (:func:`builtin`). The C kernels
run on one thread, as the CPU profiles train.

Only the random draws differ from the reference kernels: in eval mode the swapped body computes
the reference function up to float rounding (``tests/test_kernels.py``), and in train mode its
dropout has the distribution above. The swap holds only while :func:`dtcore.train.train` runs
(evaluation rollouts during training included); the body is restored afterwards, so checkpoints,
analyses and hooks see the reference modules.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
from typing import Iterator

import torch
from torch import nn
from transformers import AttentionInterface, GPT2Model
from transformers.activations import GELUTanh, NewGELUActivation, QuickGELUActivation
from transformers.models.gpt2.modeling_gpt2 import GPT2Attention

from dtcore import native

KERNELS = ("reference", "cpu", "cpu-torch", "builtin")    # TrainConfig.kernels
LANE_KERNELS = ("cpu", "cpu-torch")   # the kernels that draw dropout lanes (TrainConfig.lanes)
BUILTIN_ATTENTION = "eager"       # the "builtin" kernels' attention: faster than SDPA on every mini step (bench/grid.py --routes)
LANE_SOURCES = ("torch", "splitmix64")   # TrainConfig.lanes: where the "cpu" kernels' dropout lanes come from
ATTENTION = "dtcore-lanes"        # the attention implementation registered below (C kernel where it applies)
ATTENTION_TORCH = "dtcore-lanes-torch"   # the same in plain torch only (kernels="cpu-torch")
LANE_VALUES = 1 << 16             # values of one 16-bit lane


def drop_count(p: float) -> int:
    """How many of the 65536 lane values drop an element: ``round(p * 65536)``."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability must be in [0, 1], got {p}")
    return round(p * LANE_VALUES)


def effective_p(p: float) -> float:
    """The drop probability :func:`keep_mask` realises for a nominal ``p``."""
    return drop_count(p) / LANE_VALUES


def keep_mask(shape: torch.Size | tuple[int, ...], p: float, device: torch.device | str = "cpu",
              source: str = "torch", native: bool = True) -> torch.Tensor:
    """Boolean mask of ``shape``, each element kept independently with probability
    ``1 - effective_p(p)``, from 16-bit lanes of 64-bit words of ``source`` (:func:`draw_lanes`)."""
    n = 1
    for size in shape:
        n *= size
    return draw_lanes(n, device, source, native).view(shape) >= keep_threshold(p)


def draw_lanes(n: int, device: torch.device | str = "cpu", source: str = "torch", native: bool = True) -> torch.Tensor:
    """``n`` uniform int16 lanes: the first ``n`` of the lanes of ceil(n / 4) 64-bit words.
    ``source="torch"``: the words are draws of torch's default generator (of ``device``).
    ``"splitmix64"``: one such draw seeds a SplitMix64 stream and the words are its first
    ceil(n / 4) outputs (:func:`splitmix64_words`; in C where ``native`` and built, about ten times
    cheaper per word here); the generator moves by one draw per call."""
    words = torch.empty((n + 3) // 4, dtype=torch.int64, device=device)
    if source == "torch":
        words.random_(-(1 << 63), None)
    elif source == "splitmix64":
        key = int(torch.empty((), dtype=torch.int64, device=device).random_(-(1 << 63), None))
        splitmix64_words(key, words, native)
    else:
        raise ValueError(f"lane source must be one of {LANE_SOURCES}, got {source!r}")
    return words.view(torch.int16)[:n]                               # uniform on [-32768, 32767]


_GOLDEN, _MIX1, _MIX2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB   # SplitMix64's constants


def _signed(c: int) -> int:
    """The int64 with the bits of the 64-bit unsigned ``c``."""
    return c - (1 << 64) if c >= 1 << 63 else c


def splitmix64_words(key: int, out: torch.Tensor, native: bool = True) -> torch.Tensor:
    """Fill the int64 tensor ``out`` with the first ``out.numel()`` outputs of the SplitMix64
    stream seeded by ``key`` (Steele, Lea and Flood 2014, as in Java's SplittableRandom): word i is
    z = key + (i + 1) * 0x9E3779B97F4A7C15, then z ^= z >> 30, z *= 0xBF58476D1CE4E5B9,
    z ^= z >> 27, z *= 0x94D049BB133111EB, z ^= z >> 31, modulo 2^64 (``csrc/elementwise.c``'s
    ``splitmix64_fill`` where ``native``, it is built and ``out`` is on the CPU, else the same
    arithmetic in torch's int64, which wraps modulo 2^64; ``>>`` is logical, so the sign bits are
    masked off)."""
    lib = _elementwise_library() if native and out.device.type == "cpu" else None
    if lib is not None and out.is_contiguous():
        lib.splitmix64_fill(out.numel(), ctypes.c_uint64(key % (1 << 64)), _ptr(out))
        return out
    z = torch.arange(1, out.numel() + 1, dtype=torch.int64, device=out.device).view(out.shape)
    z = z * _signed(_GOLDEN) + _signed(key % (1 << 64))
    for shift, mult in ((30, _MIX1), (27, _MIX2)):
        z = (z ^ ((z >> shift) & ((1 << (64 - shift)) - 1))) * _signed(mult)
    return out.copy_(z ^ ((z >> 31) & ((1 << 33) - 1)))


def keep_threshold(p: float) -> int:
    """A lane keeps its element when it is at least this value."""
    return drop_count(p) - LANE_VALUES // 2


def lane_dropout(x: torch.Tensor, p: float, training: bool, native: bool = True,
                 source: str = "torch") -> torch.Tensor:
    """Dropout of ``x`` with :func:`keep_mask`'s masks from ``source``: kept elements scaled by
    ``1 / (1 - p)``; in one C pass forward and backward (the same lanes, drawn alike) where
    :func:`_c_ok` allows."""
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    if native and _c_ok(x):
        return _CLaneDropout.apply(x, draw_lanes(x.numel(), source=source), keep_threshold(p), 1.0 / (1.0 - p))
    scale = keep_mask(x.shape, p, x.device, source, native).to(x.dtype).mul_(1.0 / (1.0 - p))
    return x * scale


class LaneDropout(nn.Dropout):
    """``nn.Dropout`` with :func:`lane_dropout`'s masks (same ``p``, same name where it sits) from
    the lane ``source``; ``native=False`` keeps it in plain torch."""

    def __init__(self, p: float, native: bool = True, source: str = "torch"):
        super().__init__(p)
        self.native, self.source = native, source

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return lane_dropout(x, self.p, self.training, self.native, self.source)


class _NativeActivation(nn.Module):
    """An activation whose forward and backward run in one C pass each (``csrc/elementwise.c``'s
    ``KIND``) where :func:`_c_ok` allows and ``native``, else in its torch class's form."""

    KIND = ""
    native = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.native and _c_ok(x):
            return _CActivation.apply(x, self.KIND)
        return super().forward(x)


class TanhGELU(_NativeActivation, nn.GELU):
    """``nn.GELU(approximate="tanh")``: GPT-2's gelu_new."""

    KIND = "gelu_tanh"

    def __init__(self, native: bool = True):
        nn.GELU.__init__(self, approximate="tanh")
        self.native = native


class QuickGELU(_NativeActivation, QuickGELUActivation):
    """transformers' quick GELU, x sigmoid(1.702 x): the image body's."""

    KIND = "quick_gelu"

    def __init__(self, native: bool = True):
        QuickGELUActivation.__init__(self)
        self.native = native


@functools.cache
def _elementwise_library() -> ctypes.CDLL | None:
    lib = native.library("elementwise")
    if lib is None:
        return None
    n, ptr = ctypes.c_long, ctypes.c_void_p
    with _symbols("elementwise"):
        for kind in ("gelu_tanh", "quick_gelu"):
            getattr(lib, f"{kind}_forward").argtypes = [n, ptr, ptr]
            getattr(lib, f"{kind}_backward").argtypes = [n, ptr, ptr, ptr]
        lib.lane_dropout_apply.argtypes = [n, ptr, ptr, ctypes.c_int, ctypes.c_float, ptr]
        lib.splitmix64_fill.argtypes = [n, ctypes.c_uint64, ptr]
        return lib
    return None


@contextlib.contextmanager
def _symbols(name: str) -> Iterator[None]:
    """Setting up a library's functions: a symbol it lacks (another library under its name) is
    one warning, and the library is not used (the block's ``return`` is skipped)."""
    try:
        yield
    except AttributeError as err:
        native.log.warning("the C kernel library %s lacks a function (%s); kernels='cpu' cannot train here. "
                           "Delete %s so that it is compiled again.", name, err, native.library_dir())


def c_kernels() -> list[str]:
    """The C kernel libraries this process has built or loaded (what its CPU-kernel runs used
    where they apply); the run log records them."""
    return [name for name, lib in (("attention", _attention_library()), ("elementwise", _elementwise_library()))
            if lib is not None]


def _c_ok(x: torch.Tensor) -> bool:
    """float32 on the CPU, and the element-wise C kernels built (:mod:`dtcore.native`)."""
    return x.device.type == "cpu" and x.dtype == torch.float32 and _elementwise_library() is not None


def _map(fn, x: torch.Tensor, *args) -> torch.Tensor:
    """``fn(n, x, *args, out)`` of ``csrc/elementwise.c`` over contiguous ``x``, into a new ``out``."""
    out = torch.empty_like(x)
    fn(x.numel(), _ptr(x), *args, _ptr(out))
    return out


class _CActivation(torch.autograd.Function):
    """A GELU of ``csrc/elementwise.c`` (``kind``: gelu_tanh, quick_gelu); the backward pass reads x."""

    @staticmethod
    def forward(ctx, x, kind):
        x = x.contiguous()
        ctx.save_for_backward(x)
        ctx.kind = kind
        return _map(getattr(_elementwise_library(), f"{kind}_forward"), x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return _map(getattr(_elementwise_library(), f"{ctx.kind}_backward"), x, _ptr(grad.contiguous())), None


class _CLaneDropout(torch.autograd.Function):
    """x * (lane >= threshold ? scale : 0), and the same product of the gradient backward."""

    @staticmethod
    def forward(ctx, x, lanes, threshold, scale):
        ctx.save_for_backward(lanes)
        ctx.constants = (threshold, scale)
        return _map(_elementwise_library().lane_dropout_apply, x.contiguous(), _ptr(lanes), threshold, scale)

    @staticmethod
    def backward(ctx, grad):
        (lanes,) = ctx.saved_tensors
        dx = _map(_elementwise_library().lane_dropout_apply, grad.contiguous(), _ptr(lanes), *ctx.constants)
        return dx, None, None, None


LANE_SOURCE_ATTR = "dtcore_lane_source"   # set on a body's attention modules by swapped()


def lane_source(module: nn.Module) -> str:
    """The lane source :func:`swapped` gave this attention module (``"torch"`` where none)."""
    return getattr(module, LANE_SOURCE_ATTR, "torch")


def torch_lane_attention(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                         attention_mask: torch.Tensor | None, scaling: float | None = None, dropout: float = 0.0,
                         native: bool = True, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    """transformers' eager attention (query/key/value [B, H, T, d]; additive mask [B, 1, T, T])
    with :func:`lane_dropout` on the probabilities (its C pass where ``native``) and the scale
    applied to the queries (d < T numbers each, not T); returns ([B, T, H, d], probabilities)."""
    if scaling is None:
        scaling = query.size(-1) ** -0.5
    scores = torch.matmul(query * scaling, key.transpose(-1, -2))                   # [B, H, T, T]
    if attention_mask is not None:
        scores = scores + attention_mask
    probs = torch.softmax(scores, dim=-1).type(value.dtype)
    weights = lane_dropout(probs, dropout, module.training, native, lane_source(module))
    return torch.matmul(weights, value).transpose(1, 2), probs


def lane_attention(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                   attention_mask: torch.Tensor | None, scaling: float | None = None, dropout: float = 0.0,
                   **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`torch_lane_attention`'s function, through the C kernel (:class:`FusedAttention`)
    where :func:`fusable` allows, with the same dropout mask drawn from the same stream."""
    p = dropout if module.training else 0.0
    if not fusable(query, key, value, attention_mask, p):
        return torch_lane_attention(module, query, key, value, attention_mask, scaling, dropout, **kwargs)
    if scaling is None:
        scaling = query.size(-1) ** -0.5
    B, H, T, _ = query.shape
    lanes = (draw_lanes(B * H * T * T, source=lane_source(module)).view(B, H, T, T)
             if p > 0.0 else None)                                           # what lane_dropout would draw
    out, probs = FusedAttention.apply(query, key, value, attention_mask, lanes, p, scaling)
    return out.transpose(1, 2), probs


FUSED_MAX_HEAD_WIDTH = 32   # at 64 (the random body's one head) the eager formula's products are faster
FUSED_MAX_TOKENS = 1024     # csrc/attention.c's MAXT


@functools.cache
def _attention_library() -> ctypes.CDLL | None:
    lib = native.library("attention")
    if lib is None:
        return None
    i, f, ptr = ctypes.c_int, ctypes.c_float, ctypes.c_void_p
    with _symbols("attention"):
        lib.attn_ranges.argtypes = [i, i, ptr, ptr]
        lib.attn_forward.argtypes = [i, i, i, i, i, f, ptr, ptr, ptr, ptr, ptr, ptr, ptr, i, f, ptr, ptr]
        lib.attn_backward.argtypes = [i, i, i, i, i, f, ptr, ptr, ptr, ptr, ptr, ptr, i, f, ptr, ptr, ptr, ptr, ptr]
        lib.attn_forward.restype = lib.attn_backward.restype = i
        lib.attn_exp.argtypes = [ctypes.c_long, ptr, ptr]
        return lib
    return None


def fusable(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor | None,
            p: float) -> bool:
    """Whether :class:`FusedAttention` computes this call: float32 CPU self-attention of head width
    a multiple of 4 up to :data:`FUSED_MAX_HEAD_WIDTH`, at most 1024 tokens, a float32 additive mask
    per window ([B or 1, 1, T, T]) or per window and head ([B, H, T, T]) or none, drop rate below 1,
    nothing asking for the mask's gradient, and the C kernel built (:mod:`dtcore.native`)."""
    B, H, T, d = query.shape
    if not (query.shape == key.shape == value.shape and d % 4 == 0 and d <= FUSED_MAX_HEAD_WIDTH
            and T <= FUSED_MAX_TOKENS and p < 1.0):
        return False
    if any(t.device.type != "cpu" or t.dtype != torch.float32 for t in (query, key, value)):
        return False
    if mask is not None and not (mask.dtype == torch.float32 and mask.device.type == "cpu" and mask.ndim == 4
                                 and not mask.requires_grad and tuple(mask.shape[2:]) == (T, T)
                                 and tuple(mask.shape[:2]) in ((B, 1), (1, 1), (B, H))):
        return False
    return _attention_library() is not None


def _ptr(t: torch.Tensor | None) -> ctypes.c_void_p | None:
    return None if t is None else ctypes.c_void_p(t.data_ptr())


def _rows(t: torch.Tensor) -> torch.Tensor:
    """``t`` itself where its last dimension is contiguous (the C kernel reads any other strides), else a copy."""
    return t if t.stride(-1) == 1 else t.contiguous()


def _strides(*tensors: torch.Tensor) -> ctypes.Array:
    """The (batch, head, token) strides of each [B, H, T, d] tensor, in order, for ``csrc/attention.c``."""
    return (ctypes.c_long * (3 * len(tensors)))(*(s for t in tensors for s in t.stride()[:3]))


def _heads_last(B: int, H: int, T: int, d: int) -> torch.Tensor:
    """A new [B, H, T, d] tensor laid out as [B, T, H, d]: the layout transformers reshapes next."""
    return torch.empty(B, T, H, d).transpose(1, 2)


class FusedAttention(torch.autograd.Function):
    """scores = (q * scale) k^T + mask; probs = softmax(scores); out = (probs * keep / (1 - p)) v,
    head by head and row by row in C (``dtcore/csrc/attention.c``), skipping the masked keys at
    the ends of each row. query/key/value [B, H, T, d], read in place whatever their batch, head
    and token strides (transformers' head views of one projection); lanes [B, H, T, T] int16
    (keep = lanes >= keep_threshold(p), :func:`keep_mask`'s rule) or None for no dropout. Returns
    (out [B, H, T, d] laid out as [B, T, H, d], probs [B, H, T, T]); probs carry no gradient
    (training reads only out), and the gradients come in the layout of out."""

    @staticmethod
    def forward(ctx, query, key, value, mask, lanes, p, scaling):
        B, H, T, d = query.shape
        q, k, v = _rows(query), _rows(key), _rows(value)
        m = ranges = None
        group = B * H
        if mask is not None:
            m = mask.reshape(-1, T, T).contiguous()                               # [B or 1 or B*H, T, T]
            group = B * H // m.shape[0]                                            # heads per mask
            ranges = torch.empty(m.shape[0], T, 2, dtype=torch.int32)
            _attention_library().attn_ranges(m.shape[0], T, _ptr(m), _ptr(ranges))
        lanes = None if lanes is None else lanes.contiguous()
        threshold, dscale = (keep_threshold(p), 1.0 / (1.0 - p)) if lanes is not None else (0, 1.0)
        probs, out = torch.empty(B, H, T, T), _heads_last(B, H, T, d)
        if _attention_library().attn_forward(B, H, group, T, d, scaling, _ptr(q), _ptr(k), _ptr(v),
                                             _strides(q, k, v, out), _ptr(m), _ptr(ranges), _ptr(lanes),
                                             threshold, dscale, _ptr(probs), _ptr(out)):
            raise RuntimeError(f"attn_forward refused T={T}, d={d} (fusable() should have)")
        ctx.save_for_backward(q, k, v, ranges, lanes, probs)
        ctx.constants = (group, scaling, threshold, dscale)
        ctx.mark_non_differentiable(probs)
        ctx.set_materialize_grads(False)                                           # no zeros for probs
        return out, probs

    @staticmethod
    def backward(ctx, dout, _dprobs):
        q, k, v, ranges, lanes, probs = ctx.saved_tensors
        group, scaling, threshold, dscale = ctx.constants
        B, H, T, d = q.shape
        dout = _rows(dout)
        dq, dk, dv = (_heads_last(B, H, T, d) for _ in range(3))
        if _attention_library().attn_backward(B, H, group, T, d, scaling, _ptr(q), _ptr(k), _ptr(v),
                                              _strides(q, k, v, dout, dq, dk, dv), _ptr(ranges), _ptr(lanes),
                                              threshold, dscale, _ptr(probs), _ptr(dout), _ptr(dq), _ptr(dk), _ptr(dv)):
            raise RuntimeError(f"attn_backward refused T={T}, d={d}")
        return dq, dk, dv, None, None, None, None


AttentionInterface.register(ATTENTION, lane_attention)
AttentionInterface.register(ATTENTION_TORCH, functools.partial(torch_lane_attention, native=False))


@contextlib.contextmanager
def builtin(body: GPT2Model, attention: str = BUILTIN_ATTENTION) -> Iterator[None]:
    """Within the block, ``body`` runs on torch's and transformers' own kernels of its functions:
    ``gelu_new`` as transformers' ``GELUTanh`` (``gelu_pytorch_tanh``: torch's one-kernel tanh GELU),
    attention through ``attention`` ("eager" or "sdpa"), dropout, quick GELU and everything else
    unchanged; restored afterwards, also on an exception."""
    replaced = [(parent, name, child, GELUTanh()) for parent in body.modules()
                for name, child in parent.named_children() if isinstance(child, NewGELUActivation)]
    implementation = body.config._attn_implementation
    try:
        for parent, name, old, new in replaced:
            setattr(parent, name, new.train(old.training))
        body.set_attn_implementation(attention)
        yield
    finally:
        body.set_attn_implementation(implementation)
        for parent, name, old, new in replaced:
            setattr(parent, name, old.train(new.training))


def require_c_kernels() -> None:
    """Raise unless both C kernel libraries are built and loaded: ``kernels="cpu"`` trains only
    through them, so that a run id names its bits (``"cpu-torch"`` is the plain-torch form, another id)."""
    missing = sorted({"attention", "elementwise"} - set(c_kernels()))
    if missing:
        why = ("DTCORE_NATIVE=0 turns them off; unset it, or" if not native.enabled() else
               "could not be built or loaded here (the warning of dtcore.native above says why). Install gcc or "
               "clang (or set CC), or")
        raise RuntimeError(f"kernels='cpu' trains with the C kernels, and {', '.join(missing)}: {why} train with "
                           "kernels='cpu-torch' (the same functions in plain torch, another run id) or 'builtin'.")


@contextlib.contextmanager
def swapped(body: GPT2Model, kernels: str, lanes: str = "torch", attention: str = BUILTIN_ATTENTION) -> Iterator[None]:
    """Within the block, ``body`` runs on ``kernels`` (``"reference"``: unchanged; ``"cpu"``: the
    module docstring's swaps 1-3 with dropout lanes from ``lanes`` (:func:`draw_lanes`), in C where
    it applies, the C kernels required (:func:`require_c_kernels`); ``"cpu-torch"``: the same
    functions and lanes all in plain torch; ``"builtin"``: :func:`builtin` with ``attention``);
    every module, attribute and the attention setting are restored afterwards, also on an
    exception."""
    if kernels not in KERNELS:
        raise ValueError(f"kernels must be one of {KERNELS}, got {kernels!r}")
    if lanes not in LANE_SOURCES:
        raise ValueError(f"lanes must be one of {LANE_SOURCES}, got {lanes!r}")
    if lanes != "torch" and kernels not in LANE_KERNELS:
        raise ValueError(f"lanes={lanes!r} applies to the cpu kernels only; the {kernels} kernels draw "
                         "torch's own dropout masks")
    if kernels == "reference":
        yield
        return
    if kernels == "builtin":
        with builtin(body, attention):
            yield
        return
    use_c = kernels == "cpu"
    if use_c:
        require_c_kernels()
    replaced: list[tuple[nn.Module, str, nn.Module, nn.Module]] = []   # parent, name, old, new
    attentions = [m for m in body.modules() if isinstance(m, GPT2Attention)]
    for parent in body.modules():
        for name, child in parent.named_children():
            if type(child) is nn.Dropout:
                replaced.append((parent, name, child, LaneDropout(child.p, use_c, lanes)))
            elif isinstance(child, NewGELUActivation):
                replaced.append((parent, name, child, TanhGELU(use_c)))
            elif type(child) is QuickGELUActivation:
                replaced.append((parent, name, child, QuickGELU(use_c)))
    implementation = body.config._attn_implementation
    try:
        for parent, name, old, new in replaced:
            setattr(parent, name, new.train(old.training))
        for attention_module in attentions:
            setattr(attention_module, LANE_SOURCE_ATTR, lanes)
        body.set_attn_implementation(ATTENTION if use_c else ATTENTION_TORCH)
        yield
    finally:
        body.set_attn_implementation(implementation)
        for attention_module in attentions:
            attention_module.__dict__.pop(LANE_SOURCE_ATTR, None)
        for parent, name, old, new in replaced:
            setattr(parent, name, old.train(new.training))
