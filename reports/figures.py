"""The paper's figures redrawn from the user's runs (Takagi 2022, Figs. 1-10).

A claim test records the data of a figure with ``record_property("figure:<kind>", data)``
(``dtcore.claim.figure``); this module draws it with matplotlib (Agg) as an SVG, compacted and
embedded as a text ``data:`` URI (``reports/svg.py``; text stays text, readable at any width), so
the report is one self-contained file.
The schema is generic, so no figure needs code of its own:

``{"figure": "Fig. 1", "title": str, "type": "lines" | "bars" | "boxes", "xlabel": str,
"ylabel": str, "series": {...}, "hline": float | None}``, and optionally ``"note": str``, a
per-seed detail drawn after the title (Fig. 7's two largest parameter sets): the title names the
panel the seeds share (:func:`panel_key`), the note what one seed found, so the seed aggregate keeps
it only where every seed has the same.

- ``lines``: ``series = {name: {"x": [..], "y": [..], "err": [..] (optional band y +- err),
  "mark": {"x": x, "label": str} (optional: one point of the series ringed, e.g. the selected
  epoch; per seed, so the seed aggregate drops it)}}`` (Fig. 1 CKA diagonals, Fig. 2 MI by token
  position, Figs. 7-9 and Table 1's curves);
- ``bars``: ``series = {name: {"labels": [..], "values": [..], "err": [..] (optional)}}``, bars
  grouped by label (Figs. 3 and 4 parameter L2 / cosine);
- ``boxes``: ``series = {name: {group_label: [values...]}}``, boxes grouped by label (Figs. 5, 6
  and 10);
- ``intervals``: ``series = {name: {"value": v, "low": l | None, "high": h | None}}``, one row per
  name, a point with its interval (rliable's interval estimates of Table 1's aggregates); the
  ``hline`` is a vertical threshold there.

A figure two claims read is drawn under one of them; the other records a reference,
``{"figure": "Fig. 8", "see": claim_id}`` (:func:`is_reference`), and the page links to it.

Colours: one per body (:data:`BODY_COLORS`, here and nowhere else), whether the body names a
series ("gpt2", "random K1": the K=1 runs a lighter shade), a bar or a box group; anything else
takes the :data:`OTHER_COLORS` in order. :func:`aggregate` turns the per-seed figures of one panel
into the seed aggregate the paper draws: the mean over seeds with a 95 % t band (lines, bars) or
the values pooled over seeds (boxes). CKA is drawn on [0, 1]; a dashed line is labelled.
"""

from __future__ import annotations

import io
import json
import math
import re
import textwrap
import warnings
from typing import Any, Mapping, Sequence

import numpy as np
from matplotlib import rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_hex, to_rgb
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from scipy import stats

from reports import svg

TYPES = ("lines", "bars", "boxes", "intervals")
FIGSIZE = (6.4, 3.6)       # inches of an SVG at 1 pt = 1 px: 614 x 346 px on the page (96 dpi)
FONT = 10                  # pt: at least 10 px of text wherever the figure is drawn at its size
MAX_WIDTH = 12.5           # inches: the widest figure (many labelled bars) still fits 1300 px
BODY_COLORS = {"gpt2": "#1f77b4", "igpt": "#d62728", "random": "#2ca02c"}
BODY_LABELS = {"gpt2": "GPT2", "igpt": "iGPT", "random": "Random Init"}
K1_SHADE = 0.5             # K=1 runs: the body's colour mixed halfway with white
OTHER_COLORS = ("#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f", "#393b79")
HLINE_LABELS = {"Fig. 1": "§5.1 threshold", "Fig. 2": "noise floor", "Fig. 6": "clip value"}   # the dashed line
UNIT_RANGES = {"CKA": (0.0, 1.0)}   # a ylabel containing the key: the axis the paper draws
_SEED = re.compile(r"\bseed \d+")


def body_of(name: str) -> str | None:
    """The body a series, bar or box group is named after ("gpt2", "random K1", "iGPT"), else None."""
    first = str(name).split()[0].lower() if str(name).split() else ""
    return first if first in BODY_COLORS else None


def color_of(name: str, others: dict[str, str]) -> str:
    """The colour of a series named ``name``: its body's (lighter for K=1), else the next of
    :data:`OTHER_COLORS` (remembered in ``others``, so a name keeps its colour in one figure)."""
    body = body_of(name)
    if body is None:
        return others.setdefault(str(name), OTHER_COLORS[len(others) % len(OTHER_COLORS)])
    color = BODY_COLORS[body]
    if re.search(r"\bK1\b", str(name)):
        color = to_hex(tuple(c + (1 - c) * K1_SHADE for c in to_rgb(color)))
    return color


def label_of(name: str) -> str:
    """A series name for the legend: the body's label ("random K1" -> "Random Init K1")."""
    body = body_of(name)
    return str(name) if body is None else " ".join([BODY_LABELS[body], *str(name).split()[1:]])


def colors(fig: Mapping[str, Any]) -> dict[str, str]:
    """Name -> colour of every series, bar or box group a figure draws (what the page records in
    ``data-colors``); the same rule as the drawing."""
    others: dict[str, str] = {}
    out = {}
    for name, s in fig["series"].items():
        parts = _part_names(fig["type"], name, s)
        for part in parts:
            out[part] = color_of(part, others)
    return out


def _part_names(kind: str, name: str, s: Mapping[str, Any]) -> list[str]:
    """The coloured parts of one series: the series itself, or its bars / box groups where those
    are named after bodies (Fig. 5's bars, Fig. 6's boxes)."""
    labels = list(s["labels"]) if kind == "bars" else list(s) if kind == "boxes" else []
    if labels and all(body_of(lab) for lab in labels):
        return [str(lab) for lab in labels]
    return [str(name)]


def is_reference(fig: Any) -> bool:
    """Whether ``fig`` only points at a figure drawn under another claim (``{"see": claim_id}``)."""
    return isinstance(fig, Mapping) and isinstance(fig.get("see"), str)


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
            if "mark" in s and (not isinstance(s["mark"], Mapping) or s["mark"].get("x") not in list(s["x"])):
                raise ValueError(f"fig['series'][{name!r}]['mark'] must be {{'x': one of its x, 'label': str}}, "
                                 f"got {s['mark']!r}")
        elif kind == "bars":
            _check_lengths(name, s, "labels", "values")
        elif kind == "intervals":
            if not isinstance(s.get("value"), (int, float)):
                raise ValueError(f"fig['series'][{name!r}] needs a number 'value', got {s.get('value')!r}")
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


def _draw_lines(ax, series: Mapping[str, Any], others: dict[str, str]) -> None:
    marks: list[str] = []
    for name, s in series.items():
        color = color_of(name, others)
        x, y = _floats(s["x"]), _floats(s["y"])
        ax.plot(x, y, marker="o" if len(x) <= 20 else None, markersize=3, linewidth=1.6,
                color=color, label=label_of(name), gid=f"series-{name}")
        if "err" in s:
            err = _floats(s["err"])
            ax.fill_between(x, [a - e for a, e in zip(y, err)], [a + e for a, e in zip(y, err)],
                            color=color, alpha=0.2, linewidth=0)
        if "mark" in s:
            at = list(s["x"]).index(s["mark"]["x"])
            ax.plot([x[at]], [y[at]], marker="o", markersize=9, markerfacecolor="none", markeredgecolor=color,
                    markeredgewidth=1.5, linestyle="none", gid=f"mark-{name}")
            label = str(s["mark"].get("label") or "")
            if label and label not in marks:
                marks.append(label)
    for label in marks:   # one legend entry per kind of mark, in no body's colour
        ax.plot([], [], marker="o", markersize=9, markerfacecolor="none", markeredgecolor="#444444",
                linestyle="none", label=label)


def _group_positions(n_groups: int, n_series: int, width: float = 0.8) -> tuple[float, list[list[float]]]:
    """Bar/box positions: group g at x=g, its series side by side within ``width``."""
    w = width / n_series
    return w, [[g - width / 2 + w * (i + 0.5) for g in range(n_groups)] for i in range(n_series)]


def _labels_in_order(groups: list[list[Any]]) -> list[str]:
    out: list[str] = []
    for labels in groups:
        out += [str(lab) for lab in labels if str(lab) not in out]
    return out


def _ticks(ax, labels: Sequence[str]) -> None:
    """Group labels that never overlap: horizontal when few and short, else upright (90 degrees)
    with the figure widened to give each its line (:func:`_width`)."""
    upright = len(labels) > 6 or max((len(lab) for lab in labels), default=0) * len(labels) > 60
    ax.set_xticks(range(len(labels)), [label_of(lab) for lab in labels], rotation=90 if upright else 0,
                  fontsize=FONT - 1 if upright else FONT)
    ax.set_xlim(-0.6, len(labels) - 0.4)


def _draw_bars(ax, series: Mapping[str, Any], others: dict[str, str]) -> None:
    labels = _labels_in_order([s["labels"] for s in series.values()])
    w, pos = _group_positions(len(labels), len(series))
    for i, (name, s) in enumerate(series.items()):
        vals = dict(zip(map(str, s["labels"]), _floats(s["values"])))
        errs = dict(zip(map(str, s["labels"]), _floats(s["err"]))) if "err" in s else None
        present = [lab for lab in labels if lab in vals]
        parts = _part_names("bars", name, s)
        color = ([color_of(lab, others) for lab in present] if parts != [str(name)] else color_of(name, others))
        ax.bar([pos[i][labels.index(lab)] for lab in present], [vals[lab] for lab in present], width=w * 0.95,
               yerr=[errs[lab] for lab in present] if errs else None, capsize=2, color=color,
               label=label_of(name) if parts == [str(name)] else None, gid=f"series-{name}")
    _ticks(ax, labels)


def _draw_boxes(ax, series: Mapping[str, Any], others: dict[str, str]) -> None:
    labels = _labels_in_order([list(s) for s in series.values()])
    w, pos = _group_positions(len(labels), len(series))
    for i, (name, s) in enumerate(series.items()):
        groups = {str(k): [v for v in _floats(vs) if math.isfinite(v)] for k, vs in s.items()}
        present = [g for g, lab in enumerate(labels) if groups.get(lab)]
        by_group = _part_names("boxes", name, s) != [str(name)]
        bp = ax.boxplot([groups[labels[g]] for g in present], positions=[pos[i][g] for g in present],
                        widths=w * 0.8, patch_artist=True, showfliers=True,
                        flierprops={"markersize": 2, "alpha": 0.5},
                        medianprops={"color": "black", "linewidth": 1})
        for g, box in zip(present, bp["boxes"]):
            color = color_of(labels[g] if by_group else name, others)
            box.set(facecolor=color, alpha=0.6, edgecolor=color, gid=f"series-{labels[g] if by_group else name}")
        if not by_group:
            ax.plot([], [], color=color_of(name, others), linewidth=6, alpha=0.6, label=label_of(name))
    _ticks(ax, labels)


def _draw_intervals(ax, series: Mapping[str, Any], others: dict[str, str]) -> None:
    names = list(series)
    for i, name in enumerate(names):
        s, color = series[name], color_of(name, others)
        value = float(s["value"])
        low, high = s.get("low"), s.get("high")
        xerr = [[value - float(low)], [float(high) - value]] if low is not None and high is not None else None
        ax.errorbar([value], [i], xerr=xerr, fmt="o", color=color, capsize=4, linewidth=2, markersize=6,
                    gid=f"series-{name}")
    ax.set_yticks(range(len(names)), [label_of(n) for n in names], fontsize=FONT)
    ax.set_ylim(-0.6, len(names) - 0.4)
    ax.grid(True, axis="x", color="#e5e5e5", linewidth=0.6)


def _width(fig: Mapping[str, Any]) -> float:
    """Inches: wide enough for one upright 10-pt label per bar or box group."""
    if fig["type"] in ("lines", "intervals"):
        return FIGSIZE[0]
    groups = _labels_in_order([list(s["labels"]) if fig["type"] == "bars" else list(s)
                               for s in fig["series"].values()])
    return min(MAX_WIDTH, max(FIGSIZE[0], 0.2 * len(groups) + 1.5))


def _hline(ax, fig: Mapping[str, Any]) -> None:
    """The figure's dashed reference line, labelled (noise floor, clip value, else "threshold");
    vertical in an ``intervals`` figure."""
    y = float(fig["hline"])
    label = HLINE_LABELS.get(str(fig.get("figure")), "threshold")
    line = ax.axvline if fig["type"] == "intervals" else ax.axhline
    line(y, color="#444444", linestyle="--", linewidth=1, label=f"{label} ({y:.3g})", gid="hline")


def _whole_number_ticks(ax, fig: Mapping[str, Any]) -> None:
    """Whole-number ticks on each axis of a line figure whose values are all whole numbers (epochs,
    token positions, parameter indices): no tick at epoch 2.5."""
    if fig["type"] != "lines":
        return
    for axis, key in ((ax.xaxis, "x"), (ax.yaxis, "y")):
        values = [v for s in fig["series"].values() for v in _floats(s[key]) if math.isfinite(v)]
        if values and all(v.is_integer() for v in values):
            axis.set_major_locator(MaxNLocator(integer=True))


def _axis_range(ax, fig: Mapping[str, Any]) -> None:
    for unit, (low, high) in UNIT_RANGES.items():
        if unit in str(fig.get("ylabel", "")):
            ax.set_ylim(low, high)


def render_svg(fig: Mapping[str, Any]) -> bytes:
    """The figure dict drawn as SVG bytes, text kept as text (``FONT`` pt), compacted
    (:func:`reports.svg.compact`)."""
    validate(fig)
    with rc_context({"svg.fonttype": "none", "font.size": FONT, "svg.hashsalt": "dtclaims"}):
        height = {"lines": FIGSIZE[1], "intervals": 1.6 + 0.4 * len(fig["series"])}.get(fig["type"],
                                                                                       FIGSIZE[1] + 1.2)
        figure = Figure(figsize=(_width(fig), height), layout="constrained")
        FigureCanvasAgg(figure)
        ax = figure.add_subplot()
        others: dict[str, str] = {}
        draw = {"lines": _draw_lines, "bars": _draw_bars, "boxes": _draw_boxes, "intervals": _draw_intervals}
        draw[fig["type"]](ax, fig["series"], others)
        if fig.get("hline") is not None:
            _hline(ax, fig)
        _axis_range(ax, fig)
        _whole_number_ticks(ax, fig)
        title = " — ".join(str(t) for t in (fig.get("figure"), fig.get("title")) if t)
        title += f" ({fig['note']})" if fig.get("note") else ""
        chars = int(figure.get_figwidth() * 72 / (0.6 * FONT))   # characters of FONT-pt text per line
        ax.set_title(textwrap.fill(title, chars), fontsize=FONT)
        ax.set_xlabel(textwrap.fill(str(fig.get("xlabel", "")), chars), fontsize=FONT)
        tall = int(0.6 * height * 72 / (0.6 * FONT))   # characters along the axes' height (about 0.6 of the figure's)
        ax.set_ylabel(textwrap.fill(str(fig.get("ylabel", "")), tall), fontsize=FONT)
        ax.tick_params(labelsize=FONT - 1)
        if fig["type"] != "intervals":
            ax.grid(True, axis="y", color="#e5e5e5", linewidth=0.6)
        ax.set_axisbelow(True)
        handles, _ = ax.get_legend_handles_labels()
        if len(handles) > 1 or (handles and fig.get("hline") is not None):   # beside the axes, never on the data
            ax.legend(fontsize=FONT - 1, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        buf = io.BytesIO()
        figure.savefig(buf, format="svg", metadata={"Date": None})
    return svg.compact(buf.getvalue().decode("utf-8")).encode("utf-8")


def data_uri(fig: Mapping[str, Any]) -> str:
    """The figure as a ``data:image/svg+xml,...`` URI for an ``<img src>`` (:func:`reports.svg.data_uri`)."""
    return svg.data_uri(render_svg(fig).decode("utf-8"))


# ----------------------------------------------------------------------------- seed aggregate

def _t_half_width(x: np.ndarray) -> np.ndarray:
    """Half-width of the 95 % t interval of the mean over axis 0 (nan where fewer than 2 values)."""
    n = np.sum(np.isfinite(x), axis=0)
    sd = np.nanstd(x, axis=0, ddof=1) if x.shape[0] > 1 else np.full(x.shape[1:], np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 1, stats.t.ppf(0.975, np.maximum(n - 1, 1)) * sd / np.sqrt(n), np.nan)


def _mean_band(rows: list[list[float]]) -> tuple[list[float], list[float]]:
    """Mean and 95 % half-width per column; a column no seed has a number for stays nan (no band)."""
    x = np.asarray(rows, dtype=float)
    with warnings.catch_warnings():   # an all-nan column: nan, not a warning in the test log
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(x, axis=0) if x.size else np.array([])
        half = _t_half_width(x)
    return mean.tolist(), np.nan_to_num(half, nan=0.0).tolist()


def _distinct(values: list[Any]) -> list[Any]:
    """``values`` without exact repeats (Random Init's curve of one seed drawn beside GPT2's and
    beside iGPT's is one seed, not two)."""
    seen: dict[str, Any] = {}
    for v in values:
        seen.setdefault(json.dumps(v, sort_keys=True, default=str), v)
    return list(seen.values())


def aggregate(figs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The seed aggregate of per-seed figures of one panel (same kind and title but the seed):
    every body drawn in any of them in one panel, as the paper draws them; lines and bars as the
    mean over seeds with a 95 % t band / error bar (at the x values or labels every seed has), boxes
    as the values pooled over seeds. A series recorded identically in two figures (the same seed's
    Random Init beside two bodies) counts once. The title says over how many seeds; a per-seed
    ``note`` stays only where every seed has the same."""
    for f in figs:
        validate(f)
    first = figs[0]
    names = list(dict.fromkeys(name for f in figs for name in f["series"]))
    order = list(BODY_COLORS)
    names.sort(key=lambda name: order.index(body_of(name)) if body_of(name) else len(order))   # GPT2, iGPT, Random
    series: dict[str, Any] = {}
    n = 0
    for name in names:
        seeds = _distinct([f["series"][name] for f in figs if name in f["series"]])
        n = max(n, len(seeds))
        if first["type"] == "lines":
            xs = [x for x in seeds[0]["x"] if all(x in s["x"] for s in seeds)]
            ys = [[_floats(s["y"])[list(s["x"]).index(x)] for x in xs] for s in seeds]
            mean, err = _mean_band(ys)
            series[name] = {"x": xs, "y": mean, "err": err}
        elif first["type"] == "bars":
            labels = [lab for lab in seeds[0]["labels"] if all(lab in s["labels"] for s in seeds)]
            vals = [[_floats(s["values"])[list(s["labels"]).index(lab)] for lab in labels] for s in seeds]
            mean, err = _mean_band(vals)
            series[name] = {"labels": labels, "values": mean, "err": err}
        else:
            groups = list(dict.fromkeys(g for s in seeds for g in s))
            series[name] = {g: [v for s in seeds for v in s.get(g, [])] for g in groups}
    how = "pooled over" if first["type"] == "boxes" else "mean ± 95 % t band over"
    title = _SEED.sub(f"{how} {n} seeds", str(first.get("title", "")))
    if title == str(first.get("title", "")):
        title = f"{title} ({how} {n} seeds)".strip()
    hlines = [f.get("hline") for f in figs if f.get("hline") is not None]
    notes = {str(f.get("note") or "") for f in figs}
    return {**first, "title": title, "series": series, "hline": float(np.mean(hlines)) if hlines else None,
            "note": notes.pop() if len(notes) == 1 else ""}


def panel_key(fig: Mapping[str, Any]) -> str:
    """Which panel a per-seed figure belongs to: its title without the seed and, for bars, the labels
    they are grouped by. A bar's mean needs the bar in every seed it averages, so figures of other
    labels are other panels (Fig. 5's GPT2 against Random Init and iGPT against Random Init, one
    title: each pairing is averaged over its own seeds); lines of other bodies share a panel."""
    key = _SEED.sub("seed *", str(fig.get("title", "")))
    if fig.get("type") == "bars" and isinstance(fig.get("series"), Mapping):
        labels = sorted({str(lab) for s in fig["series"].values() if isinstance(s, Mapping)
                         for lab in s.get("labels", ())})
        key += " | " + ", ".join(labels)
    return key
