"""The README's claims table, generated from a report's JSON (``python -m reports readme``): first
the premise of the mechanism findings (``reports/premise.py``: does the run reproduce Table 1's
ordering, one line per environment, raw and after Holm), then one Markdown row per headline verdict
(claim x environment, ``reports/headline.py``; a claim's further environments repeat its finding
and sentence as ditto marks) under a line naming the profile, the grid, the git sha of the run and
the tally. A profile whose verdicts mean nothing (smoke) opens the table with the page's caveat
(``reports.render.PROFILE_NOTES``), in bold.

``write_between_markers`` puts the table between ``<!-- claims-table:start -->`` and
``<!-- claims-table:end -->`` in a file, leaving the rest of the file as it was.
"""

from __future__ import annotations

from pathlib import Path

from dtcore.verdicts import DECISIVE
from reports.findings import BY_KEY
from reports.headline import (Headline, HeadlineRow, build_headline, duration, extra_seconds, tally_text,
                              value_text)
from reports.model import Report
from reports.premise import Premise, build_premises
from reports.render import PROFILE_NOTES

START = "<!-- claims-table:start -->"
END = "<!-- claims-table:end -->"
COLUMNS = ("Finding", "Claim", "Env", "Verdict (after Benjamini-Hochberg)", "Raw (mean over seeds, interval)",
           "After Holm", "What would decide it")


def _cell(text: str) -> str:
    """Text for one Markdown table cell: one line, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _finding(row: HeadlineRow) -> str:
    return BY_KEY[row.finding].label.removeprefix("Finding ")


def _raw(row: HeadlineRow) -> str:
    v = row.shown
    if v is None:
        return f"{row.outcome}: {row.note}"
    text = f"{row.outcome} {value_text(v)}".strip()
    if len(row.variants) > 1:
        text += f" (weakest of {len(row.variants)} variants: {v.variant})"
    return text


def _adjusted(outcome: str, raw: str, p: float | None) -> str:
    if p is not None and raw in DECISIVE:
        return f"{outcome} (adjusted p {p:.2g})"
    return outcome


def _seeds(headline: Headline, row: HeadlineRow) -> str:
    if row.corrected != "inconclusive" or not row.decide:
        return ""
    seconds = extra_seconds(row, headline.seconds_per_seed)
    return row.decide + (f" (~{duration(seconds)} more)" if seconds is not None else "")


def caveat_lines(report: Report) -> list[str]:
    """The page's banner for a profile whose verdicts mean nothing (its style "danger": smoke), in
    bold, and a blank line; none for another profile."""
    style, note = PROFILE_NOTES.get(report.profile, ("note", ""))
    return [f"**{note}**", ""] if style == "danger" else []


def title_line(report: Report, headline: Headline) -> str:
    """Profile, grid, git sha of the run and the tally."""
    prov = report.provenance
    sha = str(prov.get("git sha") or "unknown")[:10]
    grid = prov.get("grid") or "unknown"
    return (f"Profile **{report.profile}**, grid `{grid}`, git sha `{sha}`"
            f"{f', written {report.created}' if report.created else ''}: {tally_text(headline)}.")


def premise_lines(premises: tuple[Premise, ...]) -> list[str]:
    """The premise in Markdown: a lead line, then one bullet per environment with the corrected
    verdict (raw and Holm beside), the parts with their values and intervals, and what it means."""
    lines = ["**Premise** of the mechanism findings 1-7 (Table 1's ordering), per environment, after "
             "Benjamini-Hochberg (raw and Holm beside):", ""]
    if not premises:
        return lines + ["- not tested: no environment in this run"]
    return lines + [f"- **{p.env}: {p.outcome}** (raw: {p.raw}; Holm: {p.holm_outcome}). {p.parts_text}. "
                    f"{p.sentence}" for p in premises]


def claims_table(report: Report) -> str:
    """The Markdown claims table of ``report``: a smoke profile's caveat (:func:`caveat_lines`), the
    premise per environment, the title line, the two-seed caveat where the grid ran two seeds, then
    one row per headline verdict."""
    headline = build_headline(report)
    lines = [*caveat_lines(report), *premise_lines(build_premises(headline)), "", title_line(report, headline), ""]
    if headline.two_seed_note:
        lines += [headline.two_seed_note, ""]
    lines += ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    previous = None
    for row in headline.rows:
        same = row.claim_id == previous   # a claim's further environments: ditto marks
        cells = ("″" if same else _finding(row), "″" if same else row.sentence or row.statistic,
                 row.env or "all", _adjusted(row.corrected, row.outcome, row.p_bh), _raw(row),
                 _adjusted(row.holm_outcome, row.outcome, row.p_holm), _seeds(headline, row))
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
        previous = row.claim_id
    return "\n".join(lines)


def replace_between_markers(text: str, table: str) -> str:
    """``text`` with everything between the START and END markers replaced by ``table``;
    ``ValueError`` when the markers are missing or out of order."""
    start, end = text.find(START), text.find(END)
    if start < 0 or end < 0 or end < start:
        raise ValueError(f"needs the markers {START} and {END}, in that order")
    return text[:start + len(START)] + "\n" + table.strip("\n") + "\n" + text[end:]


def write_between_markers(path: Path, table: str) -> None:
    """Replace the table between the markers in the file ``path`` (``ValueError`` naming it)."""
    text = path.read_text(encoding="utf-8")
    try:
        new = replace_between_markers(text, table)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    path.write_text(new, encoding="utf-8")
