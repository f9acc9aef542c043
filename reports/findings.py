"""The paper's findings, as the report groups its claims: Table 1 and the seven numbered findings
of Takagi (NeurIPS 2022)'s poster, each with its sentence and the sections that test it.

A claim's section (``dtcore.verdicts.section_of``: "Table 1", "5.1", ..., "5.6.2", "App. G.3")
maps to one finding: §5.1-§5.5 to findings 1-5, §5.6.1 and §5.6.2 to findings 6 and 7; of the
appendices, D (activation similarity) to 1, E and H (mutual information) to 2, F (parameter
similarity) to 3, G (gradients) to 4; Tables 2 and 4 (no context, K = 1) to 5. Anything else goes
to "Other".

The mechanism findings 1-7 (:data:`MECHANISM`) explain why language pre-training helps and image
pre-training hurts, so they presuppose Table 1's ordering: the claims that make up that premise are
declared with it (``premise=``), and ``reports/premise.py`` combines them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from reports.model import section_key


@dataclass(frozen=True)
class Finding:
    key: str        # "Table 1", "1" ... "7", "Other": the order of FINDINGS
    label: str      # the heading, e.g. "Finding 4 (§5.4)"
    sentence: str   # the finding as the poster states it


FINDINGS = (
    Finding("Table 1", "Table 1", "Language pre-training helps on hopper and matches random init "
            "elsewhere; image pre-training is catastrophic"),
    Finding("1", "Finding 1 (§5.1)", "Feature reuse may not be the cause: pre-trained models changed "
            "their representations more largely"),
    Finding("2", "Finding 2 (§5.2)", "Better fitting to data may not be the cause: pre-trained models "
            "contain less information of data"),
    Finding("3", "Finding 3 (§5.3)", "Some unchanged parameters may be the cause: pre-trained models "
            "don't change parameters so much"),
    Finding("4", "Finding 4 (§5.4)", "Large gradient with gradient clipping may degrade the performance: "
            "gradient norms of iGPT collapse by gradient clipping"),
    Finding("5", "Finding 5 (§5.5)", "Pre-trained models learn efficiently even without context"),
    Finding("6", "Finding 6 (§5.6.1)", "Even a single pre-trained block improves training efficiency"),
    Finding("7", "Finding 7 (§5.6.2)", "Pre-acquired way to use context is a cause of the success: "
            "attention distance of pre-trained models changes less"),
    Finding("Other", "Other", "Claims of sections outside the seven findings"),
)
BY_KEY = {f.key: f for f in FINDINGS}
ORDER = {f.key: i for i, f in enumerate(FINDINGS)}

# Section -> finding key; a numbered section also maps its subsections ("5.1.2" -> "1").
_NUMBERED = (("5.6.1", "6"), ("5.6.2", "7"), ("5.1", "1"), ("5.2", "2"), ("5.3", "3"), ("5.4", "4"),
             ("5.5", "5"))
_TABLES = {"1": "Table 1", "2": "5", "4": "5"}
_APPENDICES = {"D": "1", "E": "2", "H": "2", "F": "3", "G": "4"}


MECHANISM = ("1", "2", "3", "4", "5", "6", "7")   # the finding keys that presuppose the premise


def finding_key(section: str) -> str:
    """The key of the finding a claim of ``section`` belongs to ("Other" when none)."""
    s = section.strip()
    for prefix, key in _NUMBERED:
        if s == prefix or s.startswith(prefix + "."):
            return key
    table = re.fullmatch(r"Table\s*(\d+)", s)
    if table:
        return _TABLES.get(table.group(1), "Other")
    appendix = re.fullmatch(r"App\.?\s*([A-Z])(?:[.\d]*)", s)
    if appendix:
        return _APPENDICES.get(appendix.group(1), "Other")
    return "Other"


def finding_order(section: str) -> tuple:
    """Sort key of a section: its finding's place in FINDINGS, then the paper's section order."""
    return (ORDER[finding_key(section)], section_key(section))
