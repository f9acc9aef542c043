"""The C kernels of the CPU kernels compute their plain-torch functions: the attention
(dtcore/csrc/attention.c through dtcore.kernels.FusedAttention) and the GELUs up to float
rounding, lane dropout to the bit, all with the same random draws. dtcore.native builds and loads
them; where it cannot, kernels="cpu" runs refuse to train and kernels="cpu-torch" runs train."""

from __future__ import annotations

import ctypes
import json
import logging
import shutil

import pytest
import torch
from torch import nn

from dtcore import kernels, native
from dtcore.model import attention_bias


class _Attention(nn.Module):
    """Stands for the transformers module the attention interface receives (only .training is read)."""


def _qkv(B, H, T, d, seed=0):
    """query, key, value [B, H, T, d] as transformers makes them: head views of one [B, T, 3Hd] projection."""
    torch.manual_seed(seed)
    x = torch.randn(B, T, 3 * H * d, requires_grad=True)
    return x, [t.view(B, T, H, d).transpose(1, 2) for t in x.split(H * d, dim=2)]


def _padded_mask(B, T, layout):
    tokens = torch.ones(B, T)
    tokens[0, : T // 3] = 0                                  # a left-padded window, as the sampler makes
    mask = attention_bias(tokens, "eager", torch.float32)    # [B, 1, T, T]: causal, padding, diagonal open
    if layout == "shared":
        return mask[:1]
    if layout == "holes":                                    # keys masked inside rows too, per head
        holes = torch.rand(B, 4, T, T, generator=torch.Generator().manual_seed(1)) < 0.3
        holes &= ~torch.eye(T, dtype=torch.bool)
        return mask.expand(B, 4, T, T).masked_fill(holes, torch.finfo(torch.float32).min)
    if layout == "per-head":
        return mask.expand(B, 4, T, T).clone()
    return mask


def _both(B, H, T, d, mask, training, dropout=0.1, source="torch"):
    """(output, probabilities, input gradient, next random number) of the torch and the fused path."""
    module = _Attention().train(training)
    setattr(module, kernels.LANE_SOURCE_ATTR, source)         # as kernels.swapped sets it
    out = {}
    for name, attend in (("torch", kernels.torch_lane_attention), ("fused", kernels.lane_attention)):
        x, (q, k, v) = _qkv(B, H, T, d)
        torch.manual_seed(7)
        o, p = attend(module, q, k, v, mask, dropout=dropout)
        o.backward(torch.ones_like(o).cumsum(-1).sin())       # a gradient that differs per element
        out[name] = (o.detach(), p.detach(), x.grad, torch.rand(3))
    return out["torch"], out["fused"]


@pytest.mark.parametrize("B,H,T,d,layout", [(5, 4, 60, 16, "per-window"), (3, 4, 33, 12, "per-window"),
                                             (2, 2, 9, 8, "shared"), (2, 4, 20, 32, "per-head"),
                                             (3, 4, 60, 12, "none"), (3, 4, 27, 16, "holes")])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("source", kernels.LANE_SOURCES)
def test_the_fused_kernel_computes_the_torch_formula_with_the_same_dropout_draws(B, H, T, d, layout, training, source):
    mask = None if layout == "none" else _padded_mask(B, T, layout)
    _, (q, k, v) = _qkv(B, H, T, d)
    assert kernels.fusable(q, k, v, mask, 0.1 if training else 0.0)
    reference, fused = _both(B, H, T, d, mask, training, source=source)
    for a, b, what in zip(reference[:3], fused[:3], ("output", "probabilities", "gradient")):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=2e-6, msg=what)
    assert torch.equal(reference[3], fused[3])              # the generator moved alike: same draws
    if layout != "none":                                     # masked keys get exactly zero probability
        allowed = (mask > -1e30).expand(B, H, T, T)
        assert torch.all(fused[1][~allowed] == 0)
    assert not torch.equal(reference[0], torch.zeros_like(reference[0]))


def test_the_fused_kernel_reads_the_head_views_in_place_and_writes_the_layout_transformers_reshapes():
    B, H, T, d = 3, 4, 20, 12
    mask, module = _padded_mask(B, T, "per-window"), _Attention().train(True)
    grad = torch.randn(B, T, H * d)
    results = []
    for contiguous in (False, True):
        x, (q, k, v) = _qkv(B, H, T, d)
        if contiguous:                                       # the same numbers, laid out [B, H, T, d]
            q, k, v = (t.contiguous() for t in (q, k, v))
        torch.manual_seed(3)
        with torch.profiler.profile() as prof:
            out, _ = kernels.lane_attention(module, q, k, v, mask, dropout=0.1)
            out.reshape(B, T, H * d).backward(grad)
        copies = [e.key for e in prof.key_averages() if e.key in ("aten::copy_", "aten::clone", "aten::contiguous")]
        results.append((out.detach(), x.grad))
        if not contiguous:                                   # views in, [B, T, H, d] out: nothing copied
            assert copies == [] and out.is_contiguous()
    torch.testing.assert_close(results[1][0], results[0][0], rtol=0, atol=0)
    torch.testing.assert_close(results[1][1], results[0][1], rtol=0, atol=0)


def test_rows_whose_every_key_is_masked_come_out_as_the_formula_gives_them():
    B, H, T, d = 2, 4, 10, 8
    mask = torch.zeros(B, 1, T, T)
    mask[0, 0, 3] = torch.finfo(torch.float32).min           # every key masked: uniform, as in softmax
    mask[1, 0, 5] = float("-inf")                            # -inf everywhere: NaN, as in softmax
    reference, fused = _both(B, H, T, d, mask, training=False)
    torch.testing.assert_close(fused[1], reference[1], rtol=1e-5, atol=1e-6, equal_nan=True)
    assert torch.allclose(fused[1][0, :, 3], torch.full((H, T), 1 / T))
    assert torch.isnan(fused[1][1, :, 5]).all() and torch.isnan(fused[0][1, 5]).all()


def test_a_nan_input_gives_nan_outputs_not_finite_ones():
    module = _Attention().eval()
    _, (q, k, v) = _qkv(2, 4, 12, 8)
    q = q.detach().clone()
    q[1, 2, 6, 0] = float("nan")
    out, probs = kernels.lane_attention(module, q, k, v, _padded_mask(2, 12, "per-window"))
    assert torch.isnan(out[1, 6, 2]).all() and torch.isnan(probs[1, 2, 6, :7]).all()
    assert torch.isfinite(out[0]).all()


def test_fusable_refuses_what_the_kernel_does_not_compute():
    _, (q, k, v) = _qkv(2, 4, 12, 8)
    mask = _padded_mask(2, 12, "per-window")
    assert kernels.fusable(q, k, v, mask, 0.1)
    _, (q64, k64, v64) = _qkv(2, 1, 12, 64)
    assert not kernels.fusable(q64, k64, v64, None, 0.1)                      # head width above 32
    _, (q6, k6, v6) = _qkv(2, 2, 12, 6)
    assert not kernels.fusable(q6, k6, v6, None, 0.1)                         # not a multiple of 4
    assert not kernels.fusable(q.double(), k.double(), v.double(), None, 0.1)
    assert not kernels.fusable(q, k, v, mask, 1.0)                            # everything dropped
    assert not kernels.fusable(q, k, v, mask.bool(), 0.1)                     # SDPA's boolean mask
    assert not kernels.fusable(q, k, v, mask[:1].expand(1, 4, 12, 12), 0.1)   # per head, shared by windows
    assert not kernels.fusable(q, k, v, mask.clone().requires_grad_(), 0.1)
    assert not kernels.fusable(q[:, :, :6], k, v, None, 0.1)                  # cross-attention shapes


def test_the_kernels_exponential_is_within_one_ulp_and_exactly_zero_below_the_float_range():
    lib = kernels._attention_library()
    x = torch.linspace(-87.3, 0.0, 8 * 50_000)
    y = torch.empty_like(x)
    lib.attn_exp(x.numel(), ctypes.c_void_p(x.data_ptr()), ctypes.c_void_p(y.data_ptr()))
    exact = torch.exp(x.double())
    ulp = (torch.nextafter(exact.float(), torch.tensor(float("inf"))) - exact.float()).double()
    assert ((y.double() - exact).abs() / ulp).max() <= 1.0
    edges = torch.tensor([-87.4, -100.0, -3e38, float("-inf"), float("nan"), 0.0, -0.0, -1e-30])
    out = torch.empty_like(edges)
    lib.attn_exp(8, ctypes.c_void_p(edges.data_ptr()), ctypes.c_void_p(out.data_ptr()))
    assert torch.equal(out[:4], torch.zeros(4)) and torch.isnan(out[4])
    assert torch.equal(out[5:], torch.ones(3))


@pytest.mark.parametrize("c_module,torch_module", [(lambda: kernels.TanhGELU(), lambda: nn.GELU(approximate="tanh")),
                                                    (lambda: kernels.QuickGELU(), lambda: kernels.QuickGELU(native=False))],
                         ids=["tanh-gelu", "quick-gelu"])
def test_the_c_gelus_compute_the_torch_formula_and_its_gradient(c_module, torch_module):
    torch.manual_seed(0)
    x = torch.cat([torch.randn(4001) * 4, torch.tensor([0.0, -0.0, 1e-20, -1e-20, 30.0, -30.0, 9.0, -9.0])])
    x.requires_grad_()
    grad = torch.randn_like(x)
    outs = []
    for module in (c_module(), torch_module()):
        x.grad = None
        y = module(x)
        y.backward(grad)
        outs.append((y.detach(), x.grad.clone()))
    (y_c, g_c), (y_t, g_t) = outs
    torch.testing.assert_close(y_c, y_t, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(g_c, g_t, rtol=1e-5, atol=1e-5)
    assert not torch.equal(y_t, x.detach())                   # the function is not the identity
    nan = c_module()(torch.tensor([float("nan")] * 9))
    assert torch.isnan(nan).all()


@pytest.mark.parametrize("source", kernels.LANE_SOURCES)
def test_c_lane_dropout_keeps_the_same_elements_to_the_bit_from_the_same_draws(source):
    x = torch.randn(37, 53, requires_grad=True)              # not a multiple of 4 or 8: the lanes' tail
    grad = torch.randn(37, 53)
    outs = []
    for native_ in (True, False):
        x.grad = None
        torch.manual_seed(5)
        y = kernels.LaneDropout(0.2, native=native_, source=source).train()(x)
        y.backward(grad)
        outs.append((y.detach(), x.grad.clone(), torch.rand(3)))
    for a, b in zip(*outs):
        assert torch.equal(a, b)
    kept = outs[0][0] != 0
    assert 0.7 < kept.float().mean() < 0.9
    torch.testing.assert_close(outs[0][0][kept], x.detach()[kept] / 0.8)


def test_cpu_torch_swaps_in_the_plain_torch_kernels_and_restores_the_body():
    from transformers import GPT2Config, GPT2Model

    body = GPT2Model(GPT2Config(n_layer=1, n_embd=16, n_head=2, activation_function="quick_gelu"))
    for native_, attention in ((True, kernels.ATTENTION), (False, kernels.ATTENTION_TORCH)):
        with kernels.swapped(body, "cpu" if native_ else "cpu-torch"):
            assert body.config._attn_implementation == attention
            act = body.h[0].mlp.act
            assert isinstance(act, kernels.QuickGELU) and act.native is native_
            assert all(m.native is native_ for m in body.modules() if isinstance(m, kernels.LaneDropout))
        assert type(body.h[0].mlp.act).__name__ == "QuickGELUActivation"


@pytest.mark.parametrize("source", kernels.LANE_SOURCES)
def test_cpu_torch_trains_without_calling_any_c_kernel(monkeypatch, source):
    from transformers import GPT2Config, GPT2Model

    body = GPT2Model(GPT2Config(n_layer=1, n_embd=16, n_head=2, activation_function="gelu_new")).train()
    x = torch.randn(3, 9, 16, requires_grad=True)
    outs = []
    for native_ in (True, False):
        if not native_:                                      # any C library asked for fails the test
            for name in ("_elementwise_library", "_attention_library"):
                monkeypatch.setattr(kernels, name, lambda: pytest.fail("a C kernel was called"))
        with kernels.swapped(body, "cpu" if native_ else "cpu-torch", lanes=source):
            torch.manual_seed(4)
            out = body(inputs_embeds=x).last_hidden_state
            out.sum().backward()
        outs.append(out.detach())
    torch.testing.assert_close(outs[1], outs[0], rtol=1e-5, atol=1e-5)   # the same draws, other kernels


@pytest.fixture
def fresh_native(monkeypatch, tmp_path):
    """A library folder of its own (under ``XDG_CACHE_HOME``) and no library loaded yet in this
    process (both caches cleared after)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    caches = (native.library, native._say_no_compiler, kernels._attention_library, kernels._elementwise_library)
    for cached in caches:
        cached.cache_clear()
    yield tmp_path
    for cached in caches:
        cached.cache_clear()


def test_the_library_is_compiled_once_into_the_cache_under_a_key_of_source_compiler_and_cpu(fresh_native):
    lib = native.library("attention")
    built = sorted(native.library_dir().glob("attention-*.so"))
    assert lib is not None and len(built) == 1
    assert built[0] == native.library_path("attention", native.compiler())
    assert sorted(p.name for p in native.library_dir().iterdir()) == sorted([built[0].name, native.record_path(built[0]).name])
    stamp = built[0].stat().st_mtime_ns
    native.library.cache_clear()
    assert native.library("attention") is not None
    assert built[0].stat().st_mtime_ns == stamp                              # loaded, not compiled again


@pytest.mark.parametrize("mode", [0o777, 0o720])
def test_a_library_folder_others_can_write_is_refused_before_a_library_in_it_is_loaded(fresh_native, caplog, mode):
    assert native.library("attention") is not None                            # compiled into a private folder
    folder = native.library_dir()
    folder.chmod(mode)                                                        # then opened to others
    native.library.cache_clear()
    with caplog.at_level(logging.WARNING, logger="dtcore.native"):
        assert native.library("attention") is None
    message = caplog.records[-1].getMessage()
    assert str(folder) in message and "writable by others" in message and f"chmod 700 {folder}" in message


def test_a_checkout_at_another_path_loads_the_library_another_compiled_from_the_same_sources(fresh_native,
                                                                                           monkeypatch):
    assert native.library("attention") is not None
    built = native.library_path("attention", native.compiler())
    stamp = built.stat().st_mtime_ns
    elsewhere = fresh_native / "other-checkout" / "csrc"
    shutil.copytree(native.SOURCES, elsewhere)
    monkeypatch.setattr(native, "SOURCES", elsewhere)
    native.library.cache_clear()
    assert native.library_path("attention", native.compiler()) == built and native.library("attention") is not None
    assert built.stat().st_mtime_ns == stamp                                 # loaded, not compiled again
    record = json.loads(native.record_path(built).read_text())
    record["compile"][1] = "-O0"                                             # another command: compiled again
    native.record_path(built).write_text(json.dumps(record))
    native.library.cache_clear()
    assert native.library("attention") is not None and built.stat().st_mtime_ns != stamp


def test_without_a_compiler_cpu_runs_refuse_to_train_cpu_torch_runs_train_and_it_is_said_once(fresh_native, monkeypatch, caplog):
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setenv("PATH", str(fresh_native))                            # no cc, gcc or clang on it
    _, (q, k, v) = _qkv(2, 4, 12, 8)
    with caplog.at_level(logging.WARNING, logger="dtcore.native"):
        assert not kernels.fusable(q, k, v, None, 0.0)
        assert not kernels.fusable(q, k, v, None, 0.0)
        assert kernels.c_kernels() == []                                      # the other library: not said again
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert "plain torch" in message and "DTCORE_NATIVE=0 turns the C kernels off" in message
    assert "silences" not in message                                          # kernels='cpu' still refuses to train
    out, _ = kernels.lane_attention(_Attention().eval(), q, k, v, None)
    reference, _ = kernels.torch_lane_attention(_Attention().eval(), q, k, v, None)
    assert torch.equal(out, reference)                                       # the torch path itself ran
    from tests.test_train import make_cfg, run

    with pytest.raises(RuntimeError, match="kernels='cpu' trains with the C kernels.*cpu-torch"):
        run(make_cfg(epochs=1, steps=1, kernels="cpu"))                       # its run id names the C kernels' bits
    assert run(make_cfg(epochs=1, steps=1, kernels="cpu-torch")).epochs[-1].step == 1
    assert not native.library_dir().exists() or not list(native.library_dir().glob("*.so"))


def test_a_source_that_does_not_compile_is_reported_with_the_compilers_message(fresh_native, monkeypatch, caplog):
    broken = fresh_native / "csrc"
    broken.mkdir()
    (broken / "attention.c").write_text("int broken(void) { return }\n")
    monkeypatch.setattr(native, "SOURCES", broken)
    with caplog.at_level(logging.WARNING, logger="dtcore.native"):
        assert native.library("attention") is None
    message = caplog.records[0].getMessage()
    assert "attention.c" in message and "error" in message and "plain torch" in message
    assert not list(native.library_dir().glob("*"))                          # no half-written library left


def test_dtcore_native_0_turns_the_c_kernels_off(fresh_native, monkeypatch):
    monkeypatch.setenv("DTCORE_NATIVE", "0")
    _, (q, k, v) = _qkv(2, 4, 12, 8)
    assert native.library("attention") is None and not kernels.fusable(q, k, v, None, 0.0)
    with pytest.raises(RuntimeError, match="DTCORE_NATIVE=0 turns them off; unset it, or train with kernels='cpu-torch'"):
        kernels.require_c_kernels()


def test_the_run_log_records_which_c_kernels_and_cpu_instruction_set_trained_it(tmp_path):
    import json

    from tests.test_train import make_cfg, run

    for kernels_, expected in (("cpu", ["attention", "elementwise"]), ("reference", [])):
        run(make_cfg(epochs=1, steps=2, kernels=kernels_), tmp_path / kernels_)
        log = json.loads((tmp_path / kernels_ / "log.json").read_text())
        assert log["c_kernels"] == expected
        # torch's products round by the instruction set they run on (AVX2 and AVX-512 differ)
        assert log["cpu_capability"] == torch.backends.cpu.get_cpu_capability() != ""
