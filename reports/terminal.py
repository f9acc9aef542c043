"""The claims report in the terminal: the claims x seeds table of every test (one letter per cell)
and the headline (one line per claim and environment, the corrected verdict first, then the raw
one and Holm's), written in ``pytest_terminal_summary``, with the reason of each contradicted or
inconclusive cell only at ``-v`` (:func:`reason_lines`; a hint where to find them otherwise);
then, after pytest's own summary line, the answer (:func:`answer_lines`): the premise (one line per environment: does the run reproduce Table 1's
ordering, ``reports/premise.py``), the headline tally, the counts of every test and the report's
absolute path as the last line. Plain text lines; ``reports/plugin.py`` writes them."""

from __future__ import annotations

from pathlib import Path

from dtcore.deciding import rough
from reports.findings import finding_order
from reports.headline import Headline, HeadlineRow, build_headline, duration, extra_seconds, tally_text
from reports.model import LETTERS, ClaimResult, Report, format_number, verdict_grid
from reports.premise import Premise, build_premises, premise_line


def summary_table(results: list[ClaimResult]) -> list[str]:
    """The claims x (env, seed) table, one letter per cell: H holds, C contradicted,
    I inconclusive, D descriptive, E error, S skipped, . not run; "A" columns are the seed
    aggregates. Sections in the order of the paper's findings."""
    grid = verdict_grid(results, finding_order)
    labels = [row.claim_id + (f" [{row.variant}]" if row.variant else "")
              + (f" [{row.definition}]" if row.definition else "") for _, rows in grid.sections for row in rows]
    width = max([len(lab) for lab in labels] + [5]) + 2
    groups = [[c for c in grid.columns if c.env == env] for env in grid.envs]
    spans = [max(len(env or "all"), 2 * len(cols) - 1) + 3 for env, cols in zip(grid.envs, groups)]
    head1 = "claim".ljust(width) + "".join((env or "all").ljust(s) for env, s in zip(grid.envs, spans))
    head2 = " " * width + "".join(" ".join("A" if c.seed is None else str(c.seed)[-1] for c in cols).ljust(s)
                                  for cols, s in zip(groups, spans))
    lines = [head1.rstrip(), head2.rstrip()]
    i = 0
    for _, rows in grid.sections:
        for row in rows:
            cells = [LETTERS[r.outcome] if r else "." for r in row.cells]
            pos, text = 0, labels[i].ljust(width)
            for cols, s in zip(groups, spans):
                text += " ".join(cells[pos:pos + len(cols)]).ljust(s)
                pos += len(cols)
            lines.append(text.rstrip())
            i += 1
    return lines


def _raw(row: HeadlineRow) -> str:
    v = row.shown
    if v is None or v.value is None:
        return row.outcome
    return f"{row.outcome} {format_number(v.value)}"


def _seeds(headline: Headline, row: HeadlineRow) -> str:
    if row.corrected != "inconclusive" or row.seeds_needed is None:
        return ""
    seconds = extra_seconds(row, headline.seconds_per_seed)
    return rough(row.seeds_needed) + (f" (~{duration(seconds)} more)" if seconds is not None else "")


def headline_table(headline: Headline) -> list[str]:
    """One line per (claim, env): finding, claim id (with its number of variants), env, the
    corrected verdict (Benjamini-Hochberg, the primary one), the raw verdict with the value that
    decides it, the verdict after Holm, and the seeds an undecided one needs at its corrected level
    (with the machine hours of the extra seeds)."""
    head = ("finding", "claim", "env", "verdict (BH)", "raw", "Holm", "seeds needed")
    rows = [(r.finding, r.claim_id + (f" ({len(r.variants)} variants)" if len(r.variants) > 1 else ""),
             r.env or "all", r.corrected, _raw(r), r.holm_outcome, _seeds(headline, r)) for r in headline.rows]
    widths = [max(len(str(x[i])) for x in [head, *rows]) + 2 for i in range(len(head))]
    return ["".join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip() for line in [head, *rows]]


def reason_lines(results: list[ClaimResult]) -> list[str]:
    """One line per contradicted or inconclusive cell, with its reason (``-v``): "CONTRADICTED
    nodeid - reason"."""
    cells = sorted((r for r in results if r.outcome in ("contradicted", "inconclusive")), key=lambda r: r.order)
    return [f"{r.outcome.upper()} {r.nodeid} - {r.message.splitlines()[0] if r.message else ''}" for r in cells]


def reasons_hint(results: list[ClaimResult]) -> str:
    """Where the per-cell reasons are, at the default verbosity (the grid and the headline above
    condense them)."""
    counts = {o: sum(r.outcome == o for r in results) for o in ("contradicted", "inconclusive")}
    told = " and ".join(f"{n} {o}" for o, n in counts.items() if n) or "no contradicted or inconclusive"
    return f"the reason of each of the {told} cells: in the report, or in the terminal with -v"


def premise_lines(premises: tuple[Premise, ...]) -> list[str]:
    """One line per environment: "dtclaims premise on hopper: contradicted (after Holm: ...). parts"."""
    if not premises:
        return ["dtclaims premise: not tested (no environment in this run)"]
    return [f"dtclaims premise on {premise_line(p)}" for p in premises]


def answer_lines(report: Report, html: Path, js: Path, selection: str = "") -> list[str]:
    """The run's last lines: the premise per environment, the headline tally (corrected first),
    the counts of every test, a selection's note, and the report's absolute path last."""
    headline = build_headline(report)
    counts = ", ".join(f"{n} {o}" for o, n in report.counts().items() if n)
    lines = premise_lines(build_premises(headline))
    lines += [f"dtclaims headline: {tally_text(headline)}",
              f"dtclaims tests: {counts} (profile {report.profile})",
              f"dtclaims values: {js.resolve()}"]
    if selection:
        lines.append(f"dtclaims: a selection ({selection}): its own report; the full grid's "
                     f"{html.with_name('claims.html').name} is left as it was")
    return lines + [f"dtclaims report: {html.resolve()}"]
