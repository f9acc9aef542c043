"""The claims report opened in real headless Chromium (Debian's ``chromium``, installed by
``make chromium`` before ``make test``) in a laptop-sized window (1366 px wide): the page renders
with no console message, every figure decodes, the DOM holds the headline and the verdict grid,
nothing is wider than the window, no row is hundreds of pixels tall, and a screenshot is saved
under ``test-artifacts/``.

The page itself has no script. To see what Chromium laid out, the test opens a copy of the page
with a probe script appended that, on load, writes the number of decoded images to
``body[data-images-decoded]``, the window's width, the document's scroll width, the right edge of
the widest table / figure / details and the height of the tallest row to ``body[data-layout]``
(JSON), and logs a console error per broken image. A control page with a broken image, an
uncaught exception and a too-wide table checks that the probe and the console detection work.
A second page, a grid of 3 environments x 5 seeds with 6 variants x 3 definitions per claim,
long messages and long sentences, and a premise with a long skip reason, checks the layout where it
is hardest.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from reports import figures
from reports.model import ClaimResult, Report
from reports.render import write_report
from reports.svg import decode_uri
from tests.test_report_plugin import parse_page, write_synthetic_claims

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
pytest_plugins = ["pytester"]
WIDTH = 1366          # a laptop screen
TALLEST_ROW = 240     # px: a row taller than this means a message or a list is laid out in a column
PROBE = """<script>
window.addEventListener("load", () => {
  const ok = [...document.images].filter(i => i.complete && i.naturalWidth > 0);
  document.body.setAttribute("data-images-decoded", ok.length + "/" + document.images.length);
  for (const i of document.images) if (!i.naturalWidth) console.error("broken image " + i.alt);
  const right = [...document.querySelectorAll("table, figure, img, details, blockquote")]
    .map(e => e.getBoundingClientRect().right);
  const rows = [...document.querySelectorAll("tr.headline-row, tr.result, tr.claim-row")]
    .map(e => e.getBoundingClientRect().height);
  document.body.setAttribute("data-layout", JSON.stringify({
    inner: window.innerWidth, scroll: document.documentElement.scrollWidth,
    widest: Math.max(0, ...right), tallest: Math.max(0, ...rows)}));
});
</script>"""
CONSOLE = re.compile(r":CONSOLE[:(]|Uncaught")


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("Debian's chromium is not installed: run `make chromium` (the `make test` target does)")
    return path


def open_in_chromium(page: Path, workdir: Path, screenshot: Path | None = None, height: int = 2000) -> tuple[str, str]:
    """Load ``page`` in headless Chromium (``WIDTH`` x ``height``); returns (the DOM after load,
    Chromium's stderr log)."""
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
           f"--user-data-dir={workdir / 'chromium-profile'}", "--enable-logging=stderr", "--v=0",
           f"--window-size={WIDTH},{height}", "--dump-dom"]
    if screenshot is not None:
        cmd.append(f"--screenshot={screenshot}")
    proc = subprocess.run([*cmd, page.as_uri()], capture_output=True, text=True, timeout=120, cwd=workdir)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout, proc.stderr


def layout(dom: str) -> dict:
    """What the probe measured: inner (window width), scroll (document width), widest (right edge
    of the widest table, figure or details), tallest (height of the tallest table row), in px."""
    m = re.search(r'data-layout="([^"]*)"', dom)
    assert m, "the probe did not run"
    return json.loads(html.unescape(m.group(1)))


FIRST_SCREEN = 768   # a laptop screen's height
READER = """<script>
window.addEventListener("load", () => {
  const bottom = id => { const e = document.getElementById(id); return e ? e.getBoundingClientRect().bottom : -1; };
  const shown = () => [...document.querySelectorAll("tr.headline-row")].filter(r => r.offsetParent !== null);
  const before = shown().length;
  const pick = document.getElementById("filter-verdict");
  pick.value = "contradicted"; pick.dispatchEvent(new Event("change"));
  const after = shown().map(r => r.dataset.holm);
  const claims = [...document.querySelectorAll("section.claim")].filter(s => s.offsetParent !== null).length;
  pick.value = ""; pick.dispatchEvent(new Event("change"));
  document.body.setAttribute("data-reader", JSON.stringify({
    runline: bottom("run-line"), premise: bottom("premise-table"), inner: window.innerWidth,
    scroll: document.documentElement.scrollWidth, before: before, after: after, claims: claims,
    restored: shown().length,
    figures: [...document.querySelectorAll("figure[data-colors]")].map(f => JSON.parse(f.dataset.colors))}));
});
</script>"""


def console_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if CONSOLE.search(line)]


def with_probe(html: Path, out: Path) -> Path:
    out.write_text(html.read_text(encoding="utf-8").replace("</body>", PROBE + "\n</body>"), encoding="utf-8")
    return out


@pytest.fixture
def report_page(pytester) -> Path:
    """The report of the synthetic claims set (tests/test_report_plugin.py), run in process."""
    write_synthetic_claims(pytester.path)
    result = pytester.runpytest("--claims-report", "out/claims.html")
    assert result.ret == 1, result.stdout.str()[-3000:]
    return pytester.path / "out" / "claims.html"


def test_the_console_check_sees_a_broken_page(tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text('<html><body><img alt="missing" src="data:image/png;base64,AAAA">'
                   '<table style="width: 2000px"><tr class="result" style="height: 500px"><td>wide</td></tr></table>'
                   "<script>undefinedFunction();</script></body></html>")
    dom, log = open_in_chromium(with_probe(bad, tmp_path / "bad-probe.html"), tmp_path)
    assert 'data-images-decoded="0/1"' in dom
    got = layout(dom)
    assert got["inner"] == WIDTH and got["scroll"] > WIDTH and got["widest"] > WIDTH and got["tallest"] >= 500
    lines = console_lines(log)
    assert any("Uncaught ReferenceError" in line for line in lines), log[-2000:]
    assert any("broken image missing" in line for line in lines), log[-2000:]


def test_the_report_renders_in_chromium_without_console_errors(report_page, tmp_path):
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "claims-report.png"
    shot.unlink(missing_ok=True)
    n_images = len(parse_page(report_page).images)
    probe = with_probe(report_page, report_page.with_name("claims-probe.html"))
    dom, log = open_in_chromium(probe, tmp_path, screenshot=shot)
    assert console_lines(log) == []
    assert f'data-images-decoded="{n_images}/{n_images}"' in dom
    assert 'id="verdict-grid"' in dom and dom.count('class="claim-row"') == 11
    assert dom.count('class="headline-row') == 7
    assert dom.count('class="premise-row"') == 2 and 'id="mechanism"' in dom
    got = layout(dom)
    assert got["inner"] == WIDTH and got["scroll"] <= WIDTH and got["widest"] <= WIDTH, got
    assert got["tallest"] <= TALLEST_ROW, got
    assert shot.is_file() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


LONG = ("the 95% t interval [-16.19, 19.39] of the mean 1.6 over 5 seeds straddles the threshold 1; about 88 seeds "
        "would decide it with 80 % power at the observed effect and spread ") * 4


def wide_report() -> Report:
    """3 environments x 5 seeds; per claim 6 variants x 3 definitions, each with 5 per-seed cells
    (over 100 evaluation episodes) and a seed aggregate; long sentences and messages."""
    results, order = [], 0
    claims = (("sec5_1.pretrained_change_representations_more", "5.1"), ("appG3.igpt_clipped", "App. G.3"))
    for claim, section in claims:
        for env in ("hopper", "halfcheetah", "walker2d"):
            for backbone in ("gpt2", "igpt"):
                for token in ("state", "action", "return"):
                    for definition in ("paper", "as-run", "sound"):
                        for seed in (None, 0, 1, 2, 3, 4):
                            outcome = ("holds", "inconclusive", "contradicted", "descriptive", "error")[order % 5]
                            params = {"env": env, **({} if seed is None else {"seed": seed}), "backbone": backbone,
                                      "token": token, "definition": definition}
                            values = {"statistic": "mean diagonal CKA(epoch 0, final) of Random Init minus that of "
                                                   "the pre-trained body", "direction": ">", "threshold": 0.0,
                                      "value": 0.123456, "ci_low": -0.0123456, "ci_high": 0.2345678,
                                      "p_value": 0.0312, "paper_value": 0.25, "sd": 0.1, "mean_cka_gpt2": 0.3}
                            values.update({"n": 5, "per_seed": [0.1, 0.2, 0.3, 0.05, 0.0], "seeds_needed": 12}
                                          if seed is None else {"n": 1, "units": "evaluation episodes", "n_units": 100})
                            results.append(ClaimResult(
                                claim_id=claim, section=section, nodeid=f"claims/test_x.py::t[{order}]", env=env,
                                seed=seed, definition=definition, params=params, outcome=outcome,
                                message="" if outcome == "holds" else LONG, values=values, order=order,
                                docstring='§5.1: "the pre-trained models changed their representations more largely '
                                          'than the randomly initialized model" ' + "(mean diagonal CKA) " * 8))
                            order += 1
    # the premise: Table 1 aggregates, one of them skipped with a long reason
    for claim, env, outcome in (("table1.gpt2_beats_random_on_hopper", "hopper", "contradicted"),
                                ("table1.igpt_catastrophic", "hopper", "holds"),
                                ("table1.gpt2_close_to_random", "walker2d", "inconclusive"),
                                ("table1.igpt_catastrophic", "walker2d", "skipped")):
        results.append(ClaimResult(
            claim_id=claim, section="Table 1", nodeid=f"claims/test_table1.py::t[{order}]", env=env, seed=None,
            definition="paper", params={"env": env, "definition": "paper"}, outcome=outcome,
            message="" if outcome == "holds" else LONG, order=order,
            values={"statistic": "score GPT2 - score Random Init", "direction": ">", "threshold": 0.0,
                    "value": -3.21, "ci_low": -18.123, "ci_high": 11.456, "n": 5, "p_value": 0.0123,
                    "seeds_needed": 40}))
        order += 1
    prov = {"grid": "envs=hopper,halfcheetah,walker2d seeds=0,1,2,3,4 backbones=gpt2,igpt,random",
            "git sha": "0" * 40,
            **{f"run hopper__gpt2__seed{s}__K20__0123abcd": {"wall_time_s": 1200.0} for s in range(5)}}
    return Report(tuple(results), profile="paper", provenance=prov, created="2026-01-01T00:00:00")


def test_a_wide_grid_with_long_messages_fits_a_laptop_screen(tmp_path):
    page, _ = write_report(wide_report(), tmp_path / "wide" / "claims.html")
    dom, log = open_in_chromium(with_probe(page, page.with_name("wide-probe.html")), tmp_path)
    assert console_lines(log) == []
    assert dom.count('class="premise-row"') == 3
    got = layout(dom)
    assert got["inner"] == WIDTH and got["scroll"] <= WIDTH and got["widest"] <= WIDTH, got
    assert got["tallest"] <= TALLEST_ROW, got


def test_a_reader_at_1366x768_sees_what_ran_and_the_premise_filters_rows_and_bodies_keep_their_colours(
        report_page, tmp_path):
    """The first screen of a laptop (1366 x 768) holds the line of what ran and the premise; nothing
    is wider than the window; the verdict filter hides the other rows (and claim sections) and
    restores them; every figure colours a body with its one colour (figures.BODY_COLORS), read
    from the figure's ``data-colors`` and from the SVG itself, not from pixels."""
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "claims-report-first-screen.png"
    shot.unlink(missing_ok=True)
    page = report_page.with_name("claims-reader.html")
    page.write_text(report_page.read_text(encoding="utf-8").replace("</body>", READER + "\n</body>"), encoding="utf-8")
    dom, log = open_in_chromium(page, tmp_path, screenshot=shot, height=FIRST_SCREEN)
    assert console_lines(log) == []
    m = re.search(r'data-reader="([^"]*)"', dom)
    assert m, "the reader script did not run"
    got = json.loads(html.unescape(m.group(1)))
    assert 0 < got["runline"] < got["premise"] <= FIRST_SCREEN, got
    assert got["inner"] == WIDTH and got["scroll"] <= WIDTH, got
    assert got["before"] == got["restored"] == 7 and got["after"] == ["contradicted", "contradicted"], got
    assert got["claims"] == 1      # only the contradicted claim's section stays
    assert 'id="glossary"' in dom and 'id="toc"' in dom
    drawn = [c for c in got["figures"] if any(figures.body_of(name) for name in c)]
    assert drawn and any("gpt2" in c for c in drawn)
    for colours in drawn:
        for name, colour in colours.items():
            if figures.body_of(name) and "K1" not in name:
                assert colour == figures.BODY_COLORS[figures.body_of(name)], (name, colour)
    svgs = [decode_uri(i["src"]) for i in parse_page(report_page).images]
    assert all(figures.BODY_COLORS["gpt2"] in svg for svg in svgs if "GPT2" in svg)
    assert shot.is_file() and shot.stat().st_size > 20_000
