"""The words and numbers the report prints (audit of a redrawn page, 2026-12-06): one count per
headline row, counts and hours to two significant figures, no zero-width or refused interval, a
smoke README that says its verdicts are meaningless, human column headers, and a quiet exit when
the reader of ``python -m reports`` closes the pipe. The pure functions are checked directly; the
page through ``render_html`` on constructed reports, as in ``tests/test_report_model.py``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dtcore import statistics
from dtcore.deciding import UNCORRECTED, rough
from dtcore.verdicts import Criterion, Decision, check_aggregate, check_interval
from reports.headline import build_headline, deciding_text, decide_text, duration, value_text
from reports.model import ClaimResult, Report, shown_interval
from reports.readme import claims_table
from reports.render import render_html
from reports.tables import column_label, rliable_figures
from tests.test_report_model import agg, result

ROOT = Path(__file__).resolve().parent.parent


def decided(decision: Decision, claim: str, section: str, env: str | None = "hopper") -> ClaimResult:
    """The seed aggregate a claim cell records for ``decision`` (no seed parameter)."""
    return result(claim=claim, section=section, env=env, seed=None, outcome=decision.outcome,
                  message=decision.message, **decision.values)


def family_of_five(undecided: ClaimResult) -> Report:
    """``undecided`` in a family of five claims, one of them decided: its next Benjamini-Hochberg
    step is 2 x 0.05 / 5 = 0.02, below the 5 % its cell's own message counts at."""
    others = [agg(claim=f"sec5_3.c{i}", section="5.3", p=p) for i, p in enumerate((0.0001, 0.5, 0.6, 0.7))]
    return Report((undecided, *others))


# ----------------------------------------------------------------------------- one count per headline row

def test_a_headline_row_states_one_count_the_corrected_one():
    crit = Criterion("sec5_1.d", "a difference", ">", 0.0, None, "test")
    decision = check_aggregate(crit, [0.3, -0.1, 0.2, 0.4, -0.2])
    assert decision.outcome == "inconclusive"
    # the cell's own message counts at 5 %, before the correction, and says so
    assert f"; {UNCORRECTED}about " in decision.message and "at level 0.05)" in decision.message
    [row] = [r for r in build_headline(family_of_five(decided(decision, "sec5_1.d", "5.1"))).rows
             if r.claim_id == "sec5_1.d"]
    assert row.corrected == "inconclusive" and "at level 0.02)" in row.decide
    cell = deciding_text(row)
    assert cell.startswith("the 95% t interval") and "straddles the threshold 0" in cell
    assert "seeds" not in cell.replace("over 5 seeds", "") and "level" not in cell, cell


def test_a_sign_tests_own_count_is_marked_uncorrected_and_left_to_the_headline():
    crit = Criterion("sec5_1.s", "a share", ">", 0.5, None, "test")
    decision = check_aggregate(crit, [0.7] * 5)   # no spread: the sign test, 5 of 5 agreeing (p = 0.0625)
    assert f"; {UNCORRECTED}a sign test decides from 6 seeds agreeing" in decision.message
    [row] = [r for r in build_headline(family_of_five(decided(decision, "sec5_1.s", "5.1"))).rows
             if r.claim_id == "sec5_1.s"]
    assert row.decide.startswith("7 seeds agreeing") and "6 seeds" not in deciding_text(row)


# ----------------------------------------------------------------------------- counts to two significant figures

@pytest.mark.parametrize("x, text", [(666, "670"), (198.4, "200"), (21.5, "22"), (3.24, "3.2"), (7, "7"),
                                     (88, "88"), (1000, "1000"), (9.96, "10"), (149.9, "150")])
def test_a_post_hoc_count_or_duration_is_given_to_two_significant_figures(x, text):
    assert rough(x) == text


@pytest.mark.parametrize("seconds, text", [(198.4 * 3600, "200 h"), (21.5 * 3600, "22 h"), (3.24 * 3600, "3.2 h")])
def test_hours_are_given_to_two_significant_figures(seconds, text):
    assert duration(seconds) == text


def test_a_large_count_and_its_hours_are_rounded_on_the_headline_row():
    prov = {f"run hopper__gpt2__seed{s}__K20__a": {"wall_time_s": 1080.0} for s in range(5)}   # 18 min per seed
    undecided = agg(outcome="inconclusive", p=0.9, value=0.02, ci=(-0.1, 0.14), n=5)
    headline = build_headline(Report((undecided,), provenance=prov))
    [row] = headline.rows
    exact = row.seeds_needed
    assert exact is not None and exact >= 100 and rough(exact) != str(exact)
    text = decide_text(row, headline.seconds_per_seed)
    assert text.startswith(f"about {rough(exact)} seeds would decide it")
    assert f"; {rough(exact - 5)} more seeds of hopper: about {duration((exact - 5) * 1080.0)} on" in text
    assert not re.search(r"\d\.\d h", text) and str(exact) not in text, text


def test_the_glossary_says_the_count_takes_the_observed_effect_and_is_rough():
    html = render_html(Report((agg(),), profile="mini"))
    glossary = html[html.index('id="glossary"'):html.index('id="headline"')]
    assert "takes the observed effect" in glossary and "rough" in glossary and "two significant figures" in glossary


# ----------------------------------------------------------------------------- intervals that say nothing

def test_a_zero_width_interval_is_shown_nowhere():
    rs = tuple(result(claim="sec5_1.z", section="5.1", seed=s, value=0.7273, ci_low=0.7273, ci_high=0.7273,
                      units="analysis samples", n_units=100, method="half-sample") for s in (0, 1))
    html = render_html(Report((*rs, agg(claim="sec5_1.z", value=0.7273, ci=(0.7273, 0.7273))), profile="mini"))
    assert "0.7273" in html and "[0.7273, 0.7273]" not in html and "[0.727, 0.727]" not in html
    assert shown_interval({"ci_low": 0.7273, "ci_high": 0.7273}) is None
    assert shown_interval({"ci_low": 0.1, "ci_high": 0.2}) == (0.1, 0.2)


def refused_bootstrap() -> ClaimResult:
    crit = Criterion("table1.igpt_catastrophic_across_envs", "IQM of iGPT's scores", "<", 10.0, None, "test")
    per_env = {"hopper": [33.4, 40.5, 45.1, 38.0, 42.0]}
    decision = check_interval(crit, statistics.Interval(40.5, 33.4, 45.1, 5), method="stratified bootstrap of the IQM",
                              min_n=15, per_env=per_env)
    assert decision.outcome == "inconclusive" and "needs at least 15" in decision.message
    return decided(decision, "table1.igpt_catastrophic_across_envs", "Table 1", env=None)


def test_an_interval_its_rule_refused_is_not_shown_in_the_readme_nor_on_the_page():
    r = refused_bootstrap()
    assert shown_interval(r.values) is None and r.values["ci_low"] == 33.4   # recorded all the same
    row = build_headline(Report((r,))).rows[0]
    assert value_text(row.shown) == "40.5"
    line = next(line for line in claims_table(Report((r,))).splitlines() if "IQM of iGPT" in line)
    assert "| inconclusive 40.5 |" in line and "[33.4" not in line
    assert "33.4, 45.1" not in render_html(Report((r,), profile="mini"))
    [figure] = rliable_figures([r])   # Table 1's rliable panel: the point alone
    assert figure["series"] == {"igpt": {"value": 40.5, "low": None, "high": None}}


# ----------------------------------------------------------------------------- the smoke README

def test_a_smoke_readme_opens_with_the_pages_caveat_and_a_mini_one_does_not():
    rs = (agg(),)
    smoke = claims_table(Report(rs, profile="smoke")).splitlines()
    assert smoke[0].startswith("**smoke profile: verdicts meaningless.") and smoke[1] == ""
    assert "verdicts meaningless" not in claims_table(Report(rs, profile="mini"))


# ----------------------------------------------------------------------------- the per-seed tables' headers

@pytest.mark.parametrize("key, label", [("selected_epoch", "selected epoch"),
                                        ("mean_of_last_3", "mean of the last 3 epochs"),
                                        ("last_epoch", "last epoch"), ("scored with K=20", "scored with K=20")])
def test_a_recorded_columns_header_reads_in_words(key, label):
    assert column_label(key) == label


def test_the_per_seed_table_heads_its_columns_in_words_and_keeps_the_keys():
    table = {"title": "Table 1", "columns": ["body", "selected_epoch", "scored", "mean_of_last_3"],
             "rows": [["gpt2", 7, 79.1, 78.0]]}
    r = ClaimResult(**{**result(claim="table1.t", section="Table 1").__dict__, "tables": {"table1": table}})
    html = render_html(Report((r,), profile="mini"))
    assert "<th>selected epoch</th>" in html and "<th>mean of the last 3 epochs</th>" in html
    assert "<th>selected_epoch</th>" not in html
    assert Report.from_json(Report((r,)).to_json()).results[0].tables["table1"]["columns"][1] == "selected_epoch"


# ----------------------------------------------------------------------------- a closed pipe

@pytest.mark.parametrize("command", ["compare", "readme", "html"])
def test_python_m_reports_exits_quietly_when_its_reader_closes_the_pipe(command, tmp_path):
    def report(value: float) -> Report:   # 80 cells whose values differ between the two
        return Report(tuple(agg(claim=f"sec5_1.c{i}", variant={"token": t}, value=value) for i in range(40)
                            for t in ("state", "action")))

    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(report(1.0).to_json())
    b.write_text(report(2.0).to_json())
    args = {"compare": [str(a), str(b)], "readme": [str(a)], "html": [str(a), "--write", str(tmp_path / "p.html")]}
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "reports", command, *args[command]], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()   # the reader is gone before the command prints (`| head -0`)
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141 and "Traceback" not in err and "BrokenPipeError" not in err, err
