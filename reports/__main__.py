"""Compare two claims reports, or write the README's claims table, from a report's JSON.

Commands on a report's JSON (``reports/out/claims.json``):

``python -m reports compare A.json B.json [--common]``: the claims whose verdicts differ between
two reports (say two profiles, or two machines). Prints one line per differing cell,
``claim [variant] env seed definition: A -> B``, where a cell missing from one report reads
"absent" (``--common`` leaves those out), then one line per measured value that differs in a cell
both reports have (``... value: 0.31 -> 0.29``; floats equal within a relative 1e-9). Exit status:
0 when no verdict and no value differs, 1 when some do, 2 on a usage error or an unreadable report.

``python -m reports readme CLAIMS.json [--write README.md]``: the README's claims table (the
premise of the mechanism findings per environment first, then one row per claim x environment, raw
and after Holm; ``reports/readme.py``) printed as Markdown, or with
``--write FILE`` put between the ``<!-- claims-table:start -->`` and ``<!-- claims-table:end -->``
markers of FILE. Exit status 0, or 2 on an unreadable report or a file without the markers.

``python -m reports html CLAIMS.json [--write PAGE.html]``: the report page drawn again from a
report's JSON, without running anything (say after a change to the page's code); by default
beside the JSON (``claims.json`` -> ``claims.html``), the JSON left as it is. Prints the page's
absolute path and size. Exit status 0, or 2 on an unreadable report or an unwritable page.

A command whose reader closes the pipe early (``... compare A B | head -2``) stops there without a
traceback, with exit status 141 (128 + SIGPIPE, what a shell reports for a filter the pipe ended).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from reports.model import Report, compare, compare_values
from reports.readme import claims_table, write_between_markers
from reports.render import write_page


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m reports", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("compare", help="list the claims whose verdicts differ between two JSON reports",
                       description="List the claims whose verdicts (and values) differ between two JSON "
                                   "reports; exits 1 when some do.")
    c.add_argument("a", type=Path, help="the first report's claims.json")
    c.add_argument("b", type=Path, help="the second report's claims.json")
    c.add_argument("--common", action="store_true",
                   help="only cells present in both reports (ignore claims, envs or seeds run in one only; "
                        "default: every cell)")
    r = sub.add_parser("readme", help="the README's claims table (Markdown) from a JSON report",
                       description="Print the README's claims table (Markdown) from a JSON report, or write "
                                   "it between a file's claims-table markers.")
    r.add_argument("report", type=Path, help="the report's claims.json")
    r.add_argument("--write", type=Path, metavar="FILE",
                   help="replace the table between the claims-table markers of FILE instead of printing it "
                        "(default: print)")
    h = sub.add_parser("html", help="draw the report page again from a JSON report (nothing is run)",
                       description="Draw the report page again from a JSON report, without running anything; "
                                   "the JSON is left as it is.")
    h.add_argument("report", type=Path, help="the report's claims.json")
    h.add_argument("--write", type=Path, metavar="PAGE",
                   help="where to write the page (default: beside the JSON, with the suffix .html)")
    return parser


def _load(path: Path) -> Report:
    try:
        return Report.from_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"python -m reports: cannot read the report {path}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def cmd_compare(args: argparse.Namespace) -> int:
    a, b = _load(args.a), _load(args.b)
    diffs = compare(a, b, common_only=args.common)
    values = compare_values(a, b)
    print(f"A: {args.a} (profile {a.profile}, {len(a.results)} claim tests)")
    print(f"B: {args.b} (profile {b.profile}, {len(b.results)} claim tests)")
    print(f"{len(diffs)} verdict(s) differ{':' if diffs else ''}" if diffs else "no verdict differs")
    for d in diffs:
        print(f"  {d.claim_id} {_where(d.variant, d.env, d.seed, d.definition)}: {d.a} -> {d.b}")
    print(f"{len(values)} value(s) differ:" if values else "no value differs")
    for v in values:
        claim_id, variant, env, seed, definition = v.key
        print(f"  {claim_id} {_where(variant, env, seed, definition)} {v.name}: {_short(v.a)} -> {_short(v.b)}")
    return 1 if diffs or values else 0


def _where(variant: str, env: str, seed: str, definition: str) -> str:
    return " ".join(p for p in (f"[{variant}]" if variant else "", env or "all-envs",
                                "seed-aggregate" if seed == "agg" else f"seed {seed}",
                                definition and f"{definition} def.") if p)


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def cmd_readme(args: argparse.Namespace) -> int:
    table = claims_table(_load(args.report))
    if args.write is None:
        print(table)
        return 0
    try:
        write_between_markers(args.write, table)
    except (OSError, ValueError) as exc:
        print(f"python -m reports readme: {exc}", file=sys.stderr)
        return 2
    print(f"wrote the claims table of {args.report} into {args.write}")
    return 0


def cmd_html(args: argparse.Namespace) -> int:
    report = _load(args.report)
    page = (args.write or args.report.with_suffix(".html")).resolve()
    try:
        write_page(report, page, json_name=args.report.name)
    except OSError as exc:
        print(f"python -m reports html: cannot write {page}: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {page} ({page.stat().st_size:,} bytes) from {args.report}")
    return 0


CLOSED_PIPE = 141   # exit status of a command whose reader closed the pipe: 128 + SIGPIPE


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        status = {"compare": cmd_compare, "readme": cmd_readme, "html": cmd_html}[args.command](args)
        sys.stdout.flush()   # a closed pipe fails here, not in the interpreter's exit
    except BrokenPipeError:
        # Python's advice (docs, "Note on SIGPIPE"): point stdout at devnull, so that the flush
        # at exit does not fail again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return CLOSED_PIPE
    return status


if __name__ == "__main__":
    sys.exit(main())
