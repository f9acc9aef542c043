"""The report's data model, figures and page, without pytest runs: outcome classification, the
verdict grid, survival across definitions, the comparison of two reports, JSON, the figure
renderer and the page's labels."""

from __future__ import annotations

import base64
import math
import struct

import numpy as np
import pytest

from claims.criteria import Inconclusive
from reports import figures
from reports.model import (ClaimResult, Column, Report, combine_phases, compare, jsonable, phase_outcome,
                           section_key, survival, verdict_grid)
from reports.render import render_html


def result(claim="sec5_3.c", section="5.3", env="hopper", seed=0, definition=None, outcome="holds",
           order=0, **values) -> ClaimResult:
    params = {"env": env, **({"seed": seed} if seed is not None else {}),
              **({"definition": definition} if definition else {})}
    node = f"claims/test_x.py::test_{claim}[{env}-{seed}-{definition}]"
    return ClaimResult(claim_id=claim, section=section, nodeid=node, env=env, seed=seed, definition=definition,
                       params=params, outcome=outcome, values=values, order=order)


# ----------------------------------------------------------------------------- outcomes

@pytest.mark.parametrize("when, passed, skipped, exc, expected", [
    ("call", True, False, None, "holds"),
    ("call", False, False, AssertionError, "contradicted"),
    ("call", False, False, Inconclusive, "inconclusive"),
    ("call", False, False, ValueError, "error"),
    ("call", False, False, KeyboardInterrupt, "error"),
    ("setup", False, False, AssertionError, "error"),
    ("setup", False, False, Inconclusive, "error"),
    ("teardown", False, False, RuntimeError, "error"),
    ("setup", False, True, None, "skipped"),
    ("setup", True, False, None, "holds"),
])
def test_each_phase_is_classified_as_the_claims_contract_says(when, passed, skipped, exc, expected):
    assert phase_outcome(when, passed, skipped, exc, Inconclusive) == expected


@pytest.mark.parametrize("phases, expected", [
    ({"setup": "holds", "call": "contradicted", "teardown": "holds"}, "contradicted"),
    ({"setup": "holds", "call": "holds", "teardown": "error"}, "error"),
    ({"setup": "error", "teardown": "holds"}, "error"),
    ({"setup": "skipped", "teardown": "holds"}, "skipped"),
    ({"setup": "holds", "call": "inconclusive", "teardown": "holds"}, "inconclusive"),
])
def test_a_tests_outcome_combines_its_phases_with_errors_first(phases, expected):
    assert combine_phases(phases) == expected


# ----------------------------------------------------------------------------- grid

def test_the_grid_puts_seeds_then_the_aggregate_under_each_env_in_collection_order():
    rs = [result(env="walker2d", seed=1, order=0), result(env="walker2d", seed=0, order=1),
          result(env="hopper", seed=0, order=2), result(env="hopper", seed=None, order=3, ci_low=0.1, ci_high=0.2)]
    grid = verdict_grid(rs)
    assert grid.envs == ("walker2d", "hopper")
    assert grid.columns == (Column("walker2d", 0), Column("walker2d", 1), Column("hopper", 0), Column("hopper", None))
    [(section, [row])] = grid.sections
    assert [c.seed if c else "-" for c in row.cells] == [0, 1, 0, None]


def test_the_grid_has_a_row_per_definition_and_sections_in_the_papers_order():
    rs = [result(claim="sec5_10.z", section="5.10"), result(claim="sec5_6_1.b", section="5.6.1"),
          result(claim="tab1.r", section="Table 1"), result(claim="sec5_2.a", section="5.2", definition="as-run"),
          result(claim="sec5_2.a", section="5.2", definition="paper")]
    grid = verdict_grid(rs)
    assert [s for s, _ in grid.sections] == ["5.2", "5.6.1", "5.10", "Table 1"]
    assert [r.definition for r in grid.sections[0][1]] == ["paper", "as-run"]


def test_section_order_is_natural():
    assert sorted(["5.10", "5.2", "App. G.3", "5.6.2", "5.6.1"], key=section_key) == \
        ["5.2", "5.6.1", "5.6.2", "5.10", "App. G.3"]


def test_other_parameters_make_a_row_variant():
    r = ClaimResult(claim_id="c", section="5.6.1", nodeid="n", env="hopper", seed=0, definition=None,
                    params={"env": "hopper", "seed": 0, "block": 3, "backbone": "random"}, outcome="holds")
    assert r.variant == "backbone=random, block=3"
    assert len(verdict_grid([r, result(claim="c", section="5.6.1")]).sections[0][1]) == 2


def test_a_verdict_survives_only_when_both_definitions_agree():
    rs = [result(seed=0, definition="paper"), result(seed=0, definition="as-run"),
          result(seed=1, definition="paper"), result(seed=1, definition="as-run", outcome="contradicted"),
          result(seed=2, definition="paper")]  # only one definition: no survival entry
    got = {(s.seed, s.survives) for s in survival(rs)}
    assert got == {(0, True), (1, False)}


# ----------------------------------------------------------------------------- compare and JSON

def test_compare_lists_changed_and_missing_cells():
    a = Report((result(seed=0), result(seed=1), result(seed=2)))
    b = Report((result(seed=0), result(seed=1, outcome="inconclusive")))
    diffs = compare(a, b)
    assert [(d.seed, d.a, d.b) for d in diffs] == [("1", "holds", "inconclusive"), ("2", "holds", "absent")]
    assert [(d.seed, d.a, d.b) for d in compare(a, b, common_only=True)] == [("1", "holds", "inconclusive")]
    assert compare(a, a) == []


def test_the_json_round_trips_non_finite_values_and_numpy_numbers():
    r = result(outcome="inconclusive", value=float("nan"), per_seed=jsonable(np.array([1.0, np.inf])),
               n=jsonable(np.int64(2)))
    report = Report((r,), profile="smoke", provenance={"grid": "envs=hopper"}, created="2026-01-01T00:00:00")
    back = Report.from_json(report.to_json())
    assert back.to_json() == report.to_json()
    assert math.isnan(back.results[0].values["value"]) and back.results[0].values["per_seed"] == [1.0, math.inf]
    assert type(back.results[0].values["n"]) is int


def test_a_json_of_another_kind_is_refused():
    with pytest.raises(ValueError, match="schema"):
        Report.from_json('{"results": []}')


# ----------------------------------------------------------------------------- figures

FIGS = {
    "lines": {"figure": "Fig. 2", "title": "MI", "type": "lines", "xlabel": "position", "ylabel": "MI",
              "series": {"a": {"x": [0, 1, 2], "y": [0.1, 0.4, 0.2], "err": [0.01, 0.02, 0.03]}}, "hline": 0.2},
    "bars": {"figure": "Fig. 4", "title": "cosine", "type": "bars", "xlabel": "", "ylabel": "cos",
             "series": {"a": {"labels": ["b0", "b1"], "values": [0.9, 0.8]},
                        "b": {"labels": ["b1", "b2"], "values": [0.7, 0.6]}}, "hline": None},
    "boxes": {"figure": "Fig. 10", "title": "gap", "type": "boxes", "xlabel": "", "ylabel": "gap",
              "series": {"a": {"early": [1, 2, 3], "late": [2, 3, float("nan")]}}, "hline": 0.0},
}


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


@pytest.mark.parametrize("kind", sorted(FIGS))
def test_each_figure_type_is_drawn_as_a_small_png(kind):
    png = figures.render_png(FIGS[kind])
    assert png_size(png) == (round(figures.FIGSIZE[0] * figures.DPI), round(figures.FIGSIZE[1] * figures.DPI))
    uri = figures.data_uri(FIGS[kind])
    assert uri.startswith("data:image/png;base64,") and base64.b64decode(uri.split(",", 1)[1]) == png


def test_a_figure_depends_on_its_data():
    other = {**FIGS["lines"], "series": {"a": {"x": [0, 1, 2], "y": [0.4, 0.1, 0.3]}}}
    assert figures.render_png(FIGS["lines"]) != figures.render_png(other)


@pytest.mark.parametrize("fig, field", [
    ({**FIGS["lines"], "type": "scatter"}, "type"),
    ({**FIGS["lines"], "series": {}}, "series"),
    ({**FIGS["lines"], "series": {"a": {"x": [0, 1], "y": [1.0]}}}, "len"),
    ({**FIGS["bars"], "series": {"a": {"labels": ["x"]}}}, "values"),
    ({**FIGS["boxes"], "series": {"a": {"early": []}}}, "box group"),
])
def test_a_malformed_figure_is_refused_naming_what_is_wrong(fig, field):
    with pytest.raises(ValueError, match=field):
        figures.validate(fig)


# ----------------------------------------------------------------------------- page

def test_an_undrawable_figure_is_reported_on_the_page_instead_of_failing_it():
    r = ClaimResult(claim_id="c", section="5.2", nodeid="n", env="hopper", seed=0, definition=None,
                    params={}, outcome="holds", figures={"mi": {"type": "pie", "series": {"a": 1}}})
    html = render_html(Report((r,), profile="paper"))
    assert "figure mi could not be drawn" in html and "<img" not in html


def test_the_smoke_profile_is_labelled_meaningless_and_text_is_escaped():
    r = result(outcome="error")
    r = ClaimResult(**{**r.__dict__, "docstring": '"<script>alert(1)</script>" (Section 5.3)',
                       "message": "ValueError: <b>bad</b>"})
    html = render_html(Report((r,), profile="smoke"))
    assert "smoke profile: verdicts meaningless" in html
    assert "<script>" not in html and "&lt;script&gt;" in html and "&lt;b&gt;bad" in html
