"""The data model of the claims report: one :class:`ClaimResult` per claim test, the verdict grid
(claims grouped by paper section x environment and seed, plus the seed aggregate), whether a
verdict survives the change of definition (paper / as-run / sound), and the comparison of two
reports (``python -m reports compare``). The headline (one verdict per claim and environment)
is ``reports/headline.py``.

A claim test's outcome (``dtcore/verdicts.py``, the protocol between ``claims`` and ``reports``):

- ``holds``: the test passed;
- ``contradicted``: its call failed with an ``AssertionError``;
- ``inconclusive``: its call raised ``dtcore.verdicts.Inconclusive``;
- ``descriptive``: its call raised ``dtcore.verdicts.Descriptive`` (a per-seed statistic without
  sampling units: shown, never counted as a verdict);
- ``error``: any other exception, in setup, call or teardown;
- ``skipped``: the test was skipped (e.g. a GPU claim on a CPU machine): no verdict.

Everything here is plain data: the pytest plugin turns reports into :class:`ClaimResult`s, the
renderer turns a :class:`Report` into HTML, and ``Report.to_json``/``Report.from_json`` round-trip
every value.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable, Mapping

from dtcore.provenance import jsonable as to_json
from dtcore.verdicts import OUTCOMES, Descriptive, Inconclusive, too_few_runs
from reports.sequential import read as read_sequential

LETTERS = {"holds": "H", "contradicted": "C", "inconclusive": "I", "descriptive": "D", "error": "E",
           "skipped": "S"}
SCHEMA = "dtclaims-report/2"           # 2: the headline (reports/summary.py) beside the results
READABLE = ("dtclaims-report/1", SCHEMA)
# Parameters that place a result in the grid; every other parameter names a row variant.
_PLACEMENT = ("env", "seed", "definition")
_DEFINITION_ORDER = {"paper": 0, "as-run": 1, "sound": 2}
# Keys the criteria record that are not measured numbers; "registered" (the claim's registry entry)
# and "runs" (the run keys the cell used) are recorded by the cell (fixtures/cells.py).
_DESCRIPTIVE = ("claim_id", "statistic", "direction", "threshold", "paper_value", "criterion",
                "definition", "registered", "runs")


def jsonable(value: Any) -> Any:
    """``value`` as builtin JSON types (:func:`dtcore.provenance.jsonable`), anything unknown as its ``repr``."""
    return to_json(value, repr)


@dataclass(frozen=True)
class ClaimResult:
    """One claim test (one node id): where it sits in the grid, its outcome and what it recorded."""

    claim_id: str                    # the claim marker's id, e.g. "sec5_3.pretrained_change_parameters_less"
    section: str                     # the paper section of the marker, e.g. "5.3"
    nodeid: str                      # the pytest node id
    env: str | None                  # the "env" parameter; None when not parametrized by env
    seed: int | None                 # the "seed" parameter; None for a seed aggregate
    definition: str | None           # "paper" | "as-run" where the paper's text and code differ
    params: dict[str, Any]           # every callspec parameter (JSON-able)
    outcome: str                     # one of OUTCOMES
    message: str = ""                # the failure / inconclusive / error message, first lines
    values: dict[str, Any] = field(default_factory=dict)    # record_property values (not figures)
    figures: dict[str, dict] = field(default_factory=dict)  # kind -> figure dict (figures.py schema)
    tables: dict[str, dict] = field(default_factory=dict)   # name -> table dict
    docstring: str = ""              # the test's docstring: the paper's sentence first
    duration: float = 0.0            # seconds over setup, call and teardown
    order: int = 0                   # collection index, for a stable order under xdist

    @property
    def variant(self) -> str:
        """The parameters other than env, seed and definition, e.g. ``backbone=gpt2``."""
        return ", ".join(f"{k}={v}" for k, v in sorted(self.params.items()) if k not in _PLACEMENT)

    @property
    def is_aggregate(self) -> bool:
        """A seed aggregate: no seed parameter (it records ``ci_low``/``ci_high``/``n``)."""
        return self.seed is None

    @property
    def paper_sentence(self) -> str:
        """The docstring's first paragraph: the paper's quoted sentence and its section."""
        return self.docstring.strip().split("\n\n")[0].strip()

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        """What ``compare`` matches across reports: (claim, variant, env, seed, definition)."""
        return (self.claim_id, self.variant, self.env or "", "agg" if self.seed is None else str(self.seed),
                self.definition or "")

    @property
    def interval(self) -> tuple[float, float] | None:
        """The interval to print beside the value (:func:`shown_interval`)."""
        return shown_interval(self.values)

    def measured(self) -> dict[str, Any]:
        """The measured numbers: every recorded value except the criterion's description."""
        return {k: v for k, v in self.values.items() if k not in _DESCRIPTIVE}


def shown_interval(values: Mapping[str, Any]) -> tuple[float, float] | None:
    """The interval a result's recorded ``values`` show beside the value, ``(ci_low, ci_high)``, or
    None where there is none to show: an end not recorded or not finite, a zero-width interval
    (every replicate gave the value: it says no more than the value does), or one the rule refused
    (a stratified bootstrap over fewer runs than it needs, :func:`dtcore.verdicts.too_few_runs`:
    recorded, not what decided the verdict). The one rule of the headline, the grid, the claims'
    tables, the premise, the README and Table 1's rliable panels."""
    low, high = values.get("ci_low"), values.get("ci_high")
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in (low, high)):
        return None
    if low == high or too_few_runs(values) is not None:
        return None
    return float(low), float(high)


# ----------------------------------------------------------------------------- from pytest reports

def phase_outcome(when: str, passed: bool, skipped: bool, exception: type[BaseException] | None) -> str:
    """The outcome of one phase (setup/call/teardown) of a claim test. An ``Inconclusive`` or
    ``Descriptive`` raised outside the call (in a fixture) is an error: the protocol is the call's."""
    signals = {Inconclusive: "inconclusive", Descriptive: "descriptive"}
    signal = next((o for t, o in signals.items() if exception is not None and issubclass(exception, t)), None)
    if passed:
        return "holds"
    if skipped and signal is None:
        return "skipped"
    if when == "call" and exception is not None:
        if signal is not None:
            return signal
        if issubclass(exception, AssertionError):
            return "contradicted"
    return "error"


def combine_phases(outcomes: Mapping[str, str]) -> str:
    """One test's outcome from its phases' outcomes: an error anywhere wins, a skipped setup means
    skipped, otherwise the call decides."""
    if "error" in outcomes.values():
        return "error"
    if outcomes.get("setup") == "skipped":
        return "skipped"
    return outcomes.get("call", "error")


def _int_or_none(value: Any) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def build_result(item: Mapping[str, Any], phases: Iterable[Mapping[str, Any]]) -> ClaimResult:
    """A :class:`ClaimResult` from what the plugin put on a test's reports.

    ``item``: ``nodeid``, ``claim_id``, ``section``, ``params``, ``docstring``, ``order``.
    ``phases``: per phase ``when``, ``outcome``, ``message``, ``duration`` and ``properties`` (the
    ``record_property`` pairs); later phases override earlier values of the same key.
    """
    outcomes: dict[str, str] = {}
    messages: list[str] = []
    values: dict[str, Any] = {}
    figures: dict[str, dict] = {}
    tables: dict[str, dict] = {}
    duration = 0.0
    for ph in phases:
        outcomes[ph["when"]] = ph["outcome"]
        if ph.get("message"):
            messages.append(ph["message"] if ph["when"] == "call" else f"[{ph['when']}] {ph['message']}")
        duration += float(ph.get("duration") or 0.0)
        for k, v in ph.get("properties", ()):
            if k.startswith("figure:"):
                figures[k[len("figure:"):]] = v
            elif k.startswith("table:"):
                tables[k[len("table:"):]] = v
            elif not k.startswith("provenance:"):
                values[k] = v
    params = dict(item.get("params") or {})
    claim_id = item.get("claim_id") or values.get("claim_id") or item["nodeid"]
    return ClaimResult(
        claim_id=str(claim_id), section=str(item.get("section") or claim_id.split(".")[0]),
        nodeid=item["nodeid"], env=params.get("env"), seed=_int_or_none(params.get("seed")),
        definition=params.get("definition") or values.get("definition"), params=params,
        outcome=combine_phases(outcomes), message="\n".join(messages), values=values,
        figures=figures, tables=tables, docstring=item.get("docstring") or "",
        duration=duration, order=int(item.get("order") or 0),
    )


def _result(i: int, r: Any) -> ClaimResult:
    """Result ``i`` of a report's JSON, checked against :class:`ClaimResult`'s types."""
    if not isinstance(r, Mapping):
        raise ValueError(f"result {i}: expected an object, got {type(r).__name__}")
    try:
        result = ClaimResult(**r)
    except TypeError as err:
        raise ValueError(f"result {i}: {err}") from None
    where = f"result {i} ({result.nodeid})"
    if result.outcome not in OUTCOMES:
        raise ValueError(f"{where}: outcome {result.outcome!r} is not one of {', '.join(OUTCOMES)}")
    if result.seed is not None and (isinstance(result.seed, bool) or not isinstance(result.seed, int)):
        raise ValueError(f"{where}: seed {result.seed!r} is not an integer")
    for name in ("values", "params", "figures", "tables"):
        if not isinstance(getattr(result, name), Mapping):
            raise ValueError(f"{where}: {name} must be an object, got {type(getattr(result, name)).__name__}")
    return result


# ----------------------------------------------------------------------------- the report

@dataclass(frozen=True)
class Report:
    """Every claim result of one run, with the run's provenance."""

    results: tuple[ClaimResult, ...]
    profile: str = "unknown"                              # smoke | mini | paper | unknown
    provenance: dict[str, Any] = field(default_factory=dict)
    created: str = ""                                     # ISO time the report was written
    sequential: dict[str, Any] | None = None              # the sequential design's block (reports/sequential.py),
                                                          # written by dtcore claims --until-decided

    def counts(self) -> dict[str, int]:
        return {o: sum(r.outcome == o for r in self.results) for o in OUTCOMES}

    def to_dict(self, headline: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The report as JSON-able data; ``headline``: its answer (``reports.summary.summary``)."""
        data = {"schema": SCHEMA, "profile": self.profile, "created": self.created,
                "provenance": jsonable(self.provenance),
                "results": [jsonable(asdict(r)) for r in self.results]}
        if headline is not None:
            data["headline"] = jsonable(headline)
        if self.sequential is not None:
            data["sequential"] = jsonable(self.sequential)
        return data

    def to_json(self, headline: Mapping[str, Any] | None = None) -> str:
        """JSON text; non-finite floats are written as ``NaN``/``Infinity`` (Python's json)."""
        return json.dumps(self.to_dict(headline), indent=1, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Report:
        """The report of a ``claims.json``; anything not of its schema (not an object, an unknown
        outcome, a seed that is not an integer, values that are not an object, a malformed
        ``sequential`` block) is a ``ValueError`` naming what is wrong."""
        if not isinstance(data, Mapping):
            raise ValueError(f"expected a JSON object with the report's schema, got {type(data).__name__}")
        if data.get("schema") not in READABLE:
            raise ValueError(f"data: expected schema {' or '.join(map(repr, READABLE))}, got {data.get('schema')!r}")
        if not isinstance(data.get("results"), list):
            raise ValueError("data: 'results' must be a list of claim results")
        results = tuple(_result(i, r) for i, r in enumerate(data["results"]))
        block = data.get("sequential")
        if block is not None:
            read_sequential(block)   # a malformed block is refused here, not half drawn
        return cls(results=results, profile=data.get("profile", "unknown"),
                   provenance=dict(data.get("provenance") or {}), created=data.get("created", ""),
                   sequential=None if block is None else dict(block))

    @classmethod
    def from_json(cls, text: str) -> Report:
        return cls.from_dict(json.loads(text))


def section_key(section: str) -> tuple:
    """Natural order of paper sections: "5.2" < "5.10" < "5.6.1"; numbered sections before
    named ones ("Table 1", "App. G.3")."""
    parts = re.split(r"(\d+)", section)
    natural = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts if p not in ("", "."))
    return (0 if section[:1].isdigit() else 1, natural)


def sorted_results(results: Iterable[ClaimResult]) -> list[ClaimResult]:
    return sorted(results, key=lambda r: (section_key(r.section), r.claim_id, r.order, r.nodeid))


def group_by_claim(results: Iterable[ClaimResult]) -> dict[str, list[ClaimResult]]:
    """Claim id -> its results, claims in section order, results in collection order."""
    out: dict[str, list[ClaimResult]] = {}
    for r in sorted_results(results):
        out.setdefault(r.claim_id, []).append(r)
    return out


# ----------------------------------------------------------------------------- the verdict grid

@dataclass(frozen=True)
class Column:
    env: str          # "" when the claim is not parametrized by environment
    seed: int | None  # None: the seed aggregate

    @property
    def label(self) -> str:
        return "agg" if self.seed is None else str(self.seed)


@dataclass(frozen=True)
class GridRow:
    claim_id: str
    section: str
    variant: str
    definition: str | None
    cells: tuple[ClaimResult | None, ...]  # aligned with VerdictGrid.columns


@dataclass(frozen=True)
class VerdictGrid:
    envs: tuple[str, ...]
    columns: tuple[Column, ...]
    sections: tuple[tuple[str, tuple[GridRow, ...]], ...]  # (section, rows) in paper order


def verdict_grid(results: Iterable[ClaimResult], order: Callable[[str], Any] = section_key) -> VerdictGrid:
    """Rows: one per (claim, variant, definition), grouped by section (sections sorted by
    ``order``, the paper's by default); columns: per environment (in collection order) its seeds
    (ascending), then the seed aggregate if any claim has one."""
    ordered = sorted_results(results)
    envs: list[str] = []
    for r in sorted(ordered, key=lambda r: r.order):
        if (r.env or "") not in envs:
            envs.append(r.env or "")
    columns: list[Column] = []
    for env in envs:
        in_env = [r for r in ordered if (r.env or "") == env]
        columns += [Column(env, s) for s in sorted({r.seed for r in in_env if r.seed is not None})]
        if any(r.is_aggregate for r in in_env):
            columns.append(Column(env, None))
    index = {c: i for i, c in enumerate(columns)}
    rows: dict[tuple, list] = {}
    for r in ordered:
        rk = (r.section, r.claim_id, r.variant, r.definition)
        cells = rows.setdefault(rk, [None] * len(columns))
        cells[index[Column(r.env or "", r.seed)]] = r
    sections: dict[str, list[GridRow]] = {}
    for (section, claim_id, variant, definition), cells in sorted(
            rows.items(), key=lambda kv: (order(kv[0][0]), kv[0][1], kv[0][2],
                                          _DEFINITION_ORDER.get(kv[0][3] or "", 2))):
        sections.setdefault(section, []).append(GridRow(claim_id, section, variant, definition, tuple(cells)))
    return VerdictGrid(tuple(envs), tuple(columns), tuple((s, tuple(rs)) for s, rs in sections.items()))


# ----------------------------------------------------------------------------- definitions

@dataclass(frozen=True)
class Survival:
    """The verdicts of one claim cell under each definition it was measured with."""

    claim_id: str
    variant: str
    env: str
    seed: int | None
    outcomes: tuple[tuple[str, str], ...]  # (definition, outcome), paper first, then as-run, sound

    @property
    def survives(self) -> bool:
        """Every definition gives the same outcome."""
        return len({o for _, o in self.outcomes}) == 1

    def outcome(self, definition: str) -> str | None:
        return dict(self.outcomes).get(definition)


def survival(results: Iterable[ClaimResult]) -> list[Survival]:
    """For every (claim, variant, env, seed) measured under the paper's definition and at least one
    other, whether the verdict survives the change of definition (all outcomes equal)."""
    by_def: dict[tuple, dict[str, ClaimResult]] = {}
    for r in sorted_results(results):
        if r.definition:
            by_def.setdefault((r.claim_id, r.variant, r.env or "", r.seed), {})[r.definition] = r
    out = []
    for (claim_id, variant, env, seed), d in by_def.items():
        if "paper" in d and len(d) > 1:
            defs = sorted(d, key=lambda k: (_DEFINITION_ORDER.get(k, 9), k))
            out.append(Survival(claim_id, variant, env, seed, tuple((k, d[k].outcome) for k in defs)))
    return out


# ----------------------------------------------------------------------------- comparison

@dataclass(frozen=True)
class Difference:
    claim_id: str
    variant: str
    env: str
    seed: str        # a seed, or "agg"
    definition: str
    a: str           # outcome in the first report, or "absent"
    b: str           # outcome in the second report, or "absent"


def compare(a: Report, b: Report, *, common_only: bool = False) -> list[Difference]:
    """The claim cells whose verdicts differ between two reports, in section order. A cell present
    in only one report differs (its other side is "absent") unless ``common_only``."""
    ra = {r.key: r for r in a.results}
    rb = {r.key: r for r in b.results}
    keys = sorted(set(ra) | set(rb), key=lambda k: (section_key((ra.get(k) or rb[k]).section), k))
    out = []
    for k in keys:
        oa = ra[k].outcome if k in ra else "absent"
        ob = rb[k].outcome if k in rb else "absent"
        if oa == ob or (common_only and "absent" in (oa, ob)):
            continue
        out.append(Difference(*k, a=oa, b=ob))
    return out


@dataclass(frozen=True)
class ValueDifference:
    """A recorded number that differs between two reports, in a cell both have."""

    key: tuple[str, str, str, str, str]   # ClaimResult.key: (claim, variant, env, seed, definition)
    name: str                             # the recorded name, e.g. "value", "ci_low", "p_value"
    a: Any
    b: Any


def _same(x: Any, y: Any) -> bool:
    """Equal as recorded numbers: floats within a relative 1e-9 (nan equals nan), lists element-wise."""
    if isinstance(x, list) and isinstance(y, list):
        return len(x) == len(y) and all(_same(u, v) for u, v in zip(x, y))
    if isinstance(x, dict) and isinstance(y, dict):
        return x.keys() == y.keys() and all(_same(x[k], y[k]) for k in x)
    if isinstance(x, (int, float)) and isinstance(y, (int, float)) and not isinstance(x, bool):
        if math.isnan(x) and math.isnan(y):
            return True
        return math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12)
    return x == y


def compare_values(a: Report, b: Report) -> list[ValueDifference]:
    """The measured values (``ClaimResult.measured``) that differ between the cells both reports
    have, or that one of them lacks, in section order."""
    ra = {r.key: r for r in a.results}
    rb = {r.key: r for r in b.results}
    out = []
    for k in sorted(set(ra) & set(rb), key=lambda k: (section_key(ra[k].section), k)):
        ma, mb = ra[k].measured(), rb[k].measured()
        for name in sorted(set(ma) | set(mb)):
            va, vb = ma.get(name, "absent"), mb.get(name, "absent")
            if not _same(va, vb):
                out.append(ValueDifference(k, name, va, vb))
    return out


def format_number(value: Any) -> str:
    """A recorded value for display: 4 significant digits for floats, lists shortened."""
    if isinstance(value, bool) or value is None:
        return "—" if value is None else str(value)
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    if isinstance(value, list):
        shown = ", ".join(format_number(v) for v in value[:8])
        return f"[{shown}{', …' if len(value) > 8 else ''}]"
    return str(value)
