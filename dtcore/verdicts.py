"""The protocol between the claim tests and the report: the outcomes a claim test can have, the
two exceptions that signal the non-binary ones, and the keys a claim records.

- ``holds``: the test passed;
- ``contradicted``: it failed with an ``AssertionError`` (the evidence is on the other side);
- ``inconclusive``: it raised :class:`Inconclusive` (the interval straddles the threshold, too
  few seeds, or the difference lies inside the estimator's noise floor);
- ``descriptive``: it raised :class:`Descriptive`: a per-seed statistic with no sampling units
  inside the run (e.g. a parameter distance between two checkpoints) is shown, never counted;
- ``error``: any other exception (a broken run or analysis, never a verdict);
- ``skipped``: not run (e.g. a claim whose bodies were not selected).

Both ``claims`` and ``reports`` import this module; neither imports the other.
"""

from __future__ import annotations

OUTCOMES = ("holds", "contradicted", "inconclusive", "descriptive", "error", "skipped")
VERDICTS = ("holds", "contradicted", "inconclusive")   # the outcomes that are verdicts

# What a claim test records with ``record_property`` (the report reads these names).
RECORD_KEYS = (
    "claim_id", "statistic", "direction", "threshold", "paper_value", "criterion", "definition",
    "value",          # the statistic: per-seed value, or the mean over seeds
    "ci_low", "ci_high", "confidence",  # its interval and level
    "method",         # "student-t" | "tost" | "half-sample" | "descriptive"
    "n",              # seeds (aggregate) or 1 (per-seed cell)
    "units", "n_units",  # per-seed cells: what the sampling units are and how many
    "per_seed", "sd",  # aggregates: the per-seed values and their standard deviation
    "per_env",        # across-environment aggregates (IQM): the runs' values by environment
    "iqm_gpt2", "iqm_random",  # the probability-of-improvement claim: each body's IQM beside it
    "p_value",        # aggregates: two-sided p of "mean == threshold" (TOST: p of equivalence)
    "seeds_needed",   # aggregates: seeds for 80 % power at the observed effect and spread
    "noise_floor",    # the spread of the estimator's null, where the claim has one
)


class Inconclusive(Exception):
    """The measured evidence cannot decide the claim (reported as its own outcome)."""


class Descriptive(Exception):
    """A per-seed statistic without sampling units: shown in the report, not counted as a verdict."""
