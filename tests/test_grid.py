"""The experiment grid as data (dtcore/grid.py): which runs exist and what they are called."""

from __future__ import annotations

import dataclasses

import pytest

from dtcore.bodies import BODIES
from dtcore.profiles import MINI, PAPER, SMOKE
from dtcore.grid import (RunSpec, Selection, case_id, grid, ids, parse_backbones, parse_envs, parse_seeds,
                           variants_of)


@pytest.mark.parametrize("spec, expected", [
    (RunSpec("hopper", 666, "gpt2", "K20"), "hopper-seed666-gpt2-K20"),
    (RunSpec("hopper", 666, "gpt2", "K1"), "hopper-seed666-gpt2-K1"),
    (RunSpec("hopper", 0, "random", "block3"), "hopper-seed0-block3"),
    (RunSpec("hopper", 666, "igpt", "noclip"), "hopper-seed666-igpt-noclip"),
    (RunSpec("walker2d", 42, "random", "K20"), "walker2d-seed42-random-K20"),
])
def test_run_ids_read_as_sentences(spec, expected):
    assert spec.id == expected


def test_claim_cell_ids_read_as_sentences():
    assert case_id("hopper", 0) == "hopper-seed0"
    assert case_id("halfcheetah", 42) == "halfcheetah-seed42"
    assert case_id("hopper", 0, "gpt2") == "hopper-seed0-gpt2"


def test_paper_grid_holds_every_run_of_the_paper():
    specs = grid(PAPER)
    per_env_seed = 3 + 2 + 12          # K20 x 3 bodies, K1 x (gpt2, random), 12 block runs
    assert len(specs) == 3 * len(PAPER.seeds) * per_env_seed + 3 * len(PAPER.noclip_seeds)  # + iGPT noclip
    assert {s.seed for s in specs} == {666, 42, 0, 1, 2, 3, 4}
    hopper666 = {s.id for s in specs if s.env == "hopper" and s.seed == 666}
    assert {"hopper-seed666-gpt2-K20", "hopper-seed666-igpt-K20", "hopper-seed666-random-K20",
            "hopper-seed666-gpt2-K1", "hopper-seed666-random-K1", "hopper-seed666-igpt-noclip",
            "hopper-seed666-block0", "hopper-seed666-block11"} <= hopper666
    assert {s.seed for s in specs if s.variant == "noclip"} == {666, 42}
    assert not any(s.variant == "K1" and s.backbone == "igpt" for s in specs)


def test_block_runs_cover_every_block_of_the_profile_random_body():
    blocks = {s.variant for s in grid(MINI) if s.variant.startswith("block")}
    assert blocks == {f"block{i}" for i in range(MINI.random_body.n_layer)}
    assert all(s.backbone == "random" for s in grid(MINI) if s.variant.startswith("block"))
    wider = dataclasses.replace(SMOKE, random_body=dataclasses.replace(SMOKE.random_body, n_layer=5))
    assert "block4" in variants_of(wider, "random")


def test_run_ids_are_unique_across_the_grid():
    specs = grid(PAPER)
    assert len({s.id for s in specs}) == len(specs)


def test_selection_narrows_the_grid():
    only_gpt2 = grid(SMOKE, envs=("hopper",), seeds=(1,), backbones=("gpt2",))
    assert ids(only_gpt2) == ["hopper-seed1-gpt2-K20", "hopper-seed1-gpt2-K1"]
    igpt_seed1 = grid(SMOKE, seeds=(1,), backbones=("igpt",))
    assert {s.variant for s in igpt_seed1} == {"K20"}     # noclip runs only at noclip_seeds
    sel = Selection.of(SMOKE, envs=("walker2d",), seeds=("0",))
    assert sel.seeds == (0,) and sel.backbones == ("gpt2", "igpt", "random")
    assert {s.env for s in sel.specs()} == {"walker2d"}
    assert Selection.of(SMOKE, seeds=(1, 0)).claim_seeds("noclip_seeds") == (0,)
    assert Selection.of(SMOKE, seeds=(1,)).claim_seeds("noclip_seeds") == ()
    assert Selection.of(SMOKE, seeds=(1,)).claim_seeds("noclip_seeds", narrowed=False) == SMOKE.noclip_seeds
    with pytest.raises(ValueError, match="noclip_seed'"):
        sel.claim_seeds("noclip_seed")


@pytest.mark.parametrize("kwargs, word", [
    ({"envs": ("ant",)}, "envs"), ({"seeds": (-1,)}, "seeds"), ({"backbones": ("bert",)}, "backbones")])
def test_grid_rejects_names_outside_the_profile_and_negative_seeds(kwargs, word):
    with pytest.raises(ValueError, match=word):
        grid(SMOKE, **kwargs)


def test_a_seed_outside_the_profile_defaults_is_part_of_the_grid():
    """The profile's seeds are its default, not a list of allowed seeds (``dtcore claims
    --profile smoke --seeds 2`` used to stop here while pytest accepted it)."""
    assert {s.seed for s in grid(SMOKE, envs=("hopper",), seeds=(2, 7))} == {2, 7}
    assert "hopper-seed7-gpt2-K20" in ids(Selection.of(SMOKE, seeds=(7,)).specs())


@pytest.mark.parametrize("text, seeds", [
    ("0-9", tuple(range(10))), ("0,1,2", (0, 1, 2)), ("0-4,42,666", (0, 1, 2, 3, 4, 42, 666)),
    ("666,42", (666, 42)), (" 3 , 5-6 ", (3, 5, 6)), ("7", (7,)), ("4-4", (4,))])
def test_seeds_accept_a_seed_a_range_and_lists_of_both(text, seeds):
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize("text, why", [
    ("x", "not a non-negative integer"), ("1.5", "not a non-negative integer"), ("-1", "negative"),
    ("0,-3", "negative"), ("5-3", "reversed"), ("3-", "lacks a bound"), ("-", "lacks a bound"),
    ("0,0", "twice"), ("0-4,2", "twice"), ("", "no seed"), ("0,,1", "empty item")])
def test_seeds_refuse_bad_text_naming_the_option_and_the_accepted_forms(text, why):
    with pytest.raises(ValueError) as err:
        parse_seeds(text)
    message = str(err.value)
    assert message.startswith("--seeds:") and why in message
    assert "0-9" in message and "0-4,42,666" in message


def test_envs_and_backbones_are_checked_against_the_registries_and_the_profile():
    assert parse_envs("walker2d,hopper") == ("walker2d", "hopper")
    assert parse_backbones("gpt2, random") == ("gpt2", "random")
    narrow = dataclasses.replace(SMOKE, envs=("hopper",))
    for call, option, allowed in [(lambda: parse_envs("mars"), "--envs", "hopper, halfcheetah, walker2d"),
                                  (lambda: parse_envs("walker2d", narrow), "--envs", "choose among hopper"),
                                  (lambda: parse_envs("hopper,hopper"), "--envs", "twice"),
                                  (lambda: parse_backbones("bert"), "--backbones", ", ".join(BODIES)),
                                  (lambda: parse_backbones(""), "--backbones", "empty")]:
        with pytest.raises(ValueError) as err:
            call()
        assert str(err.value).startswith(option) and allowed in str(err.value)
