"""The premise of the mechanism findings: does the run reproduce Table 1's ordering?

Takagi (NeurIPS 2022) explains, in findings 1-7 (§5.1-§5.6.2), *why* language pre-training helps
and image pre-training hurts. Those explanations only make sense where pre-training matters as
Table 1 says, so the report opens with that premise, per environment of the run.

Which claims make up the premise is declared with them (``premise=`` in
``claims/test_table1_returns.py``: on hopper GPT2 above Random Init, elsewhere GPT2 within a few
points of it, everywhere iGPT catastrophic); the plugin records the declared parts
(``dtcore.claim.premise_parts``) in the report's provenance under ``premise``. Each part is its
claim's headline row; the premise reads the corrected verdicts (Benjamini-Hochberg, the primary
ones; the raw and Holm ones are shown beside) and is their conjunction with more outcomes
(:func:`dtcore.policy.premise_outcome`): contradicted if any part is contradicted, else
negligible if a part's effect is shown too small to matter at this scale, else an error if any
errs, else **not tested** if a part has no verdict (the run lacks the row, e.g. ``-k`` left it
out, or only skipped or descriptive cells stand for it) or the environment has no part, else
inconclusive if any part is, else holds. The sentence names only the parts that decide it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from dtcore.policy import NOT_TESTED, premise_outcome
from reports.headline import Headline, HeadlineRow, value_text


def _part_outcome(outcome: str) -> str:
    """A headline outcome as a premise part: no verdict (descriptive, skipped) is "not tested"."""
    return NOT_TESTED if outcome in ("descriptive", "skipped") else outcome


@dataclass(frozen=True)
class PremisePart:
    """One Table 1 claim of a premise, with its headline row (None: not in this run)."""

    claim_id: str
    label: str
    row: HeadlineRow | None

    @property
    def outcome(self) -> str:
        """The part's corrected verdict (Benjamini-Hochberg), the one the premise reads."""
        return NOT_TESTED if self.row is None else _part_outcome(self.row.corrected or self.row.outcome)

    @property
    def raw(self) -> str:
        return NOT_TESTED if self.row is None else _part_outcome(self.row.outcome)

    @property
    def holm_outcome(self) -> str:
        return NOT_TESTED if self.row is None else _part_outcome(self.row.holm_outcome)

    @property
    def value(self) -> str:
        """The mean over seeds with its interval ("" when none was recorded)."""
        shown = self.row.shown if self.row is not None else None
        return value_text(shown) if shown is not None else ""

    @property
    def why(self) -> str:
        """Why a part has no decisive verdict: what is missing, or the seeds that would decide it;
        "" for a decisive part."""
        if self.row is None:
            return "not in this run"
        if self.outcome == NOT_TESTED:
            shown = self.row.shown
            reason = (shown.message.strip().splitlines() or [""])[0] if shown is not None else self.row.note
            return f"{self.row.outcome}{': ' + reason if reason else ''}"
        if self.outcome == "inconclusive":
            return self.row.decide or self.row.note
        return ""

    def brief(self) -> str:
        """"GPT2 above Random Init contradicted", with why an undecided part is undecided."""
        return f"{self.label} {self.outcome}" + (f": {self.why}" if self.why else "")

    def text(self) -> str:
        """"GPT2 above Random Init: contradicted -3.2 [-8.1, 1]", with the raw verdict where the
        correction changed it and why an undecided part is undecided."""
        text = f"{self.label}: {self.outcome}"
        if self.value:
            text += f" {self.value}"
        if self.raw != self.outcome:
            text += f" (raw: {self.raw})"
        return text + (f" ({self.why})" if self.why else "")


@dataclass(frozen=True)
class Premise:
    """The premise on one environment: its parts and their conjunction, corrected (the primary
    verdict), raw and after Holm."""

    env: str
    parts: tuple[PremisePart, ...]   # () when no premise part is declared for env

    @property
    def outcome(self) -> str:
        return premise_outcome([p.outcome for p in self.parts])

    @property
    def raw(self) -> str:
        return premise_outcome([p.raw for p in self.parts])

    @property
    def holm_outcome(self) -> str:
        return premise_outcome([p.holm_outcome for p in self.parts])

    @property
    def label(self) -> str:
        """"contradicted", or "inconclusive (raw: contradicted)" where the correction changes it."""
        if self.raw == self.outcome:
            return self.outcome
        return f"{self.outcome} (raw: {self.raw})"

    @property
    def parts_text(self) -> str:
        """Every part with its verdict, value and interval, separated by "; "."""
        return "; ".join(p.text() for p in self.parts) or f"no claim of the premise is declared for {self.env}"

    @property
    def sentence(self) -> str:
        """What the corrected premise means for the mechanism verdicts, in one plain sentence (two
        where the raw verdict differs)."""
        return premise_sentence(self.env, self.outcome, self.parts) + self._raw_clause()

    def _raw_clause(self) -> str:
        if self.raw == self.outcome:
            return ""
        notes = "; ".join(f"{p.label}: {p.row.note}" for p in self.parts
                          if p.row is not None and p.raw != p.outcome and p.row.note)
        return f" Before the correction the premise read {self.raw}" + (f" ({notes})." if notes else ".")


def premise_sentence(env: str, outcome: str, parts: Sequence[PremisePart]) -> str:
    """The plain sentence of a premise with ``outcome`` on ``env``, naming the parts that decide it."""
    which = "; ".join(p.brief() for p in parts if p.outcome == outcome)
    if outcome == "holds":
        return (f"The run reproduces the paper's premise on {env}: the mechanism findings below are tested "
                f"where pre-training matters as the paper says.")
    if outcome == "contradicted":
        return (f"The run does NOT reproduce the paper's premise on {env} ({which}): the mechanism verdicts "
                f"below are tested where pre-training does not help as in the paper, so they say little "
                f"about the paper's explanation.")
    if outcome == "negligible":
        return (f"On {env} the run shows no meaningful benefit at this scale ({which}): the effect the premise "
                f"needs is smaller than its smallest effect of interest, so the mechanism verdicts below are "
                f"tested where pre-training does not matter as in the paper.")
    if outcome == "inconclusive":
        return f"The premise is undecided on {env} ({which}): read the mechanism verdicts below with that in mind."
    if outcome == "error":
        return (f"The premise could not be decided on {env} ({which}): a Table 1 test errs; fix it before "
                f"reading the mechanism verdicts below against the paper's explanation.")
    if not parts:
        which = f"no claim of the premise is declared for {env}"
    return (f"The premise is not tested on {env} ({which}): the run cannot say whether pre-training matters "
            f"there as the paper says; read the mechanism verdicts below with that in mind.")


def build_premises(headline: Headline) -> tuple[Premise, ...]:
    """The premise on each environment of the run, from its declared parts (``headline.premise``)
    and their headline rows; the across-environments parts join every environment's premise."""
    rows = {(r.claim_id, r.env): r for r in headline.rows}
    across = tuple(PremisePart(c, label, rows.get((c, ""))) for c, label in headline.premise.get("", ())
                   if (c, "") in rows)
    premises = []
    for env in headline.envs:
        own = tuple(PremisePart(c, label, rows.get((c, env))) for c, label in headline.premise.get(env, ()))
        premises.append(Premise(env, own + across if own else ()))
    return tuple(premises)


def mechanism_heading(premises: Sequence[Premise]) -> str:
    """The heading over findings 1-7: "Mechanism findings (premise on hopper: contradicted; on
    walker2d: holds)"."""
    if not premises:
        return "Mechanism findings (premise not tested: no environment in this run)"
    return "Mechanism findings (premise " + "; ".join(f"on {p.env}: {p.label}" for p in premises) + ")"


def premise_line(premise: Premise) -> str:
    """One line per environment: "hopper: inconclusive (raw: contradicted; Holm: inconclusive). PART; PART"."""
    return (f"{premise.env}: {premise.outcome} (raw: {premise.raw}; Holm: {premise.holm_outcome}). "
            f"{premise.parts_text}")
