"""Registered criteria (``dtcore.registry``, issue #30 point 7): every declared claim, profile and
the correction match ``claims/registry.json``; a changed criterion is caught and named; the
fingerprints are the same in every process; a verdict is marked registered before or after the
data from its runs' ``finished_at``; the headline row carries the mark into ``claims.json``."""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dtcore import registry
from dtcore.profiles import PROFILES
from reports.headline import build_headline
from reports.model import ClaimResult, Report

ROOT = Path(__file__).resolve().parent.parent
MODULES = [importlib.import_module(f"claims.{p.stem}") for p in sorted((ROOT / "claims").glob("test_*.py"))]
CLAIMS = registry.declared(MODULES)
CODE = registry.current(CLAIMS, PROFILES)
ENTRIES = registry.load(ROOT / registry.REGISTRY)
FIX = "python -m dtcore registry --update"


@pytest.mark.parametrize("key", sorted(CODE))
def test_every_criterion_matches_its_registry_entry(key):
    assert key in ENTRIES, f"{key} is not registered: run `{FIX}` before any run decides it"
    assert ENTRIES[key].fingerprint == CODE[key], (
        f"{key}: its criterion differs from the one registered {ENTRIES[key].registered} at "
        f"{ENTRIES[key].commit[:7]}; register the change with `{FIX}` (it is then marked against the runs "
        f"after that date)")


def test_the_registry_holds_no_criterion_the_code_lost():
    assert not [d for d in registry.differences(ENTRIES, CODE) if d.kind == "gone"]


def test_a_changed_threshold_is_a_changed_criterion_named_by_its_claim():
    claim = next(c for c in CLAIMS if c.id == "table1.gpt2_beats_random_on_hopper")
    moved = dataclasses.replace(claim, threshold=1.0)
    code = registry.current([moved if c is claim else c for c in CLAIMS], PROFILES)
    assert registry.differences(ENTRIES, code) == [registry.Difference(claim.id, "changed")]


def test_a_changed_statistic_or_seed_list_is_a_changed_criterion():
    claim = CLAIMS[0]
    other = dataclasses.replace(claim, compute=CLAIMS[-1].compute)
    assert registry.criterion_data(other) != registry.criterion_data(claim)
    mini = dataclasses.replace(PROFILES["mini"], seeds=(0, 1, 2))
    assert registry.current(CLAIMS, {**PROFILES, "mini": mini})["profile:mini"] != CODE["profile:mini"]


def test_an_optional_field_counts_only_where_a_claim_sets_it():
    claim = CLAIMS[0]
    assert "sesoi" not in registry.criterion_data(claim)
    with_sesoi = dataclasses.replace(claim)
    with_sesoi.sesoi = 2.5
    assert registry.criterion_data(with_sesoi)["sesoi"] == 2.5


def test_fingerprints_are_the_same_in_another_process():
    script = ("import importlib, json, pathlib; from dtcore import registry; from dtcore.profiles import PROFILES; "
              "mods = [importlib.import_module('claims.' + p.stem) for p in sorted(pathlib.Path('claims').glob('test_*.py'))]; "
              "print(json.dumps(registry.current(registry.declared(mods), PROFILES)))")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                         check=True).stdout
    assert json.loads(out) == CODE


def test_update_registers_changed_and_new_entries_and_keeps_the_rest():
    code = {**CODE, "table1.igpt_catastrophic": "0" * 64, "new.claim": "1" * 64}
    new = registry.updated(ENTRIES, code, now="2027-01-01T00:00:00+00:00", commit="abc")
    assert new["table1.igpt_catastrophic"].registered == "2027-01-01T00:00:00+00:00"
    assert new["new.claim"].commit == "abc"
    assert all(new[k] == ENTRIES[k] for k in ENTRIES if k not in code or code[k] == CODE[k])
    assert registry.parse(registry.dump(new)) == new


SESOI_AFTER_DATA = ("sec5_3.pretrained_change_parameters_less", "sec5_6_2.random_attention_moves_more",
                    "sec5_6_2.gpt2_attention_hardly_moves")
# A per-seed shape declared in issue #30 point 5: a skew, or the median seed under a second mode.
SHAPE_AFTER_DATA = ("table1.igpt_catastrophic", "appG3.igpt_without_clipping_still_catastrophic",
                    "sec5_4.igpt_gradient_norms_collapse_to_clip", "sec5_4.pretrained_larger_gradient_confusion",
                    "sec5_5.gpt2_learns_faster_than_random_without_context",
                    "sec5_5.random_init_fails_without_context_on_hopper",
                    "table2.random_init_learns_without_context_off_hopper")


def test_the_restated_thresholds_are_registered_after_the_data_and_the_seeds_and_lengths_before_it():
    for cid in ("sec5_1.random_similar_layers_are_layernorms", "sec5_1.cross_model_cka_low"):
        assert "F11" in ENTRIES[cid].after_data
    for cid in SESOI_AFTER_DATA:   # a smallest effect of interest added after verdicts were public (#30)
        assert "smallest effect of interest" in ENTRIES[cid].after_data
        assert any(c.sesoi is not None for c in CLAIMS if c.id == cid)
    assert ENTRIES["policy:correction"].commit.startswith("d52cd96")
    for key in ("profile:mini", "profile:paper"):   # the seeds (d52cd96), then the fine-tuning length (#32)
        assert registry.timestamp(ENTRIES[key].registered) >= registry.timestamp("2026-12-06T06:48:00+00:00")
    for cid in SHAPE_AFTER_DATA:   # a skew or the median seed declared after verdicts were public (#30)
        assert "per-seed shape" in ENTRIES[cid].after_data
        assert any(c.skew is not None or c.aggregate == "sign" for c in CLAIMS if c.id == cid)
    assert sum(e.after_data is not None for e in ENTRIES.values()) == 2 + len(SESOI_AFTER_DATA) + len(SHAPE_AFTER_DATA)


# ----------------------------------------------------------------------------- the mark

ENTRY = registry.Entry("f" * 64, "2026-12-01T12:00:00+00:00", "c" * 40)


def test_a_criterion_registered_before_every_run_is_registered_before_the_data():
    runs = ["2026-12-02T08:00:00+0000", "2026-12-01T13:00:00+01:00"]   # the second is 12:00 UTC: not earlier
    assert registry.mark(ENTRY, runs) == registry.BEFORE


def test_a_criterion_registered_after_the_earliest_run_is_registered_after_the_data():
    runs = ["2026-12-02T08:00:00+0000", "2026-12-01T11:59:59+0000"]
    assert registry.mark(ENTRY, runs) == registry.AFTER
    assert registry.mark(ENTRY.to_json(), ["2026-11-30T00:00:00"]) == registry.AFTER   # no offset: UTC


def test_an_entry_marked_after_data_is_after_whatever_the_times():
    flagged = dataclasses.replace(ENTRY, after_data="restated after the verdicts were public")
    assert registry.mark(flagged, ["2027-01-01T00:00:00+0000"]) == registry.AFTER


def _result(env: str, seed, registered: dict, runs: list[str]) -> ClaimResult:
    return ClaimResult("table1.igpt_catastrophic", "Table 1", f"n[{env}-{seed}]", env, seed, None, {"env": env},
                       "holds", values={"value": 1.0, "n": 2, "p_value": 0.01, "registered": registered,
                                        "runs": runs})


def test_the_headline_row_marks_its_criterion_against_the_runs_its_cells_used():
    entry = ENTRY.to_json()
    prov = {"run hopper__igpt__seed0__K20__a": {"finished_at": "2026-12-02T00:00:00+0000"},
            "run hopper__igpt__seed1__K20__b": {"finished_at": "2026-12-03T00:00:00+0000"},
            "run walker2d__igpt__seed0__K20__c": {"finished_at": "2026-11-01T00:00:00+0000"}}
    report = Report((_result("hopper", None, entry, ["hopper__igpt__seed0__K20__a", "hopper__igpt__seed1__K20__b"]),
                     _result("walker2d", None, entry, ["walker2d__igpt__seed0__K20__c"])), provenance=prov)
    rows = {r.env: r.registered for r in build_headline(report).rows}
    assert rows["hopper"] == {"mark": registry.BEFORE, "registered": ENTRY.registered, "commit": ENTRY.commit,
                              "after_data": None, "first_run": "2026-12-02T00:00:00+0000"}
    assert rows["walker2d"]["mark"] == registry.AFTER


def test_a_criterion_not_in_the_registry_or_runs_without_times_say_so():
    unregistered = {"fingerprint": "0" * 64, "registered": None}
    report = Report((_result("hopper", None, unregistered, ["hopper__igpt__seed0__K20__a"]),
                     _result("walker2d", None, ENTRY.to_json(), ["walker2d__igpt__seed0__K20__c"])))
    rows = {r.env: r.registered["mark"] for r in build_headline(report).rows}
    assert rows == {"hopper": "not registered", "walker2d": "run times not recorded"}


def test_the_registry_command_finds_the_tree_registered(capsys):
    from dtcore.cli import main

    assert main(["registry"]) == 0
    assert f"0 of {len(CODE)} entries differ from the code" in capsys.readouterr().out


def test_the_page_marks_a_verdict_whose_criterion_was_registered_after_the_data():
    from reports.model import ClaimResult, Report
    from reports.render import render_html

    entry = {"registered": "2026-12-06T04:00:00+00:00", "commit": "abc1234", "fingerprint": "f"}
    values = {"value": 1.0, "ci_low": 0.5, "ci_high": 1.5, "n": 3, "p_value": 0.01, "method": "student-t",
              "statistic": "s", "direction": ">", "threshold": 0.0, "registered": entry, "runs": ["hopper__gpt2__seed0__K20__a"]}
    result = ClaimResult(nodeid="claims/test_x.py::sec5_3.c[hopper]", claim_id="sec5_3.c", section="5.3",
                         env="hopper", seed=None, definition=None, params={"env": "hopper"}, outcome="holds",
                         values=values)
    early = {"run hopper__gpt2__seed0__K20__a": {"finished_at": "2026-12-05T03:00:00+0000"}}
    html = render_html(Report((result,), provenance=early))
    assert 'data-mark="registered after the data"' in html and "after-data" in html
    late = {"run hopper__gpt2__seed0__K20__a": {"finished_at": "2026-12-06T05:00:00+0000"}}
    assert 'data-mark="registered before the data"' in render_html(Report((result,), provenance=late))
