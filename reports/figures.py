"""The paper's figures redrawn from the user's runs (Takagi 2022, Figs. 1-10).

A claim test records the data of a figure with ``record_property("figure:<kind>", data)``
(``claims.criteria.record_figure``); this module draws it with matplotlib (Agg) into a small PNG
embedded as a ``data:`` URI, so the report is one self-contained file. The schema is generic, so
no figure needs code of its own:

``{"figure": "Fig. 1", "title": str, "type": "lines" | "bars" | "boxes", "xlabel": str,
"ylabel": str, "series": {...}, "hline": float | None}``

- ``lines``: ``series = {name: {"x": [..], "y": [..], "err": [..] (optional band y +- err)}}``
  (Fig. 1 CKA diagonals, Fig. 2 MI by token position, Figs. 7-9 curves);
- ``bars``: ``series = {name: {"labels": [..], "values": [..], "err": [..] (optional)}}``, bars
  grouped by label (Figs. 3 and 4 parameter L2 / cosine);
- ``boxes``: ``series = {name: {group_label: [values...]}}``, boxes grouped by label (Figs. 5, 6
  and 10).
"""

from __future__ import annotations

import base64
import io
import math
from typing import Any, Mapping

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

TYPES = ("lines", "bars", "boxes")
DPI = 80
FIGSIZE = (5.0, 3.3)  # inches: 400 x 264 px at DPI
_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


def validate(fig: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` naming the field when ``fig`` does not follow the schema above."""
    if not isinstance(fig, Mapping):
        raise ValueError(f"fig must be a dict, got {type(fig).__name__}")
    kind = fig.get("type")
    if kind not in TYPES:
        raise ValueError(f"fig['type'] must be one of {TYPES}, got {kind!r}")
    series = fig.get("series")
    if not isinstance(series, Mapping) or not series:
        raise ValueError("fig['series'] must be a non-empty dict of name -> data")
    for name, s in series.items():
        if not isinstance(s, Mapping):
            raise ValueError(f"fig['series'][{name!r}] must be a dict, got {type(s).__name__}")
        if kind == "lines":
            _check_lengths(name, s, "x", "y")
        elif kind == "bars":
            _check_lengths(name, s, "labels", "values")
        elif not all(isinstance(v, (list, tuple)) and len(v) > 0 for v in s.values()):
            raise ValueError(f"fig['series'][{name!r}]: each box group must be a non-empty list of values")


def _check_lengths(name: str, s: Mapping[str, Any], a: str, b: str) -> None:
    if a not in s or b not in s:
        raise ValueError(f"fig['series'][{name!r}] needs keys {a!r} and {b!r}, got {sorted(s)}")
    if len(s[a]) != len(s[b]):
        raise ValueError(f"fig['series'][{name!r}]: len({a})={len(s[a])} != len({b})={len(s[b])}")
    if "err" in s and len(s["err"]) != len(s[b]):
        raise ValueError(f"fig['series'][{name!r}]: len(err)={len(s['err'])} != len({b})={len(s[b])}")


def _floats(values: Any) -> list[float]:
    return [float("nan") if v is None else float(v) for v in values]


def _draw_lines(ax, series: Mapping[str, Any]) -> None:
    for i, (name, s) in enumerate(series.items()):
        color = _COLORS[i % len(_COLORS)]
        x, y = _floats(s["x"]), _floats(s["y"])
        ax.plot(x, y, marker="o" if len(x) <= 20 else None, markersize=3, linewidth=1.5,
                color=color, label=str(name))
        if "err" in s:
            err = _floats(s["err"])
            ax.fill_between(x, [a - e for a, e in zip(y, err)], [a + e for a, e in zip(y, err)],
                            color=color, alpha=0.2, linewidth=0)


def _group_positions(n_groups: int, n_series: int, width: float = 0.8) -> tuple[float, list[list[float]]]:
    """Bar/box positions: group g at x=g, its series side by side within ``width``."""
    w = width / n_series
    return w, [[g - width / 2 + w * (i + 0.5) for g in range(n_groups)] for i in range(n_series)]


def _labels_in_order(groups: list[list[Any]]) -> list[str]:
    out: list[str] = []
    for labels in groups:
        out += [str(lab) for lab in labels if str(lab) not in out]
    return out


def _draw_bars(ax, series: Mapping[str, Any]) -> None:
    labels = _labels_in_order([s["labels"] for s in series.values()])
    w, pos = _group_positions(len(labels), len(series))
    for i, (name, s) in enumerate(series.items()):
        vals = dict(zip(map(str, s["labels"]), _floats(s["values"])))
        errs = dict(zip(map(str, s["labels"]), _floats(s["err"]))) if "err" in s else None
        xs = [pos[i][g] for g, lab in enumerate(labels) if lab in vals]
        ys = [vals[lab] for lab in labels if lab in vals]
        yerr = [errs[lab] for lab in labels if lab in vals] if errs else None
        ax.bar(xs, ys, width=w * 0.95, yerr=yerr, capsize=2, color=_COLORS[i % len(_COLORS)], label=str(name))
    ax.set_xticks(range(len(labels)), labels, rotation=30 if len(labels) > 6 else 0, fontsize=8)


def _draw_boxes(ax, series: Mapping[str, Any]) -> None:
    labels = _labels_in_order([list(s) for s in series.values()])
    w, pos = _group_positions(len(labels), len(series))
    for i, (name, s) in enumerate(series.items()):
        groups = {str(k): [v for v in _floats(vs) if math.isfinite(v)] for k, vs in s.items()}
        present = [g for g, lab in enumerate(labels) if groups.get(lab)]
        color = _COLORS[i % len(_COLORS)]
        bp = ax.boxplot([groups[labels[g]] for g in present], positions=[pos[i][g] for g in present],
                        widths=w * 0.8, patch_artist=True, showfliers=True,
                        flierprops={"markersize": 2, "markeredgecolor": color},
                        medianprops={"color": "black", "linewidth": 1})
        for box in bp["boxes"]:
            box.set(facecolor=color, alpha=0.6, edgecolor=color)
        ax.plot([], [], color=color, linewidth=6, alpha=0.6, label=str(name))  # legend handle
    ax.set_xticks(range(len(labels)), labels, rotation=30 if len(labels) > 6 else 0, fontsize=8)
    ax.set_xlim(-0.6, len(labels) - 0.4)


def render_png(fig: Mapping[str, Any]) -> bytes:
    """The figure dict drawn as PNG bytes (``FIGSIZE`` at ``DPI``)."""
    validate(fig)
    figure = Figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    {"lines": _draw_lines, "bars": _draw_bars, "boxes": _draw_boxes}[fig["type"]](ax, fig["series"])
    if fig.get("hline") is not None:
        ax.axhline(float(fig["hline"]), color="#555555", linestyle="--", linewidth=1)
    title = " — ".join(str(t) for t in (fig.get("figure"), fig.get("title")) if t)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(fig.get("xlabel", ""), fontsize=8)
    ax.set_ylabel(fig.get("ylabel", ""), fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(True, axis="y", color="#e5e5e5", linewidth=0.6)
    ax.set_axisbelow(True)
    if len(fig["series"]) > 1:
        ax.legend(fontsize=7, frameon=False)
    buf = io.BytesIO()
    figure.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def data_uri(fig: Mapping[str, Any]) -> str:
    """The figure as a ``data:image/png;base64,...`` URI for an ``<img src>``."""
    return "data:image/png;base64," + base64.b64encode(render_png(fig)).decode("ascii")
