"""The profiles are what issue 5 says: ``paper`` is Table 3 exactly with the real assets; ``mini``
keeps the paper's structure (three environments, three bodies, K=20 and K=1 runs, every block
replaced) at CPU scale with offline assets and at least 3 seeds; ``smoke`` is marked meaningless."""

from __future__ import annotations

import dataclasses

import pytest

from dtcore.profiles import MINI, PAPER, SMOKE, experiment
from dtcore.grid import grid

ENVS = ("hopper", "halfcheetah", "walker2d")


def _variants(profile, env, seed, backbone):
    return {s.variant for s in grid(profile) if (s.env, s.seed, s.backbone) == (env, seed, backbone)}


def test_paper_profile_is_table_3_exactly():
    p = PAPER
    assert p.envs == ENVS
    # not Table 3: the paper's seeds (666, 42) first, then 5 more (docs/statistics.md, "Default seeds")
    assert p.seeds[:2] == (666, 42) and len(p.seeds) == len(set(p.seeds)) == 7
    assert (p.train.epochs, p.train.steps_per_epoch) == (40, 2500)
    assert (p.train.batch_size, p.train.context, p.train.lr, p.train.weight_decay) == (64, 20, 1e-4, 1e-4)
    assert (p.train.warmup_steps, p.train.grad_clip) == (5000, 0.25)
    # trained by issue 9's fast path (not a Table 3 setting): bf16 autocast, dataset on the device
    assert (p.train.precision, p.train.sampler, p.train.compile) == ("bf16", "device", False)
    assert p.episodes_per_target == 100 and p.eval_max_steps == 1000
    assert (p.random_body.n_layer, p.random_body.n_embd, p.random_body.n_head) == (12, 768, 1)
    assert p.random_body.activation == "relu"
    assert p.bodies == ("gpt2", "igpt", "random") and p.data == "d4rl"
    assert p.weights == {"gpt2": "gpt2", "igpt": "openai/imagegpt-small"}
    assert (p.k1_epochs, p.block_epochs, p.noclip_epochs, p.noclip_seeds) == (40, 10, 10, (666, 42))  # G.3: 666 as run, plus 42 for an aggregate
    assert p.block_indices() == tuple(range(12))
    assert p.verdicts_meaningful and not p.datasets and not p.pretrain


@pytest.mark.parametrize("profile", [PAPER, MINI], ids=["paper", "mini"])
def test_profile_grid_has_three_bodies_k20_k1_and_every_block(profile):
    assert set(profile.envs) == set(ENVS)
    assert len(profile.seeds) >= (7 if profile is PAPER else 5)
    for env in profile.envs:
        for seed in profile.seeds:
            for body in profile.bodies:
                assert "K20" in _variants(profile, env, seed, body), (env, seed, body)
            assert "K1" in _variants(profile, env, seed, "random")
            assert "K1" in _variants(profile, env, seed, "gpt2")
            blocks = {v for v in _variants(profile, env, seed, "random") if v.startswith("block")}
            assert blocks == {f"block{i}" for i in range(profile.random_body.n_layer)}


def test_mini_profile_uses_offline_assets_and_meaningful_verdicts():
    assert MINI.verdicts_meaningful
    assert MINI.weights == {"gpt2": "asset:language-mini", "igpt": "asset:image-mini"} and MINI.data == "asset"
    assert {r.modality for r in MINI.pretrain} == {"language", "image"}
    assert {r.env for r in MINI.datasets} == set(ENVS)
    assert all(r.steps >= 100_000 for r in MINI.datasets)


def test_smoke_profile_is_marked_meaningless_and_small():
    assert not SMOKE.verdicts_meaningful
    assert SMOKE.train.epochs * SMOKE.train.steps_per_epoch <= 100
    assert all(r.steps <= 5_000 for r in SMOKE.datasets)
    assert all(r.steps <= 100 for r in SMOKE.pretrain)


@pytest.mark.parametrize("profile", [PAPER, MINI, SMOKE], ids=["paper", "mini", "smoke"])
def test_every_grid_run_has_a_valid_config(profile):
    for s in grid(profile):
        cfg = experiment(profile, s.env, s.backbone, s.seed, s.variant)
        assert cfg.train.seed == s.seed and cfg.profile == profile.name
        if s.variant in ("K1",) or s.variant.startswith("block"):
            assert cfg.train.context == 1
        if s.variant.startswith("block"):
            assert cfg.model.block_donor == profile.weights["gpt2"] and cfg.model.backbone == "random"


def _two_language_bodies(monkeypatch):
    """A second language body, ``code``, registered for the test only."""
    import dtcore.bodies as bodies

    monkeypatch.setitem(bodies.BODIES, "code", bodies.Body("code", "language", ("K20", "K1"), "code-pretrained"))
    return dataclasses.replace(SMOKE, bodies=("gpt2", "code", "random"),
                               weights={"gpt2": "asset:language-smoke", "code": "/w/code"})


def test_each_body_loads_its_own_weights_even_two_of_one_modality(monkeypatch):
    profile = _two_language_bodies(monkeypatch)
    gpt2 = experiment(profile, "hopper", "gpt2", 0, "K20")
    code = experiment(profile, "hopper", "code", 0, "K20")
    assert (gpt2.model.weights, code.model.weights) == ("asset:language-smoke", "/w/code")
    block = experiment(profile, "hopper", "random", 0, "block1")
    assert block.model.block_donor == "asset:language-smoke" and block.model.weights is None


def test_a_profile_grid_runs_the_bodies_the_profile_lists_and_no_other(monkeypatch):
    from dtcore.grid import Selection, parse_backbones

    profile = _two_language_bodies(monkeypatch)
    assert {s.backbone for s in grid(profile)} == {"gpt2", "code", "random"}
    assert Selection.of(profile).backbones == ("gpt2", "code", "random")
    assert {s.backbone for s in grid(SMOKE)} == {"gpt2", "igpt", "random"}   # the new body joins no other grid
    with pytest.raises(ValueError, match=r"backbones: \['igpt'\] not in the smoke grid"):
        grid(profile, backbones=("igpt",))
    with pytest.raises(ValueError, match="--backbones: code not in the smoke profile"):
        parse_backbones("gpt2,code", SMOKE)
    assert parse_backbones("gpt2,code", profile) == ("gpt2", "code")


def test_a_profile_without_the_weights_of_a_pretrained_body_or_the_block_donor_is_rejected():
    with pytest.raises(ValueError, match=r"missing \['igpt'\]"):
        dataclasses.replace(SMOKE, weights={"gpt2": "gpt2"})
    with pytest.raises(ValueError, match=r"missing \['gpt2'\]"):   # random's block runs need the donor's
        dataclasses.replace(SMOKE, bodies=("igpt", "random"), weights={"igpt": "x"})
    with pytest.raises(ValueError, match=r"unused \['igpt'\]"):
        dataclasses.replace(SMOKE, bodies=("gpt2",), weights={"gpt2": "g", "igpt": "i"})
    with pytest.raises(ValueError, match="unknown backbone 'bert'"):
        dataclasses.replace(SMOKE, bodies=("bert",), weights={})
