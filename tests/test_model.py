"""DecisionTransformer, block replacement and activation capture (spec §3.2-3.7, §6.0), on tiny bodies."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from transformers import GPT2Config, GPT2Model

from dtcore.config import ModelConfig
from dtcore.samplers import Batch
from dtcore.model import (HOOKED_LAYERS, DecisionTransformer, action_loss, build_model,
                          capture_activations, layer_names, replace_block)

S, A = 5, 3
CFG = ModelConfig(backbone="random", state_dim=S, act_dim=A, n_layer=2, n_embd=16, n_head=2, seed=7)


def make_batch(B: int = 3, K: int = 4, seed: int = 0, pad: bool = True) -> Batch:
    """Random inputs in the sampler's layout; row 0 left-padded by 2 steps (pad values as run)."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(B, K)
    actions = torch.rand(B, K, A, generator=g) * 2 - 1
    if pad:
        mask[0, :2] = 0
        actions[0, :2] = -10.0
    return Batch(states=torch.randn(B, K, S, generator=g), actions=actions, rewards=torch.rand(B, K, 1, generator=g),
                 dones=torch.zeros(B, K, dtype=torch.long), rtg=torch.rand(B, K + 1, 1, generator=g) * 3,
                 timesteps=torch.randint(0, 1000, (B, K), generator=g), mask=mask)


def predict(model: DecisionTransformer, b: Batch) -> torch.Tensor:
    with torch.no_grad():
        return model(b.states, b.actions, b.rtg[:, :-1], b.timesteps, b.mask)


@pytest.fixture(scope="module")
def model() -> DecisionTransformer:
    return build_model(CFG).eval()


@pytest.fixture(scope="module")
def donor_dir(tmp_path_factory):
    """A small 'pretrained' GPT-2 (3 blocks, width 16, 4 heads, gelu_new) in HF format."""
    config = GPT2Config(n_layer=3, n_embd=16, n_head=4, vocab_size=5, bos_token_id=0, eos_token_id=0)
    torch.manual_seed(123)
    body = GPT2Model(config)
    path = tmp_path_factory.mktemp("donor")
    body.save_pretrained(path)
    return str(path)


def _body_io(model: DecisionTransformer, b: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs_embeds, last_hidden_state) of the body during one forward."""
    seen = {}

    def hook(_module, _args, kwargs, output):
        seen["x"], seen["h"] = kwargs["inputs_embeds"], output.last_hidden_state

    handle = model.transformer.register_forward_hook(hook, with_kwargs=True)
    try:
        predict(model, b)
    finally:
        handle.remove()
    return seen["x"], seen["h"]


def test_forward_returns_one_bounded_action_per_step(model):
    b = make_batch(B=3, K=4)
    preds = predict(model, b)
    assert preds.shape == (3, 4, A)
    assert preds.abs().max() <= 1.0


def test_forward_rejects_inputs_whose_shapes_disagree(model):
    b = make_batch()
    with pytest.raises(ValueError, match=r"returns_to_go must be \[3, 4, 1\]"):
        model(b.states, b.actions, b.rtg, b.timesteps, b.mask)  # K+1 returns-to-go
    with pytest.raises(ValueError, match=r"states must be \[B, K, 5\]"):
        model(b.states[..., :4], b.actions, b.rtg[:, :-1], b.timesteps, b.mask)


@pytest.mark.parametrize("t", [0, 1, 2])
def test_outputs_up_to_step_t_do_not_change_when_later_inputs_change(model, t):
    b = make_batch(pad=False)
    changed = dataclasses.replace(b, states=b.states.clone(), actions=b.actions.clone(), rtg=b.rtg.clone(),
                                  timesteps=b.timesteps.clone())
    changed.states[:, t + 1:] += 3.0
    changed.actions[:, t + 1:] *= -1
    changed.rtg[:, t + 1:] += 5.0
    changed.timesteps[:, t + 1:] = 999 - changed.timesteps[:, t + 1:]
    before, after = predict(model, b), predict(model, changed)
    torch.testing.assert_close(after[:, : t + 1], before[:, : t + 1], rtol=0, atol=1e-6)
    assert not torch.allclose(after[:, t + 1:], before[:, t + 1:])


@pytest.mark.parametrize("t", [0, 2, 3])
def test_the_action_prediction_at_step_t_does_not_depend_on_a_t(model, t):
    b = make_batch(pad=False)
    changed = dataclasses.replace(b, actions=b.actions.clone())
    changed.actions[:, t] = -changed.actions[:, t] + 0.5
    before, after = predict(model, b), predict(model, changed)
    torch.testing.assert_close(after[:, : t + 1], before[:, : t + 1], rtol=0, atol=1e-6)
    if t + 1 < b.states.shape[1]:
        assert not torch.allclose(after[:, t + 1:], before[:, t + 1:])  # a_t is seen by later steps


def test_outputs_do_not_depend_on_gpt2_position_embeddings():
    model = build_model(CFG).eval()
    b = make_batch()
    before = predict(model, b)
    wpe = model.transformer.wpe.weight
    assert not wpe.requires_grad and not model.transformer.wte.weight.requires_grad
    with torch.no_grad():
        wpe.copy_(torch.randn_like(wpe) * 100)
    assert torch.equal(predict(model, b), before)
    assert "transformer.wpe.weight" in model.state_dict()


def test_the_tied_head_reads_the_state_token_through_the_action_embedding_without_bias(model):
    b = make_batch()
    _, h = _body_io(model, b)
    B, K = b.mask.shape
    state_tokens = h.reshape(B, K, 3, -1)[:, :, 1]
    expected = torch.tanh(state_tokens @ model.embed_action.weight)
    torch.testing.assert_close(predict(model, b), expected, rtol=0, atol=1e-6)
    wrapper = {n for n, _ in model.named_parameters() if not n.startswith("transformer.")}
    assert wrapper == {"embed_timestep.weight", "embed_return.weight", "embed_return.bias", "embed_state.weight",
                       "embed_state.bias", "embed_action.weight", "embed_action.bias", "embed_ln.weight",
                       "embed_ln.bias"}
    assert model.embed_timestep.weight.shape == (1000, 16)


@pytest.mark.parametrize("order", ["after_ln", "before_ln"])
def test_tokens_are_r_s_a_per_step_with_the_time_embedding_on_the_chosen_side_of_the_layernorm(order):
    model = build_model(dataclasses.replace(CFG, time_embedding=order)).eval()
    b = make_batch()
    x, _ = _body_io(model, b)
    m = model
    with torch.no_grad():
        t = m.embed_timestep(b.timesteps)
        r, s, a = m.embed_return(b.rtg[:, :-1]), m.embed_state(b.states), m.embed_action(b.actions)
        if order == "before_ln":
            r, s, a = r + t, s + t, a + t
        tokens = [m.embed_ln(e) for e in (r, s, a)]
        if order == "after_ln":
            tokens = [e + t for e in tokens]
    for k in range(b.mask.shape[1]):
        for j in range(3):
            torch.testing.assert_close(x[:, 3 * k + j], tokens[j][:, k], rtol=0, atol=1e-6)


def _reference_body(body: GPT2Model, x: torch.Tensor, token_mask: torch.Tensor) -> torch.Tensor:
    """Spec §3.2 written out: pre-LN blocks, causal logits replaced by -1e4, padding -10000, no wpe."""
    B, T, d = x.shape
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    pad = (1.0 - token_mask)[:, None, None, :] * -10000.0
    h = x
    for blk in body.h:
        n = F.layer_norm(h, (d,), blk.ln_1.weight, blk.ln_1.bias, blk.ln_1.eps)
        H = blk.attn.num_heads
        q, k, v = ((t.reshape(B, T, H, d // H).transpose(1, 2))
                   for t in (n @ blk.attn.c_attn.weight + blk.attn.c_attn.bias).split(d, dim=-1))
        logits = torch.where(causal, q @ k.transpose(-1, -2) / (d // H) ** 0.5, torch.tensor(-1e4)) + pad
        att = (logits.softmax(-1) @ v).transpose(1, 2).reshape(B, T, d)
        h = h + att @ blk.attn.c_proj.weight + blk.attn.c_proj.bias
        n = F.layer_norm(h, (d,), blk.ln_2.weight, blk.ln_2.bias, blk.ln_2.eps)
        h = h + blk.mlp.act(n @ blk.mlp.c_fc.weight + blk.mlp.c_fc.bias) @ blk.mlp.c_proj.weight + blk.mlp.c_proj.bias
    return F.layer_norm(h, (d,), body.ln_f.weight, body.ln_f.bias, body.ln_f.eps)


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_our_body_equals_hf_gpt2model_and_the_written_out_spec_on_the_same_weights(attn, donor_dir):
    cfg = dataclasses.replace(CFG, backbone="gpt2", weights=donor_dir, attn_implementation=attn)
    model = build_model(cfg).eval()
    b = make_batch(B=3, K=4)
    x, h = _body_io(model, b)
    token_mask = b.mask.repeat_interleave(3, dim=1)
    real = token_mask.bool()
    reference = GPT2Model.from_pretrained(donor_dir, attn_implementation="eager").eval()
    with torch.no_grad():
        reference.wpe.weight.zero_()  # the published body never adds wpe
        hf = reference(inputs_embeds=x, attention_mask=token_mask).last_hidden_state
        spec = _reference_body(model.transformer, x, token_mask)
    torch.testing.assert_close(h[real], hf[real], rtol=0, atol=2e-5)
    torch.testing.assert_close(h[real], spec[real], rtol=0, atol=2e-5)
    assert torch.isfinite(h).all()  # padded queries stay finite too


def test_the_body_builds_no_key_value_cache_that_nothing_reads(model):
    """GPT-2's config asks for a key/value cache by default; the forward turns it off, so no layer
    copies its keys and values into one (docs/benchmarks.md: up to 8 % of a K = 1 step, 12-16 % of
    an evaluation forward)."""
    caches = []
    handle = model.transformer.register_forward_hook(lambda _m, _i, out: caches.append(out.past_key_values))
    try:
        model.train()
        action_loss(model, make_batch())
        model.eval()
        predict(model, make_batch())
    finally:
        handle.remove()
        model.eval()
    assert model.transformer.config.use_cache and caches == [None, None]


def test_same_seed_gives_a_bit_identical_model_and_another_seed_does_not():
    a, b = build_model(CFG).state_dict(), build_model(CFG).state_dict()
    c = build_model(dataclasses.replace(CFG, seed=8)).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["transformer.h.0.attn.c_attn.weight"], c["transformer.h.0.attn.c_attn.weight"])
    assert not torch.equal(a["embed_state.weight"], c["embed_state.weight"])


def test_pinned_outputs_of_a_small_model_do_not_drift():
    """Regression guard (torch 2.13 / transformers 5.23): seed 7, the fixed batch of make_batch()."""
    preds = predict(build_model(CFG).eval(), make_batch())
    pinned = torch.tensor([-0.5109351, 0.9460786, -0.7795500, -0.5841379])
    torch.testing.assert_close(preds[1, :, 0], pinned, rtol=0, atol=1e-5)


@pytest.mark.parametrize("index", [0, 2])
def test_block_replacement_puts_the_whole_gpt2_block_into_the_random_model(index, donor_dir):
    cfg = ModelConfig(backbone="random", state_dim=S, act_dim=A, n_layer=3, n_embd=16, n_head=1, seed=3,
                      block_index=index, block_donor=donor_dir)
    model = build_model(cfg)
    plain = build_model(dataclasses.replace(cfg, block_index=None, block_donor=None)).state_dict()
    donor = build_model(dataclasses.replace(cfg, backbone="gpt2", weights=donor_dir, block_index=None,
                                            block_donor=None)).state_dict()
    for key, tensor in model.state_dict().items():
        source = donor if key.startswith(f"transformer.h.{index}.") else plain
        assert torch.equal(tensor, source[key]), key
    block = model.transformer.h[index]
    assert block.attn.head_dim == 4 and type(block.mlp.act).__name__ == "NewGELUActivation"
    others = [model.transformer.h[i] for i in range(3) if i != index]
    assert all(o.attn.head_dim == 16 and isinstance(o.mlp.act, torch.nn.ReLU) for o in others)
    acts = capture_activations(model, make_batch(), attention=True)
    assert [a.shape[1] for a in acts.attentions] == [4 if i == index else 1 for i in range(3)]
    loss = action_loss(model.train(), make_batch())
    loss.backward()
    assert block.attn.c_attn.weight.grad is not None


def test_replace_block_rejects_an_index_outside_the_body(model):
    with pytest.raises(ValueError, match=r"index must be an int in \[0, 2\)"):
        replace_block(model, build_model(CFG), 2)


@pytest.mark.parametrize("n_layer,n_hooked,n_sets", [(12, 108, 144), (24, 216, 288)])
def test_hooked_layers_and_parameter_sets_count_as_in_the_paper(n_layer, n_hooked, n_sets):
    cfg = dataclasses.replace(CFG, n_layer=n_layer, n_embd=16, n_head=1)
    model = build_model(cfg)
    b = make_batch(B=2, K=3)
    acts = capture_activations(model, b)
    assert list(acts) == layer_names(n_layer) and len(acts) == n_hooked
    assert list(acts)[:9] == [f"0.{n}" for n in HOOKED_LAYERS]
    widths = {"attn.c_attn": 48, "mlp.c_fc": 64, "mlp.act": 64}
    for name, value in acts.items():
        assert value.shape == (2, 9, widths.get(name.split(".", 1)[1], 16)), name
    # eval mode: the dropout layers pass their input through
    assert torch.equal(acts["5.attn.resid_dropout"], acts["5.attn.c_proj"])
    assert torch.equal(acts["5.mlp.dropout"], acts["5.mlp.c_proj"])
    assert acts.attentions is None and model.training  # mode restored
    sets = [n for n, _ in model.transformer.h.named_parameters()]
    assert len(sets) == n_sets
    assert sets[:12] == ["0.ln_1.weight", "0.ln_1.bias", "0.attn.c_attn.weight", "0.attn.c_attn.bias",
                         "0.attn.c_proj.weight", "0.attn.c_proj.bias", "0.ln_2.weight", "0.ln_2.bias",
                         "0.mlp.c_fc.weight", "0.mlp.c_fc.bias", "0.mlp.c_proj.weight", "0.mlp.c_proj.bias"]


def test_captured_activations_can_be_narrowed_and_unknown_names_are_rejected(model):
    acts = capture_activations(model, make_batch(), layers=["1.mlp.dropout", "0.ln_1"])
    assert list(acts) == ["0.ln_1", "1.mlp.dropout"]
    with pytest.raises(ValueError, match="unknown names.*'7.ln_1'"):
        capture_activations(model, make_batch(), layers=["7.ln_1"])


def test_captured_attention_is_the_real_causal_padding_masked_per_head_probability(model):
    b = make_batch(B=3, K=4)
    before = predict(model, b)
    acts = capture_activations(model, b, layers=[], attention=True)
    assert model.transformer.config._attn_implementation == "sdpa"  # restored
    assert len(acts.attentions) == 2
    T = 12
    for att in acts.attentions:
        assert att.shape == (3, 2, T, T)
        torch.testing.assert_close(att.sum(-1), torch.ones(3, 2, T), rtol=0, atol=1e-5)
        assert torch.equal(att.triu(1), torch.zeros_like(att))              # causal
        assert att[0, :, 6:, :6].abs().max() == 0                            # real queries skip padding
    assert torch.equal(predict(model, b), before)


def test_action_loss_is_the_mean_squared_error_over_real_steps_only(model):
    b = make_batch()
    preds = predict(model, b)
    real = b.mask.reshape(-1) > 0
    expected = ((preds.reshape(-1, A)[real] - b.actions.reshape(-1, A)[real]) ** 2).mean()
    with torch.no_grad():
        loss = action_loss(model, b)
    torch.testing.assert_close(loss, expected, rtol=1e-6, atol=0)
    assert loss < 10  # the -10 action padding (error ~100) is not in it


def test_block_replacement_needs_the_random_body_and_a_donor():
    with pytest.raises(ValueError, match="block replacement needs backbone 'random'"):
        build_model(dataclasses.replace(CFG, block_index=0))
