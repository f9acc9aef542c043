"""The sequential design on the report page (issue #31; docs/statistics.md, "Sequential design"):
the ``sequential`` block that ``dtcore claims --until-decided`` writes into ``claims.json``
(:func:`dtcore.sequential.report_block`), read as plain data for the page's "Sequential design"
section and for the mark beside each headline verdict.

The block: ``design`` (``looks`` (seeds per look), ``alpha``, ``spending``, and per look the
nominal two-sided ``levels``, the ``critical_t`` and the cumulative error ``spent``),
``budget_hours``, ``spent_hours``, ``looks_done``, ``history`` (per closed look: ``look`` (from 1),
``seeds``, ``hours``, the members ``decided`` there) and ``claims`` (``"claim_id|env"`` ->
``status, outcome, look`` (from 1) ``, seeds, repeated_p, error_spent, reason``; env "" for a
claim across environments).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from dtcore.sequential import DESELECTED, STOPS

# The members' order in the section: decided first, then each way to stop, open, never run.
STATUS_ORDER = {s: i for i, s in enumerate(STOPS + ("open", DESELECTED))}


@dataclass(frozen=True)
class Member:
    """One claim x environment of the design's family."""

    claim_id: str
    env: str                   # "" for a claim across environments
    status: str                # "decided", a stop (futility, floor, max seeds, capped, budget), open, deselected
    outcome: str               # its raw outcome at its last look
    look: int | None           # 1-based look that decided or stopped it
    seeds: int                 # seeds of its last observation
    repeated_p: float          # its repeated p-value over its looks
    error_spent: float | None  # the design's error spent by the look that decided it
    reason: str                # why it stopped ("" when decided)

    @property
    def mark(self) -> str:
        """The line beside its headline verdict: "decided at look 2 (5 seeds), error spent 0.0195",
        "stopped at look 1 (3 seeds): futility — about 24 seeds would decide it ..."."""
        at = "" if self.look is None else f" at look {self.look}" + (f" ({self.seeds} seeds)" if self.seeds else "")
        if self.status == "decided":
            spent = f", error spent {self.error_spent:.3g}" if self.error_spent is not None else ""
            return f"decided{at}{spent}"
        if self.status == "open":
            return "open: the procedure has not finished"
        if self.status == DESELECTED:
            return f"not run: {self.reason}"
        return f"stopped{at}: {self.status}" + (f" — {self.reason}" if self.reason else "")


@dataclass(frozen=True)
class Look:
    """One look of the design, closed or not."""

    number: int                # 1-based
    seeds: int
    level: float               # two-sided nominal p its t test must reach
    critical_t: float          # the |t| it must reach
    spent: float               # cumulative error spent by it
    hours: float | None        # CPU hours of its round; None when it was not reached
    decided: tuple[Member, ...]   # the members decided at it
    stopped: tuple[Member, ...]   # the members stopped at it


@dataclass(frozen=True)
class Sequential:
    """The ``sequential`` block of a report, read."""

    alpha: float
    spending: str
    budget_hours: float | None
    spent_hours: float
    looks_done: int
    looks: tuple[Look, ...]
    members: tuple[Member, ...]        # in STATUS_ORDER, then look, claim and env
    registered: str = ""               # when the plan was registered, before round one ("" unknown)
    commit: str = ""                   # the commit it was registered at

    def member(self, claim_id: str, env: str | None) -> Member | None:
        return next((m for m in self.members if m.claim_id == claim_id and m.env == (env or "")), None)

    def mark(self, claim_id: str, env: str | None) -> str:
        """The member's :attr:`Member.mark`, "" for a row outside the design's family."""
        m = self.member(claim_id, env)
        return m.mark if m is not None else ""

    def counts(self) -> dict[str, int]:
        """Members per status, in :data:`STATUS_ORDER` (statuses no member has left out)."""
        out = {s: sum(m.status == s for m in self.members) for s in STATUS_ORDER}
        return {s: n for s, n in out.items() if n}


def _member(key: str, data: Mapping[str, Any]) -> Member:
    claim_id, sep, env = key.partition("|")
    if not sep:
        raise ValueError(f"sequential: claim key {key!r} is not 'claim_id|env'")
    look = data.get("look")
    spent = data.get("error_spent")
    return Member(claim_id, env, str(data["status"]), str(data.get("outcome") or ""),
                  None if look is None else int(look), int(data.get("seeds") or 0),
                  float(data.get("repeated_p", 1.0)), None if spent is None else float(spent),
                  str(data.get("reason") or ""))


def read(block: Mapping[str, Any]) -> Sequential:
    """The block of ``claims.json`` as :class:`Sequential`; a block without its design, its claims
    or with a member whose key is not ``claim_id|env`` is a ``ValueError`` naming what is wrong."""
    if not isinstance(block, Mapping):
        raise ValueError(f"sequential: expected an object, got {type(block).__name__}")
    try:
        design, claims = block["design"], block["claims"]
        members = sorted((_member(k, v) for k, v in claims.items()),
                         key=lambda m: (STATUS_ORDER.get(m.status, len(STATUS_ORDER)), m.look or 0, m.claim_id, m.env))
        hours = {int(h["look"]): float(h["hours"]) for h in block.get("history") or ()}
        looks = tuple(Look(k + 1, int(n), float(design["levels"][k]), float(design["critical_t"][k]),
                           float(design["spent"][k]), hours.get(k + 1),
                           tuple(m for m in members if m.look == k + 1 and m.status == "decided"),
                           tuple(m for m in members if m.look == k + 1 and m.status in STOPS[1:]))
                      for k, n in enumerate(design["looks"]))
        budget = block.get("budget_hours")
        plan = block.get("plan") or {}
        return Sequential(float(design["alpha"]), str(design["spending"]), None if budget is None else float(budget),
                          float(block.get("spent_hours") or 0.0), int(block.get("looks_done") or 0), looks,
                          tuple(members), str(plan.get("registered") or ""), str(plan.get("commit") or ""))
    except (KeyError, IndexError, TypeError, AttributeError) as err:
        raise ValueError(f"sequential: malformed block ({type(err).__name__}: {err})") from None


def tally(members: tuple[Member, ...], attr: str) -> str:
    """"2 holds, 1 contradicted" of ``members``' ``attr`` ("outcome" or "status"), in order of first
    appearance."""
    counts: dict[str, int] = {}
    for m in members:
        counts[getattr(m, attr)] = counts.get(getattr(m, attr), 0) + 1
    return ", ".join(f"{n} {what}" for what, n in counts.items())
