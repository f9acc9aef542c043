"""reports/svg.py: the compacted SVG draws what matplotlib's draws (the same elements, texts,
colours and references), is much smaller, and its ``data:`` URI round-trips and needs no escaping
in a single-quoted HTML attribute. Chromium's rendering of the compacted figures is compared
with the originals in docs/report.md ("Its size"); here the structure is compared."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections import Counter

import pytest

from reports import figures, svg
from tests.test_report_model import FIGS

SVG = "{http://www.w3.org/2000/svg}"
XLINK = "{http://www.w3.org/1999/xlink}href"
DRAWN = ("path", "use", "text", "rect", "clipPath")


def matplotlib_svg(fig: dict, monkeypatch) -> str:
    """The figure as matplotlib writes it (compaction off)."""
    with monkeypatch.context() as m:
        m.setattr(svg, "compact", lambda text: text)
        return figures.render_svg(fig).decode()


def elements(text: str) -> Counter:
    return Counter(e.tag.removeprefix(SVG) for e in ET.fromstring(text).iter()
                   if e.tag.removeprefix(SVG) in DRAWN)


def texts(text: str) -> list[str]:
    return [e.text for e in ET.fromstring(text).iter(f"{SVG}text")]


def colours(text: str) -> set[str]:
    return set(re.findall(r"#[0-9a-f]{6}\b", text))


MARKERS = {**FIGS["lines"], "figure": "Fig. 8", "ylabel": "score",
           "series": {"gpt2": {"x": list(range(12)), "y": [0.1 * i for i in range(12)]},
                      "random K1": {"x": list(range(12)), "y": [0.05 * i for i in range(12)]}}}


@pytest.mark.parametrize("fig", [*FIGS.values(), MARKERS], ids=[*FIGS, "markers"])
def test_the_compacted_svg_draws_the_same_elements_texts_and_colours_in_under_half_the_bytes(fig, monkeypatch):
    original = matplotlib_svg(fig, monkeypatch)
    compact = svg.compact(original)
    assert elements(compact) == elements(original)
    assert texts(compact) == texts(original)
    assert colours(compact) == colours(original)
    assert len(compact) < 0.5 * len(original), (len(compact), len(original))
    assert "<metadata" not in compact and "\n" not in compact


@pytest.mark.parametrize("fig", [*FIGS.values(), MARKERS], ids=[*FIGS, "markers"])
def test_every_reference_resolves_and_only_referenced_or_named_ids_are_left(fig, monkeypatch):
    compact = svg.compact(matplotlib_svg(fig, monkeypatch))
    root = ET.fromstring(compact)
    ids = {e.get("id") for e in root.iter() if e.get("id")}
    refs = set(re.findall(r"url\(#([^)]+)\)", compact)) | {e.get(XLINK)[1:] for e in root.iter() if e.get(XLINK)}
    assert refs <= ids
    assert all(i in refs or i.startswith("series-") or i == "hline" for i in ids), ids - refs
    classes = {e.get("class") for e in root.iter() if e.get("class")}
    rules = set(re.findall(r"\.(s\d+)\{", root.find(f"{SVG}defs/{SVG}style").text))
    assert classes <= rules


def test_marker_styles_move_to_their_definition_when_every_use_shares_one(monkeypatch):
    compact = svg.compact(matplotlib_svg(MARKERS, monkeypatch))
    root = ET.fromstring(compact)
    uses = list(root.iter(f"{SVG}use"))
    assert uses and all(u.get("style") is None and u.get("class") is None for u in uses)
    defined = {e.get("id"): e.get("style") for e in root.iter(f"{SVG}path") if e.get("id")}
    point = next(u for u in uses if "fill:" in (defined[u.get(XLINK)[1:]] or ""))
    assert "stroke:" in defined[point.get(XLINK)[1:]]


def test_coordinates_are_rounded_but_text_is_not():
    text = ('<svg xmlns="http://www.w3.org/2000/svg" width="10.123456pt" viewBox="0 0 1.987654 2">'
            '<defs><style type="text/css">*{}</style></defs>'
            '<path d="M 1.234567 2.345678 L -0.001 3 z" style="fill: #ffffff"/>'
            '<text x="1.23456" y="2.5" transform="rotate(-0 1.2 2.5)" style="font-size: 9px">0.123456</text></svg>')
    compact = svg.compact(text)
    assert 'width="10.12pt"' in compact and 'viewBox="0 0 1.99 2"' in compact
    assert 'd="M1.23 2.35L0 3z"' in compact and 'x="1.23"' in compact and ">0.123456</text>" in compact
    assert "rotate" not in compact


def test_the_data_uri_round_trips_and_needs_no_escaping_in_a_single_quoted_attribute():
    text = '<svg a="1" b=\'2\'><text>50 % of #1 & <b> "q" \'s</text></svg>'
    uri = svg.data_uri(text)
    assert uri.startswith("data:image/svg+xml,") and not re.search(r"['&]", uri)
    assert svg.decode_uri(uri) == text
    assert svg.decode_uri("data:image/svg+xml;base64,PHN2Zy8+") == "<svg/>"
