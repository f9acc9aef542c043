"""The experiment grid as data (fixtures/grid.py): which runs exist and what they are called."""

from __future__ import annotations

import dataclasses

import pytest

from dtcore.profiles import MINI, PAPER, SMOKE
from fixtures.grid import Case, RunSpec, Selection, case_id, cases, grid, ids, variants_of


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
    assert Case("hopper", 0).id == "hopper-seed0"
    assert Case("hopper", 0, "gpt2").id == "hopper-seed0-gpt2"
    assert case_id("halfcheetah", 42) == "halfcheetah-seed42"
    assert ids(cases(("hopper",), (0, 1))) == ["hopper-seed0", "hopper-seed1"]
    assert ids(cases(("hopper",), (0,), ("gpt2", "igpt", "random"), only=("gpt2", "random"))) == [
        "hopper-seed0-gpt2", "hopper-seed0-random"]


def test_paper_grid_holds_every_run_of_the_paper():
    specs = grid(PAPER)
    per_env_seed = 3 + 2 + 12          # K20 x 3 bodies, K1 x (gpt2, random), 12 block runs
    assert len(specs) == 3 * 2 * per_env_seed + 3   # + iGPT noclip at seed 666 only
    hopper666 = {s.id for s in specs if s.env == "hopper" and s.seed == 666}
    assert {"hopper-seed666-gpt2-K20", "hopper-seed666-igpt-K20", "hopper-seed666-random-K20",
            "hopper-seed666-gpt2-K1", "hopper-seed666-random-K1", "hopper-seed666-igpt-noclip",
            "hopper-seed666-block0", "hopper-seed666-block11"} <= hopper666
    assert not any(s.variant == "noclip" and s.seed == 42 for s in specs)
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
    assert ids(sel.cases()) == ["walker2d-seed0"]
    assert ids(sel.cases(by_backbone=True, backbones=("igpt",))) == ["walker2d-seed0-igpt"]


@pytest.mark.parametrize("kwargs, word", [
    ({"envs": ("ant",)}, "envs"), ({"seeds": (7,)}, "seeds"), ({"backbones": ("bert",)}, "backbones")])
def test_grid_rejects_names_outside_the_profile(kwargs, word):
    with pytest.raises(ValueError, match=word):
        grid(SMOKE, **kwargs)
