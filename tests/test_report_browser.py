"""The claims report opened in real headless Chromium (Debian's ``chromium``, installed by
``make chromium`` before ``make test``): the page renders with no console message, every figure
decodes, the DOM holds the verdict grid, and a screenshot is saved under ``test-artifacts/``.

The page itself has no script. To see whether Chromium decoded each embedded PNG, the test opens a
copy of the page with a probe script appended that, on load, writes the number of decoded images to
``body[data-images-decoded]`` and logs a console error per broken image. A control page with a
broken image and an uncaught exception checks that the probe and the console detection work.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.test_report_plugin import parse_page, write_synthetic_claims

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
pytest_plugins = ["pytester"]
PROBE = """<script>
window.addEventListener("load", () => {
  const ok = [...document.images].filter(i => i.complete && i.naturalWidth > 0);
  document.body.setAttribute("data-images-decoded", ok.length + "/" + document.images.length);
  for (const i of document.images) if (!i.naturalWidth) console.error("broken image " + i.alt);
});
</script>"""
CONSOLE = re.compile(r":CONSOLE[:(]|Uncaught")


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("Debian's chromium is not installed: run `make chromium` (the `make test` target does)")
    return path


def open_in_chromium(page: Path, workdir: Path, screenshot: Path | None = None) -> tuple[str, str]:
    """Load ``page`` in headless Chromium; returns (the DOM after load, Chromium's stderr log)."""
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
           f"--user-data-dir={workdir / 'chromium-profile'}", "--enable-logging=stderr", "--v=0",
           "--window-size=1280,2000", "--dump-dom"]
    if screenshot is not None:
        cmd.append(f"--screenshot={screenshot}")
    proc = subprocess.run([*cmd, page.as_uri()], capture_output=True, text=True, timeout=120, cwd=workdir)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout, proc.stderr


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
                   "<script>undefinedFunction();</script></body></html>")
    dom, log = open_in_chromium(with_probe(bad, tmp_path / "bad-probe.html"), tmp_path)
    assert 'data-images-decoded="0/1"' in dom
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
    assert 'id="verdict-grid"' in dom and dom.count('class="claim-row"') == 5
    assert shot.is_file() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
