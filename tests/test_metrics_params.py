"""Parameter changes (dtcore.metrics.params): metric axioms, identities, per-set vs concatenated."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from hypothesis import given
from transformers import GPT2Config, GPT2Model

from dtcore.metrics.params import ParamChange, concatenated_parameter_change, parameter_changes
from tests.strategies import parameter_dicts


def tiny_gpt2(n_layer: int, seed: int = 0) -> GPT2Model:
    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=1, n_embd=8, n_layer=n_layer, n_head=2, n_positions=8,
                     bos_token_id=0, eos_token_id=0)
    return GPT2Model(cfg)


@pytest.mark.parametrize(("blocks", "sets"), [(12, 144), (24, 288)])
def test_one_change_per_parameter_set_of_every_block_in_model_order(blocks, sets):
    model = tiny_gpt2(blocks)
    changes = parameter_changes(model, model, prefix="h.")
    assert len(changes) == sets
    assert [c.name for c in changes] == [n for n, _ in model.named_parameters() if n.startswith("h.")]


def test_identical_models_give_distance_zero_and_cosine_one():
    model = tiny_gpt2(2)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01)  # the fresh biases are zero: their cosine is undefined (tested below)
    for c in parameter_changes(model, copy.deepcopy(model), prefix="h."):
        assert c.l2 == 0.0
        assert c.cosine == pytest.approx(1.0, abs=1e-12), c.name


def test_identical_fresh_models_report_their_zero_biases_as_undefined():
    model = tiny_gpt2(2)
    changes = parameter_changes(model, copy.deepcopy(model), prefix="h.")
    zero = {n for n, p in model.named_parameters() if n.startswith("h.") and not p.any()}
    assert zero and {c.name for c in changes if math.isnan(c.cosine)} == zero


def test_a_fine_tuned_model_moves_and_only_its_changed_tensors_move():
    before = tiny_gpt2(2)
    after = copy.deepcopy(before)
    with torch.no_grad():
        after.h[1].mlp.c_fc.weight.add_(0.5)
    changes = {c.name: c for c in parameter_changes(before, after, prefix="h.")}
    moved = changes["h.1.mlp.c_fc.weight"]
    assert moved.l2 == pytest.approx(0.5 * math.sqrt(after.h[1].mlp.c_fc.weight.numel()), rel=1e-6)
    assert moved.cosine < 1.0
    assert all(c.l2 == 0.0 for name, c in changes.items() if name != "h.1.mlp.c_fc.weight")


@given(models=parameter_dicts())
def test_l2_distance_satisfies_the_metric_axioms(models):
    a, b, c = models
    ab, ba, ac, bc = (parameter_changes(*pair) for pair in ((a, b), (b, a), (a, c), (b, c)))
    aa = parameter_changes(a, a)
    for i in range(len(ab)):
        assert aa[i].l2 == 0.0
        assert ab[i].l2 >= 0.0
        assert ab[i].l2 == pytest.approx(ba[i].l2, abs=1e-12)
        assert ac[i].l2 <= ab[i].l2 + bc[i].l2 + 1e-12
        assert -1.0 - 1e-12 <= ab[i].cosine <= 1.0 + 1e-12
        assert ab[i].cosine == pytest.approx(ba[i].cosine, abs=1e-12)


@given(models=parameter_dicts())
def test_per_set_and_concatenated_views_agree(models):
    a, b, _ = models
    per_set = parameter_changes(a, b)
    whole = concatenated_parameter_change(a, b)
    assert whole.l2 == pytest.approx(math.sqrt(sum(c.l2**2 for c in per_set)), rel=1e-10)
    inner = sum(0.0 if math.isnan(c.cosine) else c.cosine * c.norm_before * c.norm_after for c in per_set)
    norm_b = math.sqrt(sum(c.norm_before**2 for c in per_set))
    norm_a = math.sqrt(sum(c.norm_after**2 for c in per_set))
    assert whole.cosine == pytest.approx(inner / (norm_b * norm_a), abs=1e-10)
    assert whole.name == "transformer.h."


def test_a_zero_tensor_has_an_undefined_cosine_reported_as_nan_not_zero():
    before = {"transformer.h.0.bias": np.zeros(4), "transformer.h.0.weight": np.ones(4)}
    after = {"transformer.h.0.bias": np.full(4, 0.1), "transformer.h.0.weight": np.ones(4)}
    bias, weight = parameter_changes(before, after)
    assert isinstance(bias, ParamChange)
    assert math.isnan(bias.cosine) and bias.l2 == pytest.approx(0.2)
    assert weight.cosine == pytest.approx(1.0)


def test_state_dicts_torch_tensors_and_modules_give_the_same_numbers():
    before, after = tiny_gpt2(2, seed=0), tiny_gpt2(2, seed=1)
    from_modules = parameter_changes(before, after, prefix="h.")
    from_dicts = parameter_changes(dict(before.named_parameters()),
                                   {k: v.detach().numpy() for k, v in after.named_parameters()}, prefix="h.")
    assert [(c.name, c.l2, c.cosine) for c in from_modules] == [(c.name, c.l2, c.cosine) for c in from_dicts]


def test_inputs_are_never_modified():
    before, after = tiny_gpt2(2, seed=0), tiny_gpt2(2, seed=1)
    snapshot = {k: v.clone() for k, v in before.state_dict().items()}
    parameter_changes(before, after, prefix="h.")
    concatenated_parameter_change(before, after, prefix="h.")
    assert all(torch.equal(v, snapshot[k]) for k, v in before.state_dict().items())


def test_mismatched_models_and_unmatched_prefixes_raise_value_errors():
    with pytest.raises(ValueError, match="different parameter names"):
        parameter_changes(tiny_gpt2(2), tiny_gpt2(3), prefix="h.")
    with pytest.raises(ValueError, match=r"before has shape \(3,\), after \(4,\)"):
        parameter_changes({"transformer.h.w": np.ones(3)}, {"transformer.h.w": np.ones(4)})
    with pytest.raises(ValueError, match="no parameter of before starts with prefix 'transformer.h.'"):
        parameter_changes(tiny_gpt2(1), tiny_gpt2(1))
    with pytest.raises(ValueError, match="non-finite"):
        parameter_changes({"transformer.h.w": np.array([np.nan])}, {"transformer.h.w": np.ones(1)})
