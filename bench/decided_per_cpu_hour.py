"""Decided claims per CPU-hour: what the mini profile is for (issue #32, point 4).

Reads the ``claims.json`` of one or more ``dtcore claims`` runs (one per recipe and seed count)
and prints them side by side: the claim x environment verdicts decided after the correction
(Benjamini-Hochberg, the report's primary verdict; Holm and raw beside), the CPU-hours of the runs
and analyses they read, the decided verdicts per CPU-hour, and the seeds the undecided ones would
need ("what would decide it", the ``seeds_needed`` of the headline rows).

The CPU time of a run is the sum of its epochs' wall times in its ``log.json`` (``time_total``,
training and per-epoch evaluation), one thread per run as the grid builds them: a run whose first
epochs were adopted from a cached run of another length (``dtcore.runs.RunStore``) is counted
in full, as if trained from scratch. The analyses' CPU time is the ``wall_time_s`` of every
analysis in the cache whose config names one of the runs and that finished before the claims
run wrote its report, times the threads it ran on. Both are wall times measured as the runs were
built, on a machine that may have been loaded: a ratio of recipes built under different loads
carries that difference. A claims run records the runs it read in its provenance
(``run <folder>``), so nothing is guessed.

A claims.json of ``dtcore claims --until-decided`` (it has a ``sequential`` block) is counted by
its sequential design's decisions: the verdicts decided at some look (status ``decided``), in
the BH column, its final page's Holm and raw beside. Its page shows each claim at the seeds of
the look that froze it, so the runs it names are every run the design built (counted in full, as
if trained from scratch).

    python bench/decided_per_cpu_hour.py old-5=/tmp/old/claims.json new-3=/tmp/new3/claims.json \\
        new-5=/tmp/new5/claims.json [--cache ~/.cache/dtcore]
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from dtcore.provenance import cache_dir  # noqa: E402
from dtcore.sequential_plan import key  # noqa: E402

DECISIVE = ("holds", "contradicted", "negligible")


@dataclass(frozen=True)
class Recipe:
    """One claims run, reduced to what the comparison needs."""

    name: str
    seeds: str
    runs: tuple[str, ...]          # run folder names the claims read
    tally: dict[str, dict[str, int]]   # "bh" / "holm" / "raw" -> outcome -> count
    undecided_seeds: tuple[int, ...]   # seeds_needed of the rows undecided after BH (None left out)
    undecided_never: int               # rows undecided after BH that no number of seeds decides
    created: str                       # when the claims run wrote its report (ISO 8601)


def read_recipe(name: str, path: Path) -> Recipe:
    try:
        report = json.loads(path.read_text())
        headline, prov = report["headline"], report["provenance"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SystemExit(f"{path}: not a dtclaims claims.json with a headline ({exc}); "
                         "run `dtcore claims --report <file>.html` to write one") from None
    rows, sequential = headline["rows"], report.get("sequential")
    if sequential is None:
        corrected = headline["tally_bh"]
        open_rows = [r for r in rows if r.get("corrected") not in DECISIVE and r.get("outcome") != "skipped"]
    else:   # the design's own decisions, each at the look that made it
        tracks = sequential["claims"]
        decided_at = [t["outcome"] for t in tracks.values() if t["status"] == "decided"]
        corrected = {o: decided_at.count(o) for o in DECISIVE}
        open_rows = [r for r in rows if tracks.get(key(r["claim_id"], r.get("env") or ""), {}).get("status")
                     not in ("decided", None) and r.get("outcome") != "skipped"]
    seeds = [r["seeds_needed"] for r in open_rows if isinstance(r.get("seeds_needed"), int)]
    grid = prov.get("grid", "?") + ("" if sequential is None else f" (sequential, looks {sequential['design']['looks']})")
    return Recipe(name, grid, tuple(sorted(k[4:] for k in prov if k.startswith("run "))),
                  {"bh": corrected, "holm": headline["tally_holm"], "raw": headline["tally"]},
                  tuple(seeds), len(open_rows) - len(seeds), str(report.get("created", "")))


def run_cpu_seconds(folder: Path) -> float:
    """Sum of the epochs' wall times in the run's log (one thread)."""
    try:
        log = json.loads((folder / "log.json").read_text())
    except (OSError, ValueError) as exc:
        raise SystemExit(f"{folder}/log.json: cannot read the run's log ({exc}); the claims.json names a run "
                         "that is not in this cache (pass --cache)") from None
    return float(sum(e.get("time_total", 0.0) for e in log["epochs"]))


def _when(text: str) -> datetime.datetime | None:
    try:
        return datetime.datetime.strptime(text.replace("Z", "+0000").replace("+00:00", "+0000"), "%Y-%m-%dT%H:%M:%S%z")
    except ValueError:
        return None


def analysis_cpu_seconds(analyses: Path, runs: set[str], before: str = "") -> float:
    """CPU seconds of the cached analyses whose config names one of ``runs``, finished no later
    than ``before`` (the claims run's report: an analysis computed later, by another command, is
    not part of its cost)."""
    total, limit = 0.0, _when(before)
    for meta_path in analyses.glob("*/meta.json"):
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            continue
        finished = _when(str(meta.get("finished_at", "")))
        if limit is not None and finished is not None and finished > limit:
            continue
        config = json.dumps(meta.get("config", {}))
        if any(r in config for r in runs):
            total += float(meta.get("wall_time_s", 0.0)) * int(meta.get("torch_threads") or 1)
    return total


def decided(tally: dict[str, int]) -> int:
    return sum(tally.get(o, 0) for o in DECISIVE)


def table(recipes: list[Recipe], cache: Path) -> str:
    lines = [f"{'recipe':<10} {'grid':<44} {'runs':>4} {'train h':>8} {'analyses h':>10} {'decided BH':>10} "
             f"{'Holm':>5} {'raw':>4} {'/ CPU-h (BH)':>12}   undecided after BH: seeds they need"]
    per_hour = {}
    for r in recipes:
        train = sum(run_cpu_seconds(cache / "runs" / f) for f in r.runs) / 3600
        analysis = analysis_cpu_seconds(cache / "analyses", set(r.runs), r.created) / 3600
        n = decided(r.tally["bh"])
        per_hour[r.name] = n / (train + analysis) if train + analysis > 0 else float("nan")
        need = (f"median {int(np.median(r.undecided_seeds))}, range {min(r.undecided_seeds)}-{max(r.undecided_seeds)}"
                if r.undecided_seeds else "-")
        lines.append(f"{r.name:<10} {r.seeds:<44} {len(r.runs):>4} {train:>8.2f} {analysis:>10.2f} {n:>10} "
                     f"{decided(r.tally['holm']):>5} {decided(r.tally['raw']):>4} {per_hour[r.name]:>12.2f}   "
                     f"{need}; {r.undecided_never} that no seed count decides")
    base = recipes[0].name
    lines.append("")
    lines.extend(f"decided per CPU-hour, {r.name} / {base}: {per_hour[r.name] / per_hour[base]:.2f}"
                 for r in recipes[1:])
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("recipes", nargs="+", metavar="NAME=CLAIMS_JSON",
                   help="a claims.json per recipe, the first the baseline the others are divided by")
    p.add_argument("--cache", type=Path, default=None, help="the cache the runs live in (default: dtcore's)")
    args = p.parse_args(argv)
    recipes = []
    for item in args.recipes:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            p.error(f"{item!r}: give NAME=path/to/claims.json")
        recipes.append(read_recipe(name, Path(path)))
    print(table(recipes, args.cache or cache_dir()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
