"""The claims' drawings (``@CLAIM.drawing`` in claims/*.py) give the report what it draws: a
panel key that does not depend on the seed, the threshold a claim uses, axes that name their
quantity and unit, and each figure drawn under one claim. The data a drawing reads is replaced by
small arrays (the measures are tested elsewhere); the drawing itself runs as in a claim cell."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from claims import test_sec5_1_activation_similarity as sec5_1
from claims import test_sec5_4_gradients as sec5_4
from claims import test_sec5_5_no_context as sec5_5
from reports import figures


def cell(**fields) -> SimpleNamespace:
    """A stand-in for ``dtcore.claim.Cell``: what a drawing reads of it."""
    base = dict(env="hopper", seed=0, definition="paper", store=SimpleNamespace(
        selection=SimpleNamespace(backbones=("gpt2", "igpt", "random"))))
    return SimpleNamespace(**{**base, **fields})


def test_fig7s_largest_parameters_are_a_note_so_every_seed_is_one_panel(monkeypatch):
    names = ["0.ln_1.weight", "0.ln_1.bias", "0.attn.c_attn.weight", "7.mlp.c_fc.weight"]
    norms = {0: [3.0, 4.0, 1.0, 0.5], 1: [0.1, 4.0, 1.0, 5.0]}
    monkeypatch.setattr(sec5_4, "gradients", lambda c, body: {"param_names": names, "param_norms": norms[c.seed]})
    (a,), (b,) = (sec5_4.norm_ratio_per_parameter(cell(seed=s)) for s in (0, 1))
    assert figures.panel_key(a.data) == figures.panel_key(b.data)
    assert a.data["note"] == "largest: 0.ln_1.bias, 0.ln_1.weight"
    assert b.data["note"] == "largest: 7.mlp.c_fc.weight, 0.ln_1.bias"
    assert "largest" not in a.data["title"] and np.isclose(sum(a.data["series"]["igpt"]["y"]), 1.0)


def test_fig1_draws_the_cka_threshold_the_layernorm_claim_uses(monkeypatch):
    monkeypatch.setattr(sec5_1, "cka_profile", lambda c, body, token, mode: (np.linspace(0.1, 0.9, 6), None))
    for definition in sec5_1.DEFINITIONS:
        (fig,) = sec5_1.cka_per_layer(cell(definition=definition, token="state", backbone="gpt2"))
        assert fig.data["hline"] == sec5_1.PAPER_CKA_THRESHOLD
        svg = figures.render_svg(fig.data).decode()
        assert f"§5.1 threshold ({sec5_1.PAPER_CKA_THRESHOLD:.3g})" in svg


def test_fig8_is_drawn_under_one_claim_and_the_other_points_to_it(monkeypatch):
    monkeypatch.setattr(sec5_5, "score_curve", lambda run, definition: [(1, 10.0), (2, 20.0)])
    c = cell(run=lambda body, variant="K20": None)
    (drawn,), (ref,) = sec5_5.GPT2_FASTER.draw(c), sec5_5.RANDOM_FAILS.draw(c)
    assert drawn.data["figure"] == ref.data["figure"] == "Fig. 8" and not figures.is_reference(drawn.data)
    assert figures.is_reference(ref.data) and ref.data["see"] == sec5_5.GPT2_FASTER.id
