"""Small pretrained backbones built offline (issue 5, point 3): pretraining lowers the held-out
loss, the directories load through ``build_backbone`` like the real checkpoints, and the
language and image bodies differ from random init and from each other."""

from __future__ import annotations

import dataclasses
import json
import logging
import sysconfig
from pathlib import Path

import numpy as np
import pytest
import torch

from dtcore.assets import pretrain as pt
from dtcore.assets.recipes import PretrainRecipe
from dtcore.assets.resolve import resolve_weights
from dtcore.backbones import build_backbone
from dtcore.profiles import MINI, SMOKE


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Docstrings of one stdlib package (the default corpus is all of them: ~5 s to collect)."""
    text = pt.stdlib_docstrings(Path(sysconfig.get_paths()["stdlib"]) / "email")
    path = tmp_path_factory.mktemp("corpus") / "email_docstrings.txt"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def language_dir(tmp_path_factory, corpus) -> Path:
    recipe = dataclasses.replace(SMOKE.pretrain_recipe("language"), corpus=str(corpus))
    return pt.pretrain(recipe, tmp_path_factory.mktemp("lang"), progress=False)


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory) -> Path:
    return pt.pretrain(SMOKE.pretrain_recipe("image"), tmp_path_factory.mktemp("img"), progress=False)


def test_stdlib_docstrings_are_english_prose_from_the_installed_library():
    root = Path(sysconfig.get_paths()["stdlib"])
    text = pt.stdlib_docstrings(root / "json")
    assert "JSON" in text and len(text) > 2000
    assert pt.stdlib_docstrings(root / "json") == text, "deterministic order"


def test_docstring_collection_skips_test_and_idlelib_folders_and_broken_files(tmp_path):
    files = {"pkg/b.py": '"""module b."""\ndef f():\n    """function f."""\n',
             "pkg/a.py": 'class A:\n    """class A."""\n',
             "test/t.py": '"""from tests."""', "idlelib/i.py": '"""from idlelib."""',
             "pkg/broken.py": '"""never read."""\ndef (:'}
    for name, src in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(src)
    assert pt.stdlib_docstrings(tmp_path) == "class A.\n\nmodule b.\n\nfunction f."


def test_digits_become_a_start_token_and_64_grey_level_clusters():
    seqs = pt.digit_sequences()
    assert seqs.shape == (1797, 65)
    assert (seqs[:, 0] == pt.N_CLUSTERS).all()
    assert seqs[:, 1:].min() == 0 and seqs[:, 1:].max() == pt.N_CLUSTERS - 1
    np.testing.assert_array_equal(pt.digit_clusters(np.array([0, 1, 8, 16])), [0, 0, 7, 15])


@pytest.mark.parametrize("modality", ["language", "image"])
def test_pretraining_at_smoke_size_lowers_the_heldout_loss(modality, language_dir, image_dir):
    m = pt.read_metrics(language_dir if modality == "language" else image_dir)
    assert m["heldout_loss"] < m["heldout_loss_initial"] - 0.2, (m["heldout_loss_initial"], m["heldout_loss"])
    assert len(m["train_loss"]) == SMOKE.pretrain_recipe(modality).steps
    assert np.mean(m["train_loss"][-5:]) < np.mean(m["train_loss"][:5])
    assert m["heldout_perplexity"] == pytest.approx(np.exp(m["heldout_loss"]))
    assert m["unigram_heldout_loss"] > 0 and m["heldout_curve"]["step"][0] == 0


def test_pretraining_a_little_longer_clearly_beats_the_unigram_model(tmp_path):
    recipe = PretrainRecipe("image", n_layer=1, n_embd=32, n_head=2, steps=100, batch_size=16, seq_len=65, lr=3e-3,
                            corpus="digits")
    m = pt.read_metrics(pt.pretrain(recipe, tmp_path, progress=False))
    assert m["heldout_loss"] < 0.9 * m["unigram_heldout_loss"], (m["heldout_loss"], m["unigram_heldout_loss"])


def test_pretraining_is_deterministic_given_the_recipe(corpus, tmp_path, language_dir):
    recipe = dataclasses.replace(SMOKE.pretrain_recipe("language"), corpus=str(corpus))
    again = pt.pretrain(recipe, tmp_path, progress=False)
    assert pt.read_metrics(again)["train_loss"] == pt.read_metrics(language_dir)["train_loss"]


def _body(name: str, path: Path) -> torch.nn.Module:
    return build_backbone(name, weights=str(path)).eval()


def test_the_language_dir_loads_as_gpt2_weights_with_the_trained_blocks(language_dir):
    from transformers import GPT2LMHeadModel

    body = _body("gpt2", language_dir)
    saved = GPT2LMHeadModel.from_pretrained(language_dir).transformer.state_dict()
    r = SMOKE.pretrain_recipe("language")
    assert (body.config.n_layer, body.config.n_embd, body.config.n_head) == (r.n_layer, r.n_embd, r.n_head)
    assert body.config.activation_function == "gelu_new"
    for k, v in body.state_dict().items():
        if k.startswith("h."):
            torch.testing.assert_close(v, saved[k])


def test_the_image_dir_loads_as_igpt_weights_carried_into_gpt2(image_dir):
    body = _body("igpt", image_dir)
    r = SMOKE.pretrain_recipe("image")
    assert type(body).__name__ == "GPT2Model"
    assert (body.config.n_layer, body.config.n_embd, body.config.activation_function) == (r.n_layer, r.n_embd, "quick_gelu")
    cfg = json.loads((image_dir / "config.json").read_text())
    assert cfg["model_type"] == "imagegpt" and cfg["vocab_size"] == pt.N_CLUSTERS + 1


def _distance(a: torch.nn.Module, b: torch.nn.Module, prefix: str = "h.0.") -> float:
    sa, sb = a.state_dict(), b.state_dict()
    keys = [k for k in sa if k.startswith(prefix) and k.endswith("weight") and k in sb and sa[k].shape == sb[k].shape]
    assert keys
    return max(float((sa[k] - sb[k]).abs().max()) for k in keys)


@pytest.mark.parametrize("modality", ["language", "image"])
def test_pretrained_bodies_differ_from_their_random_init(modality, language_dir, image_dir):
    recipe = SMOKE.pretrain_recipe(modality)
    torch.manual_seed(recipe.seed)
    init = pt.build_model(recipe)  # the exact initialisation pretraining started from
    trained = type(init).from_pretrained(language_dir if modality == "language" else image_dir)
    assert _distance(init.transformer, trained.transformer) > 1e-3


def test_language_and_image_bodies_compute_different_functions(language_dir, image_dir):
    lang, img = _body("gpt2", language_dir), _body("igpt", image_dir)
    rand = build_backbone("random", n_layer=img.config.n_layer, n_embd=img.config.n_embd, n_head=img.config.n_head,
                          activation="quick_gelu").eval()
    assert lang.config.n_embd == img.config.n_embd
    x = torch.randn(2, 12, lang.config.n_embd, generator=torch.Generator().manual_seed(0))  # [B, T, d]
    with torch.no_grad():
        outs = [m(inputs_embeds=x).last_hidden_state for m in (lang, img, rand)]
    for i in range(3):
        for j in range(i + 1, 3):
            assert (outs[i] - outs[j]).abs().max() > 1e-2, (i, j)


def test_resolve_weights_builds_an_asset_once_and_reuses_it(corpus, tmp_path, caplog):
    profile = dataclasses.replace(
        SMOKE, pretrain=(dataclasses.replace(SMOKE.pretrain_recipe("language"), corpus=str(corpus), steps=5),))
    first = resolve_weights("asset:language-smoke", profile, root=tmp_path, progress=False)
    assert (Path(first) / pt.METRICS_FILE).is_file() and (Path(first) / "config.json").is_file()
    with caplog.at_level(logging.INFO, logger="dtcore.assets.store"):
        assert resolve_weights("asset:language-smoke", profile, root=tmp_path, progress=False) == first
    assert any("reusing cached asset" in r.getMessage() for r in caplog.records)
    assert _body("gpt2", Path(first)).config.n_layer == 2


def test_asset_references_name_the_profile_recipe():
    assert MINI.weights_recipe("asset:language-mini") == (MINI.pretrain_recipe("language"), "mini")
    assert MINI.weights_recipe("asset:image-smoke") == (SMOKE.pretrain_recipe("image"), "smoke")


# ----------------------------------------------------------------- shipped bodies and `dtcore pretrain`


def _metrics_and_config(folder: Path) -> tuple[dict, dict]:
    return pt.read_metrics(folder), json.loads((folder / "config.json").read_text())


def test_dtcore_pretrain_rebuilds_a_smoke_body_that_follows_its_recipe(tmp_path, monkeypatch, capsys):
    from dtcore.cli import main

    monkeypatch.setenv("DTCORE_CACHE", str(tmp_path / "cache"))
    recipe = SMOKE.pretrain_recipe("image")
    assert main(["pretrain", "--modality", "image", "--size", "smoke"]) == 0
    built = Path(json.loads(capsys.readouterr().out)["dir"])
    metrics, cfg = _metrics_and_config(built)
    assert metrics["recipe"] == dataclasses.asdict(recipe)
    assert len(metrics["train_loss"]) == recipe.steps and metrics["heldout_curve"]["step"][-1] == recipe.steps
    assert (cfg["n_layer"], cfg["n_embd"], cfg["n_head"], cfg["n_positions"]) == (
        recipe.n_layer, recipe.n_embd, recipe.n_head, recipe.seq_len)
    assert metrics["data"]["images"] == "sklearn digits"
    assert main(["pretrain", "--modality", "image", "--size", "smoke", "--out", str(tmp_path / "again")]) == 0
    capsys.readouterr()
    assert (tmp_path / "again" / "model.safetensors").read_bytes() == (built / "model.safetensors").read_bytes()


def test_a_shipped_body_is_used_when_its_recipe_matches_and_refused_when_damaged(tmp_path, monkeypatch):
    import shutil

    from dtcore.assets import resolve

    built = Path(resolve_weights("asset:image-smoke", SMOKE, root=tmp_path / "a", progress=False, shipped=False))
    shipped = tmp_path / "bodies"
    shutil.copytree(built, shipped / built.name)
    monkeypatch.setattr(resolve, "PACKAGED_BODIES", shipped)
    real = pt.pretrain
    monkeypatch.setattr(pt, "pretrain", lambda *a, **k: pytest.fail("a shipped body must not be rebuilt"))
    assert resolve_weights("asset:image-smoke", SMOKE, root=tmp_path / "b", progress=False) == str(shipped / built.name)
    assert not (tmp_path / "b").exists()
    (shipped / built.name / "model.safetensors").write_bytes(b"damaged")
    monkeypatch.setattr(pt, "pretrain", real)
    with pytest.warns(UserWarning, match=r"model\.safetensors.*building it from its recipe where git has none"):
        rebuilt = resolve_weights("asset:image-smoke", SMOKE, root=tmp_path / "b", progress=False)
    assert Path(rebuilt).parent == tmp_path / "b" / "assets" / "pretrained"


def test_the_mini_bodies_learn_from_real_english_and_real_images():
    lang, img = MINI.pretrain_recipe("language"), MINI.pretrain_recipe("image")
    assert (lang.corpus, img.corpus) == ("english", "fashion-mnist")
    assert (lang.n_layer, lang.n_embd) == (MINI.random_body.n_layer, MINI.random_body.n_embd), "ChibiT: the DT's own size"
    assert img.seq_len == 1 + (28 // pt.FASHION_POOL) ** 2


@pytest.mark.parametrize("modality", ["language", "image"])
def test_the_mini_bodies_are_shipped_for_exactly_the_mini_recipes(modality):
    """A lone clone runs the main command without pretraining: the shipped body's asset key is the
    one the mini recipe resolves to, every file matches its recorded sha256, and it beat the
    unigram model on its held-out data."""
    from dtcore.assets import resolve
    from dtcore.assets.store import asset_key, asset_problems, read_provenance

    recipe = MINI.pretrain_recipe(modality)
    kind, name, extra = resolve.pretrain_asset(recipe, "mini")
    shipped = resolve.PACKAGED_BODIES / asset_key(kind, name, recipe, extra)
    assert asset_problems(shipped) == [], f"{shipped}: not shipped, or damaged"
    assert read_provenance(shipped)["recipe"] == dataclasses.asdict(recipe)
    m = pt.read_metrics(shipped)
    assert m["heldout_loss"] < 0.8 * m["unigram_heldout_loss"], (m["heldout_loss"], m["unigram_heldout_loss"])
    if modality == "language":   # the floor: at least 40 MB of real English
        assert m["data"]["corpus"] == "english" and m["data"]["train_bytes"] >= 40_000_000, m["data"]
    else:
        assert m["data"]["images"] == "Fashion-MNIST" and m["data"]["train_images"] == 60_000, m["data"]
    assert resolve_weights(f"asset:{modality}-mini", MINI, progress=False) == str(shipped)
