"""build_backbone: the three bodies as the paper's code built them (spec §3.1), on small local weights."""

from __future__ import annotations

import pytest
import torch
from transformers import (GPT2Config, GPT2LMHeadModel, GPT2Model, ImageGPTConfig,
                          ImageGPTForCausalImageModeling)

from dtcore.backbones import build_backbone, imagegpt_to_gpt2_state_dict


def _perturb(model: torch.nn.Module, seed: int) -> None:
    """Random values in every tensor, so that a copied tensor cannot match by accident."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1 + 0.05)


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory):
    """A small GPT-2 (4 heads, gelu_new, its own dropout 0.05) saved in HF format."""
    config = GPT2Config(n_layer=2, n_embd=16, n_head=4, n_positions=32, vocab_size=11, bos_token_id=0,
                        eos_token_id=0, activation_function="gelu_new", resid_pdrop=0.05, attn_pdrop=0.05)
    model = GPT2Model(config)
    _perturb(model, 0)
    path = tmp_path_factory.mktemp("gpt2")
    model.save_pretrained(path)
    return path, model.state_dict()


@pytest.fixture(scope="module")
def igpt_dir(tmp_path_factory):
    """A small ImageGPT with a causal-image-modelling head, saved as the hub's checkpoint is."""
    config = ImageGPTConfig(n_layer=3, n_embd=16, n_head=2, n_positions=20, vocab_size=17)
    model = ImageGPTForCausalImageModeling(config)
    _perturb(model, 1)
    path = tmp_path_factory.mktemp("igpt")
    model.save_pretrained(path)
    return path, model


def test_random_body_has_the_requested_sizes_relu_paper_dropout_and_gpt2_initialisation():
    torch.manual_seed(0)
    body = build_backbone("random", n_layer=2, n_embd=64, n_head=1)
    c = body.config
    assert (c.n_layer, c.n_embd, c.n_head, c.n_inner, c.activation_function) == (2, 64, 1, 256, "relu")
    assert (c.embd_pdrop, c.attn_pdrop, c.resid_pdrop, c.vocab_size) == (0.1, 0.1, 0.2, 1)
    assert isinstance(body.h[0].mlp.act, torch.nn.ReLU)
    assert body.training
    block = body.h[0]
    assert torch.equal(block.ln_1.weight, torch.ones(64)) and torch.equal(block.ln_1.bias, torch.zeros(64))
    assert torch.equal(block.attn.c_attn.bias, torch.zeros(192))
    assert block.attn.c_attn.weight.std().item() == pytest.approx(0.02, rel=0.1)
    # c_proj is re-drawn with std 0.02 / sqrt(2 * n_layer) = 0.01 (spec §3.2)
    assert block.mlp.c_proj.weight.std().item() == pytest.approx(0.01, rel=0.1)


def test_random_body_rejects_a_width_not_divisible_by_the_heads():
    with pytest.raises(ValueError, match="n_embd=30 must be divisible by n_head=4"):
        build_backbone("random", n_layer=1, n_embd=30, n_head=4)


def test_gpt2_body_keeps_its_weights_heads_and_activation_with_the_paper_dropout(gpt2_dir):
    path, saved = gpt2_dir
    body = build_backbone("gpt2", weights=path, n_head=1, activation="relu")  # sizes ignored: as run
    c = body.config
    assert (c.n_layer, c.n_embd, c.n_head, c.activation_function) == (2, 16, 4, "gelu_new")
    assert (c.embd_pdrop, c.attn_pdrop, c.resid_pdrop) == (0.1, 0.1, 0.2)
    assert body.h[1].attn.attn_dropout.p == 0.1 and body.h[1].mlp.dropout.p == 0.2
    assert body.training
    state = body.state_dict()
    assert set(state) == set(saved)
    for key, tensor in saved.items():
        assert torch.equal(state[key], tensor), key


def test_gpt2_body_loads_from_a_language_model_head_directory(tmp_path, gpt2_dir):
    lm = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=8, n_head=2, vocab_size=7, bos_token_id=0, eos_token_id=0))
    _perturb(lm, 2)
    lm.save_pretrained(tmp_path)
    body = build_backbone("gpt2", weights=str(tmp_path))
    assert torch.equal(body.h[0].mlp.c_fc.weight, lm.transformer.h[0].mlp.c_fc.weight)


def test_igpt_weights_are_carried_into_gpt2_tensor_for_tensor_with_new_zero_layernorm_biases(igpt_dir):
    path, source = igpt_dir
    body = build_backbone("igpt", weights=path)
    c = body.config
    assert isinstance(body, GPT2Model)
    assert (c.n_layer, c.n_embd, c.n_head, c.activation_function) == (3, 16, 2, "quick_gelu")
    assert (c.embd_pdrop, c.attn_pdrop, c.resid_pdrop) == (0.1, 0.1, 0.2)
    assert type(body.h[0].mlp.act).__name__ == "QuickGELUActivation"
    state = body.state_dict()
    src = {k.removeprefix("transformer."): v for k, v in source.state_dict().items() if k.startswith("transformer.")}
    assert len(src) == 3 + 3 * 10  # wte, wpe, ln_f.weight + per block: ln_1/ln_2 weights, 4 Conv1D x (w, b)
    for key, tensor in src.items():
        assert torch.equal(state[key], tensor), key
    new = [k for k in state if k not in src]
    assert sorted(new) == sorted([f"h.{i}.{ln}.bias" for i in range(3) for ln in ("ln_1", "ln_2")] + ["ln_f.bias"])
    for key in new:
        assert torch.equal(state[key], torch.zeros(16)), key


def test_igpt_carried_into_gpt2_is_not_the_function_imagegpt_computed(igpt_dir):
    """RMS norm without centring (ImageGPT) vs mean-centring LayerNorm (GPT-2): spec §8.5."""
    path, source = igpt_dir
    body = build_backbone("igpt", weights=path).eval()
    x = torch.randn(2, 5, 16, generator=torch.Generator().manual_seed(0)) + 1.0
    ours = body(inputs_embeds=x).last_hidden_state
    theirs = source.transformer.eval()(inputs_embeds=x).last_hidden_state
    assert (ours - theirs).abs().max().item() > 1e-2


def test_imagegpt_state_dict_mapping_strips_the_prefix_and_drops_the_image_head():
    state = {"transformer.h.0.ln_1.weight": torch.ones(2), "transformer.wte.weight": torch.zeros(3, 2),
             "lm_head.weight": torch.zeros(2, 2), "h.0.attn.bias": torch.ones(1, 1, 2, 2)}
    assert sorted(imagegpt_to_gpt2_state_dict(state)) == ["h.0.ln_1.weight", "wte.weight"]


def test_a_missing_weights_directory_is_named_with_the_fix(tmp_path):
    missing = tmp_path / "no" / "such" / "dir"
    with pytest.raises(FileNotFoundError, match=r"no weights directory at .*no/such/dir.*save_pretrained"):
        build_backbone("gpt2", weights=missing)


def test_an_unreachable_hub_name_fails_at_once_with_the_fix_and_no_hub_traceback():
    with pytest.raises(FileNotFoundError, match=r"dtclaims-no-such-org/no-such-model.*Fix: put an HF-format") as info:
        build_backbone("igpt", weights="dtclaims-no-such-org/no-such-model")
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_pretrained_backbones_without_weights_or_of_the_wrong_kind_are_rejected(igpt_dir):
    with pytest.raises(ValueError, match="needs weights"):
        build_backbone("gpt2")
    with pytest.raises(ValueError, match="model_type 'imagegpt'.*needs 'gpt2'"):
        build_backbone("gpt2", weights=igpt_dir[0])
    with pytest.raises(ValueError, match="unknown backbone 'bert'"):
        build_backbone("bert")
    with pytest.raises(ValueError, match="attn_implementation"):
        build_backbone("random", n_layer=1, n_embd=8, attn_implementation="flash")


def test_every_registered_body_has_exactly_one_builder():
    from dtcore.backbones import BUILDERS
    from dtcore.bodies import BODIES

    assert set(BUILDERS) == set(BODIES)
    assert all(callable(build) for build in BUILDERS.values())


def test_a_new_body_is_one_registry_entry_and_its_builder(monkeypatch, gpt2_dir):
    path = str(gpt2_dir[0])
    """build_backbone finds a body's builder through BUILDERS, by the body's name: a body
    registered in dtcore.bodies with a builder in BUILDERS builds, with no other change."""
    import dtcore.backbones as backbones
    import dtcore.bodies as bodies

    calls = []

    def code_body(weights, dropout):
        calls.append((weights, dropout))
        return backbones.gpt2_body(weights, dropout)

    monkeypatch.setitem(bodies.BODIES, "code", bodies.Body("code", "code", ("K20",), "a code-pretrained GPT-2"))
    monkeypatch.setitem(backbones.BUILDERS, "code", code_body)
    body = build_backbone("code", weights=path, resid_pdrop=0.3)
    assert calls == [(path, {"embd_pdrop": 0.1, "attn_pdrop": 0.1, "resid_pdrop": 0.3})]
    assert isinstance(body, GPT2Model) and body.config.resid_pdrop == 0.3
    with pytest.raises(ValueError, match="'code' needs weights"):
        build_backbone("code")
