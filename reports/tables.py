"""The paper's Table 1 redrawn from the runs, as the paper prints it: one row per environment, one
column per body, each cell the mean +- sd over seeds of the score the claims test, the paper's
value beside it, and the corrected verdict (Benjamini-Hochberg; the raw one where it differs) of the claim about
that cell; and rliable's plots of Table 1's aggregates across environments (:func:`rliable_figures`:
the interval estimate of each body's IQM that was recorded, and the probability of improvement
with its stratified-bootstrap interval).

The per-seed data are the ``table1`` tables that Table 1's per-seed cells record
(``claims/test_table1_returns.py``: one row per body, columns from ``dtcore.measures.score_summary``,
and, under the as-run definition, ``paper_rows`` = [body, the paper's value]); one redrawn table
per definition. A body's claim is the environment's Table 1 headline row whose claim id names the
body first (``table1.igpt_catastrophic`` -> igpt, ``table1.gpt2_beats_random_on_hopper`` -> gpt2);
Random Init is the reference, with no claim of its own.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from dtcore.bodies import BODIES
from reports.headline import Headline, HeadlineRow
from reports.model import ClaimResult

TABLE = "table1"            # the recorded table's name
SCORE = "scored"            # the column the claims test: the selected epoch scored on fresh episodes


@dataclass(frozen=True)
class Cell:
    """One environment x body of the redrawn table."""

    mean: float | None
    sd: float | None
    n: int                      # seeds
    paper: float | None         # the paper's value
    rows: tuple[HeadlineRow, ...]   # the claims about this cell (none: the reference body)

    @property
    def text(self) -> str:
        """"79.1 ± 3.2" (one seed: no sd); "–" with no seed."""
        if self.mean is None:
            return "–"
        return f"{self.mean:.1f}" + (f" ± {self.sd:.1f}" if self.sd is not None else "")


@dataclass(frozen=True)
class PaperTable:
    title: str
    definition: str
    bodies: tuple[str, ...]
    rows: tuple[tuple[str, tuple[Cell, ...]], ...]   # (env, a cell per body)


def _body_of(claim_id: str, bodies: Iterable[str]) -> str | None:
    """The body a Table 1 claim is about: the one its id names first."""
    name = claim_id.partition(".")[2]
    found = [(m.start(), b) for b in bodies for m in [re.search(rf"(^|_){re.escape(b)}(_|$)", name)] if m]
    return min(found)[1] if found else None


def _scores(results: Iterable[ClaimResult], definition: str) -> tuple[dict, dict]:
    """(env, body) -> per-seed scores, and (env, body) -> the paper's value, from the recorded tables."""
    scores: dict[tuple[str, str], dict[int, float]] = {}
    paper: dict[tuple[str, str], float] = {}
    for r in results:
        table = r.tables.get(TABLE)
        if not isinstance(table, dict) or r.env is None:
            continue
        for body, value in table.get("paper_rows") or ():
            paper[(r.env, str(body))] = float(value)
        if r.definition != definition or r.seed is None or SCORE not in table.get("columns", ()):
            continue
        col = list(table["columns"]).index(SCORE)
        for row in table.get("rows", ()):
            value = row[col]
            if isinstance(value, (int, float)) and math.isfinite(value):
                scores.setdefault((r.env, str(row[0])), {})[r.seed] = float(value)
    return scores, paper


def paper_tables(results: Iterable[ClaimResult], headline: Headline) -> list[PaperTable]:
    """Table 1 per definition that recorded it (paper first), as the paper prints it."""
    results = list(results)
    definitions = sorted({r.definition or "" for r in results if TABLE in r.tables},
                         key=lambda d: (d != "paper", d))
    rows_of: dict[tuple[str, str | None], list[HeadlineRow]] = {}
    for r in headline.rows:
        if r.finding == "Table 1" and r.env:
            rows_of.setdefault((r.env, _body_of(r.claim_id, BODIES)), []).append(r)
    out = []
    for definition in definitions:
        scores, paper = _scores(results, definition)
        bodies = tuple(b for b in BODIES if any(body == b for _, body in scores))
        envs = tuple(dict.fromkeys(env for env, _ in scores))
        if not bodies:
            continue
        rows = []
        for env in envs:
            cells = []
            for body in bodies:
                x = np.asarray(list(scores.get((env, body), {}).values()), dtype=float)
                cells.append(Cell(mean=float(x.mean()) if x.size else None,
                                  sd=float(x.std(ddof=1)) if x.size > 1 else None, n=int(x.size),
                                  paper=paper.get((env, body)), rows=tuple(rows_of.get((env, body), ()))))
            rows.append((env, tuple(cells)))
        out.append(PaperTable(f"Table 1: normalised score ({definition or 'one'} definition), mean ± sd over "
                              f"seeds", definition, bodies, tuple(rows)))
    return out


def _across(results: Iterable[ClaimResult]) -> list[ClaimResult]:
    """Table 1's across-environment aggregates (no env, no seed) under the paper's definition."""
    return [r for r in results if r.section == "Table 1" and r.env is None and r.seed is None
            and r.definition in (None, "paper") and isinstance(r.values.get("value"), (int, float))]


def _interval(r: ClaimResult) -> dict:
    low, high = r.values.get("ci_low"), r.values.get("ci_high")
    ok = all(isinstance(x, (int, float)) and math.isfinite(x) for x in (low, high))
    return {"value": float(r.values["value"]), "low": float(low) if ok else None,
            "high": float(high) if ok else None}


def rliable_figures(results: Iterable[ClaimResult]) -> list[dict]:
    """Figure dicts (``reports/figures.py``, type ``intervals``) of Table 1's aggregates across
    environments: the IQM per body (an interval where its claim recorded one, ``iqm_<body>``
    points otherwise), and each other aggregate (the probability of improvement) with its
    interval and threshold."""
    across = _across(results)
    iqm: dict[str, dict] = {}
    others = []
    for r in across:
        for body in BODIES:
            point = r.values.get(f"iqm_{body}")
            if isinstance(point, (int, float)) and math.isfinite(point):
                iqm.setdefault(body, {"value": float(point), "low": None, "high": None})
        if str(r.values.get("statistic", "")).startswith("IQM"):
            body = _body_of(r.claim_id, BODIES)
            if body is not None:
                iqm[body] = _interval(r)
        else:
            others.append(r)
    out = []
    if iqm:
        out.append({"figure": "Table 1 (rliable)", "title": "IQM of the normalised score over the selected "
                    "environments, 95 % stratified-bootstrap interval where recorded", "type": "intervals",
                    "xlabel": "IQM of the normalised score", "ylabel": "",
                    "series": {b: iqm[b] for b in BODIES if b in iqm}, "hline": None})
    for r in others:
        body = _body_of(r.claim_id, BODIES)
        name = " > ".join(b for b in BODIES if b in r.claim_id.partition(".")[2]) or r.claim_id.partition(".")[2]
        out.append({"figure": "Table 1 (rliable)", "title": str(r.values.get("statistic") or r.claim_id),
                    "type": "intervals", "xlabel": str(r.values.get("statistic") or ""), "ylabel": "",
                    "series": {name if body else r.claim_id: _interval(r)},
                    "hline": r.values.get("threshold") if isinstance(r.values.get("threshold"), (int, float))
                    else None})
    return out
