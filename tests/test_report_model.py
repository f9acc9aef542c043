"""The report's data model, figures and page, without pytest runs: outcome classification, the
verdict grid, survival across definitions, the comparison of two reports, JSON, the figure
renderer and the page's labels; the headline (variants as a conjunction, Holm, seeds and machine
time to decide), the grouping by finding, and the README table (``python -m reports readme``)."""

from __future__ import annotations

import dataclasses
import json
import math
import re

import numpy as np
import pytest
from scipy import stats

from dtcore.verdicts import Descriptive, Inconclusive
from reports import figures
from reports.__main__ import main as reports_main
from reports.findings import FINDINGS, finding_key
from dtcore.policy import NOT_TESTED, conjunction, premise_outcome
from reports.headline import (build_headline, decide_text, duration, run_env_seed,
                              seconds_per_seed)
from reports.model import (ClaimResult, Column, Report, combine_phases, compare, jsonable, phase_outcome,
                           section_key, survival, verdict_grid)
from reports.premise import build_premises, mechanism_heading
from reports.readme import END, START, claims_table, replace_between_markers
from reports.render import render_html
from reports.svg import decode_uri
from reports.terminal import premise_lines


def result(claim="sec5_3.c", section="5.3", env="hopper", seed=0, definition=None, outcome="holds",
           order=0, variant=None, docstring="", message="", **values) -> ClaimResult:
    params = {"env": env, **({"seed": seed} if seed is not None else {}),
              **({"definition": definition} if definition else {}), **(variant or {})}
    node = f"claims/test_x.py::test_{claim}[{'-'.join(map(str, params.values()))}]"
    return ClaimResult(claim_id=claim, section=section, nodeid=node, env=env, seed=seed, definition=definition,
                       params=params, outcome=outcome, values=values, order=order, docstring=docstring,
                       message=message)


# ----------------------------------------------------------------------------- outcomes

@pytest.mark.parametrize("when, passed, skipped, exc, expected", [
    ("call", True, False, None, "holds"),
    ("call", False, False, AssertionError, "contradicted"),
    ("call", False, False, Inconclusive, "inconclusive"),
    ("call", False, False, Descriptive, "descriptive"),
    ("call", False, False, ValueError, "error"),
    ("call", False, False, KeyboardInterrupt, "error"),
    ("setup", False, False, AssertionError, "error"),
    ("setup", False, False, Inconclusive, "error"),
    ("setup", False, False, Descriptive, "error"),
    ("teardown", False, False, RuntimeError, "error"),
    ("setup", False, True, None, "skipped"),
    ("setup", True, False, None, "holds"),
])
def test_each_phase_is_classified_as_the_claims_contract_says(when, passed, skipped, exc, expected):
    assert phase_outcome(when, passed, skipped, exc) == expected


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


def test_a_verdict_survives_only_when_every_definition_agrees():
    rs = [result(seed=0, definition="paper"), result(seed=0, definition="as-run"),
          result(seed=1, definition="paper"), result(seed=1, definition="as-run", outcome="contradicted"),
          result(seed=3, definition="paper"), result(seed=3, definition="as-run"),
          result(seed=3, definition="sound", outcome="inconclusive"),
          result(seed=2, definition="paper")]  # only one definition: no survival entry
    got = {(s.seed, s.survives) for s in survival(rs)}
    assert got == {(0, True), (1, False), (3, False)}
    three = next(s for s in survival(rs) if s.seed == 3)
    assert [d for d, _ in three.outcomes] == ["paper", "as-run", "sound"] and three.outcome("sound") == "inconclusive"


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
    "intervals": {"figure": "Table 1 (rliable)", "title": "IQM", "type": "intervals", "xlabel": "IQM", "ylabel": "",
                  "series": {"gpt2": {"value": 70.0, "low": 60.0, "high": 80.0},
                             "igpt": {"value": 2.0, "low": None, "high": None}}, "hline": 10.0},
}


def svg_size_px(svg: bytes) -> tuple[float, float]:
    """The SVG's width and height in CSS px (matplotlib writes pt: 1 pt = 4/3 px)."""
    m = re.search(rb'<svg[^>]*width="([\d.]+)pt" height="([\d.]+)pt"', svg)
    assert m, svg[:300]
    return float(m.group(1)) * 4 / 3, float(m.group(2)) * 4 / 3


@pytest.mark.parametrize("kind", sorted(FIGS))
def test_each_figure_type_is_drawn_as_an_svg_with_readable_text(kind):
    svg = figures.render_svg(FIGS[kind])
    width, _ = svg_size_px(svg)
    assert 500 <= width <= 1300                    # fits the page at 1366 px without scaling down
    sizes = [float(x) for x in re.findall(rb"font(?:-size)?: ?([\d.]+)px", svg)]
    assert sizes and min(sizes) * 4 / 3 >= 10 - 1e-9, sizes   # text at >= 10 px at the drawn size
    uri = figures.data_uri(FIGS[kind])
    assert uri.startswith("data:image/svg+xml,") and decode_uri(uri).encode() == svg
    assert not re.search(r"['&]", uri)     # safe as it is inside a single-quoted attribute


def test_a_figure_depends_on_its_data():
    other = {**FIGS["lines"], "series": {"a": {"x": [0, 1, 2], "y": [0.4, 0.1, 0.3]}}}
    assert figures.render_svg(FIGS["lines"]) != figures.render_svg(other)


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
    assert "<script>alert" not in html and "&lt;script&gt;" in html and "&lt;b&gt;bad" in html


# ----------------------------------------------------------------------------- the headline

def agg(claim="sec5_1.c", section="5.1", env="hopper", outcome="holds", p=0.01, variant=None, definition=None,
        value=1.0, ci=(0.5, 1.5), n=2, seeds_needed=None, order=0, docstring="", statistic="a statistic",
        **values) -> ClaimResult:
    """A seed aggregate (no seed parameter) with what ``check_aggregate`` records (its per-seed sd
    read back from the 95 % t interval, unless given)."""
    values.setdefault("sd", (ci[1] - ci[0]) / 2 / stats.t.ppf(0.975, max(n, 2) - 1) * math.sqrt(n))
    return result(claim=claim, section=section, env=env, seed=None, definition=definition, outcome=outcome,
                  order=order, variant=variant, docstring=docstring, value=value, ci_low=ci[0], ci_high=ci[1],
                  confidence=0.95, n=n, p_value=p, seeds_needed=seeds_needed, method="student-t",
                  statistic=statistic, direction=">", threshold=0.0, **values)


@pytest.mark.parametrize("outcomes, expected", [
    (["holds", "holds"], "holds"),
    (["holds", "inconclusive"], "inconclusive"),
    (["holds", "contradicted", "inconclusive"], "contradicted"),
    (["error", "holds"], "error"),
    (["inconclusive", "error"], "error"),
    (["error", "contradicted"], "contradicted"),
    (["holds", "skipped"], "holds"),
    (["descriptive", "descriptive"], "descriptive"),
    (["skipped", "descriptive"], "skipped"),
    ([], "skipped"),
])
def test_a_claims_variants_combine_as_a_conjunction(outcomes, expected):
    assert conjunction(outcomes) == expected


def test_the_headline_reads_the_seed_aggregates_under_the_papers_definition():
    rs = [agg(variant={"backbone": "gpt2"}, definition="paper", p=0.001),
          agg(variant={"backbone": "igpt"}, definition="paper", outcome="inconclusive", p=0.4, seeds_needed=9),
          agg(variant={"backbone": "igpt"}, definition="as-run", outcome="contradicted", p=0.001),
          result(claim="sec5_1.c", section="5.1", seed=0, definition="paper", outcome="contradicted")]
    [row] = build_headline(Report(tuple(rs))).rows
    assert (row.claim_id, row.env, row.definition, row.finding) == ("sec5_1.c", "hopper", "paper", "1")
    assert [v.variant for v in row.variants] == ["backbone=gpt2", "backbone=igpt"]
    assert row.outcome == row.corrected == "inconclusive" and row.shown.variant == "backbone=igpt"
    assert row.decide == "about 3 seeds would decide it (80 % power at level 0.05)"
    # a claim with a single definition (None) is read as is; the per-seed cells are never counted
    [row] = build_headline(Report((agg(outcome="contradicted"), result(claim="sec5_1.c", seed=0)))).rows
    assert row.outcome == "contradicted" and row.definition is None


def test_a_claim_without_a_seed_aggregate_is_shown_but_not_counted():
    rs = [result(claim="appG3.x", section="App. G.3", seed=s, outcome="descriptive", value=0.9) for s in (0, 1)]
    rs.append(agg(claim="sec5_4.y", section="5.4", outcome="holds", p=0.001))
    headline = build_headline(Report(tuple(rs)))
    row = next(r for r in headline.rows if r.claim_id == "appG3.x")
    assert row.outcome == row.holm_outcome == "descriptive" and row.finding == "4"
    assert "no seed aggregate" in row.note and "2 descriptive" in row.note
    assert headline.tally()["holds"] == 1 and sum(headline.tally().values()) == 2
    assert headline.family_size == 2 and row.p_value == 1.0      # a declared claim without a verdict: p = 1


def test_holm_adjusts_the_p_value_of_every_claim_and_demotes_what_does_not_survive():
    three = [agg(claim=f"sec5_{i + 1}.c", section=f"5.{i + 1}", p=p) for i, p in enumerate((0.01, 0.02, 0.04))]
    rows = build_headline(Report(tuple(three))).rows
    assert [r.p_holm for r in rows] == pytest.approx([0.03, 0.04, 0.04])
    assert [r.holm_outcome for r in rows] == ["holds"] * 3 and all(r.note == "" for r in rows)
    # an inconclusive fourth claim is part of the family: 0.04, 0.06, 0.08, 0.3
    four = (*three[:2], agg(claim="sec5_3.c", section="5.3", outcome="contradicted", p=0.04),
            agg(claim="sec5_5.c", section="5.5", outcome="inconclusive", p=0.3, seeds_needed=20))
    headline = build_headline(Report(four))
    rows = {r.claim_id: r for r in headline.rows}
    assert [rows[c].p_holm for c in ("sec5_1.c", "sec5_2.c", "sec5_3.c", "sec5_5.c")] == \
        pytest.approx([0.04, 0.06, 0.08, 0.3])
    assert rows["sec5_1.c"].holm_outcome == "holds"
    assert (rows["sec5_2.c"].outcome, rows["sec5_2.c"].holm_outcome) == ("holds", "inconclusive")
    assert (rows["sec5_3.c"].outcome, rows["sec5_3.c"].holm_outcome) == ("contradicted", "inconclusive")
    assert headline.tally("holm")["inconclusive"] == 3 and headline.tally()["inconclusive"] == 1
    # Benjamini-Hochberg, the primary verdict: 0.04, 0.04, 0.053, 0.3; never stricter than Holm
    assert [rows[c].p_bh for c in ("sec5_1.c", "sec5_2.c", "sec5_3.c", "sec5_5.c")] == \
        pytest.approx([0.04, 0.04, 0.16 / 3, 0.3])
    assert [rows[c].corrected for c in ("sec5_1.c", "sec5_2.c", "sec5_3.c")] == ["holds", "holds", "inconclusive"]
    assert rows["sec5_2.c"].note.startswith("holds its false discovery rate, not Holm's")
    assert headline.tally("bh")["inconclusive"] == 2


def test_a_claim_with_variants_is_one_member_of_the_family_with_its_intersection_union_p():
    rs = (agg(variant={"token": "state"}, p=0.001), agg(variant={"token": "action"}, p=0.03),
          agg(claim="sec5_2.c", section="5.2", outcome="inconclusive", p=0.5))
    headline = build_headline(Report(rs))
    row = next(r for r in headline.rows if r.claim_id == "sec5_1.c")
    assert headline.family_size == 2 and row.p_value == 0.03          # holds: the largest of its variants' p
    assert row.p_holm == pytest.approx(0.06) and (row.outcome, row.holm_outcome) == ("holds", "inconclusive")
    # contradicted when any variant is: the smallest contradicting p, times the variants (Bonferroni)
    rs = (agg(variant={"token": "state"}, outcome="contradicted", p=0.001), agg(variant={"token": "action"}, p=0.03))
    [row] = build_headline(Report(rs)).rows
    assert row.outcome == "contradicted" and row.p_value == pytest.approx(0.002)


def test_the_family_is_every_declared_claim_and_a_claim_not_run_counts_as_p_one():
    rs = (agg(p=0.01), agg(claim="sec5_2.c", section="5.2", p=0.02))
    declared = {"family": [["sec5_1.c", "hopper"], ["sec5_2.c", "hopper"], ["sec5_3.c", "hopper"],
                           ["table1.x", ""]]}
    headline = build_headline(Report(rs, provenance=declared))
    assert headline.family_size == 4
    assert [r.p_holm for r in headline.rows] == pytest.approx([0.04, 0.06])    # 0.01 x 4, 0.02 x 3
    assert [r.holm_outcome for r in headline.rows] == ["holds", "inconclusive"]
    # run alone (-k), a claim is corrected by the same family: the same verdict
    [alone] = build_headline(Report(rs[1:], provenance=declared)).rows
    assert alone.p_holm == pytest.approx(0.08) and alone.holm_outcome == "inconclusive"


def test_a_decisive_verdict_without_a_p_value_is_left_uncorrected_and_says_so():
    [row] = build_headline(Report((agg(p=None),))).rows
    assert row.holm_outcome == "holds" and "no p-value recorded" in row.note


def test_run_keys_give_their_env_and_seed():
    assert run_env_seed("hopper__gpt2__seed666__K20__abcd1234") == ("hopper", 666)
    assert run_env_seed("walker2d__igpt-noclip__seed0__K1__0f0f0f0f") == ("walker2d", 0)
    assert run_env_seed("hopper__pretrain__abcd1234") is None


def test_machine_seconds_per_seed_come_from_the_runs_wall_times():
    prov = {"run hopper__gpt2__seed0__K20__a": {"wall_time_s": 600.0},
            "run hopper__gpt2__seed1__K20__a": {"wall_time_s": 600.0},
            "run hopper__random__seed0__K20__b": {"wall_time_s": 300.0},
            "run hopper__random__seed1__K20__b": {"wall_time_s": 300.0},
            "run walker2d__gpt2__seed0__K20__c": {"wall_time_s": 400.0, "trained_here": False},
            "run walker2d__gpt2__seed1__K20__c": {"wall_time_s": None},    # unknown: not counted
            "run halfcheetah__pretrain__d": {"wall_time_s": 50.0},          # no seed: not counted
            "checkpoint sha256": {"x": "y"}}
    assert seconds_per_seed(prov) == {"hopper": 900.0, "walker2d": 400.0, "": 1300.0}
    assert seconds_per_seed({}) == {}


@pytest.mark.parametrize("seconds, text", [(40, "40 s"), (600, "10 min"), (3600, "60 min"), (5.5 * 3600, "5.5 h")])
def test_durations_read_in_the_right_unit(seconds, text):
    assert duration(seconds) == text


def test_an_inconclusive_verdict_says_how_many_seeds_and_how_long_they_take_here():
    prov = {f"run {e}__gpt2__seed{s}__K20__a": {"wall_time_s": 900.0} for e in ("hopper",) for s in (0, 1)}
    rs = (agg(outcome="inconclusive", p=0.3, seeds_needed=6, variant={"token": "state"}),
          agg(outcome="inconclusive", p=0.5, seeds_needed=4, variant={"token": "action"}),
          agg(env="walker2d", outcome="inconclusive", p=0.5, seeds_needed=3),
          agg(env="halfcheetah", outcome="inconclusive", p=0.9, seeds_needed=None),
          agg(claim="sec5_2.c", section="5.2", p=0.001))
    headline = build_headline(Report(rs, provenance=prov))
    rows = {(r.claim_id, r.env): r for r in headline.rows}
    # at the next Benjamini-Hochberg step: one of four claims decided, so (1 + 1) x 0.05 / 4 = 0.025; an
    # effect of 18 per-seed sd needs 3 seeds there (sd read back from the interval [0.5, 1.5] at n = 2)
    assert headline.decide_text(rows[("sec5_1.c", "hopper")]) == (
        "about 3 seeds would decide it (80 % power at level 0.025); 1 more seed of hopper: about 15 min on this "
        "machine (15 min per seed)")
    assert headline.decide_text(rows[("sec5_1.c", "walker2d")]) == (
        "about 3 seeds would decide it (80 % power at level 0.025)")       # no wall times recorded for walker2d
    flat = build_headline(Report((agg(outcome="inconclusive", p=0.9, value=0.0),), provenance=prov)).rows[0]
    assert flat.decide == "no feasible number of seeds decides it: more than 1000 would be needed at the observed effect"
    assert decide_text(rows[("sec5_2.c", "hopper")], headline.seconds_per_seed) == ""


def test_two_seeds_are_explained_only_when_the_grid_ran_two():
    rs = (agg(),)
    two = build_headline(Report(rs, provenance={"grid": "envs=hopper seeds=0,1 backbones=gpt2"}))
    assert "±12.7 standard errors" in two.two_seed_note and "about 9 per-seed standard deviations" in two.two_seed_note
    three = build_headline(Report(rs, provenance={"grid": "envs=hopper seeds=0,1,2"}))
    assert three.grid_seeds == 3 and three.two_seed_note == ""
    # without a recorded grid: the seeds of the per-seed cells
    assert build_headline(Report((agg(), result(seed=0), result(seed=1)))).grid_seeds == 2


@pytest.mark.parametrize("section, key", [
    ("Table 1", "Table 1"), ("5.1", "1"), ("5.1.2", "1"), ("5.2", "2"), ("5.3", "3"), ("5.4", "4"),
    ("5.5", "5"), ("5.6.1", "6"), ("5.6.2", "7"), ("5.6", "Other"), ("5.10", "Other"), ("Table 2", "5"),
    ("Table 4", "5"), ("Table 3", "Other"), ("App. D.5", "1"), ("App. E.2", "2"), ("App. H.1", "2"),
    ("App. F", "3"), ("App. G.3", "4"), ("App. B.1", "Other"), ("6", "Other"),
])
def test_each_section_belongs_to_the_papers_finding(section, key):
    assert finding_key(section) == key


def test_the_headline_is_grouped_by_finding_in_the_posters_order():
    rs = (agg(claim="appG3.a", section="App. G.3"), agg(claim="sec5_4.b", section="5.4"),
          agg(claim="table1.c", section="Table 1"), agg(claim="sec5_6_2.d", section="5.6.2"),
          agg(claim="appZ1.e", section="App. Z.1"), agg(claim="table2.f", section="Table 2"))
    groups = build_headline(Report(rs)).by_finding()
    assert [(k, [r.claim_id for r in rows]) for k, rows in groups] == [
        ("Table 1", ["table1.c"]), ("4", ["sec5_4.b", "appG3.a"]), ("5", ["table2.f"]), ("7", ["sec5_6_2.d"]),
        ("Other", ["appZ1.e"])]
    assert [f.key for f in FINDINGS] == ["Table 1", "1", "2", "3", "4", "5", "6", "7", "Other"]


def test_a_claim_is_labelled_by_the_sentence_that_quotes_the_paper():
    rs = (agg(docstring="§5.1 (seed aggregate): a paraphrase.", order=1),
          result(claim="sec5_1.c", section="5.1", seed=0, order=0,
                 docstring='§5.1: "the pre-trained models changed their representations more largely"\n\nmore'))
    [row] = build_headline(Report(rs)).rows
    assert row.sentence == '§5.1: "the pre-trained models changed their representations more largely"'
    assert row.statistic == "a statistic > 0"


# ----------------------------------------------------------------------------- the README table

def readme_report() -> Report:
    rs = (agg(claim="table1.a", section="Table 1", p=0.001, value=11.8, ci=(4.1, 20.5),
              docstring='Table 1: "GPT2 beats Random Init on hopper"'),
          agg(claim="sec5_3.b", section="5.3", outcome="inconclusive", p=0.4, seeds_needed=7,
              statistic="|L2 ratio|"),
          agg(claim="sec5_4.c", section="5.4", outcome="contradicted", p=0.03, value=-2.0, ci=(-3.0, -1.0),
              variant={"backbone": "igpt"}),
          agg(claim="sec5_4.c", section="5.4", outcome="holds", p=0.001, variant={"backbone": "gpt2"}))
    prov = {"grid": "envs=hopper seeds=0,1 backbones=gpt2,igpt", "git sha": "0123456789abcdef",
            "run hopper__gpt2__seed0__K20__a": {"wall_time_s": 1800.0}}
    return Report(rs, profile="mini", provenance=prov, created="2026-01-01T00:00:00")


def test_the_readme_table_has_one_row_per_claim_and_env_with_raw_and_holm_verdicts():
    lines = claims_table(readme_report()).splitlines()[4:]   # after the premise (tested below)
    assert lines[0] == ("Profile **mini**, grid `envs=hopper seeds=0,1 backbones=gpt2,igpt`, git sha `0123456789`, "
                        "written 2026-01-01T00:00:00: 3 claim x environment verdicts (family of 3): 1 holds, "
                        "0 contradicted, 2 inconclusive, 0 error after Benjamini-Hochberg; raw 1 holds, "
                        "1 contradicted, 1 inconclusive, 0 error; after Holm 1 holds, 0 contradicted, "
                        "2 inconclusive, 0 error.")
    assert "12.7 standard errors" in lines[2]
    table = [line for line in lines if line.startswith("|")]
    assert table[0].startswith("| Finding | Claim | Env | Verdict") and len(table) == 5
    t1, c53, c54 = table[2:]
    assert t1 == ('| Table 1 | Table 1: "GPT2 beats Random Init on hopper" | hopper | holds (adjusted p 0.003) | '
                  'holds 11.8 [4.1, 20.5] | holds (adjusted p 0.003) |  |')
    assert c53.startswith("| 3 (§5.3) | \\|L2 ratio\\| > 0 | hopper | inconclusive | inconclusive 1 [0.5, 1.5] | "
                          "inconclusive |")
    # one of three claims decided: the next BH step is 2 x 0.05 / 3; one more seed x 1800 s
    assert c53.endswith("| about 3 seeds would decide it (80 % power at level 0.033) (~30 min more) |")
    assert "contradicted -2 [-3, -1] (weakest of 2 variants: backbone=igpt)" in c54
    # the family of claims: 0.001, 0.4 and 2 x 0.03 (contradicted on one of two variants): BH 0.003, 0.4,
    # 0.09; Holm 0.003, 0.4, 0.12
    assert "| inconclusive (adjusted p 0.09) |" in c54 and "| inconclusive (adjusted p 0.12) |" in c54


def test_the_table_replaces_only_the_text_between_the_markers():
    text = f"a\n{START}\nold\n{END}\nb\n"
    assert replace_between_markers(text, "new\n") == f"a\n{START}\nnew\n{END}\nb\n"
    with pytest.raises(ValueError, match="markers"):
        replace_between_markers("no markers here", "new")
    with pytest.raises(ValueError, match="markers"):
        replace_between_markers(f"{END}\n{START}", "new")


def test_python_m_reports_readme_prints_or_writes_the_table(tmp_path, capsys):
    js = tmp_path / "claims.json"
    js.write_text(readme_report().to_json())
    assert reports_main(["readme", str(js)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("**Premise** of the mechanism findings") and "| Finding |" in printed
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n{START}\nold\n{END}\ntail\n")
    assert reports_main(["readme", str(js), "--write", str(readme)]) == 0
    assert readme.read_text() == f"# title\n{START}\n{printed.strip()}\n{END}\ntail\n"
    bare = tmp_path / "BARE.md"
    bare.write_text("# no markers\n")
    assert reports_main(["readme", str(js), "--write", str(bare)]) == 2
    err = capsys.readouterr().err
    assert str(bare) in err and START in err and bare.read_text() == "# no markers\n"


# ----------------------------------------------------------------------------- page: headline

def test_the_pages_tallies_count_headline_verdicts_not_cells():
    rs = (*(result(claim="sec5_1.c", section="5.1", seed=s, outcome="holds", value=1.0, ci_low=0.9, ci_high=1.1,
                   units="evaluation episodes", n_units=10) for s in (0, 1, 2)),
          result(claim="sec5_1.c", section="5.1", seed=3, outcome="descriptive", value=0.5, method="descriptive"),
          agg(outcome="inconclusive", p=0.2, seeds_needed=5))
    html = render_html(Report(rs, profile="mini"))
    raw = html[html.index('id="tally-raw"'):html.index('id="glossary"')]
    assert '<li class="inconclusive" data-outcome="inconclusive">1 inconclusive</li>' in raw
    assert '<li class="holds" data-outcome="holds">0 holds</li>' in raw
    assert 'class="cell descriptive" data-outcome="descriptive"' in html
    assert "10 evaluation episodes" in html and "[0.9, 1.1]" in html
    assert "seeds would decide it (80 % power at level 0.05)" in html
    assert 'title="sec5_1.c"' in html


# ----------------------------------------------------------------------------- the premise

def table1(claim, env="hopper", outcome="holds", p=0.001, **kw) -> ClaimResult:
    return agg(claim=f"table1.{claim}", section="Table 1", env=env, outcome=outcome, p=p, **kw)


# The premise's parts as claims/test_table1_returns.py declares them (dtcore.claim.premise_parts).
_IGPT = ["table1.igpt_catastrophic", "iGPT catastrophic (score < 10)"]
_CLOSE = ["table1.gpt2_close_to_random", "GPT2 within 5 points of Random Init"]
PREMISE = {"hopper": [["table1.gpt2_beats_random_on_hopper", "GPT2 above Random Init"], _IGPT],
           "halfcheetah": [_CLOSE, _IGPT], "walker2d": [_CLOSE, _IGPT],
           "": [["table1.igpt_catastrophic_across_envs", "iGPT catastrophic across environments (IQM < 10)"]]}


def with_premise(rs) -> Report:
    return Report(tuple(rs), provenance={"premise": PREMISE})


def premise_report() -> Report:
    """hopper: both parts hold; halfcheetah: GPT2 is not within 5 points of Random Init;
    walker2d: iGPT's score is undecided. A §5.3 claim in each env makes findings to head."""
    rs = (table1("gpt2_beats_random_on_hopper", value=11.8, ci=(4.1, 20.5)),
          table1("igpt_catastrophic", value=2.6, ci=(1.0, 4.2)),
          table1("gpt2_close_to_random", env="halfcheetah", outcome="contradicted", value=7.5, ci=(6.0, 9.0)),
          table1("igpt_catastrophic", env="halfcheetah"),
          table1("gpt2_close_to_random", env="walker2d"),
          table1("igpt_catastrophic", env="walker2d", outcome="inconclusive", p=0.4, value=9.0, ci=(2.0, 16.0),
                 seeds_needed=6),
          *(agg(claim="sec5_3.c", section="5.3", env=e) for e in ("hopper", "halfcheetah", "walker2d")))
    return Report(rs, profile="mini", provenance={"grid": "envs=hopper,halfcheetah,walker2d seeds=0,1,2",
                                                  "premise": PREMISE})


HOLDS = ("The run reproduces the paper's premise on hopper: the mechanism findings below are tested where "
         "pre-training matters as the paper says.")
CONTRADICTED = ("The run does NOT reproduce the paper's premise on halfcheetah (GPT2 within 5 points of Random "
                "Init contradicted): the mechanism verdicts below are tested where pre-training does not help "
                "as in the paper, so they say little about the paper's explanation.")
UNDECIDED = ("The premise is undecided on walker2d (iGPT catastrophic (score < 10) inconclusive: about 3 seeds "
             "would decide it (80 % power at level 0.05)): read the mechanism verdicts below with that in mind.")


@pytest.mark.parametrize("outcomes, expected", [
    (["holds", "holds"], "holds"),
    (["holds", "inconclusive"], "inconclusive"),
    (["inconclusive", "contradicted"], "contradicted"),
    (["holds", "error"], "error"),
    (["error", "contradicted"], "contradicted"),
    ([NOT_TESTED, "holds"], NOT_TESTED),
    ([NOT_TESTED, "inconclusive"], NOT_TESTED),
    ([NOT_TESTED, "error"], "error"),
    ([NOT_TESTED, "contradicted"], "contradicted"),   # one failed part decides it whatever is missing
    ([], NOT_TESTED),
])
def test_the_premise_is_the_conjunction_of_its_parts_and_a_missing_part_leaves_it_not_tested(outcomes, expected):
    assert premise_outcome(outcomes) == expected


def test_the_premise_holds_is_contradicted_or_undecided_per_environment():
    premises = {p.env: p for p in build_premises(build_headline(premise_report()))}
    assert list(premises) == ["hopper", "halfcheetah", "walker2d"]
    assert {e: (p.outcome, p.holm_outcome) for e, p in premises.items()} == {
        "hopper": ("holds", "holds"), "halfcheetah": ("contradicted", "contradicted"),
        "walker2d": ("inconclusive", "inconclusive")}
    assert [part.claim_id for part in premises["hopper"].parts] == ["table1.gpt2_beats_random_on_hopper",
                                                                    "table1.igpt_catastrophic"]
    assert [part.claim_id for part in premises["walker2d"].parts] == ["table1.gpt2_close_to_random",
                                                                      "table1.igpt_catastrophic"]
    assert premises["hopper"].sentence == HOLDS
    assert premises["halfcheetah"].sentence == CONTRADICTED
    assert premises["walker2d"].sentence == UNDECIDED
    assert premises["hopper"].parts[0].text() == "GPT2 above Random Init: holds 11.8 [4.1, 20.5]"


def test_a_missing_or_skipped_table1_row_leaves_the_premise_not_tested_and_says_so():
    rs = (table1("gpt2_beats_random_on_hopper"),                       # no iGPT row on hopper
          table1("gpt2_close_to_random", env="walker2d"),
          table1("igpt_catastrophic", env="walker2d", outcome="skipped", p=None,
                 message="this claim compares igpt; --backbones excluded igpt"),
          table1("gpt2_close_to_random", env="halfcheetah", outcome="contradicted"),   # contradicted wins
          agg(claim="sec5_3.c", section="5.3", env="antmaze"))
    premises = {p.env: p for p in build_premises(build_headline(with_premise(rs)))}
    assert {e: p.outcome for e, p in premises.items()} == {
        "hopper": NOT_TESTED, "walker2d": NOT_TESTED, "halfcheetah": "contradicted", "antmaze": NOT_TESTED}
    assert premises["hopper"].sentence == (
        "The premise is not tested on hopper (iGPT catastrophic (score < 10) not tested: not in this run): the run "
        "cannot say whether pre-training matters there as the paper says; read the mechanism verdicts below "
        "with that in mind.")
    assert "(iGPT catastrophic (score < 10) not tested: skipped: this claim compares igpt; --backbones excluded " \
           "igpt)" in premises["walker2d"].sentence
    assert premises["antmaze"].parts == () and "(no claim of the premise is declared for antmaze)" in \
        premises["antmaze"].sentence


def test_the_across_environments_row_joins_every_premise_and_holm_can_undo_one():
    three = (table1("gpt2_beats_random_on_hopper", p=0.02), table1("igpt_catastrophic", p=0.001),
             table1("gpt2_close_to_random", env="walker2d", p=0.001),
             table1("igpt_catastrophic", env="walker2d", p=0.001))
    # Holm over 0.001 x 3, 0.02 and two inconclusive claims at 0.5: 0.02 is the 4th of 6, 3 x 0.02 = 0.06
    rows = (*three, agg(claim="sec5_3.c", section="5.3", outcome="inconclusive", p=0.5),
            agg(claim="sec5_3.d", section="5.3", outcome="inconclusive", p=0.5))
    hopper, walker = build_premises(build_headline(with_premise(rows)))
    assert (hopper.outcome, hopper.holm_outcome) == ("holds", "inconclusive")
    # Benjamini-Hochberg (primary) keeps 0.02 (4th of 6: 0.02 x 6 / 4 = 0.03); Holm does not
    assert hopper.label == "holds" and walker.label == "holds"
    assert hopper.sentence == HOLDS
    across = table1("igpt_catastrophic_across_envs", env=None, outcome="contradicted", value=14.0, ci=(11.0, 17.0))
    errs = table1("igpt_catastrophic", env="walker2d", outcome="error", p=None, message="RuntimeError: no data")
    hopper, walker = build_premises(build_headline(with_premise((*three[:3], errs, across))))
    assert [p.claim_id for p in hopper.parts][-1] == "table1.igpt_catastrophic_across_envs"
    assert hopper.outcome == walker.outcome == "contradicted"
    assert "(iGPT catastrophic across environments (IQM < 10) contradicted)" in walker.sentence
    hopper, walker = build_premises(build_headline(with_premise((*three[:3], errs))))
    assert walker.outcome == "error" and "(iGPT catastrophic (score < 10) error)" in walker.sentence


def test_the_mechanism_heading_names_the_premise_of_each_environment():
    premises = build_premises(build_headline(premise_report()))
    assert mechanism_heading(premises) == ("Mechanism findings (premise on hopper: holds; on halfcheetah: "
                                           "contradicted; on walker2d: inconclusive)")
    assert mechanism_heading(()) == "Mechanism findings (premise not tested: no environment in this run)"
    assert build_premises(build_headline(Report((agg(env=None),)))) == ()


def test_the_page_opens_with_the_premise_and_heads_findings_1_to_7_with_it():
    html = render_html(premise_report())
    premise, tally, table1_head = (html.index('id="premise"'), html.index('id="tally"'), html.index("<h3>Table 1</h3>"))
    heading = ("Mechanism findings (premise on hopper: holds; on halfcheetah: contradicted; on walker2d: "
               "inconclusive)")
    mechanism = html.index(f'<h2 class="mechanism" id="mechanism">{heading}</h2>')
    assert premise < tally < table1_head < mechanism < html.index("<h3>Finding 3 (§5.3)</h3>")
    block = html[premise:tally]
    for env, outcome in (("hopper", "holds"), ("halfcheetah", "contradicted"), ("walker2d", "inconclusive")):
        assert (f'<tr class="premise-row" data-env="{env}" data-outcome="{outcome}" data-corrected="{outcome}" '
                f'data-holm="{outcome}">') in block
    for sentence in (HOLDS, CONTRADICTED, UNDECIDED):
        assert sentence.replace("'", "&#39;").replace("<", "&lt;") in block
    assert '<span class="num">11.8 [4.1, 20.5]</span>' in block and "about 3 seeds would decide it" in block
    # the claim sections repeat the heading above findings 1-7
    claims = html[html.index('id="claims"'):]
    assert claims.index(f'<h3 class="mechanism-head">{heading}</h3>') < claims.index("Finding 3 (§5.3):")
    # a run without Table 1 says it did not test the premise
    html = render_html(Report((agg(claim="sec5_3.c", section="5.3"),)))
    assert ('<tr class="premise-row" data-env="hopper" data-outcome="not tested" data-corrected="not tested" '
            'data-holm="not tested">') in html
    assert "Mechanism findings (premise on hopper: not tested)" in html


def test_the_readme_and_the_terminal_open_with_the_premise_per_environment(tmp_path, capsys):
    lines = claims_table(premise_report()).splitlines()
    assert lines[0] == ("**Premise** of the mechanism findings 1-7 (Table 1's ordering), per environment, "
                        "after Benjamini-Hochberg (raw and Holm beside):")
    assert lines[2] == ("- **hopper: holds** (raw: holds; Holm: holds). GPT2 above Random Init: holds 11.8 "
                        "[4.1, 20.5]; iGPT catastrophic (score < 10): holds 2.6 [1, 4.2]. " + HOLDS)
    assert lines[3].startswith("- **halfcheetah: contradicted** (raw: contradicted; Holm: contradicted). GPT2 within 5 points "
                               "of Random Init: contradicted 7.5 [6, 9];") and lines[3].endswith(CONTRADICTED)
    assert lines[4].startswith("- **walker2d: inconclusive**") and lines[4].endswith(UNDECIDED)
    assert lines[6].startswith("Profile **mini**")
    js = tmp_path / "claims.json"
    js.write_text(premise_report().to_json())
    assert reports_main(["readme", str(js)]) == 0
    assert capsys.readouterr().out.splitlines()[:5] == lines[:5]
    terminal = premise_lines(build_premises(build_headline(premise_report())))
    assert [line.split(".")[0] for line in terminal] == [
        "dtclaims premise on hopper: holds (raw: holds; Holm: holds)",
        "dtclaims premise on halfcheetah: contradicted (raw: contradicted; Holm: contradicted)",
        "dtclaims premise on walker2d: inconclusive (raw: inconclusive; Holm: inconclusive)"]
    assert ("iGPT catastrophic (score < 10): inconclusive 9 [2, 16] (about 3 seeds would decide it (80 % power "
            "at level 0.05))") in terminal[2]
    assert premise_lines(()) == ["dtclaims premise: not tested (no environment in this run)"]


@pytest.mark.parametrize("mutate, message", [
    (lambda d: [], "expected a JSON object"),
    (lambda d: None, "expected a JSON object"),
    (lambda d: {**d, "results": None}, "'results' must be a list"),
    (lambda d: {**d, "results": [{**d["results"][0], "outcome": "bogus"}]}, "outcome 'bogus' is not one of"),
    (lambda d: {**d, "results": [{**d["results"][0], "seed": "abc"}]}, "seed 'abc' is not an integer"),
    (lambda d: {**d, "results": [{**d["results"][0], "values": None}]}, "values must be an object"),
    (lambda d: {**d, "results": [{**d["results"][0], "colour": "red"}]}, "unexpected keyword argument 'colour'"),
    (lambda d: {**d, "sequential": {"design": {"looks": [3]}}}, "sequential: malformed block (KeyError: 'claims')"),
    (lambda d: {**d, "sequential": {"design": {}, "claims": {"no-env": {}}}}, "claim key 'no-env' is not"),
], ids=["list", "null", "no-results", "outcome", "seed", "values", "unknown-field", "sequential", "sequential-key"])
def test_python_m_reports_refuses_a_json_that_is_not_a_report_with_one_line_and_rc_2(mutate, message, tmp_path,
                                                                                      capsys):
    from reports.__main__ import main

    good = Report((result(claim="sec5_1.c", seed=0),), profile="mini").to_dict()
    Report.from_dict(good)                                              # the unmutated report reads
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(mutate(good)))
    with pytest.raises(SystemExit) as exit_:
        main(["compare", str(bad), str(bad)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and err.count("\n") == 0, err


# ----------------------------------------------------------------------------- figures across seeds

def test_the_seed_aggregate_is_the_mean_with_a_95_percent_t_band_and_boxes_pool():
    seeds = [{**FIGS["lines"], "title": f"hopper seed {s}: MI", "series": {
        "gpt2": {"x": [0, 1, 2], "y": [y, y + 1, y + 2]}}} for s, y in ((0, 1.0), (1, 3.0), (2, 2.0))]
    agg = figures.aggregate(seeds)
    assert agg["title"] == "hopper mean ± 95 % t band over 3 seeds: MI"
    assert agg["series"]["gpt2"]["y"] == pytest.approx([2.0, 3.0, 4.0])
    half = stats.t.ppf(0.975, 2) * 1.0 / math.sqrt(3)        # sd of (1, 3, 2) is 1
    assert agg["series"]["gpt2"]["err"] == pytest.approx([half] * 3)
    assert figures.panel_key(seeds[0]) == figures.panel_key(seeds[1]) == "hopper seed *: MI"
    other = {**FIGS["boxes"], "series": {"a": {"early": [4, 5], "late": [6]}}}
    boxes = figures.aggregate([FIGS["boxes"], other])
    assert boxes["series"]["a"]["early"] == [1, 2, 3, 4, 5] and len(boxes["series"]["a"]["late"]) == 4


def test_every_figure_gives_a_body_its_one_colour():
    """GPT2, iGPT and Random Init keep one colour each whether a body names a series, a bar or a
    box group, in any order; K=1 is a lighter shade of the body's; other series never take a body's."""
    lines = {**FIGS["lines"], "series": {"random": {"x": [0], "y": [1]}, "gpt2 K1": {"x": [0], "y": [1]},
                                        "igpt": {"x": [0], "y": [1]}, "gpt2": {"x": [0], "y": [1]},
                                        "block 3": {"x": [0], "y": [1]}}}
    bars = {**FIGS["bars"], "series": {"confusion": {"labels": ["igpt", "random"], "values": [0.1, 0.2]}}}
    boxes = {**FIGS["boxes"], "series": {"norm": {"random": [0.1], "gpt2": [0.2], "igpt": [0.3]}}}
    got = {**figures.colors(lines), **figures.colors(bars), **figures.colors(boxes)}
    for body, colour in figures.BODY_COLORS.items():
        assert got[body] == colour
    assert got["gpt2 K1"] not in figures.BODY_COLORS.values() and got["block 3"] not in figures.BODY_COLORS.values()
    for fig in (lines, bars, boxes):
        svg = figures.render_svg(fig).decode()
        assert all(figures.BODY_COLORS[b] in svg for b in figures.colors(fig) if b in figures.BODY_COLORS)


def test_cka_is_drawn_on_zero_to_one_and_a_dashed_line_is_labelled():
    fig = {**FIGS["lines"], "figure": "Fig. 1", "ylabel": "CKA(epoch 0, final)", "hline": 0.5,
           "series": {"gpt2": {"x": [0, 1], "y": [0.97, 0.99]}}}
    svg = figures.render_svg(fig).decode()
    assert ">1.0<" in svg and ">0.0<" in svg and "threshold (0.5)" in svg
    clip = figures.render_svg({**FIGS["boxes"], "figure": "Fig. 6", "hline": 0.25}).decode()
    assert "clip value (0.25)" in clip


def test_an_axis_of_whole_numbers_has_whole_number_ticks():
    """Three epochs read 1, 2, 3 (not 1.00, 1.25, ... 3.00); a fractional axis keeps its ticks."""
    def ticks(svg: str) -> list[str]:
        return re.findall(r">(-?[\d.]+)<", svg)
    epochs = {**FIGS["lines"], "series": {"a": {"x": [1, 2, 3], "y": [0.7, 0.65, 0.6]}}, "hline": None}
    svg = figures.render_svg(epochs).decode()
    assert {"1", "2", "3"} <= set(ticks(svg)) and not [t for t in ticks(svg) if t in ("1.25", "1.5", "2.5")]
    assert any("." in t for t in ticks(svg))                  # the action error's axis is not whole
    long = {**epochs, "series": {"a": {"x": list(range(1, 19)), "y": [float(e) for e in range(1, 19)]}}}
    assert not [t for t in ticks(figures.render_svg(long).decode()) if "." in t]


def test_a_long_axis_label_is_wrapped_along_the_axis():
    fig = {**FIGS["lines"], "ylabel": "training action error (MSE, last batch)"}
    svg = figures.render_svg(fig).decode()
    assert ">training action error<" in svg and ">(MSE, last batch)<" in svg


def test_a_marked_point_is_ringed_named_once_in_the_legend_and_left_out_of_the_aggregate():
    """Table 1's curves ring each body's selected epoch (per seed, so not in the seed aggregate)."""
    def curve(seed, best):
        return {**FIGS["lines"], "figure": "Table 1", "title": f"hopper seed {seed}: score", "hline": None,
                "series": {b: {"x": [1, 2, 3], "y": [1.0, 3.0 + seed, 2.0],
                               "mark": {"x": best, "label": "selected epoch"}} for b in ("gpt2", "random")}}
    svg = figures.render_svg(curve(0, 2)).decode()
    plain = figures.render_svg({**curve(0, 2), "series": {b: {k: v for k, v in s.items() if k != "mark"}
                                                        for b, s in curve(0, 2)["series"].items()}}).decode()
    assert svg.count(">selected epoch<") == 1
    assert svg.count("<use") == plain.count("<use") + 3          # a ring on each curve and one in the legend
    assert all("mark" not in s for s in figures.aggregate([curve(0, 2), curve(1, 3)])["series"].values())
    with pytest.raises(ValueError, match="mark"):
        figures.validate(curve(0, 7))


def test_many_bar_labels_stand_upright_in_a_wider_figure():
    names = [f"{b}.attn.c_attn.weight" for b in range(40)]
    fig = {**FIGS["bars"], "series": {"gpt2": {"labels": names, "values": [0.1] * 40}}}
    width, _ = svg_size_px(figures.render_svg(fig))
    assert width > svg_size_px(figures.render_svg(FIGS["bars"]))[0] and width <= 1300
    assert 'rotate(-90' in figures.render_svg(fig).decode()


# ----------------------------------------------------------------------------- the paper's tables

def test_table1_is_redrawn_as_the_papers_table_with_its_values_and_each_cells_verdict():
    from dataclasses import replace as dc_replace

    from reports.tables import paper_tables

    def cell(seed, scores):
        columns = ["body", "selected_epoch", "scored", "last_epoch"]
        r = result(claim="table1.igpt_catastrophic", section="Table 1", env="hopper", seed=seed,
                   definition="as-run", outcome="holds", value=1.0)
        return dc_replace(r, tables={"table1": {"title": "Table 1", "columns": columns,
                                                "rows": [[b, 3, s, s - 1] for b, s in scores.items()],
                                                "paper_rows": [["gpt2", 79.5], ["igpt", 2.6], ["random", 67.7]]}})
    rs = (cell(0, {"gpt2": 70.0, "igpt": 2.0, "random": 60.0}), cell(1, {"gpt2": 74.0, "igpt": 4.0, "random": 62.0}),
          table1("igpt_catastrophic", definition="as-run", outcome="holds", p=0.001),
          table1("gpt2_beats_random_on_hopper", definition="as-run", outcome="holds", p=0.3))
    report = Report(rs, profile="mini")
    (table,) = paper_tables(report.results, build_headline(report))
    assert table.definition == "as-run" and table.bodies == ("gpt2", "igpt", "random")
    (env, (gpt2, igpt, rand)), = table.rows
    assert env == "hopper" and gpt2.text == f"72.0 ± {math.sqrt(8):.1f}" and gpt2.n == 2 and gpt2.paper == 79.5
    assert igpt.mean == 3.0 and igpt.paper == 2.6 and rand.paper == 67.7 and rand.rows == ()
    assert [(r.claim_id, r.corrected) for r in igpt.rows] == [("table1.igpt_catastrophic", "holds")]
    assert [r.claim_id for r in gpt2.rows] == ["table1.gpt2_beats_random_on_hopper"]
    html = render_html(report)
    block = html[html.index('id="paper-tables"'):html.index('id="grid"')]
    assert "72.0 ± 2.8" in block and "paper 79.5" in block and "paper 2.6" in block and ">reference<" in block
    # the per-seed table: the paper's values under their own header, never under "selected_epoch"
    paper_table = html[html.index("the paper's</caption>"):]
    assert paper_table.index("<th>paper</th>") < paper_table.index("79.5")
    assert "selected_epoch" not in paper_table[:paper_table.index("</table>")]


def test_tables_2_and_4_are_redrawn_with_table_4s_sd_table_2s_seed_and_the_claim_of_each_cell():
    """The K=1 table that sec5_5.gpt2_learns_without_context's per-seed cells record: mean ± sd over
    seeds per env and body, Table 4's mean ± sd and Table 2's seed 666 beside it, and the verdict of
    the claim the record names for each cell (Random Init's differs by environment)."""
    from dataclasses import replace as dc_replace

    from reports.tables import paper_tables

    claims = {"hopper": [["gpt2", "sec5_5.gpt2_learns_without_context"],
                         ["random", "sec5_5.random_init_fails_without_context_on_hopper"]],
              "walker2d": [["gpt2", "sec5_5.gpt2_learns_without_context"],
                           ["random", "table2.random_init_learns_without_context_off_hopper"]]}
    paper = {"hopper": ([["gpt2", 81.3, 2.5], ["random", -0.3, 0.1]], [["gpt2", 83.73, "Table 2, seed 666"],
                                                                       ["random", -0.24, "Table 2, seed 666"]]),
             "walker2d": ([["gpt2", 71.2, 2.2], ["random", 35.6, 33.5]], [["gpt2", 69.0, "Table 2, seed 666"],
                                                                        ["random", 69.1, "Table 2, seed 666"]])}

    def cell(env, seed, scores):
        r = result(claim="sec5_5.gpt2_learns_without_context", section="5.5", env=env, seed=seed,
                   definition="as-run", outcome="holds", value=1.0)
        return dc_replace(r, tables={"table2": {
            "title": "Tables 2 and 4", "columns": ["body", "selected_epoch", "scored", "scored with K=20"],
            "rows": [[b, 3, s, 70.0] for b, s in scores.items()], "paper_rows": paper[env][0],
            "paper_columns": ["paper: Table 4", "sd"], "paper_also": paper[env][1], "claims": claims[env]}})
    rs = (cell("hopper", 0, {"gpt2": 80.0, "random": 1.0}), cell("hopper", 1, {"gpt2": 84.0, "random": 3.0}),
          cell("walker2d", 0, {"gpt2": 70.0, "random": 60.0}),
          agg(claim="sec5_5.gpt2_learns_without_context", section="5.5", env="hopper", definition="as-run"),
          agg(claim="sec5_5.gpt2_learns_without_context", section="5.5", env="walker2d", definition="as-run",
              outcome="contradicted"),
          agg(claim="sec5_5.random_init_fails_without_context_on_hopper", section="5.5", env="hopper",
              definition="as-run", outcome="contradicted", p=0.002),
          agg(claim="table2.random_init_learns_without_context_off_hopper", section="Table 2", env="walker2d",
              definition="as-run", outcome="inconclusive", p=0.4),
          agg(claim="sec5_5.gpt2_learns_faster_than_random_without_context", section="5.5", env="hopper",
              definition="as-run"))
    report = Report(rs, profile="mini")
    (table,) = paper_tables(report.results, build_headline(report))
    assert table.name == "table2" and table.title.startswith("Tables 2 and 4") and table.bodies == ("gpt2", "random")
    (hopper, (gpt2, rand)), (walker, (gpt2_w, rand_w)) = table.rows
    assert hopper == "hopper" and gpt2.text == f"82.0 ± {math.sqrt(8):.1f}" and gpt2.paper_text == "81.3 ± 2.5"
    assert rand.text == f"2.0 ± {math.sqrt(2):.1f}" and rand.paper_also == (("Table 2, seed 666", -0.24),)
    assert [r.claim_id for r in gpt2.rows] == ["sec5_5.gpt2_learns_without_context"]    # not the Fig. 8 claim
    assert [(r.claim_id, r.outcome) for r in rand.rows] == [
        ("sec5_5.random_init_fails_without_context_on_hopper", "contradicted")]
    assert walker == "walker2d" and gpt2_w.text == "70.0" and gpt2_w.n == 1 and rand_w.paper_text == "35.6 ± 33.5"
    assert [(r.claim_id, r.outcome) for r in rand_w.rows] == [
        ("table2.random_init_learns_without_context_off_hopper", "inconclusive")]
    html = render_html(report)
    block = html[html.index('data-table="table2"'):html.index('id="grid"')]
    assert "82.0 ± 2.8" in block and "paper 81.3 ± 2.5" in block and "Table 2, seed 666: -0.24" in block
    assert "paper 35.6 ± 33.5" in block and ">reference<" not in block[:block.index("</table>")]
    per_seed = html[html.index("Tables 2 and 4: the paper's</caption>"):]
    assert per_seed.index("<th>paper: Table 4</th><th>sd</th>") < per_seed.index("81.3")


def test_table1s_aggregates_across_environments_are_drawn_as_rliable_intervals():
    from reports.tables import rliable_figures

    iqm = table1("igpt_catastrophic_across_envs", env=None, definition="paper", value=2.0, ci=(1.0, 3.5),
                 statistic="IQM of iGPT's scores over the selected environments")
    poi = table1("gpt2_improves_on_random_across_envs", env=None, definition="paper", value=0.6, ci=(0.4, 0.8),
                 statistic="probability that a GPT2 run scores above a Random Init run", iqm_gpt2=70.0,
                 iqm_random=65.0)
    iqm_fig, poi_fig = rliable_figures([iqm, poi])
    assert iqm_fig["series"] == {"gpt2": {"value": 70.0, "low": None, "high": None},
                                 "igpt": {"value": 2.0, "low": 1.0, "high": 3.5},
                                 "random": {"value": 65.0, "low": None, "high": None}}
    assert poi_fig["series"] == {"gpt2 > random": {"value": 0.6, "low": 0.4, "high": 0.8}}
    assert poi_fig["hline"] == 0.0 and figures.colors(iqm_fig) == figures.BODY_COLORS
    assert figures.colors(poi_fig) == {"gpt2 > random": figures.BODY_COLORS["gpt2"]}
    html = render_html(Report((iqm, poi), profile="mini"))
    assert html.count('data-kind="rliable"') == 2


def test_the_seed_aggregate_draws_every_body_in_one_panel_and_counts_a_seed_once():
    """Per seed, GPT2's and iGPT's panels each carry that seed's Random Init: the aggregate draws the
    three bodies in one panel and counts each seed's Random Init once."""
    def panel(seed, body, y):
        return {**FIGS["lines"], "title": f"hopper seed {seed}: CKA", "series": {
            body: {"x": [0, 1], "y": [y, y]}, "random": {"x": [0, 1], "y": [float(seed), float(seed)]}}}
    figs = [panel(s, b, y) for s in (0, 1) for b, y in (("gpt2", 0.5 + s), ("igpt", 0.2 + s))]
    agg = figures.aggregate(figs)
    assert list(agg["series"]) == ["gpt2", "igpt", "random"] and "over 2 seeds" in agg["title"]
    assert agg["series"]["random"]["y"] == [0.5, 0.5]
    half = stats.t.ppf(0.975, 1) * math.sqrt(0.5) / math.sqrt(2)     # seeds 0 and 1: sd sqrt(0.5)
    assert agg["series"]["random"]["err"] == pytest.approx([half, half])


def test_seed_aggregates_never_average_two_definitions_and_count_a_shared_curve_once():
    """Table 1's learning curve has one title under every definition: the paper and sound cells
    record the same (D4RL-normalised) curve, the as-run cell another normalisation. The aggregates
    are one per definition group, each over the 2 seeds, the as-run curves never pooled in."""
    from reports.render import seed_aggregates

    def curve(seed, y):
        return {"learning_curves": {**FIGS["lines"], "title": f"hopper seed {seed}: score per epoch",
                                    "series": {"gpt2": {"x": [1, 2], "y": [y, y]}}}}
    results = [dataclasses.replace(result(seed=s, definition=d),
                                   figures=curve(s, 10.0 * (s + 1) + (100.0 if d == "as-run" else 0.0)))
               for s in (0, 1) for d in ("paper", "as-run", "sound")]
    pictures = seed_aggregates(results)
    assert sorted(p.captions for p in pictures) == [
        ("seed aggregate of the 2 per-seed panels below (as-run)",),
        ("seed aggregate of the 2 per-seed panels below (paper, sound)",)]


def test_each_pairing_of_a_bar_figure_is_averaged_over_its_own_seeds_with_its_own_bars():
    """Fig. 5 per seed: GPT2 against Random Init and iGPT against Random Init, one title. Each pairing
    is a seed aggregate of its own over its 5 seeds with both its bars, never one panel over 10
    figures that keeps only the bar they share."""
    from reports.render import seed_aggregates

    def confusion(seed, body):
        return {"gradient_confusion": {**FIGS["bars"], "figure": "Fig. 5", "title": f"hopper seed {seed}: confusion",
                                       "series": {"confusion": {"labels": [body, "random"],
                                                                "values": [-0.9 - seed / 100, -0.4 - seed / 100]}}}}
    results = [dataclasses.replace(result(seed=s, variant={"backbone": b}), figures=confusion(s, b))
               for s in range(5) for b in ("gpt2", "igpt")]
    pictures = seed_aggregates(results)
    assert [p.captions for p in pictures] == [("seed aggregate of the 5 per-seed panels below",)] * 2
    drawn = [decode_uri(p.uri) for p in pictures]
    assert all("over 5 seeds" in svg and ">Random Init<" in svg for svg in drawn)
    assert [(">GPT2<" in svg, ">iGPT<" in svg) for svg in drawn] == [(True, False), (False, True)]
    gpt2 = [d["gradient_confusion"] for d in (confusion(s, "gpt2") for s in range(5))]
    assert figures.aggregate(gpt2)["series"]["confusion"]["values"] == pytest.approx([-0.92, -0.42])


def test_a_per_seed_note_stays_out_of_the_panel_and_the_aggregate_keeps_only_a_shared_one():
    """Fig. 7 names each seed's two largest parameter sets: a note beside the title, drawn per seed,
    so the 5 seeds are one panel over 5 seeds (grouped by title, 2 of them were)."""
    from reports.render import seed_aggregates

    tops = ["0.ln_1.bias, 0.ln_1.weight"] * 2 + ["7.mlp.c_fc.weight, 0.ln_1.bias"] * 3
    seeds = [{**FIGS["lines"], "figure": "Fig. 7", "title": f"hopper seed {s}: ratio", "note": f"largest: {top}",
              "series": {"igpt": {"x": [0, 1], "y": [0.5 + s / 10, 0.5 - s / 10]}}} for s, top in enumerate(tops)]
    assert len({figures.panel_key(f) for f in seeds}) == 1
    assert "largest: 0.ln_1.bias, 0.ln_1.weight" in figures.render_svg(seeds[0]).decode()
    agg = figures.aggregate(seeds)
    assert "over 5 seeds" in agg["title"] and agg["note"] == ""
    assert figures.aggregate(seeds[:2])["note"] == "largest: 0.ln_1.bias, 0.ln_1.weight"
    results = [dataclasses.replace(result(seed=s), figures={"gradient_norm_ratio": f}) for s, f in enumerate(seeds)]
    assert [p.captions for p in seed_aggregates(results)] == [("seed aggregate of the 5 per-seed panels below",)]


def test_a_figure_two_claims_read_is_drawn_under_one_and_the_other_links_to_it():
    """Fig. 8 is recorded by sec5_5.gpt2_learns_faster...'s cells; sec5_5.random_init_fails...'s
    cells record a reference to it: the page draws it once (2 seeds and their aggregate) and the
    second claim's section links to the first's."""
    faster, fails = "sec5_5.gpt2_learns_faster", "sec5_5.random_init_fails"
    curve = {**FIGS["lines"], "figure": "Fig. 8"}
    results = [dataclasses.replace(result(claim=faster, section="5.5", seed=s), figures={"k1_learning_curves": {
        **curve, "title": f"hopper seed {s}: score", "series": {"gpt2 K1": {"x": [1, 2], "y": [s, s + 1.0]}}}})
        for s in (0, 1)]
    results += [dataclasses.replace(result(claim=fails, section="5.5", seed=s, order=1), figures={
        "k1_learning_curves": {"figure": "Fig. 8", "see": faster}}) for s in (0, 1)]
    html = render_html(Report(tuple(results), profile="mini"))
    first = html[html.index(f'id="claim-{faster}"'):html.index(f'id="claim-{fails}"')]
    second = html[html.index(f'id="claim-{fails}"'):]
    assert html.count('data-kind="k1_learning_curves"') == first.count('data-kind="k1_learning_curves"') == 3
    assert f'Fig. 8 is drawn once, under <a href="#claim-{faster}">{faster}</a>' in second
    assert "could not be drawn" not in html


# ----------------------------------------------------------------------------- the sequential design

def sequential_report() -> Report:
    """Three verdicts after two of three looks (3, 5, 8 seeds): a §5.4 claim across environments
    decided (contradicted) at look 1, a §5.1 claim decided (holds) at look 2, a §5.3 one stopped
    for futility at look 1; a fourth member ``-k`` left out. The block as
    ``dtcore.sequential.report_block`` writes it."""
    from dtcore import sequential

    design = sequential.Design((3, 5, 8))
    track = sequential.Track
    state = sequential.SequentialState(design, {
        "sec5_1.c|hopper": track(status="decided", outcome="holds", look=1, seeds=5, p_values=[0.04, 0.001],
                                 repeated_p=0.004, error_spent=float(design.spent()[1])),
        "sec5_3.d|hopper": track(status="futility", outcome="inconclusive", look=0, seeds=3, p_values=[0.4],
                                 reason="about 24 seeds would decide it (80 % power at level 0.0123) (more than "
                                        "the 8 seeds of the last look)"),
        "sec5_4.e|": track(status="decided", outcome="contradicted", look=0, seeds=3, p_values=[0.002],
                           repeated_p=0.01, error_spent=float(design.spent()[0])),
        "appH2.f|": track(status=sequential.DESELECTED, reason="-k sec5 leaves it out")},
        budget_hours=5.0, looks_done=2, spent_hours=1.234,
        history=[{"look": 0, "seeds": 3, "hours": 0.7, "decided": ["sec5_4.e|"]},
                 {"look": 1, "seeds": 5, "hours": 0.534, "decided": ["sec5_1.c|hopper"]}],
        plan={"registered": "2026-12-06T09:35:30+00:00", "commit": "eaa5ef4c0ffee"})
    rs = (agg(claim="sec5_1.c", section="5.1", p=0.001, n=5),
          agg(claim="sec5_3.d", section="5.3", outcome="inconclusive", p=0.4, n=3, seeds_needed=24),
          agg(claim="sec5_4.e", section="5.4", env=None, outcome="contradicted", p=0.002, n=3))
    return Report(rs, profile="mini", sequential=sequential.report_block(state))


def test_the_page_shows_the_sequential_design_its_looks_and_each_claims_look(tmp_path, capsys):
    """``python -m reports html`` of a claims.json with a ``sequential`` block: a "Sequential
    design" section after the tallies (budget, hours, looks; a row per look; a row per member) and,
    beside each headline verdict, the look that decided or stopped it."""
    report = sequential_report()
    js, page = tmp_path / "claims.json", tmp_path / "page.html"
    js.write_text(report.to_json())
    assert Report.from_json(js.read_text()).sequential == json.loads(js.read_text())["sequential"]
    # every look in the block counts from 1, in its history as in its claims
    assert [h["look"] for h in report.sequential["history"]] == [1, 2]
    assert reports_main(["html", str(js), "--write", str(page)]) == 0
    html = page.read_text()
    assert html.index('id="tally"') < html.index('<section id="sequential">') < html.index('id="headline"')
    section = re.sub(r"\s+", " ", html[html.index('<section id="sequential">'):html.index("</section>",
                                                                                          html.index('id="sequential"'))])
    assert "<b>Budget</b> 5 CPU hours · <b>spent</b> 1.23 CPU hours · <b>looks done</b> 2 of 3" in section
    assert "2 decided, 1 futility, 1 deselected" in section
    assert "<b>plan registered</b> 2026-12-06T09:35:30+00:00 at commit eaa5ef4c0f, before round one" in section
    looks = re.findall(r'<tr class="look( not-reached)?" data-look="(\d)">(.*?)</tr>', section)
    assert [(n, bool(pale)) for pale, n, _ in looks] == [("1", False), ("2", False), ("3", True)]
    level, t, spent = (report.sequential["design"][k][1] for k in ("levels", "critical_t", "spent"))
    assert (f'<td class="num">5</td><td class="num">{level:.3g}</td> <td class="num">{t:.2f}</td>'
            f'<td class="num">{spent:.3g}</td> <td class="num">0.53</td>') in looks[1][2]
    assert "1 contradicted" in looks[0][2] and "1 futility" in looks[0][2] and "1 holds" in looks[1][2]
    assert "not reached" in looks[2][2]
    decided = re.search(r'data-member="sec5_1.c\|hopper" data-status="decided">(.*?)</tr>', section).group(1)
    assert '<span class="verdict holds">holds</span>' in decided and f"{spent:.3g}" in decided
    stopped = re.search(r'data-member="sec5_3.d\|hopper" data-status="futility">(.*?)</tr>', section).group(1)
    assert "about 24 seeds would decide it" in stopped
    assert 'data-member="appH2.f|" data-status="deselected"' in section and "-k sec5 leaves it out" in section
    marks = re.findall(r'data-claim="([^"]+)" data-env="([^"]*)".*?<small class="sequential-mark">([^<]*)</small>',
                       html, re.S)
    assert sorted(marks) == [
        ("sec5_1.c", "hopper", f"decided at look 2 (5 seeds), error spent {spent:.3g}"),
        ("sec5_3.d", "hopper", "stopped at look 1 (3 seeds): futility — about 24 seeds would decide it (80 % "
                               "power at level 0.0123) (more than the 8 seeds of the last look)"),
        ("sec5_4.e", "", f"decided at look 1 (3 seeds), error spent {report.sequential['design']['spent'][0]:.3g}")]
    # a report without the block has neither the section nor a mark
    plain = render_html(dataclasses.replace(report, sequential=None))
    assert 'id="sequential"' not in plain and "Sequential design" not in plain and 'class="sequential-mark"' not in plain
