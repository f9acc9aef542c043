"""dtcore.kernels: the CPU kernels compute the reference functions; only their random draws differ."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn
from transformers.activations import NewGELUActivation

from dtcore import kernels
from dtcore.checkpoints import load as load_checkpoint
from dtcore.model import build_model
from dtcore.train import make_optimizer, train
from tests.test_train import DATA, assert_same_bits, make_cfg, optimizer_tensors, run


def test_drop_probability_is_the_nominal_one_to_within_half_a_lane_step():
    for p in (0.0, 0.1, 0.2, 0.5, 1.0):
        assert abs(kernels.effective_p(p) - p) <= 0.5 / kernels.LANE_VALUES
    assert kernels.drop_count(0.1) == 6554 and kernels.drop_count(0.2) == 13107
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        kernels.drop_count(1.5)


@pytest.mark.parametrize("p", [0.1, 0.2, 0.5])
@pytest.mark.parametrize("source", kernels.LANE_SOURCES)
def test_every_lane_of_a_draw_drops_at_the_effective_rate(p, source):
    torch.manual_seed(0)
    n = 400_000                                        # 100 000 words of four lanes
    dropped = ~kernels.keep_mask((n,), p, source=source)
    q = kernels.effective_p(p)
    sigma = (q * (1 - q) / (n // 4)) ** 0.5
    for lane in range(4):                              # a lane stuck at one value would show here
        assert abs(dropped[lane::4].float().mean().item() - q) < 5 * sigma
    # neighbouring elements are independent: P(both dropped) = q^2
    pairs = (dropped[0::2] & dropped[1::2]).float().mean().item()
    assert abs(pairs - q * q) < 5 * (q * q * (1 - q * q) / (n // 2)) ** 0.5


@pytest.mark.parametrize("source", kernels.LANE_SOURCES)
def test_masks_come_from_torchs_seeded_generator(source):
    torch.manual_seed(3)
    a = kernels.keep_mask((7, 11), 0.3, source=source)
    b = kernels.keep_mask((7, 11), 0.3, source=source)
    torch.manual_seed(3)
    assert torch.equal(kernels.keep_mask((7, 11), 0.3, source=source), a)
    assert not torch.equal(a, b)
    with pytest.raises(ValueError, match="lane source must be one of"):
        kernels.keep_mask((7, 11), 0.3, source="philox")


def test_splitmix64_lanes_are_the_published_stream_seeded_by_one_draw_of_torchs_generator(monkeypatch):
    words = kernels.splitmix64_words(1234567, torch.empty(3, dtype=torch.int64))
    # SplitMix64's published test vector for the seed 1234567
    assert [w % (1 << 64) for w in words.tolist()] == [6457827717110365317, 3203168211198807973,
                                                       9817491932198370423]
    torch.manual_seed(8)
    key = int(torch.empty((), dtype=torch.int64).random_(-(1 << 63), None))
    after_one_draw = torch.rand(3)
    torch.manual_seed(8)
    lanes = kernels.draw_lanes(4001, source="splitmix64")            # 1001 words, the last one cut
    assert torch.equal(torch.rand(3), after_one_draw)                 # the generator moved by one word
    expected = kernels.splitmix64_words(key, torch.empty(1001, dtype=torch.int64)).view(torch.int16)[:4001]
    assert torch.equal(lanes, expected)
    for key in (-(1 << 63), -5, 0, (1 << 63) - 1):                    # the C fill and the torch arithmetic agree
        c_form = kernels.splitmix64_words(key, torch.empty(999, dtype=torch.int64))
        monkeypatch.setattr(kernels, "_elementwise_library", lambda: None)
        torch_form = kernels.splitmix64_words(key, torch.empty(999, dtype=torch.int64))
        monkeypatch.undo()
        assert torch.equal(c_form, torch_form), key


def test_lane_dropout_zeroes_or_scales_each_element_and_its_gradient_alike():
    x = torch.randn(1000, requires_grad=True)
    torch.manual_seed(0)
    y = kernels.lane_dropout(x, 0.2, training=True)
    kept = y != 0
    assert 0.7 < kept.float().mean() < 0.9
    torch.testing.assert_close(y[kept], x[kept] / 0.8)
    y.sum().backward()
    torch.testing.assert_close(x.grad, kept.float() / 0.8)
    assert kernels.lane_dropout(x, 0.2, training=False) is x
    assert torch.equal(kernels.lane_dropout(x, 1.0, training=True), torch.zeros(1000))


def bodies():
    """Models whose bodies have each activation the bodies use: relu, gelu_new, quick_gelu."""
    out = {}
    for act in ("relu", "gelu_new", "quick_gelu"):
        cfg = make_cfg(backbone="random")
        cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, n_layer=2, n_head=2, activation=act))
        out[act] = build_model(cfg.model)
    return out


@pytest.mark.parametrize("kind", ["cpu", "cpu-torch", "builtin"])
@pytest.mark.parametrize("activation", ["relu", "gelu_new", "quick_gelu"])
def test_in_eval_mode_the_cpu_and_builtin_kernels_compute_the_reference_function(activation, kind):
    model = bodies()[activation].eval()
    batch = _batch()
    with torch.no_grad():
        reference = model(*batch)
        with kernels.swapped(model.transformer, kind):
            fast = model(*batch)
    torch.testing.assert_close(fast, reference, rtol=1e-5, atol=1e-6)
    assert not torch.equal(reference, torch.zeros_like(reference))


def test_the_swap_replaces_dropout_attention_and_gelu_new_and_restores_them_even_after_an_error():
    model = bodies()["gelu_new"]
    body = model.transformer
    before = {name: module for name, module in body.named_modules()}
    with pytest.raises(RuntimeError, match="inside"):
        with kernels.swapped(body, "cpu"):
            swapped = dict(body.named_modules())
            assert body.config._attn_implementation == kernels.ATTENTION
            assert swapped.keys() == before.keys()    # the same names: hooks by name still find them
            assert isinstance(swapped["h.0.mlp.act"], nn.GELU)
            assert all(type(m) is kernels.LaneDropout for n, m in swapped.items() if isinstance(before[n], nn.Dropout))
            raise RuntimeError("inside")
    assert dict(body.named_modules()) == before       # the very same module objects
    assert isinstance(body.h[0].mlp.act, NewGELUActivation)
    assert body.config._attn_implementation == "sdpa"
    with pytest.raises(ValueError, match="kernels must be one of"):
        with kernels.swapped(body, "fast"):
            pass


def test_the_swap_gives_the_lane_source_to_every_dropout_and_attention_and_takes_it_back():
    body = bodies()["gelu_new"].transformer
    attentions = [m for m in body.modules() if type(m).__name__ == "GPT2Attention"]
    assert len(attentions) == 2
    with kernels.swapped(body, "cpu", lanes="splitmix64"):
        assert all(kernels.lane_source(m) == "splitmix64" for m in attentions)
        assert all(m.source == "splitmix64" for m in body.modules() if isinstance(m, kernels.LaneDropout))
    assert all(kernels.LANE_SOURCE_ATTR not in vars(m) for m in body.modules())
    with pytest.raises(ValueError, match="lanes must be one of"):
        with kernels.swapped(body, "cpu", lanes="philox"):
            pass
    with pytest.raises(ValueError, match="applies to the cpu kernels only"):
        with kernels.swapped(body, "reference", lanes="splitmix64"):
            pass


def test_training_with_the_cpu_kernels_uses_fused_adamw_resumes_to_the_same_bits_and_restores_the_body(tmp_path):
    cfg = make_cfg(epochs=3, steps=4, kernels="cpu")
    model = build_model(cfg.model)
    assert make_optimizer(model, cfg).defaults["fused"] is True
    assert not make_optimizer(model, make_cfg()).defaults["fused"]
    full = run(cfg, tmp_path / "full")
    last = load_checkpoint(full.checkpoints[3])
    assert last["config"]["train"]["kernels"] == "cpu"
    run(cfg, tmp_path / "cut", until_epoch=2)
    resumed = load_checkpoint(run(cfg, tmp_path / "cut").checkpoints[3])
    assert_same_bits(resumed["model"], last["model"])
    assert_same_bits(optimizer_tensors(resumed), optimizer_tensors(last))
    reference = load_checkpoint(run(make_cfg(epochs=3, steps=4), tmp_path / "ref").checkpoints[3])
    assert not torch.equal(reference["model"]["embed_state.weight"], last["model"]["embed_state.weight"])
    from dtcore.train import train

    train(model, DATA, make_cfg(epochs=1, steps=2, kernels="cpu"), progress=False)
    assert not any(isinstance(m, kernels.LaneDropout) for m in model.modules())
    with pytest.raises(ValueError, match="cfg.train.kernels must be one of"):
        run(make_cfg(epochs=1, steps=1, kernels="gpu"))


def test_training_on_splitmix64_lanes_repeats_to_the_bit_and_differs_from_torch_lanes(tmp_path):
    cfg = make_cfg(epochs=2, steps=4, kernels="cpu", lanes="splitmix64")
    a = load_checkpoint(run(cfg, tmp_path / "a").checkpoints[2])
    b = load_checkpoint(run(cfg, tmp_path / "b").checkpoints[2])
    assert_same_bits(a["model"], b["model"])
    assert a["config"]["train"]["lanes"] == "splitmix64"
    torch_lanes = load_checkpoint(run(make_cfg(epochs=2, steps=4, kernels="cpu"), tmp_path / "t").checkpoints[2])
    assert not torch.equal(torch_lanes["model"]["embed_state.weight"], a["model"]["embed_state.weight"])
    with pytest.raises(ValueError, match="cfg.train.lanes='splitmix64' is where the cpu kernels"):
        run(make_cfg(epochs=1, steps=1, lanes="splitmix64"))
    with pytest.raises(ValueError, match="cfg.train.lanes must be one of"):
        run(make_cfg(epochs=1, steps=1, kernels="cpu", lanes="philox"))


def _batch():
    torch.manual_seed(1)
    B, K = 3, 4
    cfg = make_cfg()
    states = torch.randn(B, K, cfg.model.state_dim)
    actions = torch.randn(B, K, cfg.model.act_dim).clamp(-1, 1)
    rtg = torch.randn(B, K, 1)
    timesteps = torch.arange(K).repeat(B, 1)
    mask = torch.ones(B, K)
    mask[0, :2] = 0                                     # left padding, as the sampler pads
    return states, actions, rtg, timesteps, mask


def test_the_builtin_kernels_swap_in_torchs_tanh_gelu_and_eager_attention_keep_torchs_dropout_and_restore():
    body = bodies()["gelu_new"].transformer
    before = dict(body.named_modules())
    for attention in ("eager", "sdpa"):
        with kernels.swapped(body, "builtin", attention=attention):
            swapped = dict(body.named_modules())
            assert body.config._attn_implementation == attention
            assert swapped.keys() == before.keys()
            assert type(swapped["h.0.mlp.act"]).__name__ == "GELUTanh"       # gelu_pytorch_tanh
            assert all(swapped[n] is m for n, m in before.items() if isinstance(m, nn.Dropout))
        assert dict(body.named_modules()) == before and body.config._attn_implementation == "sdpa"
    with pytest.raises(ValueError, match="applies to the cpu kernels only"):
        with kernels.swapped(body, "builtin", lanes="splitmix64"):
            pass


def test_training_on_the_builtin_kernels_uses_fused_adamw_repeats_to_the_bit_and_restores_the_body(tmp_path):
    cfg = make_cfg(epochs=2, steps=3, kernels="builtin", backbone="random")
    model = build_model(cfg.model)
    assert make_optimizer(model, cfg).defaults["fused"] is True
    a = load_checkpoint(run(cfg, tmp_path / "a").checkpoints[2])
    b = load_checkpoint(run(cfg, tmp_path / "b").checkpoints[2])
    assert_same_bits(a["model"], b["model"])
    reference = load_checkpoint(run(make_cfg(epochs=2, steps=3), tmp_path / "r").checkpoints[2])
    assert not torch.equal(reference["model"]["embed_state.weight"], a["model"]["embed_state.weight"])   # fused AdamW, eager
    train(model, DATA, cfg, progress=False)
    assert model.transformer.config._attn_implementation == "sdpa"
