"""The claims report plugin end to end: a small synthetic claims set (one claim that holds, one
contradicted, one inconclusive, one in error; both definitions; a figure of each type and a table)
run under pytest produces a terminal summary, an HTML page and a JSON file with the right verdicts
and values; the same run under ``-n 2`` gives the same verdicts; ``python -m reports compare``
finds a changed verdict."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from html.parser import HTMLParser
from pathlib import Path

import pytest

# Imported here, before any in-process pytester run: pytester restores sys.modules after a run, and
# numpy/scipy/matplotlib cannot be imported a second time in one process.
import claims.criteria  # noqa: F401
import reports.render  # noqa: F401
from reports.__main__ import main as reports_main
from reports.model import Report, compare

pytest_plugins = ["pytester"]

# ----------------------------------------------------------------------------- the synthetic set

CONFTEST = '''
import pytest

pytest_plugins = ["reports.plugin"]


def pytest_addoption(parser):
    parser.addoption("--profile", default="mini")


@pytest.fixture(scope="session", autouse=True)
def checkpoints(request):
    from reports.plugin import record_provenance

    record_provenance(request.config, "checkpoint sha256", {"hopper__gpt2__seed0__K20__0123abcd": "9f2c1e"})
'''

INI = '''
[pytest]
addopts = --strict-markers -p no:cacheprovider
markers =
    claim(id, section): a test of one finding of the paper
'''

CLAIMS = '''
import math

import pytest

from claims.criteria import Criterion, check, check_aggregate, record_figure

SIMILAR = Criterion("sec5_1.synthetic_similarity", "CKA of the first blocks", ">", 0.5, 0.8, "synthetic Fig. 1")
SMALLER = Criterion("sec5_3.synthetic_change_less", "relative L2 change ratio", "<", 1.0, 0.6, "synthetic Fig. 3")
NORM = Criterion("sec5_4.synthetic_gradient_norm", "gradient norm ratio", ">", 1.0, 2.0, "synthetic Fig. 6")
GAP = Criterion("sec5_6_2.synthetic_attention_gap", "attention distance gap", ">", 0.0, 1.5, "synthetic Fig. 10")
VALUES = {("paper", 0): 0.9, ("paper", 1): 0.95, ("as-run", 0): 0.85, ("as-run", 1): 0.2}


@pytest.mark.claim(id="sec5_1.synthetic_similarity", section="5.1")
@pytest.mark.parametrize("definition", ["paper", "as-run"])
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("env", ["hopper"])
def test_activations_stay_similar(env, seed, definition, record_property):
    """"The pre-trained model keeps the activations of its first blocks." (Section 5.1, synthetic)

    Synthetic: holds under the paper's definition; the as-run definition contradicts it for seed 1."""
    record_figure(record_property, "cka", {
        "figure": "Fig. 1", "title": f"CKA diagonal, seed {seed}", "type": "lines", "xlabel": "block",
        "ylabel": "CKA", "hline": 0.5,
        "series": {"gpt2": {"x": [0, 1, 2, 3], "y": [0.95, 0.9, 0.8, 0.7]},
                   "random": {"x": [0, 1, 2, 3], "y": [0.6, 0.4, 0.3, 0.2], "err": [0.05] * 4}}})
    record_property("cka_last_block", 0.7)
    check(SIMILAR, VALUES[(definition, seed)], record_property, definition=definition)


@pytest.mark.claim(id="sec5_1.synthetic_similarity", section="5.1")
@pytest.mark.parametrize("definition", ["paper"])
@pytest.mark.parametrize("env", ["hopper"])
def test_activations_stay_similar_over_seeds(env, definition, record_property):
    """"The pre-trained model keeps the activations of its first blocks." (Section 5.1, synthetic)"""
    check_aggregate(SIMILAR, [VALUES[(definition, 0)], VALUES[(definition, 1)]], record_property,
                    definition=definition)


@pytest.mark.claim(id="sec5_3.synthetic_change_less", section="5.3")
@pytest.mark.parametrize("seed", [0])
@pytest.mark.parametrize("env", ["hopper", "walker2d"])
def test_pretrained_change_parameters_less(env, seed, record_property):
    """"Pre-trained models change their parameters less." (Section 5.3, synthetic)"""
    record_figure(record_property, "l2", {
        "figure": "Fig. 3", "title": f"relative L2 change, {env}", "type": "bars", "xlabel": "block",
        "ylabel": "L2", "hline": None,
        "series": {"gpt2": {"labels": ["b0", "b1", "b2"], "values": [1.2, 1.4, 1.3], "err": [0.1, 0.1, 0.2]},
                   "random": {"labels": ["b0", "b1", "b2"], "values": [1.0, 1.1, 0.9]}}})
    record_property("table:returns", {
        "title": "Table 1", "columns": ["model", "hopper"], "rows": [["gpt2", 71.3], ["random", 68.0]],
        "paper_rows": [["gpt2", 79.9], ["random", 72.8]]})
    record_property("provenance:dataset sha256", "abc123")
    check(SMALLER, 1.3, record_property)


@pytest.mark.claim(id="sec5_4.synthetic_gradient_norm", section="5.4")
@pytest.mark.parametrize("env", ["hopper"])
def test_gradient_norms_are_larger_over_seeds(env, record_property):
    """"The gradient norm of the pre-trained model is larger." (Section 5.4, synthetic)

    Synthetic: the per-seed values straddle the threshold, so the interval is inconclusive."""
    record_figure(record_property, "grad_norm", {
        "figure": "Fig. 6", "title": "gradient norms", "type": "boxes", "xlabel": "block", "ylabel": "norm",
        "hline": None,
        "series": {"gpt2": {"b0": [1.0, 1.2, 1.4, 0.9], "b1": [2.0, 2.2, 1.7]},
                   "random": {"b0": [0.5, 0.7, 0.6], "b1": [0.8, 0.9, 1.1]}}})
    check_aggregate(NORM, [0.2, 3.0], record_property)


@pytest.mark.claim(id="sec5_4.synthetic_gradient_norm", section="5.4")
@pytest.mark.parametrize("seed", [0])
@pytest.mark.parametrize("env", ["hopper"])
def test_gradient_norms_are_larger(env, seed, record_property):
    """"The gradient norm of the pre-trained model is larger." (Section 5.4, synthetic)"""
    check(NORM, math.nan, record_property)


@pytest.fixture
def run(seed):
    if seed == 1:
        raise RuntimeError("synthetic checkpoint missing")
    return seed


@pytest.mark.claim(id="sec5_6_2.synthetic_attention_gap", section="5.6.2")
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("env", ["hopper"])
def test_attention_reaches_further(env, seed, run, record_property):
    """"Pre-trained models attend further." (Section 5.6.2, synthetic)"""
    raise ValueError("synthetic analysis crashed")


def test_something_that_is_not_a_claim():
    assert 1 + 1 == 2
'''

# (claim id, env, seed or None, definition or None) -> expected outcome
EXPECTED = {
    ("sec5_1.synthetic_similarity", "hopper", 0, "paper"): "holds",
    ("sec5_1.synthetic_similarity", "hopper", 1, "paper"): "holds",
    ("sec5_1.synthetic_similarity", "hopper", 0, "as-run"): "holds",
    ("sec5_1.synthetic_similarity", "hopper", 1, "as-run"): "contradicted",
    ("sec5_1.synthetic_similarity", "hopper", None, "paper"): "holds",
    ("sec5_3.synthetic_change_less", "hopper", 0, None): "contradicted",
    ("sec5_3.synthetic_change_less", "walker2d", 0, None): "contradicted",
    ("sec5_4.synthetic_gradient_norm", "hopper", None, None): "inconclusive",
    ("sec5_4.synthetic_gradient_norm", "hopper", 0, None): "inconclusive",
    ("sec5_6_2.synthetic_attention_gap", "hopper", 0, None): "error",
    ("sec5_6_2.synthetic_attention_gap", "hopper", 1, None): "error",
}


def write_synthetic_claims(root: Path) -> None:
    """The synthetic claims set as a pytest project in ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "conftest.py").write_text(textwrap.dedent(CONFTEST))
    (root / "pytest.ini").write_text(textwrap.dedent(INI))
    (root / "test_synthetic_claims.py").write_text(textwrap.dedent(CLAIMS))


def run_synthetic(root: Path, *args: str) -> subprocess.CompletedProcess:
    """Run the synthetic set in a fresh interpreter (as the README's command does)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_"))}
    env["OMP_NUM_THREADS"] = "1"
    env["MPLBACKEND"] = "Agg"
    return subprocess.run([sys.executable, "-m", "pytest", *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("synthetic_claims")
    write_synthetic_claims(root)
    proc = run_synthetic(root, "-rA", "--claims-report", "out/claims.html")
    return {"root": root, "proc": proc, "html": root / "out" / "claims.html", "json": root / "out" / "claims.json"}


# ----------------------------------------------------------------------------- HTML parsing

class ReportPage(HTMLParser):
    """The parts of the report page the tests read: grid rows, result rows per claim section,
    images, banner text."""

    def __init__(self) -> None:
        super().__init__()
        self.grid_rows: list[dict] = []        # {"claim", "definition", "cells": [outcome | None]}
        self.results: dict[str, list[dict]] = {}  # claim id -> [{"outcome", "cells": [text]}]
        self.images: list[dict] = []           # {"src", "claim", "kind"}
        self.banner = ""
        self._claim: str | None = None
        self._kind: str | None = None
        self._row: dict | None = None
        self._text: list[str] | None = None
        self._in_banner = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if tag == "section" and "claim" in classes:
            self._claim = a["id"].removeprefix("claim-")
            self.results[self._claim] = []
        elif tag == "tr" and "claim-row" in classes:
            self._row = {"claim": a["data-claim"], "definition": a["data-definition"] or None, "cells": []}
        elif tag == "tr" and "result" in classes:
            self._row = {"outcome": a["data-outcome"], "cells": []}
        elif tag == "td" and self._row is not None:
            if "claim" in self._row:
                if "empty" in classes:
                    self._row["cells"].append(None)
                elif "cell" in classes:
                    self._row["cells"].append(a["data-outcome"])
            else:
                self._text = []
        elif tag == "figure":
            self._kind = a.get("data-kind")
        elif tag == "img":
            self.images.append({"src": a.get("src", ""), "claim": self._claim, "kind": self._kind})
        elif tag == "div" and a.get("id") == "profile-banner":
            self._in_banner = True

    def handle_data(self, data):
        if self._text is not None:
            self._text.append(data)
        if self._in_banner:
            self.banner += data

    def handle_endtag(self, tag):
        if tag == "td" and self._text is not None and self._row is not None:
            self._row["cells"].append(" ".join("".join(self._text).split()))
            self._text = None
        elif tag == "tr" and self._row is not None:
            if "claim" in self._row:
                self.grid_rows.append(self._row)
            else:
                self.results[self._claim].append(self._row)
            self._row = None
        elif tag == "div":
            self._in_banner = False


def parse_page(path: Path) -> ReportPage:
    page = ReportPage()
    page.feed(path.read_text(encoding="utf-8"))
    return page


# ----------------------------------------------------------------------------- tests

def test_a_run_with_claims_writes_the_html_and_the_json_beside_it(synthetic):
    assert synthetic["proc"].returncode == 1, synthetic["proc"].stdout[-3000:]
    assert synthetic["html"].is_file() and synthetic["json"].is_file()
    assert f"dtclaims report: {synthetic['html']}" in synthetic["proc"].stdout


def test_the_summary_line_counts_inconclusive_claims_apart_from_failures_and_skips(synthetic):
    out = synthetic["proc"].stdout
    summary = out.strip().splitlines()[-1]
    # 4 contradicted/call-error failures, 5 passes (4 holds + the plain test), 1 setup error.
    for part in ("4 failed", "5 passed", "2 inconclusive", "1 error"):
        assert part in summary, summary
    assert "skipped" not in summary, summary
    assert "INCONCLUSIVE test_synthetic_claims.py::test_gradient_norms_are_larger_over_seeds[hopper]" in out
    assert "straddles the threshold" in out


def test_the_terminal_table_has_a_letter_per_claim_and_seed(synthetic):
    out = synthetic["proc"].stdout
    table = out[out.index("dtclaims: claims x seeds"):].splitlines()
    assert table[1].split() == ["claim", "hopper", "walker2d"]
    assert table[2].split() == ["0", "1", "A", "0"]
    rows = {" ".join(t for t in line.split() if len(t) > 1): [t for t in line.split() if len(t) == 1]
            for line in table[3:] if line.startswith("sec")}
    assert rows == {
        "sec5_1.synthetic_similarity [paper]": ["H", "H", "H", "."],
        "sec5_1.synthetic_similarity [as-run]": ["H", "C", ".", "."],
        "sec5_3.synthetic_change_less": ["C", ".", ".", "C"],
        "sec5_4.synthetic_gradient_norm": ["I", ".", "I", "."],
        "sec5_6_2.synthetic_attention_gap": ["E", "E", ".", "."],
    }


def test_the_grid_has_a_row_per_claim_and_definition_with_the_right_verdicts(synthetic):
    page = parse_page(synthetic["html"])
    rows = {(r["claim"], r["definition"]): r["cells"] for r in page.grid_rows}
    assert set(rows) == {("sec5_1.synthetic_similarity", "paper"), ("sec5_1.synthetic_similarity", "as-run"),
                         ("sec5_3.synthetic_change_less", None), ("sec5_4.synthetic_gradient_norm", None),
                         ("sec5_6_2.synthetic_attention_gap", None)}
    # Columns: hopper seed 0, seed 1, all seeds; walker2d seed 0.
    assert rows[("sec5_1.synthetic_similarity", "paper")] == ["holds", "holds", "holds", None]
    assert rows[("sec5_1.synthetic_similarity", "as-run")] == ["holds", "contradicted", None, None]
    assert rows[("sec5_3.synthetic_change_less", None)] == ["contradicted", None, None, "contradicted"]
    assert rows[("sec5_4.synthetic_gradient_norm", None)] == ["inconclusive", None, "inconclusive", None]
    assert rows[("sec5_6_2.synthetic_attention_gap", None)] == ["error", "error", None, None]
    # Grouped by section, in the paper's order.
    assert [r["claim"] for r in page.grid_rows][0].startswith("sec5_1")
    assert [r["claim"] for r in page.grid_rows][-1].startswith("sec5_6_2")


def test_each_claim_section_shows_its_measured_values_beside_the_papers(synthetic):
    page = parse_page(synthetic["html"])
    sim = page.results["sec5_1.synthetic_similarity"]
    # columns: env, seed, definition, verdict, measured, CI, n, threshold, paper, delta, cka_last_block, message
    by_key = {(r["cells"][1], r["cells"][2]): r for r in sim}
    assert by_key[("1", "as-run")]["outcome"] == "contradicted"
    assert by_key[("1", "as-run")]["cells"][4] == "0.2"
    assert by_key[("1", "as-run")]["cells"][8] == "0.8"       # the paper's value
    assert by_key[("1", "as-run")]["cells"][9] == "-0.6"      # measured minus paper
    assert by_key[("all", "paper")]["cells"][5].startswith("[0.9")  # the bootstrap interval
    change = page.results["sec5_3.synthetic_change_less"]
    # no definition column here: env, seed, verdict, measured, ...
    assert {r["cells"][0]: r["cells"][2] for r in change} == {"hopper": "contradicted", "walker2d": "contradicted"}
    assert {r["cells"][3] for r in change} == {"1.3"}
    assert all("is not less than the threshold 1" in r["cells"][-1] for r in change)
    gap = page.results["sec5_6_2.synthetic_attention_gap"]
    assert any("RuntimeError: synthetic checkpoint missing" in r["cells"][-1] for r in gap)
    assert any("ValueError: synthetic analysis crashed" in r["cells"][-1] for r in gap)


def test_the_page_says_whether_a_verdict_survives_the_change_of_definition(synthetic):
    html = synthetic["html"].read_text()
    section = html[html.index('id="claim-sec5_1.synthetic_similarity"'):html.index('id="claim-sec5_3')]
    assert section.count(">survives<") == 1 and section.count(">does not survive<") == 1


def test_every_recorded_figure_is_an_embedded_image_and_nothing_is_fetched(synthetic):
    page = parse_page(synthetic["html"])
    data = json.loads(synthetic["json"].read_text())
    distinct = {(r["claim_id"], kind, json.dumps(fig, sort_keys=True))
                for r in data["results"] for kind, fig in r["figures"].items()}
    assert len(page.images) == len(distinct) == 5  # cka x 2 seeds, l2 x 2 envs, grad_norm
    assert {(i["claim"], i["kind"]) for i in page.images} == {(c, k) for c, k, _ in distinct}
    assert all(i["src"].startswith("data:image/png;base64,") and len(i["src"]) > 2000 for i in page.images)
    html = synthetic["html"].read_text()
    assert "http://" not in html and "https://" not in html and "<script" not in html
    assert "Table 1: the paper's" in html and "79.9" in html


def test_the_mini_profile_is_labelled_an_offline_analog(synthetic):
    page = parse_page(synthetic["html"])
    assert "offline analog with D4RL-like data" in page.banner


def test_the_json_round_trips_and_holds_every_value(synthetic):
    text = synthetic["json"].read_text()
    report = Report.from_json(text)
    assert report.to_json() == text
    got = {(r.claim_id, r.env, r.seed, r.definition): r.outcome for r in report.results}
    assert got == EXPECTED
    agg = next(r for r in report.results if r.claim_id.startswith("sec5_1") and r.seed is None)
    assert agg.values["per_seed"] == [0.9, 0.95] and agg.values["n"] == 2
    assert agg.values["ci_low"] <= 0.925 <= agg.values["ci_high"]
    assert report.provenance["checkpoint sha256"] == {"hopper__gpt2__seed0__K20__0123abcd": "9f2c1e"}
    assert report.provenance["dataset sha256"] == "abc123"
    assert report.provenance["profile"] == "mini" and "numpy" in report.provenance["packages"]


def test_compare_finds_a_changed_verdict_and_exits_1(synthetic, tmp_path, capsys):
    data = json.loads(synthetic["json"].read_text())
    changed = next(r for r in data["results"] if r["env"] == "walker2d")
    changed["outcome"] = "holds"
    b = tmp_path / "b.json"
    b.write_text(json.dumps(data))
    assert reports_main(["compare", str(synthetic["json"]), str(b)]) == 1
    out = capsys.readouterr().out
    assert "1 verdict(s) differ" in out
    assert "sec5_3.synthetic_change_less walker2d seed 0: contradicted -> holds" in out
    assert reports_main(["compare", str(synthetic["json"]), str(synthetic["json"])]) == 0


def test_python_m_reports_compare_runs_as_a_command(synthetic, tmp_path):
    data = json.loads(synthetic["json"].read_text())
    data["results"] = [r for r in data["results"] if r["env"] != "walker2d"]
    b = tmp_path / "b.json"
    b.write_text(json.dumps(data))
    proc = subprocess.run([sys.executable, "-m", "reports", "compare", str(synthetic["json"]), str(b)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "contradicted -> absent" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "reports", "compare", "--common", str(synthetic["json"]), str(b)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "no verdict differs" in proc.stdout


def test_an_inconclusive_only_run_exits_0_and_is_not_a_skip(pytester):
    write_synthetic_claims(pytester.path)
    result = pytester.runpytest("-k", "gradient_norms", "--claims-report", "r.html")
    result.assert_outcomes(passed=0, failed=0, skipped=0, errors=0)
    assert result.ret == 0
    assert result.parseoutcomes() == {"inconclusive": 2, "deselected": 10}
    assert (pytester.path / "r.json").is_file()


def test_a_run_without_claims_writes_no_report(pytester):
    write_synthetic_claims(pytester.path)
    result = pytester.runpytest("-k", "not_a_claim", "--claims-report", "r.html")
    result.assert_outcomes(passed=1)
    assert not (pytester.path / "r.html").exists()
    assert "dtclaims" not in result.stdout.str()


def test_the_report_under_xdist_matches_the_serial_one(synthetic, pytester):
    write_synthetic_claims(pytester.path)
    result = pytester.runpytest_subprocess("-n", "2", "--claims-report", "x.html")
    assert result.ret == 1
    assert result.parseoutcomes()["inconclusive"] == 2
    serial = Report.from_json(synthetic["json"].read_text())
    parallel = Report.from_json((pytester.path / "x.json").read_text())
    assert compare(serial, parallel) == []
    assert parallel.provenance["checkpoint sha256"] == serial.provenance["checkpoint sha256"]
    assert {r.nodeid: r.values for r in parallel.results} == {r.nodeid: r.values for r in serial.results}
    assert len(parse_page(pytester.path / "x.html").images) == 5
