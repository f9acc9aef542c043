"""The answer of a report as plain data, for ``claims.json`` (``"headline"``): one verdict per
claim and environment, raw, after Benjamini-Hochberg (primary) and after Holm, with the value, interval and rule that decided it and
what would decide an undecided one; the premise per environment; the correction's family. A script
reads the answer from the JSON without importing ``reports`` (schema ``dtclaims-report/2``,
``docs/report.md``); :func:`summary` computes it from the same headline the page and the terminal
render, so the three agree."""

from __future__ import annotations

from typing import Any

from reports.headline import Headline, HeadlineRow, tally_text
from reports.premise import Premise


# What dtcore.deciding.what_would_decide reads of a variant's recorded values (the sequential
# design's futility rule reads them back from claims.json, dtcore.sequential_plan.observations).
DECIDING_KEYS = ("method", "n", "value", "sd", "threshold", "direction", "noise_floor", "sesoi", "components",
                 "exceptions", "confidence", "per_env", "min_n")


def _row(headline: Headline, row: HeadlineRow) -> dict[str, Any]:
    shown = row.shown
    return {
        "claim_id": row.claim_id, "env": row.env, "finding": row.finding, "section": row.section,
        "sentence": row.sentence, "statistic": row.statistic, "definition": row.definition,
        "outcome": row.outcome, "corrected": row.corrected, "holm_outcome": row.holm_outcome,
        "p_value": row.p_value, "p_bh": row.p_bh, "p_holm": row.p_holm,
        "value": shown.value if shown else None, "ci_low": shown.ci_low if shown else None,
        "ci_high": shown.ci_high if shown else None, "confidence": shown.confidence if shown else None,
        "method": shown.method if shown else "", "variant": shown.variant if shown else "",
        "variants": len(row.variants), "n": row.n, "seeds_needed": row.seeds_needed,
        "decide": headline.decide_text(row), "note": row.note, "registered": row.registered,
        "aggregates": [{k: v.values.get(k) for k in DECIDING_KEYS if k in v.values} for v in row.variants]}


def _premise(premise: Premise) -> dict[str, Any]:
    return {"env": premise.env, "corrected": premise.outcome, "outcome": premise.raw,
            "holm_outcome": premise.holm_outcome, "sentence": premise.sentence,
            "parts": [{"claim_id": p.claim_id, "label": p.label, "corrected": p.outcome, "outcome": p.raw,
                       "holm_outcome": p.holm_outcome} for p in premise.parts]}


def summary(headline: Headline, premises: tuple[Premise, ...]) -> dict[str, Any]:
    """``{"tally", "tally_bh", "tally_holm", "text", "family_size", "premise": [...], "rows": [...]}``:
    ``outcome`` is the raw verdict, ``corrected`` the Benjamini-Hochberg one (primary)."""
    return {"tally": headline.tally(), "tally_bh": headline.tally("bh"), "tally_holm": headline.tally("holm"),
            "text": tally_text(headline), "family_size": headline.family_size,
            "premise": [_premise(p) for p in premises], "rows": [_row(headline, r) for r in headline.rows]}
