"""Matplotlib's SVG made small, and the ``data:`` URI that embeds it in the report page.

The page embeds every figure (``reports/figures.py``), about 200 of them for a 5-seed run; as
matplotlib writes them and base64-encoded, they were 6.9 of the 7.8 MB of the 5-seed mini hopper
page. Most of those bytes draw nothing. :func:`compact` removes or shortens them and keeps every
drawn element, colour, text and size:

- the XML declaration, the DOCTYPE and the ``<metadata>`` block (matplotlib's name and version,
  written into every figure);
- coordinates printed to six decimals: rounded to :data:`DECIMALS` (0.01 px at the page's 1 pt =
  1 px), only in geometry attributes (``d``, ``x``, ``y``, ``width``, ``height``, ``points``, a
  ``translate``), never in text;
- element ids nothing refers to (``patch_3``, ``xtick_2``, ...: ids that no ``url(#...)`` or
  ``xlink:href`` names; the ``series-<name>`` and ``hline`` ids the figures set are kept), then the
  ``<g>`` wrappers left with no attribute;
- the font-family (matplotlib's ten-font fallback list) on every ``<text>``: one ``text`` rule
  with it instead, where every text has the same;
- the style repeated on every ``<use>`` of a marker (each tick, each point of a line): moved onto
  the marker's definition where every use of it has the same style and that style includes the
  definition's own;
- each element's ``style``: a class (``s0``, ``s1``, ...) with one rule per distinct style in the
  SVG's stylesheet (a marker's definition keeps its own, as ``<use>`` clones it);
- the ids that are referenced (``mfe3706afe6``, clip paths): a short one each;
- a ``rotate(0 ...)`` that rotates nothing, spaces in styles, the line breaks and indentation.

:func:`data_uri` embeds the result as text, not base64 (a third smaller): the SVG as it is, with
``%``, ``#``, ``&`` and ``'`` percent-encoded, so the URI needs no escaping inside a single-quoted
HTML attribute (the page's ``<img src='...'>``). :func:`decode_uri` inverts it (and reads a
base64 URI too).
"""

from __future__ import annotations

import base64
import re
from urllib.parse import unquote

DECIMALS = 2
PREFIX = "data:image/svg+xml,"
_NUMBER = re.compile(r"-?\d+\.\d+")
_GEOMETRY = re.compile(r'\s(d|x|y|x1|x2|y1|y2|cx|cy|r|width|height|points|viewBox)="([^"]*)"')
_TRANSLATE = re.compile(r"(translate\()([^)]*)\)")
_NO_ROTATION = re.compile(r' transform="rotate\(-?0 [^)"]*\)"')
_ID = re.compile(r'\sid="([^"]*)"')
_REFERENCE = re.compile(r'(?:url\(#|xlink:href="#)([^)"]+)')
_KEPT_IDS = re.compile(r"^(series-|hline$)")
_G = re.compile(r"<g\b[^>]*(?<!/)>|</g>")
_STYLE = re.compile(r'style="([^"]*)"')
_FAMILY = re.compile(r"font-family:([^;\"]*)")
_USE = re.compile(r'<use xlink:href="#([^"]+)"((?: [xy]="[^"]*")*) style="([^"]*)"\s*/>')
_DEF = re.compile(r'(<path id="([^"]+)" d="[^"]*") style="([^"]*)"')


def _round(match: re.Match) -> str:
    text = f"{float(match.group(0)):.{DECIMALS}f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _round_numbers(text: str) -> str:
    return _NUMBER.sub(_round, text)


def _declarations(style: str) -> dict[str, str]:
    out = {}
    for part in style.split(";"):
        name, sep, value = part.partition(":")
        if sep:
            out[name.strip()] = value.strip()
    return out


def _tight_style(match: re.Match) -> str:
    return 'style="' + ";".join(f"{k}:{v}" for k, v in _declarations(match.group(1)).items()) + '"'


def _drop_unreferenced_ids(svg: str) -> str:
    referenced = set(_REFERENCE.findall(svg))
    return _ID.sub(lambda m: m.group(0) if m.group(1) in referenced or _KEPT_IDS.match(m.group(1)) else "", svg)


def _unwrap_bare_groups(svg: str) -> str:
    """``<g>`` ... ``</g>`` without attributes: the children stay, the wrapper goes (an empty
    ``<g/>`` too)."""
    out, kept, pos = [], [], 0
    for m in _G.finditer(svg):
        out.append(svg[pos:m.start()])
        pos = m.end()
        tag = m.group(0)
        if tag == "</g>":
            if kept.pop():
                out.append(tag)
        else:
            kept.append(tag != "<g>")
            if tag != "<g>":
                out.append(tag)
    out.append(svg[pos:])
    return re.sub(r"<g\s*/>", "", "".join(out))


def _hoist_marker_styles(svg: str) -> str:
    """A marker whose every ``<use>`` carries the same style, one that includes the marker's own:
    that style on the definition, none on the uses (what each use draws is unchanged)."""
    styles: dict[str, set[str]] = {}
    for ref, _, style in _USE.findall(svg):
        styles.setdefault(ref, set()).add(style)
    own = {ref: style for _, ref, style in _DEF.findall(svg)}
    hoisted = {}
    for ref, found in styles.items():
        if len(found) == 1 and ref in own:
            (style,) = found
            mine, theirs = _declarations(own[ref]), _declarations(style)
            if all(theirs.get(k) == v for k, v in mine.items()):
                hoisted[ref] = style
    if not hoisted:
        return svg
    svg = _DEF.sub(lambda m: f'{m.group(1)} style="{hoisted[m.group(2)]}"' if m.group(2) in hoisted else m.group(0),
                   svg)
    return _USE.sub(lambda m: f'<use xlink:href="#{m.group(1)}"{m.group(2)}/>' if m.group(1) in hoisted
                    else m.group(0), svg)


def _one_font_rule(svg: str) -> str:
    """One font-family on every text (as the figures draw them): a ``text`` rule in the SVG's
    stylesheet instead of a declaration per text."""
    families = set(_FAMILY.findall(svg))
    if len(families) != 1 or "</style>" not in svg:
        return svg
    svg = re.sub(r'(style="[^"]*?);?font-family:[^;"]*', r"\1", svg)
    svg = re.sub(r'style=";', 'style="', svg).replace(' style=""', "")
    return svg.replace("</style>", f"text{{font-family:{families.pop()}}}</style>", 1)


def _short_ids(svg: str) -> str:
    """Every referenced id renamed ``i0``, ``i1``, ... (the figure is a document of its own)."""
    names = {ref: f"i{n}" for n, ref in enumerate(dict.fromkeys(_REFERENCE.findall(svg)))}
    if not names:
        return svg
    svg = _ID.sub(lambda m: f' id="{names.get(m.group(1), m.group(1))}"', svg)
    return re.sub(r'(url\(#|xlink:href="#)([^)"]+)', lambda m: m.group(1) + names.get(m.group(2), m.group(2)), svg)


def _style_classes(svg: str) -> str:
    """``style="..."`` of each element without an id: ``class="sN"``, one rule per distinct style."""
    classes: dict[str, str] = {}

    def tag(m: re.Match) -> str:
        attrs = m.group(2)
        style = _STYLE.search(attrs)
        if style is None or ' id="' in attrs or " class=" in attrs:
            return m.group(0)
        name = classes.setdefault(style.group(1), f"s{len(classes)}")
        return f"<{m.group(1)}{attrs[:style.start()]}class=\"{name}\"{attrs[style.end():]}{m.group(3)}"

    if "</style>" not in svg:
        return svg
    svg = re.sub(r"<(path|text|use|rect|g)\b([^>]*?)(/?>)", tag, svg)
    rules = "".join(f".{name}{{{style}}}" for style, name in classes.items())
    return svg.replace("</style>", rules + "</style>", 1)


def compact(svg: str) -> str:
    """``svg`` (as matplotlib's SVG backend writes it) without what draws nothing (module docstring)."""
    svg = re.sub(r"<\?xml[^>]*\?>\s*|<!DOCTYPE[^>]*>\s*", "", svg)
    svg = re.sub(r"\s*<metadata>.*?</metadata>", "", svg, flags=re.S)
    svg = re.sub(r"\s*\n\s*", " ", svg)
    svg = re.sub(r">\s+<", "><", svg)
    svg = _GEOMETRY.sub(lambda m: f' {m.group(1)}="{_round_numbers(m.group(2))}"', svg)
    svg = _TRANSLATE.sub(lambda m: f"{m.group(1)}{_round_numbers(m.group(2))})", svg)
    svg = _NO_ROTATION.sub("", svg)
    svg = re.sub(r'\sd="([^"]*)"', lambda m: ' d="' + re.sub(r" ?([MLCQz]) ?", r"\1", m.group(1)).strip() + '"', svg)
    svg = _drop_unreferenced_ids(svg)
    svg = _unwrap_bare_groups(svg)
    svg = _STYLE.sub(_tight_style, svg)
    return _style_classes(_short_ids(_hoist_marker_styles(_one_font_rule(svg))))


def data_uri(svg: str) -> str:
    """``svg`` as a ``data:image/svg+xml,`` URI safe as it is inside a single-quoted HTML attribute."""
    return PREFIX + svg.replace("%", "%25").replace("#", "%23").replace("&", "%26").replace("'", "%27")


def decode_uri(uri: str) -> str:
    """The SVG of a URI from :func:`data_uri` (or of a base64 ``data:image/svg+xml`` URI)."""
    head, _, body = uri.partition(",")
    if head.endswith(";base64"):
        return base64.b64decode(body).decode("utf-8")
    return unquote(body)
