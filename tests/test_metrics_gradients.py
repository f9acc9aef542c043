"""Per-sample gradients and gradient confusion (dtcore.metrics.gradients).

The torch.func path is compared with the published loop (one batch-1 backward pass per sample,
``clip_grad_norm_`` over all parameters, read-out of the ``transformer.h`` gradients) written out
here with ``.backward()`` on a copy of the model. Dropout masks differ between the two paths, so
the equality is tested with ``train_mode=False`` (dropout off); with dropout on only the
properties are tested.
"""

from __future__ import annotations

import copy
import dataclasses
import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn
from transformers import GPT2Config, GPT2Model

from dtcore.samplers import Batch
from dtcore.metrics.gradients import (
    cosine_matrix,
    gradient_confusion,
    mean_gradient_norms,
    norm_ratio,
    parameter_columns,
    per_parameter_grad_norms,
    per_sample_gradients,
    per_sample_gradients_loop,
)
from tests.strategies import gradient_rows, seeds

S, A, K = 3, 2, 4


class TinyDT(nn.Module):
    """A Decision-Transformer-shaped wrapper around a small GPT2Model (tokens R̂, s, a per step)."""

    def __init__(self, n_layer: int = 2, n_embd: int = 16, dropout: float = 0.1) -> None:
        super().__init__()
        cfg = GPT2Config(vocab_size=1, n_embd=n_embd, n_layer=n_layer, n_head=2, n_positions=3 * K,
                         resid_pdrop=dropout, embd_pdrop=dropout, attn_pdrop=dropout,
                         bos_token_id=0, eos_token_id=0, attn_implementation="eager")
        self.transformer = GPT2Model(cfg)
        self.transformer.wpe.weight.requires_grad_(False)  # frozen, as a DT without positions would have
        self.embed_return, self.embed_state = nn.Linear(1, n_embd), nn.Linear(S, n_embd)
        self.embed_action, self.embed_timestep = nn.Linear(A, n_embd), nn.Embedding(50, n_embd)
        self.embed_ln, self.predict_action = nn.LayerNorm(n_embd), nn.Linear(n_embd, A)

    def forward(self, states, actions, returns_to_go, timesteps, attention_mask=None):
        b, k, _ = states.shape
        t = self.embed_timestep(timesteps)
        tokens = torch.stack([self.embed_return(returns_to_go) + t, self.embed_state(states) + t,
                              self.embed_action(actions) + t], dim=2).reshape(b, 3 * k, -1)  # [B, 3K, d]
        mask = None if attention_mask is None else attention_mask.repeat_interleave(3, dim=1)
        h = self.transformer(inputs_embeds=self.embed_ln(tokens), attention_mask=mask).last_hidden_state
        return self.predict_action(h.reshape(b, k, 3, -1)[:, :, 1])  # action read from the state token


def action_loss(model, batch: Batch) -> torch.Tensor:
    """Masked action MSE on rtg[:, :-1] (spec §4), for a model or a torch.func model_like."""
    pred = model(batch.states, batch.actions, batch.rtg[:, :-1], batch.timesteps, batch.mask)
    m = batch.mask.unsqueeze(-1)
    return ((pred - batch.actions) ** 2 * m).sum() / (m.sum() * A)


def make_batch(n: int, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(n, K)
    mask[: n // 2, :1] = 0  # left padding on half the samples
    return Batch(states=torch.randn(n, K, S, generator=g), actions=torch.randn(n, K, A, generator=g),
                 rewards=torch.randn(n, K, 1, generator=g), dones=torch.zeros(n, K, dtype=torch.long),
                 rtg=torch.randn(n, K + 1, 1, generator=g), timesteps=torch.randint(0, 50, (n, K), generator=g),
                 mask=mask)


def tiny_model(seed: int = 0, **kw) -> TinyDT:
    torch.manual_seed(seed)
    return TinyDT(**kw)


def published_loop(model: TinyDT, batch: Batch, clip: float = 0.25) -> torch.Tensor:
    """spec §6.4 literally: zero_grad, backward, clip_grad_norm_ over all parameters, read out h."""
    model = copy.deepcopy(model).eval()
    rows = []
    for i in range(len(batch)):
        sample = Batch(**{f: getattr(batch, f)[i:i + 1] for f in batch.__dataclass_fields__})
        model.zero_grad()
        action_loss(model, sample).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        rows.append(torch.cat([p.grad.flatten() for n, p in model.named_parameters()
                               if n.startswith("transformer.h.")]))
    return torch.stack(rows)


def test_torch_func_per_sample_gradients_equal_the_published_loop():
    model, batch = tiny_model(), make_batch(6)
    fast = per_sample_gradients(model, batch, action_loss, train_mode=False)
    reference = published_loop(model, batch)
    loop = per_sample_gradients_loop(model, batch, action_loss, train_mode=False)
    assert fast.shape == reference.shape == (6, sum(p.numel() for n, p in model.named_parameters()
                                                    if n.startswith("transformer.h.")))
    scale = reference.abs().max()
    assert float((fast - reference).abs().max() / scale) < 1e-6
    assert float((loop - reference).abs().max() / scale) < 1e-6


def test_clipping_over_all_parameters_bounds_the_read_out_norms():
    model, batch = tiny_model(), make_batch(5)
    norms = per_sample_gradients(model, batch, action_loss).norm(dim=1)
    assert torch.all(norms <= 0.25 + 1e-6)
    raw = per_sample_gradients(model, batch, action_loss, clip_norm=None, train_mode=False).norm(dim=1)
    selected = per_sample_gradients(model, batch, action_loss, clip_over="selected", train_mode=False).norm(dim=1)
    torch.testing.assert_close(selected, torch.clamp(raw, max=0.25), rtol=1e-5, atol=1e-7)


def test_unclipped_per_sample_gradients_are_the_single_sample_autograd_gradients():
    model, batch = tiny_model(), make_batch(3)
    got = per_sample_gradients(model, batch, action_loss, clip_norm=None, train_mode=False, params_prefix="")
    model.eval()
    params = [p for p in model.parameters() if p.requires_grad]
    for i in range(3):
        sample = Batch(**{f: getattr(batch, f)[i:i + 1] for f in batch.__dataclass_fields__})
        grads = torch.autograd.grad(action_loss(model, sample), params, allow_unused=True)  # wte is unused
        want = torch.cat([torch.zeros_like(p).flatten() if g is None else g.flatten() for g, p in zip(grads, params)])
        torch.testing.assert_close(got[i], want, rtol=1e-5, atol=1e-7)


def test_dropout_mode_runs_draws_different_masks_and_restores_the_models_modes():
    model, batch = tiny_model(), make_batch(4)
    model.eval()
    model.transformer.h[0].train()  # a mixed state the call must give back unchanged
    modes = [m.training for m in model.modules()]
    with_dropout = per_sample_gradients(model, batch, action_loss, train_mode=True)
    without = per_sample_gradients(model, batch, action_loss, train_mode=False)
    assert torch.isfinite(with_dropout).all()
    assert not torch.allclose(with_dropout, without)
    assert [m.training for m in model.modules()] == modes


def test_the_model_its_gradients_and_the_batch_are_left_untouched():
    model, batch = tiny_model(), make_batch(4)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    states = batch.states.clone()
    per_sample_gradients(model, batch, action_loss)
    per_sample_gradients_loop(model, batch, action_loss)
    per_parameter_grad_norms(model, batch, action_loss)
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(batch.states, states)


def test_dict_and_tuple_batches_and_chunking_give_the_same_gradients():
    model, batch = tiny_model(), make_batch(5)
    fields = {f: getattr(batch, f) for f in batch.__dataclass_fields__}
    as_dataclass = per_sample_gradients(model, batch, action_loss, train_mode=False)
    as_dict = per_sample_gradients(model, fields, lambda m, b: action_loss(m, Batch(**b)), train_mode=False)
    order = tuple(batch.__dataclass_fields__)
    as_tuple = per_sample_gradients(model, tuple(fields[f] for f in order),
                                    lambda m, b: action_loss(m, Batch(**dict(zip(order, b)))), train_mode=False)
    chunked = per_sample_gradients(model, batch, action_loss, train_mode=False, chunk_size=2)
    for other in (as_dict, as_tuple, chunked):
        torch.testing.assert_close(other, as_dataclass, rtol=1e-5, atol=1e-8)


def test_bad_options_and_batches_raise_value_errors():
    model, batch = tiny_model(), make_batch(3)
    with pytest.raises(ValueError, match="clip_over"):
        per_sample_gradients(model, batch, action_loss, clip_over="h")
    with pytest.raises(ValueError, match="params_prefix='encoder.'"):
        per_sample_gradients(model, batch, action_loss, params_prefix="encoder.")
    with pytest.raises(ValueError, match=r"batch.b has shape \(2,\)"):
        per_sample_gradients(model, {"a": torch.ones(3), "b": torch.ones(2)}, action_loss)


def test_full_batch_norms_are_globally_clipped_and_match_clip_grad_norm():
    model, batch = tiny_model(), make_batch(8)
    norms = per_parameter_grad_norms(model, batch, action_loss, train_mode=False)
    names = [n for n, _ in model.named_parameters() if n.startswith("transformer.h.")]
    assert [n for n, _ in norms] == names
    reference = copy.deepcopy(model).eval()
    action_loss(reference, batch).backward()
    torch.nn.utils.clip_grad_norm_(reference.parameters(), 0.25)
    want = {n: float(p.grad.norm()) for n, p in reference.named_parameters() if n.startswith("transformer.h.")}
    for name, value in norms:
        assert value == pytest.approx(want[name], rel=1e-5, abs=1e-9)
    assert math.sqrt(sum(v**2 for _, v in norms)) <= 0.25 + 1e-6


def test_parameter_columns_name_and_split_the_read_out_rows_in_named_parameters_order():
    model, batch = tiny_model(), make_batch(3)
    rows = per_sample_gradients(model, batch, action_loss, clip_norm=None, train_mode=False)
    columns = parameter_columns(model)
    assert [n for n, _ in columns] == [n for n, _ in per_parameter_grad_norms(model, batch, action_loss)]
    assert columns[0][1].start == 0 and columns[-1][1].stop == rows.shape[1]
    assert all(a.stop == b.start for (_, a), (_, b) in zip(columns, columns[1:]))
    for name, cols in columns:  # a prefix that is the whole name reads out that parameter alone
        alone = per_sample_gradients(model, batch, action_loss, clip_norm=None, train_mode=False, params_prefix=name)
        torch.testing.assert_close(rows[:, cols], alone, rtol=0, atol=0)


def test_mean_gradient_norms_of_the_whole_batch_are_the_full_batch_norms_when_samples_weigh_alike():
    model, batch = tiny_model(), make_batch(6)
    batch = dataclasses.replace(batch, mask=torch.ones_like(batch.mask))  # every sample's loss has the same weight
    rows = per_sample_gradients(model, batch, action_loss, clip_norm=None, train_mode=False)
    columns = parameter_columns(model)
    got = mean_gradient_norms(rows, [c for _, c in columns], [np.arange(6)])
    want = [v for _, v in per_parameter_grad_norms(model, batch, action_loss, clip_norm=None, train_mode=False)]
    assert got.shape == (1, len(columns))
    np.testing.assert_allclose(got[0], want, rtol=1e-5, atol=1e-9)


@given(grads=gradient_rows(n=(2, 12), p=(2, 30)), seed=seeds)
def test_mean_gradient_norms_are_the_norms_of_each_subsets_mean_row(grads, seed):
    rng = np.random.default_rng(seed)
    n, p = grads.shape
    cut = int(rng.integers(1, p))
    columns = [slice(0, cut), slice(cut, p)]
    subsets = [rng.choice(n, size=int(rng.integers(1, n + 1)), replace=False) for _ in range(4)]
    subsets.append(np.array([0, 0, n - 1]))  # a row listed twice counts twice
    got = mean_gradient_norms(grads, columns, subsets, columns_per_chunk=3)
    want = [[np.linalg.norm(grads[s].mean(0)[c]) for c in columns] for s in subsets]
    # the Gram form loses about sqrt(eps) * max row norm when a mean nearly cancels
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-7 * np.linalg.norm(grads, axis=1).max())


def test_mean_gradient_norms_reject_bad_columns_and_subsets():
    grads = np.ones((4, 5))
    with pytest.raises(ValueError, match="columns"):
        mean_gradient_norms(grads, [slice(0, 6)], [np.arange(4)])
    with pytest.raises(ValueError, match="columns"):
        mean_gradient_norms(grads, [], [np.arange(4)])
    with pytest.raises(ValueError, match=r"rows in \[0, 4\)"):
        mean_gradient_norms(grads, [slice(0, 5)], [np.array([0, 4])])
    with pytest.raises(ValueError, match="1-D integer"):
        mean_gradient_norms(grads, [slice(0, 5)], [np.array([], dtype=int)])


def test_norm_ratio_divides_by_the_sum_of_norms_and_groups_the_rest_as_others():
    norms = [("0.ln_1.weight", 3.0), ("0.ln_1.bias", 5.0), ("0.attn.c_attn.weight", 1.0), ("0.mlp.c_fc.bias", 1.0)]
    ratios = dict(norm_ratio(norms))
    assert ratios["0.ln_1.bias"] == pytest.approx(0.5) and sum(ratios.values()) == pytest.approx(1.0)
    grouped = norm_ratio(norms, keep=["0.ln_1.weight", "0.ln_1.bias"])
    assert grouped == [("0.ln_1.weight", 0.3), ("0.ln_1.bias", 0.5), ("others", pytest.approx(0.2))]
    with pytest.raises(ValueError, match="sum to 0"):
        norm_ratio([("a", 0.0)])
    with pytest.raises(ValueError, match="not among"):
        norm_ratio(norms, keep=["missing"])


@given(grads=gradient_rows())
def test_gradient_confusion_lies_between_minus_one_and_one(grads):
    value = gradient_confusion(grads)
    assert -1.0 <= value <= 1.0
    cos = cosine_matrix(grads)
    np.testing.assert_allclose(np.diag(cos), 1.0, atol=1e-12)
    np.testing.assert_allclose(cos, cos.T, atol=1e-12)


@given(grads=gradient_rows(), seed=seeds, row=st.integers(0, 11))
def test_gradient_confusion_is_unchanged_by_positive_rescaling_of_a_gradient(grads, seed, row):
    scaled = grads.copy()
    scaled[row % len(grads)] *= np.random.default_rng(seed).uniform(1e-3, 1e3)
    assert gradient_confusion(scaled) == pytest.approx(gradient_confusion(grads), abs=1e-12)


@given(grads=gradient_rows())
def test_the_published_variant_with_self_pairs_gives_the_same_minimum(grads):
    assert gradient_confusion(grads, include_self_pairs=True) == pytest.approx(gradient_confusion(grads), abs=1e-12)


def test_opposite_gradients_give_full_confusion_and_a_zero_gradient_gives_nan():
    g = np.array([[1.0, 2.0, -1.0], [-2.0, -4.0, 2.0], [0.5, 0.0, 0.0]])
    assert gradient_confusion(g) == pytest.approx(-1.0)
    with_zero = np.vstack([g, np.zeros(3)])
    assert math.isnan(gradient_confusion(with_zero))
    assert np.isnan(cosine_matrix(with_zero)[3]).all()
    with pytest.raises(ValueError, match="at least 2 samples"):
        gradient_confusion(g[:1])
    with pytest.raises(ValueError, match="non-finite"):
        gradient_confusion(np.array([[1.0, np.inf], [1.0, 0.0]]))


def test_cosines_accumulate_in_float64_across_column_chunks():
    rng = np.random.default_rng(0)
    g = torch.from_numpy(rng.standard_normal((5, 1000))).float()
    whole = cosine_matrix(g)
    chunked = cosine_matrix(g, columns_per_chunk=7)
    np.testing.assert_allclose(chunked, whole, atol=1e-12)
    g64 = g.double().numpy()
    want = g64 @ g64.T / np.outer(np.linalg.norm(g64, axis=1), np.linalg.norm(g64, axis=1))
    np.testing.assert_allclose(whole, want, atol=1e-12)
