"""The paper's Tables 1, 2 and 4 redrawn from the runs, as the paper prints them: one row per
environment, one column per body, each cell the mean +- sd over seeds of the score the claims
test, the paper's value beside it, and the corrected verdict (Benjamini-Hochberg; the raw one where
it differs) of the claim about that cell; and rliable's plots of Table 1's aggregates across
environments (:func:`rliable_figures`: the interval estimate of each body's IQM that was recorded,
and the probability of improvement with its stratified-bootstrap interval).

The per-seed data are the tables the per-seed cells record, one row per body with a ``scored``
column, one redrawn table per definition:

- ``table1`` (Table 1, K=20; ``claims/test_table1_returns.py``: columns from
  ``dtcore.measures.score_summary`` and, under the as-run definition, ``paper_rows`` = [body, the
  paper's value]). A body's claim is the environment's Table 1 headline row whose claim id names
  the body first (``table1.igpt_catastrophic`` -> igpt, ``table1.gpt2_beats_random_on_hopper`` ->
  gpt2); Random Init is the reference, with no claim of its own.
- ``table2`` (Tables 2 and 4, K=1; ``claims/test_sec5_5_no_context.py``): ``paper_rows`` = [body,
  Table 4's mean, its sd over seeds 666 and 42], ``paper_also`` = [body, Table 2's value, "Table
  2, seed 666"] (``paper_columns`` heads the paper's values in the claim's own per-seed table), and
  ``claims`` = [body, claim id]: the claims stated for each body's cell in that
  environment (``sec5_5.gpt2_learns_without_context``; Random Init's
  ``sec5_5.random_init_fails_without_context_on_hopper`` on hopper,
  ``table2.random_init_learns_without_context_off_hopper`` elsewhere).

A recorded column keeps its key in the JSON (``selected_epoch``, ``mean_of_last_3``); the page
heads it in words (:func:`column_label`: "selected epoch", "mean of the last 3 epochs").
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

# Recorded table -> the paper's table it redraws, in the paper's order.
TABLES = {"table1": "Table 1: normalised score (K=20)",
          "table2": "Tables 2 and 4: normalised score with no context (K=1)"}
SCORE = "scored"            # the column the claims test: the selected epoch scored on fresh episodes
_LAST_K = re.compile(r"mean_of_last_(\d+)")


def column_label(key: str) -> str:
    """The header of a recorded table's column on the page; the JSON keeps the key
    (``dtcore.measures.score_summary``): "mean_of_last_3" -> "mean of the last 3 epochs",
    "selected_epoch" -> "selected epoch"."""
    m = _LAST_K.fullmatch(str(key))
    return f"mean of the last {m.group(1)} epochs" if m else str(key).replace("_", " ")


@dataclass(frozen=True)
class Cell:
    """One environment x body of the redrawn table."""

    mean: float | None
    sd: float | None
    n: int                      # seeds
    paper: float | None         # the paper's value (its mean over seeds where it gives an sd)
    rows: tuple[HeadlineRow, ...]   # the claims about this cell (none: the reference body)
    paper_sd: float | None = None   # the paper's sd over its seeds (Table 4)
    paper_also: tuple[tuple[str, float], ...] = ()   # (where, value): another table's value (Table 2)

    @property
    def text(self) -> str:
        """"79.1 ± 3.2" (one seed: no sd); "–" with no seed."""
        if self.mean is None:
            return "–"
        return f"{self.mean:.1f}" + (f" ± {self.sd:.1f}" if self.sd is not None else "")

    @property
    def paper_text(self) -> str:
        """"81.3 ± 2.5" (or "79.5" where the paper gives no sd); "" without a paper value."""
        if self.paper is None:
            return ""
        return f"{self.paper:.1f}" + (f" ± {self.paper_sd:.1f}" if self.paper_sd is not None else "")


@dataclass(frozen=True)
class PaperTable:
    title: str
    definition: str
    bodies: tuple[str, ...]
    rows: tuple[tuple[str, tuple[Cell, ...]], ...]   # (env, a cell per body)
    name: str = "table1"        # the recorded table's name (TABLES)


def _body_of(claim_id: str, bodies: Iterable[str]) -> str | None:
    """The body a Table 1 claim is about: the one its id names first."""
    name = claim_id.partition(".")[2]
    found = [(m.start(), b) for b in bodies for m in [re.search(rf"(^|_){re.escape(b)}(_|$)", name)] if m]
    return min(found)[1] if found else None


@dataclass
class _Recorded:
    """What the cells of one recorded table hold, gathered over seeds."""

    scores: dict[tuple[str, str], dict[int, float]]          # (env, body) -> seed -> score
    paper: dict[tuple[str, str], tuple[float, float | None]]  # (env, body) -> the paper's (value, sd)
    also: dict[tuple[str, str], tuple[tuple[str, float], ...]]   # (env, body) -> (where, value)
    claims: dict[tuple[str, str], set[str]]                    # (env, body) -> the claims stated for it


def _recorded(results: Iterable[ClaimResult], name: str, definition: str) -> _Recorded:
    """The per-seed scores of ``definition`` and the paper's values of table ``name`` (its
    ``paper_rows`` [body, value] or [body, mean, sd], ``paper_also`` [body, value, where] and
    ``claims`` [body, claim id], under any definition)."""
    out = _Recorded({}, {}, {}, {})
    for r in results:
        table = r.tables.get(name)
        if not isinstance(table, dict) or r.env is None:
            continue
        for body, value, *sd in table.get("paper_rows") or ():
            out.paper[(r.env, str(body))] = (float(value), float(sd[0]) if sd and sd[0] is not None else None)
        for body, value, where in table.get("paper_also") or ():
            out.also[(r.env, str(body))] = ((str(where), float(value)),)
        for body, claim_id in table.get("claims") or ():
            out.claims.setdefault((r.env, str(body)), set()).add(str(claim_id))
        if r.definition != definition or r.seed is None or SCORE not in table.get("columns", ()):
            continue
        col = list(table["columns"]).index(SCORE)
        for row in table.get("rows", ()):
            value = row[col]
            if isinstance(value, (int, float)) and math.isfinite(value):
                out.scores.setdefault((r.env, str(row[0])), {})[r.seed] = float(value)
    return out


def _claim_rows(headline: Headline, recorded: _Recorded) -> dict[tuple[str, str | None], list[HeadlineRow]]:
    """(env, body) -> the headline rows of the claims about that cell: those the recorded table
    names (``claims``), else (Table 1) the environment's Table 1 rows by the body their id names first."""
    rows_of: dict[tuple[str, str | None], list[HeadlineRow]] = {}
    for r in headline.rows:
        if not r.env:
            continue
        if recorded.claims:
            for (env, body), ids in recorded.claims.items():
                if env == r.env and r.claim_id in ids:
                    rows_of.setdefault((env, body), []).append(r)
        elif r.finding == "Table 1":
            rows_of.setdefault((r.env, _body_of(r.claim_id, BODIES)), []).append(r)
    return rows_of


def _cell(scores: dict[int, float], paper: tuple[float, float | None] | None,
          also: tuple[tuple[str, float], ...], rows: Iterable[HeadlineRow]) -> Cell:
    x = np.asarray(list(scores.values()), dtype=float)
    return Cell(mean=float(x.mean()) if x.size else None, sd=float(x.std(ddof=1)) if x.size > 1 else None,
                n=int(x.size), paper=paper[0] if paper else None, rows=tuple(rows),
                paper_sd=paper[1] if paper else None, paper_also=also)


def paper_tables(results: Iterable[ClaimResult], headline: Headline) -> list[PaperTable]:
    """The paper's tables (:data:`TABLES`, in order), each per definition that recorded it (paper
    first), as the paper prints them."""
    results = list(results)
    out = []
    for name, title in TABLES.items():
        definitions = sorted({r.definition or "" for r in results if name in r.tables},
                             key=lambda d: (d != "paper", d))
        for definition in definitions:
            recorded = _recorded(results, name, definition)
            rows_of = _claim_rows(headline, recorded)
            bodies = tuple(b for b in BODIES if any(body == b for _, body in recorded.scores))
            envs = tuple(dict.fromkeys(env for env, _ in recorded.scores))
            if not bodies:
                continue
            rows = tuple((env, tuple(_cell(recorded.scores.get((env, b), {}), recorded.paper.get((env, b)),
                                           recorded.also.get((env, b), ()), rows_of.get((env, b), ()))
                                     for b in bodies)) for env in envs)
            out.append(PaperTable(f"{title}, {definition or 'one'} definition, mean ± sd over seeds", definition,
                                  bodies, rows, name))
    return out


def _across(results: Iterable[ClaimResult]) -> list[ClaimResult]:
    """Table 1's across-environment aggregates (no env, no seed) under the paper's definition."""
    return [r for r in results if r.section == "Table 1" and r.env is None and r.seed is None
            and r.definition in (None, "paper") and isinstance(r.values.get("value"), (int, float))]


def _interval(r: ClaimResult) -> dict:
    """The point and the interval the page shows for ``r`` (:func:`reports.model.shown_interval`: none
    for a bootstrap over fewer runs than it needs)."""
    low, high = r.interval or (None, None)
    return {"value": float(r.values["value"]), "low": low, "high": high}


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
                    "environments, 95 % stratified-bootstrap interval where it had enough runs", "type": "intervals",
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
