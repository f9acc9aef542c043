"""The headline of the claims report: one verdict per (claim, environment), raw, after the
Benjamini-Hochberg correction (the primary verdict) and after Holm's, with what (and how much
machine time) would decide an undecided one.
The policy is :mod:`dtcore.verdicts`; this module applies it to a report's results.

- **Which cell speaks for a claim**: its seed aggregate (a cell without a ``seed`` parameter)
  under :func:`dtcore.policy.speaking_definition` (the paper's definition, else the claim's only
  one, else as-run, else sound). Per-seed cells are shown in the grid below the headline, never
  counted here.
- **Variants** (other parameters: ``backbone=gpt2``, ``token=state``, ``stat=l2``): the claim
  states every variant, so the headline is their conjunction (:func:`dtcore.policy.conjunction`).
- **The correction** (docs/statistics.md, "The correction"): the family is every declared claim
  x environment (the report's provenance ``family``, fixed by the declarations, not by ``-k``); a
  claim's p is :func:`dtcore.policy.conjunction_p` of its variants (an intersection-union test
  for "holds"), a claim not run counts as p = 1, and a decisive claim whose adjusted p is at least
  :data:`dtcore.policy.ALPHA` becomes inconclusive: Benjamini-Hochberg
  (``dtcore.statistics.benjamini_hochberg``) gives the primary ``corrected`` verdict, Holm
  (``dtcore.statistics.holm``) the one beside it. A decisive claim with no recorded p-value is
  left uncorrected and says so.
- **What would decide it**: :func:`dtcore.deciding.what_would_decide` of the speaking variants at
  the level the corrected verdict must reach (the claim's next Benjamini-Hochberg step), and
  about how long the extra seeds would take here: seconds per seed of an environment = the summed
- **Registered**: whether the row's criterion was registered before the runs its cells used
  (:func:`registration`, :func:`dtcore.registry.mark`), with the entry's date and commit.
  ``wall_time_s`` of its runs (provenance ``run <key>``) / the seeds those runs cover.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Mapping, Sequence

from dtcore import registry
from dtcore.deciding import UNCORRECTED, rough, what_would_decide
from dtcore.statistics import benjamini_hochberg, holm
from dtcore.policy import conjunction, conjunction_p, corrected_outcome, next_step_level, speaking_definition
from dtcore.verdicts import DECISIVE, OUTCOMES
from reports.findings import ORDER, finding_key, finding_order
from reports.model import ClaimResult, Report, shown_interval, sorted_results

NOT_COUNTED = ("descriptive", "skipped")                      # outcomes with no verdict
COUNTED = tuple(o for o in OUTCOMES if o not in NOT_COUNTED)  # the tally's, in dtcore.verdicts' order

TWO_SEEDS = ("This grid ran 2 seeds. A 95 % t interval of the mean of 2 seeds has 1 degree of freedom "
             "and reaches ±12.7 standard errors (t(0.975, 1) = 12.71): two seeds decide only effects "
             "larger than about 9 per-seed standard deviations, so most small or moderate effects stay "
             "inconclusive whichever way they lean.")


@dataclass(frozen=True)
class Variant:
    """One seed-aggregate test of a headline row (one combination of the other parameters)."""

    variant: str               # e.g. "backbone=gpt2, token=state"; "" when the claim has one variant
    nodeid: str
    outcome: str               # the test's own outcome (OUTCOMES)
    value: float | None        # mean over seeds
    ci_low: float | None
    ci_high: float | None
    confidence: float | None   # level of [ci_low, ci_high] (0.90 for a TOST that holds)
    n: int | None              # seeds
    p_value: float | None      # two-sided p of mean == threshold (TOST: the decided side's)
    seeds_needed: int | None   # seeds for 80 % power at the observed effect and spread
    message: str
    method: str = ""           # the rule that decided it: "student-t", "tost", "intersection-union t", ...
    values: Mapping[str, Any] = field(default_factory=dict)   # everything the aggregate recorded


@dataclass(frozen=True)
class HeadlineRow:
    """The verdict on one claim in one environment."""

    finding: str               # reports.findings key: "Table 1", "1" ... "7", "Other"
    claim_id: str
    section: str
    sentence: str              # the paper's sentence, with its source
    statistic: str             # what is measured, with the criterion: "... > 0"
    env: str                   # "" when the claim has no env parameter
    definition: str | None
    variants: tuple[Variant, ...]
    outcome: str               # conjunction of the variants' outcomes
    holm_outcome: str          # after Holm over the family of claims (dtcore.policy.corrected_outcome)
    note: str                  # why the corrected verdict differs, or why the row has no verdict
    n: int | None              # seeds behind the aggregate (largest over variants)
    seeds_needed: int | None   # undecided rows: seeds that would decide it at the corrected level
    p_value: float | None = None   # the claim's p in the family (dtcore.policy.conjunction_p)
    p_holm: float | None = None    # its Holm-adjusted p
    corrected: str = ""        # after Benjamini-Hochberg over the family: the primary verdict
    p_bh: float | None = None  # its Benjamini-Hochberg-adjusted p
    decide: str = ""           # undecided rows: what would decide it, by the path that decides it
    registered: Mapping[str, Any] | None = None   # registry mark of its criterion (:func:`registration`)

    @property
    def shown(self) -> Variant | None:
        """The variant whose value stands for the row: the first contradicted / in error, the
        inconclusive or holding one with the largest p (the weakest link), else the first."""
        if not self.variants:
            return None
        for o in ("contradicted", "error"):
            if self.outcome == o:
                return next(v for v in self.variants if v.outcome == o)
        same = [v for v in self.variants if v.outcome == self.outcome] or list(self.variants)
        return max(same, key=lambda v: -1.0 if v.p_value is None else v.p_value)


@dataclass(frozen=True)
class Headline:
    rows: tuple[HeadlineRow, ...]                # in finding, section, claim, env order
    seconds_per_seed: dict[str, float]           # env -> machine seconds per extra seed ("" = all envs)
    grid_seeds: int | None                       # seeds of the grid
    family_size: int                             # claims x environments in the Holm family
    envs: tuple[str, ...] = ()                   # the run's environments, in collection order ("" left out)
    premise: Mapping[str, Sequence[Sequence[str]]] = field(default_factory=dict)   # env -> [claim id, label]
                                                 # of each declared premise part ("": across envs)

    def tally(self, correction: str | None = None) -> dict[str, int]:
        """Headline verdicts per outcome (OUTCOMES order): raw (None), after Benjamini-Hochberg
        ("bh", the primary verdict) or after Holm ("holm")."""
        attr = {None: "outcome", "bh": "corrected", "holm": "holm_outcome"}[correction]
        return {o: sum(getattr(r, attr) == o for r in self.rows) for o in OUTCOMES}

    @property
    def two_seed_note(self) -> str:
        return TWO_SEEDS if self.grid_seeds == 2 else ""

    def by_finding(self) -> list[tuple[str, list[HeadlineRow]]]:
        out: dict[str, list[HeadlineRow]] = {}
        for r in self.rows:
            out.setdefault(r.finding, []).append(r)
        return sorted(out.items(), key=lambda kv: ORDER[kv[0]])

    def decide_text(self, row: HeadlineRow) -> str:
        return decide_text(row, self.seconds_per_seed)


# ----------------------------------------------------------------------------- combination

def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _int(value: Any) -> int | None:
    x = _number(value)
    return None if x is None else int(x)


def claim_sentence(results: Iterable[ClaimResult]) -> str:
    """The paper's sentence of a claim: the first docstring paragraph that quotes the paper
    (has a double quote), else the first non-empty one."""
    sentences = [r.paper_sentence for r in sorted(results, key=lambda r: r.order) if r.paper_sentence]
    return next((s for s in sentences if '"' in s or "“" in s), sentences[0] if sentences else "")


def _statistic(values: Mapping[str, Any]) -> str:
    stat = str(values.get("statistic") or "")
    if values.get("direction") is None or values.get("threshold") is None:
        return stat
    direction = "|·| within ±" if values["direction"] == "within" else values["direction"]
    return f"{stat} {direction} {values['threshold']:g}".strip()


def headline_groups(results: Iterable[ClaimResult]) -> dict[tuple[str, str], list[ClaimResult]]:
    """(claim, env) -> the results the headline reads: its seed aggregates under the chosen
    definition, or, when it has no seed aggregate, its per-seed results under that definition
    (shown, not counted)."""
    by_pair: dict[tuple[str, str], list[ClaimResult]] = {}
    for r in sorted_results(results):
        by_pair.setdefault((r.claim_id, r.env or ""), []).append(r)
    out = {}
    for pair, rs in by_pair.items():
        chosen = [r for r in rs if r.is_aggregate] or rs
        d = speaking_definition([r.definition for r in chosen])
        out[pair] = [r for r in chosen if r.definition == d]
    return out


# ----------------------------------------------------------------------------- Holm

def _variants(aggregates: list[ClaimResult]) -> tuple[Variant, ...]:
    return tuple(Variant(
        variant=r.variant, nodeid=r.nodeid, outcome=r.outcome, value=_number(r.values.get("value")),
        ci_low=_number(r.values.get("ci_low")), ci_high=_number(r.values.get("ci_high")),
        confidence=_number(r.values.get("confidence")), n=_int(r.values.get("n")),
        p_value=_number(r.values.get("p_value")), seeds_needed=_int(r.values.get("seeds_needed")), message=r.message,
        method=str(r.values.get("method") or ""), values=dict(r.values))
        for r in aggregates)


def _row(pair: tuple[str, str], rs: list[ClaimResult], all_results: list[ClaimResult]) -> HeadlineRow:
    """A row with its raw verdict; :func:`_corrected` adds the family's correction."""
    claim_id, env = pair
    first = rs[0]
    sentence = claim_sentence(r for r in all_results if r.claim_id == claim_id)
    values = next((r.values for r in rs if r.values.get("statistic")), first.values)
    common = dict(finding=finding_key(first.section), claim_id=claim_id, section=first.section,
                  sentence=sentence, statistic=_statistic(values), env=env)
    if not first.is_aggregate:
        counts = {o: sum(r.outcome == o for r in rs) for o in OUTCOMES}
        per_seed = ", ".join(f"{n} {o}" for o, n in counts.items() if n)
        return HeadlineRow(**common, definition=first.definition, variants=(), outcome="descriptive",
                           holm_outcome="descriptive", corrected="descriptive", n=None, seeds_needed=None,
                           note=f"no seed aggregate: per-seed tests only ({per_seed}); not counted", p_value=1.0)
    variants = _variants(rs)
    outcome = conjunction([v.outcome for v in variants])
    needed = [v.seeds_needed for v in variants if v.outcome == "inconclusive" and v.seeds_needed is not None]
    ns = [v.n for v in variants if v.n is not None]
    return HeadlineRow(**common, definition=first.definition, variants=variants, outcome=outcome,
                       holm_outcome=outcome, corrected=outcome, note="", n=max(ns) if ns else None,
                       seeds_needed=max(needed) if needed and outcome == "inconclusive" else None,
                       p_value=conjunction_p([v.outcome for v in variants], [v.p_value for v in variants]))


def _corrected(row: HeadlineRow, p_bh: float | None, p_holm: float | None, level: float) -> HeadlineRow:
    bh, fw = corrected_outcome(row.outcome, p_bh), corrected_outcome(row.outcome, p_holm)
    if bh != row.outcome:
        note = f"not significant after Benjamini-Hochberg (adjusted p {p_bh:.3g})"
    elif fw != row.outcome:
        note = f"holds its false discovery rate, not Holm's family-wise bar (adjusted p {p_holm:.3g})"
    elif row.outcome in DECISIVE and row.p_value is None:
        note = "no p-value recorded: not corrected for multiplicity"
    else:
        note = row.note
    decide = ""
    if bh == "inconclusive" and row.variants:
        needs = [what_would_decide(v.values, level) for v in row.variants if v.outcome in DECISIVE + ("inconclusive",)]
        if needs:
            worst = next((x for x in needs if x.seeds is None), None) or max(needs, key=lambda x: x.seeds)
            decide = worst.text
            row = replace(row, seeds_needed=worst.seeds)
    return replace(row, corrected=bh, holm_outcome=fw, p_bh=p_bh, p_holm=p_holm, note=note, decide=decide)


def build_headline(report: Report) -> Headline:
    """The headline of ``report``: one row per claim and environment, Benjamini-Hochberg (primary)
    and Holm over the family of claims (the provenance's ``family``, every declared claim x
    environment, a claim not run at p = 1; the rows present where a report has no family), what
    would decide each undecided row at its next step, machine time per seed and the grid's seed
    count."""
    results = list(report.results)
    groups = headline_groups(results)
    rows = [_row(pair, rs, results) for pair, rs in groups.items()]
    declared = [tuple(member) for member in report.provenance.get("family") or ()]
    family = list(dict.fromkeys(declared + [(r.claim_id, r.env) for r in rows if r.p_value is not None]))
    p_of = {(r.claim_id, r.env): r.p_value for r in rows if r.p_value is not None}
    ps = [p_of.get(member, 1.0) for member in family]
    by_bh = dict(zip(family, benjamini_hochberg(ps))) if family else {}
    by_holm = dict(zip(family, holm(ps))) if family else {}
    level = next_step_level(list(by_bh.values()), len(family))
    rows = [_corrected(r, by_bh.get((r.claim_id, r.env)) if r.p_value is not None else None,
                       by_holm.get((r.claim_id, r.env)) if r.p_value is not None else None, level) for r in rows]
    rows = [replace(r, registered=registration(groups[(r.claim_id, r.env)], report.provenance)) for r in rows]
    envs = dict.fromkeys(r.env or "" for r in sorted(results, key=lambda r: r.order))
    env_order = {e: i for i, e in enumerate(envs)}
    rows.sort(key=lambda r: (finding_order(r.section), r.claim_id, env_order.get(r.env, 0)))
    return Headline(tuple(rows), seconds_per_seed(report.provenance), grid_seeds(report), len(family),
                    tuple(e for e in envs if e), dict(report.provenance.get("premise") or {}))


# ----------------------------------------------------------------------------- registered criteria

def registration(rs: Sequence[ClaimResult], provenance: Mapping[str, Any]) -> dict[str, Any] | None:
    """Whether a row's criterion was registered before the runs that decide it
    (:func:`dtcore.registry.mark`): the registry entry its cells recorded (``registered``), the
    runs they used (``runs``) and those runs' ``finished_at`` in the provenance (``run <key>``).
    ``{"mark", "registered", "commit", "after_data", "first_run"}``; the mark is "not registered"
    when the criterion that ran is not in the registry, "run times not recorded" when no run's
    ``finished_at`` is; None for a report whose cells recorded no entry."""
    entry = next((r.values["registered"] for r in rs if isinstance(r.values.get("registered"), Mapping)), None)
    if entry is None:
        return None
    keys = dict.fromkeys(k for r in rs for k in (r.values.get("runs") or ()))
    times = [t for k in keys if isinstance(t := (provenance.get(f"run {k}") or {}).get("finished_at"), str)]
    if not entry.get("registered"):
        mark = "not registered"
    else:
        mark = registry.mark(entry, times) if times else "run times not recorded"
    first = min(times, key=registry.timestamp) if times else None
    return {"mark": mark, "registered": entry.get("registered"), "commit": entry.get("commit"),
            "after_data": entry.get("after_data"), "first_run": first}


# ----------------------------------------------------------------------------- seeds and time

_RUN_SEED = re.compile(r"^seed(\d+)$")


def run_env_seed(run_key: str) -> tuple[str, int] | None:
    """(env, seed) of a run key ``hopper__gpt2__seed0__K20__abcd1234``; None if it has no seed."""
    parts = run_key.split("__")
    for part in parts[1:]:
        m = _RUN_SEED.match(part)
        if m:
            return parts[0], int(m.group(1))
    return None


def seconds_per_seed(provenance: Mapping[str, Any]) -> dict[str, float]:
    """Env -> machine seconds one more seed takes there: the summed ``wall_time_s`` of the env's
    runs (provenance entries ``run <key>``) divided by the seeds they cover; key "" sums the envs
    (the cost of one more seed of an env-less claim)."""
    total: dict[str, float] = {}
    seeds: dict[str, set[int]] = {}
    for key, value in provenance.items():
        if not key.startswith("run ") or not isinstance(value, Mapping):
            continue
        where, wall = run_env_seed(key[len("run "):]), _number(value.get("wall_time_s"))
        if where is None or wall is None:
            continue
        total[where[0]] = total.get(where[0], 0.0) + wall
        seeds.setdefault(where[0], set()).add(where[1])
    out = {env: total[env] / len(seeds[env]) for env in total}
    if out:
        out[""] = sum(out.values())
    return out


def grid_seeds(report: Report) -> int | None:
    """The number of seeds of the grid: from the provenance's ``grid`` (``seeds=0,1``), else the
    seeds of the per-seed results, else the largest ``n`` of a seed aggregate."""
    m = re.search(r"\bseeds=([\w,]+)", str(report.provenance.get("grid") or ""))
    if m:
        return len([s for s in m.group(1).split(",") if s])
    seeds = {r.seed for r in report.results if r.seed is not None}
    if seeds:
        return len(seeds)
    ns = [_int(r.values.get("n")) for r in report.results if r.is_aggregate]
    ns = [n for n in ns if n is not None]
    return max(ns) if ns else None


def duration(seconds: float) -> str:
    """A duration in words, to two significant figures at most (the seeds it times are a rough
    count): "40 s", "25 min", "3.2 h", "200 h"."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{rough(seconds / 3600)} h"


def extra_seconds(row: HeadlineRow, per_seed: Mapping[str, float]) -> float | None:
    """Machine seconds of the seeds an undecided row still needs ((seeds_needed - n) x seconds
    per seed of its env); None when it needs none, or no wall time of its env was recorded."""
    if row.corrected != "inconclusive" or row.seeds_needed is None or row.env not in per_seed:
        return None
    more = row.seeds_needed - (row.n or 0)
    return more * per_seed[row.env] if more > 0 else None


def decide_text(row: HeadlineRow, per_seed: Mapping[str, float]) -> str:
    """For a row undecided after the correction: what would decide it (by the path that decides
    it, at its next Benjamini-Hochberg step) and about how long the extra seeds take on this
    machine (the extra seeds to two significant figures, :func:`dtcore.deciding.rough`); "" for any
    other row."""
    if row.corrected != "inconclusive" or not row.decide:
        return ""
    text = row.decide
    more = (row.seeds_needed or 0) - (row.n or 0)
    seconds = extra_seconds(row, per_seed)
    if seconds is not None:
        text += (f"; {rough(more)} more seed{'s' if more > 1 else ''} of {row.env or 'all environments'}: about "
                 f"{duration(seconds)} on this machine ({duration(per_seed[row.env])} per seed)")
    return text


def tally_text(headline: Headline) -> str:
    """The headline tally in one line: verdicts per outcome after Benjamini-Hochberg (the primary
    verdict), then raw and after Holm; descriptive and skipped rows are named as not counted."""
    raw = headline.tally()
    counted = COUNTED
    total = sum(raw[o] for o in counted)

    def line(t: dict[str, int]) -> str:
        return ", ".join(f"{t[o]} {o}" for o in counted if o != "negligible" or t[o])

    text = (f"{total} claim x environment verdict{'s' if total != 1 else ''} (family of "
            f"{headline.family_size}): {line(headline.tally('bh'))} after Benjamini-Hochberg; "
            f"raw {line(raw)}; after Holm {line(headline.tally('holm'))}")
    aside = [f"{raw[o]} {o}" for o in NOT_COUNTED if raw[o]]
    return text + (f" ({', '.join(aside)}: not counted)" if aside else "")


# Variant.method (dtcore.verdicts' "method" value) -> the test's name on the page.
METHOD_NAMES = {"student-t": "t interval over seeds", "tost": "TOST (two one-sided t tests)",
                "sign test": "sign test over seeds", "clopper-pearson": "Clopper-Pearson interval",
                "half-sample": "half-sample interval", "intersection-union t": "intersection-union t",
                "intersection-union half-sample": "intersection-union half-sample",
                "tost (smallest effect of interest)": "TOST against the smallest effect of interest",
                "student-t (log scale)": "t interval over seeds on the log scale",
                "student-t (right skew)": "t interval over seeds, quantiles for right-skewed seeds",
                "student-t (left skew)": "t interval over seeds, quantiles for left-skewed seeds",
                "tost (smallest effect of interest, right skew)":
                    "TOST against the smallest effect of interest, quantiles for right-skewed seeds",
                "tost (smallest effect of interest, left skew)":
                    "TOST against the smallest effect of interest, quantiles for left-skewed seeds",
                "intersection-union tost (smallest effect of interest)":
                    "intersection-union TOST against the smallest effect of interest",
                "intersection-union half-sample (smallest effect of interest)":
                    "intersection-union half-sample equivalence against the smallest effect of interest"}


def method_name(method: str) -> str:
    """The name of the rule that decided a verdict ("stratified bootstrap of the IQM" stays as it is)."""
    return METHOD_NAMES.get(method, method)


def deciding_text(row: HeadlineRow) -> str:
    """What decided a row, for the cell beside its verdict: for a decisive raw verdict the value
    with the interval that decided it (:func:`value_text`) and the method; for any other, why
    nothing decided it (the message's first line, or the row's note). Where the row says what
    would decide it at its corrected level (``decide``), the message's own count, at the test's 5 %
    before the correction (:data:`dtcore.deciding.UNCORRECTED`), is left out: one count per row."""
    v = row.shown
    if row.outcome in DECISIVE and v is not None and v.value is not None:
        text = value_text(v)
        return f"{text} · {method_name(v.method)}" if v.method else text
    if v is not None and v.message.strip():
        first = v.message.strip().splitlines()[0].removeprefix(f"{row.claim_id}: ")
        if row.decide:
            first = first.split(f"; {UNCORRECTED}")[0]
        return _shorten(first)
    return row.note


def _shorten(text: str, limit: int = 200) -> str:
    """``text`` cut at a word before ``limit`` characters, with "…" (the whole is under "why")."""
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " …"


def value_text(v: Variant) -> str:
    """A variant's value with its interval, e.g. "12.3 [4.1, 20.5]" ("(90 %)" added when the
    interval is not 95 %), the interval left out where :func:`reports.model.shown_interval` shows
    none (zero width, or refused by its rule); "" when no value was recorded."""
    if v.value is None:
        return ""
    text = f"{v.value:.3g}"
    interval = shown_interval(v.values)
    if interval is not None:
        text += f" [{interval[0]:.3g}, {interval[1]:.3g}]"
        if v.confidence is not None and abs(v.confidence - 0.95) > 1e-9:
            text += f" ({v.confidence:.0%})"
    return text
