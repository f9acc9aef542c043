"""Registered criteria (issue #30, point 7; science review 2026-12-05, F11 and §6-7): every claim's
criterion, every profile's seed lists and the multiplicity correction are fingerprinted, and
``claims/registry.json`` records for each fingerprint when it was registered and at which commit
it was already in force. The report marks each verdict "registered before the data" or
"registered after the data" (:func:`mark`) from the runs that decide it.

**What a fingerprint covers** (:func:`criterion_data`): a claim's direction, threshold (a float;
a callable threshold by the sha256 of its source, ``inspect.getsource``), basis, definitions,
exceptions (an int, or a callable's source), aggregate, seeds_from, units and no_units, scope,
the source of its pooled interval and of its statistic function (``claim.compute``: a changed
statistic is a changed criterion), and the optional fields :data:`OPTIONAL` (``sesoi``,
``paper_rate``, ``log_scale``, ``skew``) where a claim sets them (a field added with the default ``None``
or ``False`` changes no fingerprint). Claims declared twice under one id (two definitions) share one entry, over both
declarations in declaration order. A profile's entry covers ``seeds``, ``noclip_seeds`` and the fine-tuning
length (``train.epochs``, ``k1_epochs``: issue #32 fixes it from learning curves, before the runs); the
policy entry the correction (:data:`CORRECTION`). The fingerprint is the sha256 of canonical JSON
(sorted keys, no spaces, floats by ``repr``): no ``id()`` or memory address enters it, so it is
the same in every process. Not covered: helpers a statistic calls (``dtcore.measures``, ...) and
the decision rules of ``dtcore.verdicts``, which are code under test, not a claim's criterion.

**How the initial entries were dated** (2026-12-06, from git history; ``docs/statistics.md``,
"Registered criteria"): for every claim id, the direction and threshold expression were read out
of each commit that touched ``claims/`` (the ``Criterion(...)`` of the old test files and the
``Claim(...)`` declarations that replaced them in 6acb658: a move, so ``git log -S`` on the
threshold expression and the id, not ``git blame`` of the current lines, which stops at the
move), and the commits that changed a claim's statistic or decision rule were read by hand
(``git show <c> -- claims/``). The entry's commit is the earliest commit from which the current
criterion has been in force unchanged, its date that commit's committer date:

- 9795b91 (2026-11-27 11:37 UTC): the Student-t / TOST seed aggregates, half-sample per-seed
  intervals and the restated thresholds; every criterion present then whose direction and
  threshold are unchanged since (later commits only moved or refactored its code: 490a334,
  36771d9, 556ec0c, c0acb19, 6acb658, eafc3b3, 0838cdc).
- b51409b: the MINE noise floor gained the null comparison (the §5.2 MINE claims).
- 3c99cb3: App. E.3 and H.2 claims first declared.
- 5cad2aa: "every component" claims decided component by component (exceptions).
- 639164d: discrete per-seed statistics decided by the sign test (``aggregate="sign"``).
- d52cd96 (2026-12-06 04:10 UTC): the profiles' default seeds and the correction.
- The mini fine-tuning length (18 epochs, K=1 the same) and the score claims' ``sound`` definition
  (the mean of the last 5 checkpoints on fresh episodes), registered on 2026-12-06 before any
  run at that length was built (docs/profiles.md, "Converged before compared").

Two thresholds restated in 9795b91 after verdicts under the old thresholds were public (the
LayerNorm share's top-k rule, the cross-model CKA's within-model median; F11) carry
``after_data`` with that reason: every verdict they decide is marked registered after the data.
So do the three claims that gained a smallest effect of interest in issue #30 (the §5.3 cosine's
and §5.6.2's as-run declarations) after verdicts of theirs under an older recipe were public, and
the seven whose per-seed shape was declared in issue #30 point 5 (a ``skew``, or the median seed
by the sign test where Random Init K=1 has a second mode; docs/statistics.md, "Skewed seeds and a
second mode").

``python -m dtcore registry`` checks the file against the code; ``--update`` re-registers the
changed and new entries at now and HEAD, leaving unchanged entries as they are.
"""

from __future__ import annotations

import datetime
import hashlib
import inspect
import json
import textwrap
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterable, Mapping, Sequence

from dtcore import sequential
from dtcore.claim import Claim
from dtcore.policy import ALPHA

REGISTRY = Path("claims") / "registry.json"    # relative to the repository root
BEFORE, AFTER = "registered before the data", "registered after the data"
# The correction the headline's corrected verdict applies (docs/statistics.md, "The correction").
CORRECTION = {"primary": "benjamini-hochberg", "alpha": ALPHA, "beside": "holm"}
# The sequential design of ``claims --until-decided`` (docs/statistics.md, "Sequential design"):
# its looks, spending function, t calibration, correction and futility rule.
SEQUENTIAL = {"looks": list(sequential.BASE_LOOKS), "beyond": "x 4/3 up to --max-seeds", "alpha": ALPHA,
              "spending": sequential.Design.spending, "calibration": {
                  "levels": list(sequential.CALIBRATION_LEVELS), "reps": sequential.CALIBRATION_REPS,
                  "seed": sequential.CALIBRATION_SEED},
              "correction": "benjamini-hochberg over the repeated p-values, at every look",
              "futility": "what_would_decide at the last look's level: a floor, or more seeds than the last look",
              "rule p-values": "each rule's own p on the boundaries' two-sided scale: TOST's one-sided p of a "
                               "difference beyond the margin doubled (sequential.boundary_p)"}
# Claim fields the criterion includes where a claim sets them (not None, not False): the smallest
# effect of interest, the paper's rate of a rate claim, a ratio decided on the log scale, the side
# the per-seed values are declared skewed to.
OPTIONAL = ("sesoi", "paper_rate", "log_scale", "skew")


@dataclass(frozen=True)
class Entry:
    """One registered criterion: its fingerprint, when and at which commit it was in force."""

    fingerprint: str
    registered: str                    # ISO date-time (UTC) the criterion was fixed
    commit: str                        # the git commit at which this criterion was already in force
    note: str = ""                     # how the date was found, or what changed
    after_data: str | None = None      # why it counts as fixed after the data that decide it

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class Difference:
    """An entry whose fingerprint differs from the code's, a new criterion, or a removed one."""

    key: str
    kind: str                          # "changed" | "new" | "gone"


# ----------------------------------------------------------------------------- fingerprints

def source_hash(fn: Callable) -> str:
    """sha256 of a function's dedented source (a lambda: the lines that hold it); a function
    without source on disk (made by ``exec``) by its qualified name and bytecode."""
    try:
        text = textwrap.dedent(inspect.getsource(fn)).encode()
    except (OSError, TypeError):
        code = getattr(fn, "__code__", None)
        text = f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', '')}".encode() \
            + (code.co_code if code is not None else b"")
    return hashlib.sha256(text).hexdigest()


def _value_or_source(value: Any) -> Any:
    return {"source_sha256": source_hash(value)} if callable(value) else value


def criterion_data(claim: Claim) -> dict[str, Any]:
    """What a claim's fingerprint covers (module docstring), as JSON-able data."""
    data = {"direction": claim.direction, "threshold": _value_or_source(claim.threshold),
            "basis": claim.basis, "definitions": list(claim.definitions),
            "exceptions": _value_or_source(claim.exceptions), "aggregate": claim.aggregate,
            "seeds_from": claim.seeds_from, "units": claim.units, "no_units": claim.no_units,
            "scope": claim.scope, "pooled": _value_or_source(claim.pooled),
            "statistic": _value_or_source(claim.compute)}
    data.update({name: _value_or_source(getattr(claim, name)) for name in OPTIONAL
                 if getattr(claim, name, None) not in (None, False)})
    return data


def fingerprint(data: Any) -> str:
    """sha256 of ``data`` as canonical JSON (sorted keys, no whitespace)."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def profile_data(profile: Any) -> dict[str, Any]:
    return {"seeds": list(profile.seeds), "noclip_seeds": list(profile.noclip_seeds),
            "epochs": profile.train.epochs, "k1_epochs": profile.k1_epochs}


def declared(modules: Iterable[ModuleType]) -> list[Claim]:
    """The claims declared in ``modules`` (claim files), in declaration order."""
    return [v for m in modules for v in vars(m).values() if isinstance(v, Claim)]


def claim_fingerprints(claims: Sequence[Claim]) -> dict[str, str]:
    """Claim id -> fingerprint over its declarations (one, or two for a claim declared per
    definition), in declaration order."""
    by_id: dict[str, list[dict[str, Any]]] = {}
    for claim in claims:
        by_id.setdefault(claim.id, []).append(criterion_data(claim))
    return {cid: fingerprint(parts[0] if len(parts) == 1 else parts) for cid, parts in by_id.items()}


def current(claims: Sequence[Claim], profiles: Mapping[str, Any]) -> dict[str, str]:
    """Every registry key -> the code's fingerprint: claim ids, ``profile:<name>``, ``policy:correction``, ``policy:sequential``."""
    out = claim_fingerprints(claims)
    out.update({f"profile:{name}": fingerprint(profile_data(p)) for name, p in sorted(profiles.items())})
    out["policy:correction"] = fingerprint(CORRECTION)
    out["policy:sequential"] = fingerprint(SEQUENTIAL)
    return out


# ----------------------------------------------------------------------------- the file

def parse(text: str) -> dict[str, Entry]:
    return {key: Entry(**value) for key, value in json.loads(text).items()}


def load(path: Path) -> dict[str, Entry]:
    """The registry file (an empty registry when there is none)."""
    return parse(path.read_text()) if path.exists() else {}


def dump(entries: Mapping[str, Entry]) -> str:
    return json.dumps({k: entries[k].to_json() for k in sorted(entries)}, indent=1, sort_keys=True) + "\n"


def differences(entries: Mapping[str, Entry], code: Mapping[str, str]) -> list[Difference]:
    """The keys whose registered fingerprint differs from the code's, new keys and removed ones."""
    out = [Difference(k, "new" if k not in entries else "changed") for k in sorted(code)
           if k not in entries or entries[k].fingerprint != code[k]]
    return out + [Difference(k, "gone") for k in sorted(entries) if k not in code]


def updated(entries: Mapping[str, Entry], code: Mapping[str, str], *, now: str, commit: str) -> dict[str, Entry]:
    """The registry with changed and new criteria registered at ``now`` and ``commit``; unchanged
    entries are kept as they are, removed ones dropped."""
    out = {}
    for key, fp in code.items():
        old = entries.get(key)
        if old is not None and old.fingerprint == fp:
            out[key] = old
        else:
            note = "changed criterion" if old is not None else "new criterion"
            out[key] = Entry(fp, now, commit, f"{note}, registered by python -m dtcore registry --update")
    return out


def entry_for(entries: Mapping[str, Entry], key: str, fp: str) -> Entry | None:
    """The registered entry of ``key`` when it registers the fingerprint ``fp``, else None."""
    entry = entries.get(key)
    return entry if entry is not None and entry.fingerprint == fp else None


# ----------------------------------------------------------------------------- before / after

def timestamp(text: str) -> datetime.datetime:
    """An ISO date-time (``+0000`` or ``+00:00`` offsets); a time without an offset is UTC."""
    t = datetime.datetime.fromisoformat(text)
    return t if t.tzinfo is not None else t.replace(tzinfo=datetime.timezone.utc)


def mark(entry: Entry | Mapping[str, Any], run_finished_times: Iterable[str]) -> str:
    """"registered after the data" when the criterion was registered later than the earliest
    ``finished_at`` of the runs that decide it, or when the entry says ``after_data``; else
    "registered before the data" (also when no run decides it yet)."""
    data = entry.to_json() if isinstance(entry, Entry) else entry
    if data.get("after_data"):
        return AFTER
    times = [timestamp(t) for t in run_finished_times]
    return AFTER if times and timestamp(data["registered"]) > min(times) else BEFORE
