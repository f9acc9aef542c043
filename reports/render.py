"""The claims report page: a :class:`~reports.model.Report` rendered through the Jinja2 template
``templates/report.html.j2`` into one self-contained HTML file (inline CSS, figures as compacted
SVG in text ``data:`` URIs (``reports/svg.py``), one small inline script for the filter, no external
resource), and the JSON of every value written beside it.

The page opens with the premise (``reports/premise.py``: does the run reproduce Table 1's
ordering, per environment?), then reads as the paper's findings: the headline
(``reports/headline.py``: one verdict per claim and environment, corrected, raw and after Holm) grouped by
finding (``reports/findings.py``; findings 1-7 under a heading that names the premise), with the
sequential design where ``dtcore claims --until-decided`` ran one (``reports/sequential.py``: its
looks, and per claim the look that decided or stopped it, also marked beside each verdict), then the
grid of every test, then each claim's cells, figures and tables, then the provenance. It is laid
out to fit a laptop screen (1366 px): fixed-layout tables at the page's width, long messages in
``<details>``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader

from dtcore.deciding import rough
from dtcore.provenance import atomic_write_bytes
from dtcore.policy import NOT_TESTED
from reports import figures
from reports.findings import FINDINGS, MECHANISM, Finding, finding_key, finding_order
from reports.headline import (COUNTED, Headline, HeadlineRow, build_headline, claim_sentence, deciding_text, method_name,
                              tally_text, value_text)
from reports.premise import build_premises, mechanism_heading
from reports.sequential import read as read_sequential, tally as sequential_tally
from reports.summary import summary
from reports.tables import column_label, paper_tables, rliable_figures
from reports.model import (LETTERS, OUTCOMES, ClaimResult, Report, format_number, group_by_claim,
                           survival, verdict_grid)

log = logging.getLogger(__name__)

TEMPLATE = "report.html.j2"
# Profile name -> (banner style, banner text).
PROFILE_NOTES = {
    "smoke": ("danger", "smoke profile: verdicts meaningless. Runs of a few seconds that only check "
                        "the pipeline end to end; no verdict on this page says anything about the paper."),
    "mini": ("note", "mini profile: the offline CPU analog of the study (its bodies and data: "
                     "docs/profiles.md), not D4RL medium-v2 and the real pretrained weights; the verdicts "
                     "speak about this analog, not about the paper's exact setting."),
    "paper": ("ok", "paper profile: Table 3 settings, D4RL medium-v2 data and the real pretrained weights."),
}
PAPER = "https://arxiv.org/abs/2211.09817"   # Takagi, NeurIPS 2022
REPO = Path(__file__).resolve().parent.parent
DOCS = ("statistics.md", "deviations.md", "report.md", "profiles.md")   # linked from the page
SHORT = {"holds": "holds", "contradicted": "contra.", "inconclusive": "inconcl.", "descriptive": "descr.",
         "error": "error", "skipped": "skipped"}


@dataclass(frozen=True)
class Picture:
    """One figure of a claim, drawn; ``captions`` lists the cells that recorded identical data
    (or, for a seed aggregate, the seeds it averages)."""

    kind: str
    uri: str | None       # data URI, None when the data could not be drawn
    error: str            # why it could not be drawn
    captions: tuple[str, ...]
    colors: str = "{}"    # JSON: series / bar / box name -> colour (figures.colors), the page's data-colors
    aggregate: bool = False


@dataclass(frozen=True)
class TableView:
    name: str
    table: dict
    captions: tuple[str, ...]


@dataclass(frozen=True)
class ClaimView:
    claim_id: str
    section: str
    finding: str           # reports.findings key
    sentence: str          # the paper's sentence (a docstring's first paragraph that quotes it)
    statistic: str         # what is measured (the criterion's statistic)
    details: str           # the rest of the docstring
    criterion: str
    results: tuple[ClaimResult, ...]
    extra_keys: tuple[str, ...]  # measured keys beyond those with a column, shown as chips
    survival: tuple
    definitions: tuple[str, ...]  # the definitions compared in ``survival``
    aggregates: tuple[Picture, ...]   # one seed-aggregate panel per figure panel with several seeds
    pictures: tuple[Picture, ...]     # the per-seed panels
    tables: tuple[TableView, ...]
    see: tuple[tuple[str, str], ...] = ()   # (figure, claim id): figures drawn under another claim


@dataclass(frozen=True)
class FindingView:
    """A finding with its headline rows, grouped by claim (one group per claim, one row per env)."""

    finding: Finding
    claims: tuple[tuple[HeadlineRow, ...], ...]


def cell_label(r: ClaimResult) -> str:
    """Where a result sits, in words: ``hopper · seed 0 · backbone=gpt2 · paper``."""
    parts = [r.env or "all envs", "seed aggregate" if r.seed is None else f"seed {r.seed}"]
    parts += [p for p in (r.variant, r.definition) if p]
    return " · ".join(parts)


def _dedupe(results: list[ClaimResult], attr: str) -> list[tuple[str, dict, list[str]]]:
    """(name, data, captions) of the figures/tables of ``results``, identical data drawn once."""
    seen: dict[str, tuple[str, dict, list[str]]] = {}
    for r in results:
        for name, data in getattr(r, attr).items():
            key = name + json.dumps(data, sort_keys=True, default=str)
            seen.setdefault(key, (name, data, []))[2].append(cell_label(r))
    return list(seen.values())


def _picture(kind: str, data: dict, captions: list[str], *, aggregate: bool = False) -> Picture:
    try:
        return Picture(kind, figures.data_uri(data), "", tuple(captions), json.dumps(figures.colors(data)),
                       aggregate)
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        log.warning("figure %s could not be drawn: %s", kind, exc)
        return Picture(kind, None, str(exc), tuple(captions), aggregate=aggregate)


def seed_aggregates(results: list[ClaimResult]) -> list[Picture]:
    """The seed-aggregate panel of every figure panel drawn for several seeds: the per-seed
    figures grouped by kind, panel (``figures.panel_key``: the title without the seed, and a bar
    chart's labels) and definition, so that curves of two definitions (two normalisations of one
    score) are never averaged together.
    A figure recorded identically under two definitions (``paper`` and ``sound`` read the same
    per-epoch curve) belongs to one panel of both, and counts once per seed."""
    panels: dict[tuple[str, str], dict[str, tuple[dict, set[str]]]] = {}
    for r in results:
        for kind, data in r.figures.items():
            if isinstance(data, dict) and not figures.is_reference(data):
                same = panels.setdefault((kind, figures.panel_key(data)), {})
                same.setdefault(json.dumps(data, sort_keys=True, default=str), (data, set()))[1].add(r.definition or "")
    out = []
    for (kind, _), distinct in panels.items():
        by_definitions: dict[tuple[str, ...], list[dict]] = {}
        for data, definitions in distinct.values():
            by_definitions.setdefault(tuple(sorted(definitions)), []).append(data)
        for definitions, datas in by_definitions.items():
            if len(datas) < 2:
                continue
            named = ", ".join(d for d in definitions if d)
            caption = f"seed aggregate of the {len(datas)} per-seed panels below" + (f" ({named})" if named else "")
            try:
                agg = figures.aggregate(datas)
            except (ValueError, TypeError, KeyError, IndexError) as exc:
                out.append(Picture(kind, None, f"the seed aggregate could not be drawn: {exc}", (), aggregate=True))
                continue
            out.append(_picture(kind, agg, [caption], aggregate=True))
    return out


# Recorded keys that have a place of their own in a claim's table (the rest are chips).
_COLUMNS_SHOWN = ("value", "ci_low", "ci_high", "confidence", "n", "per_seed", "units", "n_units", "method",
                  "p_value", "seeds_needed")


def claim_view(claim_id: str, results: list[ClaimResult]) -> ClaimView:
    sentence = claim_sentence(results)
    doc = next((r.docstring.strip() for r in results if r.paper_sentence == sentence), "")
    details = doc.partition("\n\n")[2]
    criterion = next((str(r.values["criterion"]) for r in results if r.values.get("criterion")), "")
    statistic = next((str(r.values["statistic"]) for r in results if r.values.get("statistic")), "")
    extra: list[str] = []
    for r in results:
        extra += [k for k, v in r.measured().items()
                  if k not in _COLUMNS_SHOWN and k not in extra and not isinstance(v, (dict, list))]
    surv = tuple(survival(results))
    drawn = [d for d in _dedupe(results, "figures") if not figures.is_reference(d[1])]
    see = {(str(d.get("figure") or k), d["see"]) for r in results for k, d in r.figures.items()
           if figures.is_reference(d)}
    definitions = tuple(dict.fromkeys(d for s in surv for d, _ in s.outcomes))
    return ClaimView(
        claim_id=claim_id, section=results[0].section, finding=finding_key(results[0].section),
        sentence=sentence, statistic=statistic, details=details.strip(), criterion=criterion,
        results=tuple(results), extra_keys=tuple(extra), survival=surv, definitions=definitions,
        aggregates=tuple(seed_aggregates(results)),
        pictures=tuple(_picture(k, d, c) for k, d, c in drawn),
        tables=tuple(TableView(k, d, tuple(c)) for k, d, c in _dedupe(results, "tables")),
        see=tuple(sorted(see)),
    )


def finding_views(headline: Headline) -> list[FindingView]:
    """The headline by finding, in the paper's order; each finding's rows grouped by claim."""
    out = []
    for key, rows in headline.by_finding():
        claims: dict[str, list[HeadlineRow]] = {}
        for r in rows:
            claims.setdefault(r.claim_id, []).append(r)
        out.append(FindingView(next(f for f in FINDINGS if f.key == key), tuple(map(tuple, claims.values()))))
    return out


def claims_by_finding(claims: list[ClaimView]) -> list[tuple[Finding, list[ClaimView]]]:
    """The claim sections under their findings, in the paper's order."""
    return [(f, [c for c in claims if c.finding == f.key]) for f in FINDINGS
            if any(c.finding == f.key for c in claims)]


def short_number(value: Any) -> str:
    """A number in a compact cell: 3 significant digits."""
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.3g}"
    return format_number(value)


def variant_summary(row: HeadlineRow) -> str:
    """"6 variants: 4 holds, 2 inconclusive" for a row of several variants."""
    counts = {o: sum(v.outcome == o for v in row.variants) for o in OUTCOMES}
    return f"{len(row.variants)} variants: " + ", ".join(f"{n} {o}" for o, n in counts.items() if n)


def delta(r: ClaimResult) -> str:
    """Measured value minus the paper's value, where both are numbers."""
    v, p = r.values.get("value"), r.values.get("paper_value")
    if isinstance(v, (int, float)) and isinstance(p, (int, float)) and math.isfinite(v):
        return f"{v - p:+.3g}"
    return ""


def provenance_rows(report: Report) -> list[tuple[str, Any]]:
    """The provenance as (key, value) rows, the standard keys first; the per-run entries
    (``run <key>``) are left out (:func:`run_rows`)."""
    first = ("profile", "grid", "git sha", "device", "packages", "command", "wall time (session, s)",
             "wall time (claim tests, s)")
    prov = {k: v for k, v in report.provenance.items() if not k.startswith("run ")}
    rows = [(k, prov.pop(k)) for k in first if k in prov]
    return rows + sorted(prov.items())


def run_rows(report: Report) -> list[tuple[str, dict]]:
    """(run key, its provenance) of every run the claims used, sorted by key."""
    return sorted((k[len("run "):], v if isinstance(v, dict) else {"value": v})
                  for k, v in report.provenance.items() if k.startswith("run "))


def run_line(report: Report) -> dict[str, str]:
    """What ran, for the page's first line: profile, envs, seeds, git sha and date."""
    prov = report.provenance
    grid = str(prov.get("grid") or "")
    envs = re.search(r"\benvs=(\S+)", grid)
    seeds = re.search(r"\bseeds=(\S+)", grid)
    seed_list = seeds.group(1).split(",") if seeds else sorted({str(r.seed) for r in report.results
                                                                if r.seed is not None})
    return {"profile": report.profile,
            "envs": envs.group(1).replace(",", ", ") if envs else ", ".join(sorted({r.env for r in report.results
                                                                                  if r.env})) or "none",
            "seeds": f"{len(seed_list)} ({', '.join(seed_list)})" if seed_list else "none",
            "git sha": str(prov.get("git sha") or "unknown")[:10],
            "date": (report.created or "")[:16].replace("T", " ") or "unknown"}


def docs_links(html_dir: Path | None) -> dict[str, str]:
    """docs/<name> -> its path relative to the page's folder (the repository's docs/)."""
    base = Path(os.path.relpath(REPO / "docs", html_dir)) if html_dir is not None else Path("docs")
    return {name: (base / name).as_posix() for name in DOCS}


def _environment() -> Environment:
    env = Environment(loader=PackageLoader("reports", "templates"), autoescape=True,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = format_number
    env.filters["short"] = short_number
    env.globals.update(short=SHORT, letters=LETTERS, outcomes=OUTCOMES, delta=delta, cell_label=cell_label,
                       value_text=value_text, variant_summary=variant_summary, not_tested=NOT_TESTED,
                       deciding_text=deciding_text, method_name=method_name, paper_url=PAPER, counted=COUNTED,
                       sequential_tally=sequential_tally, column_label=column_label, rough=rough)
    return env


def render_html(report: Report, *, json_name: str = "claims.json", html_dir: Path | None = None) -> str:
    """The page of ``report`` as one HTML string (links to docs/ relative to ``html_dir``)."""
    claims = [claim_view(cid, rs) for cid, rs in group_by_claim(report.results).items()]
    statistics = {c.claim_id: c.statistic or c.claim_id for c in claims}
    headline = build_headline(report)
    premises = build_premises(headline)
    style, note = PROFILE_NOTES.get(report.profile, ("note", f"profile: {report.profile}"))
    return _environment().get_template(TEMPLATE).render(
        report=report, grid=verdict_grid(report.results, finding_order), claims=claims, counts=report.counts(),
        headline=headline, findings=finding_views(headline), tally_text=tally_text(headline),
        premises=premises, mechanism_heading=mechanism_heading(premises), mechanism=MECHANISM,
        claim_groups=claims_by_finding(claims), statistics=statistics,
        banner_style=style, banner=note, provenance=provenance_rows(report), runs=run_rows(report),
        json_name=json_name, run=run_line(report), docs=docs_links(html_dir),
        sequential=read_sequential(report.sequential) if report.sequential is not None else None,
        paper_tables=paper_tables(report.results, headline), body_labels=figures.BODY_LABELS,
        rliable=[_picture("rliable", f, ["Table 1's aggregate across environments (Agarwal et al. 2021)"],
                          aggregate=True) for f in rliable_figures(report.results)],
    )


def write_page(report: Report, html_path: Path | str, *, json_name: str = "claims.json") -> Path:
    """Write the page of ``report`` to ``html_path`` (links to ``json_name`` beside it)."""
    html_path = Path(html_path)
    html_path.parent.mkdir(parents=True, exist_ok=True)
    page = render_html(report, json_name=json_name, html_dir=html_path.resolve().parent)
    atomic_write_bytes(html_path, page.encode("utf-8"))
    return html_path


def write_report(report: Report, html_path: Path | str) -> tuple[Path, Path]:
    """Write ``html_path`` and the JSON beside it (same name, ``.json``: the results, and the headline
    the page shows, ``reports.summary``); returns both paths."""
    html_path = Path(html_path)
    json_path = html_path.with_suffix(".json")
    html_path.parent.mkdir(parents=True, exist_ok=True)
    headline = build_headline(report)
    atomic_write_bytes(json_path, report.to_json(summary(headline, build_premises(headline))).encode("utf-8"))
    write_page(report, html_path, json_name=json_path.name)
    return html_path, json_path
