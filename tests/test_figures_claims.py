"""The claims' drawings (``@CLAIM.drawing`` in claims/*.py) give the report what it draws: a
panel key that does not depend on the seed, the threshold a claim uses, axes that name their
quantity and unit, and each figure drawn under one claim. The data a drawing reads is replaced by
small arrays (the measures are tested elsewhere); the drawing itself runs as in a claim cell."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from claims import test_sec5_1_activation_similarity as sec5_1
from claims import test_sec5_3_parameter_similarity as sec5_3
from claims import test_sec5_4_gradients as sec5_4
from claims import test_sec5_5_no_context as sec5_5
from claims import test_sec5_6_1_block_replacement as sec5_6_1
from claims import test_sec5_6_2_attention_distance as sec5_6_2
from claims import test_table1_returns as table1
from dtcore.measures import ACTION_ERROR_AXIS
from dtcore.metrics import ema
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


def test_fig9a_says_what_its_smoothing_is_and_which_action_error_it_draws(monkeypatch):
    curves = {"random K1": [0.9, 0.7, 0.6], "block0": [0.8, 0.6, 0.5]}
    monkeypatch.setattr(sec5_6_1, "_error_curves", lambda c: (np.zeros(1), curves))
    for definition in sec5_6_1.ERRORS:
        (fig,) = sec5_6_1.block_replacement_curves(cell(definition=definition))
        assert fig.data["ylabel"] == ACTION_ERROR_AXIS[definition] and "MSE" in fig.data["ylabel"]
        assert "exponential moving average y(t) = 0.2 x(t) + 0.8 y(t-1)" in fig.data["title"]
        assert "EMA 0.8" not in fig.data["title"]
        assert fig.data["series"]["block0"]["y"] == ema(np.asarray(curves["block0"]), sec5_6_1.SMOOTHING).tolist()


def test_every_axis_names_its_quantity_and_unit(monkeypatch):
    """Figs. 3-6, 10 and 19: the y axis says what is measured and in which unit, per definition
    where the definitions measure it differently."""
    monkeypatch.setattr(sec5_4, "gradients", lambda c, body: {"norms": [0.1, 0.25], "cosines": [[1.0, -0.5],
                                                                                                [-0.5, 1.0]]})
    monkeypatch.setattr(sec5_4, "_noclip_curves", lambda c: {"clipped": [1.0, 0.9], "no clipping": [0.5, 0.4]})
    monkeypatch.setattr(sec5_6_2, "_gaps", lambda c: {b: np.ones((2, 3)) for b in ("gpt2", "random")})
    monkeypatch.setattr(sec5_3.analyses, "parameter_change", lambda store, cache, run: {
        "names": ["transformer.h.0.ln_1.weight"], "l2": [0.3], "cosine": [0.99]})
    clip = SimpleNamespace(config=SimpleNamespace(train=SimpleNamespace(grad_clip=0.25)))
    c = cell(run=lambda body, variant="K20": clip, backbone="gpt2", cache=None)
    (fig6,) = sec5_4.norm_boxes(c)
    assert fig6.data["ylabel"] == "per-sample gradient L2 norm (after clipping)"
    for definition in ("paper", "sound"):
        (fig19,) = sec5_4.noclip_action_error(cell(definition=definition))
        assert fig19.data["ylabel"] == ACTION_ERROR_AXIS[definition]
    labels = {d: sec5_6_2.gap_boxes(cell(definition=d))[0].data["ylabel"] for d in ("paper", "as-run")}
    assert labels == {"paper": "attention distance gap (token positions)",
                      "as-run": "attention distance gap (token positions / T)"}
    for stat, label in (("l2", "L2 distance, epoch 0 to final"), ("cosine", "cosine similarity, epoch 0 to final")):
        assert sec5_3.per_parameter_set(cell(stat=stat, backbone="gpt2", run=lambda b: None,
                                             cache=None))[0].data["ylabel"] == label


def test_table1s_learning_curves_ring_the_selected_epoch_the_score_reads(monkeypatch):
    curve = [(1, 10.0), (2, 30.0), (3, 20.0)]
    monkeypatch.setattr(table1, "score_curve", lambda run, definition: curve)
    monkeypatch.setattr(table1, "score_summary", lambda c, body: {"selected_epoch": 2, "scored": 25.0})
    for definition, marked in (("paper", True), ("as-run", True), ("sound", False)):
        c = cell(definition=definition, run=lambda body: SimpleNamespace(best_epoch=2))
        fig = next(f for f in table1.table_and_curves(c) if not f.table)
        series = fig.data["series"]
        assert all(("mark" in s) == marked for s in series.values())
        assert not marked or all(s["mark"] == {"x": 2, "label": "selected epoch"} for s in series.values())
