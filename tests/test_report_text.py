"""The words and numbers the report prints (audit of a redrawn page, 2026-12-06): one count per
headline row, counts and hours to two significant figures, no zero-width or refused interval, a
smoke README that says its verdicts are meaningless, human column headers, and a quiet exit when
the reader of ``python -m reports`` closes the pipe. The pure functions are checked directly; the
page through ``render_html`` on constructed reports, as in ``tests/test_report_model.py``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from reports.model import ClaimResult, Report
from reports.readme import claims_table
from reports.render import render_html
from reports.tables import column_label
from tests.test_report_model import agg, result

ROOT = Path(__file__).resolve().parent.parent


# ----------------------------------------------------------------------------- the smoke README

def test_a_smoke_readme_opens_with_the_pages_caveat_and_a_mini_one_does_not():
    rs = (agg(),)
    smoke = claims_table(Report(rs, profile="smoke")).splitlines()
    assert smoke[0].startswith("**smoke profile: verdicts meaningless.") and smoke[1] == ""
    assert "verdicts meaningless" not in claims_table(Report(rs, profile="mini"))


# ----------------------------------------------------------------------------- the per-seed tables' headers

@pytest.mark.parametrize("key, label", [("selected_epoch", "selected epoch"), ("mean_of_last_3", "mean of the last 3 epochs"),
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
