"""The pytest plugin (fixtures/plugin.py): lazy session fixtures, xdist sharing, summary, --regen.

Each test runs a real pytest subprocess in a pytester folder that holds a copy of the root
conftest (options, ``grid_selection``, plugin registration) and a small plugin that points the
session's RunStore at a synthetic dataset (``STORE_OPTIONS``), so no asset is built.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import dtcore.model  # noqa: F401 - imported before pytester's module snapshot: in-process runs reuse it
import dtcore.train  # noqa: F401
from dtcore.bodies import BODIES
from tests.tiny_runs import write_dataset

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent

TINY_PLUGIN = """
import os
from pathlib import Path

import pytest

from fixtures.plugin import STORE_OPTIONS
from tests.tiny_runs import TINY, slow_profile


def pytest_configure(config):
    steps = int(os.environ.get("TINY_STEPS", "0"))
    config.stash[STORE_OPTIONS] = {
        "profile": slow_profile(steps, epochs=2) if steps else TINY,
        "datasets": {"hopper": Path(os.environ["TINY_DATA"])}, "evaluate": False, "progress": False}
"""

USES_ONE_RUN = """
import os


def test_first_asks_for_the_run(runs):
    run = runs.get("hopper", "random", 0, "K1")
    with open(os.environ["BUILT_LOG"], "a") as f:
        f.write(f"{os.environ.get('PYTEST_XDIST_WORKER', 'main')} {run.built} {run.run_dir.name}\\n")


def test_second_asks_for_the_same_run(runs):
    run = runs.get("hopper", "random", 0, "K1")
    with open(os.environ["BUILT_LOG"], "a") as f:
        f.write(f"{os.environ.get('PYTEST_XDIST_WORKER', 'main')} {run.built} {run.run_dir.name}\\n")
"""


@pytest.fixture
def session_dir(pytester, tmp_path, monkeypatch):
    """A pytester folder with the root conftest, the tiny plugin and its environment."""
    pytester.makeconftest((ROOT / "conftest.py").read_text())
    pytester.makepyfile(tinyplugin=TINY_PLUGIN)
    pytester.syspathinsert()
    monkeypatch.setenv("DTCORE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TINY_DATA", str(write_dataset(tmp_path / "data" / "hopper.pkl")))
    monkeypatch.setenv("BUILT_LOG", str(tmp_path / "built.txt"))
    monkeypatch.setenv("PYTEST_PLUGINS", "tinyplugin")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(pytester.path), str(ROOT)]))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return pytester


def _run(pytester, *args: str, in_process: bool = True):
    """pytest in this process (imports are warm; importlib mode keeps the two conftests apart),
    or in a subprocess (for pytest-xdist, whose workers are processes anyway)."""
    args = ("-p", "no:cacheprovider", "--import-mode=importlib",
            "-W", "ignore::pytest.PytestAssertRewriteWarning",
            "--profile", "smoke", "--envs", "hopper", "--seeds", "0", *args)
    if in_process:
        return pytester.runpytest_inprocess(*args)
    return pytester.runpytest_subprocess(*args, timeout=240)


def _summary(result) -> dict[str, list[str]]:
    text = result.stdout.str()
    out = {}
    for kind in ("trained", "loaded"):
        m = re.search(rf"^{kind} (\d+): (.*)$", text, re.M)
        out[kind] = [] if m is None or m.group(2) == "-" else m.group(2).split(", ")
        assert m is None or int(m.group(1)) == len(out[kind])
    return out


def _run_dirs() -> list[Path]:
    runs = Path(os.environ["DTCORE_CACHE"]) / "runs"
    return [p for p in runs.iterdir() if p.is_dir()] if runs.exists() else []


def _built() -> list[str]:
    return [line.split()[1] for line in Path(os.environ["BUILT_LOG"]).read_text().splitlines()]


def test_collecting_the_claims_with_an_empty_cache_trains_nothing(tmp_path):
    env = {**os.environ, "DTCORE_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-m", "pytest", "claims/", "--collect-only", "-q", "-p",
                          "no:cacheprovider", "--profile", "smoke"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode in (0, 5), res.stdout[-3000:] + res.stderr[-3000:]
    runs = tmp_path / "cache" / "runs"
    assert not runs.exists() or not any(runs.iterdir())


def test_runs_are_built_on_first_use_shared_then_loaded_and_regen_rebuilds(session_dir):
    session_dir.makepyfile(test_uses=USES_ONE_RUN)
    collected = _run(session_dir, "--collect-only", "-q")
    assert collected.ret == 0, collected.stdout.str()
    assert "2 tests collected" in collected.stdout.str() and _run_dirs() == []

    first = _run(session_dir, "-q")
    assert first.ret == 0, first.stdout.str()
    assert "dtclaims: building hopper-seed0-random-K1" in first.stdout.str()
    assert _summary(first) == {"trained": ["hopper-seed0-random-K1"], "loaded": []}
    assert _built() == ["True", "True"] and len(_run_dirs()) == 1   # the second test shared it

    second = _run(session_dir, "-q")
    assert _summary(second) == {"trained": [], "loaded": ["hopper-seed0-random-K1"]}
    regen = _run(session_dir, "-q", "--regen")
    assert regen.ret == 0, regen.stdout.str()
    assert _summary(regen) == {"trained": ["hopper-seed0-random-K1"], "loaded": []}
    assert _built() == ["True", "True", "False", "False", "True", "True"]


def test_two_xdist_workers_asking_for_the_same_run_train_it_once(session_dir, monkeypatch):
    monkeypatch.setenv("TINY_STEPS", "60")  # about a second of training: the workers overlap
    session_dir.makepyfile(test_uses=USES_ONE_RUN)
    result = _run(session_dir, "-n", "2", "-q", in_process=False)
    assert result.ret == 0, result.stdout.str()
    lines = Path(os.environ["BUILT_LOG"]).read_text().splitlines()
    assert {line.split()[0] for line in lines} == {"gw0", "gw1"}, lines
    assert sorted(_built()) == ["False", "True"], lines
    assert len({line.split()[2] for line in lines}) == 1
    # the summary lists each run once: trained here (by one worker) wins over loaded (by the other)
    assert _summary(result) == {"trained": ["hopper-seed0-random-K1"], "loaded": []}
    assert len(_run_dirs()) == 1


def test_the_session_fixtures_follow_the_selection(session_dir):
    session_dir.makepyfile(test_sel="""
        def test_selection(profile, selection, runs, analysis_cache):
            assert profile.name == "smoke" and selection.envs == ("hopper",)
            assert selection.seeds == (0,) and runs.selection == selection
            assert analysis_cache({"k": 1}, lambda: [1, 2], kind="demo") == [1, 2]

    """)
    result = _run(session_dir, "-v")
    assert result.ret == 0, result.stdout.str()
    assert "analyses computed 1, loaded 0" in result.stdout.str()
    assert result.parseoutcomes()["passed"] == 1


SYNTHETIC_CLAIMS = """
import numpy as np

from dtcore import statistics
from dtcore.claim import Claim, Measured, Pooled

BASE = dict(quote="a synthetic finding", source="§5.3", statistic="a synthetic statistic", basis="test",
            sesoi_basis="a synthetic claim: no size")

PER_ENV = Claim("sec5_3.synthetic_gap", **BASE, direction=">", threshold=0.0, units="samples",
                bodies=("random",), variants={"backbone": ("gpt2", "igpt")}, definitions=("paper", "as-run"),
                premise="synthetic part")
STATED_FOR_WALKER = Claim("sec5_3.synthetic_walker", **BASE, direction=">", threshold=0.0, envs=("walker2d",),
                          no_units="a number per run")
NOCLIP = Claim("sec5_3.synthetic_noclip", **BASE, direction=">", threshold=0.0, seeds_from="noclip_seeds",
               per_seed=False)
RATE = Claim("sec5_3.synthetic_rate", **BASE, direction=">", threshold=0.5, aggregate="rate", per_seed=False)
ACROSS = Claim("sec5_3.synthetic_across", **BASE, direction="<", threshold=10.0, scope="all", per_seed=False,
               pooled=lambda by_env: Pooled(statistics.stratified_bootstrap(by_env, statistics.iqm), "bootstrap",
                                            min_n=2, per_env=by_env))


@PER_ENV.measure
def gap(cell):
    value = (1.0 + 0.001 * cell.seed) * (-1 if cell.backbone == "igpt" else 1)   # gpt2 holds, igpt contradicted
    return Measured(value, value + np.linspace(-1e-3, 1e-3, 200), "samples", 100)


@STATED_FOR_WALKER.measure
def walker(cell):
    return 1.0


@NOCLIP.measure
def noclip(cell):
    return 1.0 + 0.01 * cell.seed


@RATE.measure
def yes(cell):
    return True


@ACROSS.measure
def small(cell):
    return 1.0 + cell.seed
"""


def test_a_declared_claim_becomes_per_seed_aggregate_and_across_environment_cells(session_dir, tmp_path):
    """A claim declared in a test file: per-seed and aggregate cells per env x variant x
    definition, with ids that name the claim; envs, seeds_from and the selected bodies narrow it;
    the outcomes and the declared premise reach the report."""
    session_dir.makeini((ROOT / "pytest.ini").read_text())
    session_dir.makepyfile(test_synthetic=SYNTHETIC_CLAIMS)
    report = tmp_path / "claims.html"
    result = _run(session_dir, "-v", "--envs", "hopper,walker2d", "--seeds", "0,1", "--claims-report", str(report))
    out = result.stdout.str()
    assert result.ret == 1, out                                      # the igpt variant is contradicted
    ran = {f"sec5_3.{name}": outcome for name, outcome in
           re.findall(r"::sec5_3(?:\.|::)(\w+\[[^\]]+\]) (\w+)", out)}
    per_seed = {f"sec5_3.synthetic_gap[{e}-seed{s}-{b}-{d}]": "PASSED" if b == "gpt2" else "CONTRADICTED"
                for e in ("hopper", "walker2d") for s in (0, 1) for b in ("gpt2", "igpt") for d in ("paper", "as-run")}
    aggregate = {f"sec5_3.synthetic_gap[{e}-{b}-{d}]": "PASSED" if b == "gpt2" else "CONTRADICTED"
                 for e in ("hopper", "walker2d") for b in ("gpt2", "igpt") for d in ("paper", "as-run")}
    expected = {**per_seed, **aggregate,
                "sec5_3.synthetic_walker[walker2d-seed0]": "DESCRIPTIVE",
                "sec5_3.synthetic_walker[walker2d-seed1]": "DESCRIPTIVE",
                "sec5_3.synthetic_walker[walker2d]": "INCONCLUSIVE",    # tied seeds: 2 of the sign test's 6
                "sec5_3.synthetic_noclip[hopper]": "INCONCLUSIVE",      # smoke noclip_seeds = (0,): one seed
                "sec5_3.synthetic_noclip[walker2d]": "INCONCLUSIVE",
                "sec5_3.synthetic_rate[hopper]": "INCONCLUSIVE", "sec5_3.synthetic_rate[walker2d]": "INCONCLUSIVE",
                "sec5_3.synthetic_across[all]": "PASSED"}
    assert ran == expected, out
    assert not re.search(r"Traceback|test_synthetic\.py:\d+", out), out   # a verdict is a finding, not a bug
    data = json.loads(report.with_suffix(".json").read_text())
    assert data["provenance"]["premise"] == {"hopper": [["sec5_3.synthetic_gap", "synthetic part"]],
                                             "walker2d": [["sec5_3.synthetic_gap", "synthetic part"]], "": []}
    gap = [r for r in data["results"] if r["claim_id"] == "sec5_3.synthetic_gap"]
    assert {(r["env"], r["seed"], r["params"]["backbone"]) for r in gap if r["definition"] == "paper"} == \
        {(e, s, b) for e in ("hopper", "walker2d") for s in (0, 1, None) for b in ("gpt2", "igpt")}
    # no claims/registry.json beside these claims: each cell records its criterion as not registered
    assert all(r["values"]["registered"]["registered"] is None and r["values"]["runs"] == [] for r in gap)
    assert {row["registered"]["mark"] for row in data["headline"]["rows"]} == {"not registered"}
    from reports.headline import build_headline
    from reports.model import Report
    from reports.premise import build_premises
    premises = build_premises(build_headline(Report.from_json(report.with_suffix(".json").read_text())))
    assert [(p.env, [part.label for part in p.parts], p.outcome) for p in premises] == \
        [("hopper", ["synthetic part"], "contradicted"), ("walker2d", ["synthetic part"], "contradicted")]


def test_contradicted_claims_print_no_traceback_and_the_run_ends_with_the_absolute_report_path(session_dir):
    """A contradicted claim is a finding: no traceback through the decision rule and no ``-ra``
    line (the grid and the headline hold it; its reason in the report, or with -v); pytest's
    exit status 1 (README "Exit status", the same for ``dtcore claims``); after pytest's summary
    line, which counts it as contradicted, not failed, the answer, the report's absolute path
    last, for a relative ``--claims-report``."""
    session_dir.makeini((ROOT / "pytest.ini").read_text())
    session_dir.makepyfile(test_synthetic=SYNTHETIC_CLAIMS)
    result = _run(session_dir, "-k", "synthetic_gap", "--claims-report", "out/r.html")
    out = result.stdout.str()
    assert result.ret == 1, out
    assert not re.search(r"Traceback|(test_synthetic|cells|verdicts)\.py:\d+|^E   |^>   ", out, re.M), out
    lines = out.strip().splitlines()
    assert lines[-1] == f"dtclaims report: {session_dir.path / 'out' / 'r.html'}"
    summary = max(i for i, line in enumerate(lines) if line.startswith("=") and " in " in line)
    assert re.search(r" \d+ contradicted", lines[summary]) and " failed" not in lines[summary], lines[summary]
    assert [line.split(":")[0].split(" on ")[0] for line in lines[summary + 1:]] == [
        "dtclaims premise", "dtclaims headline", "dtclaims tests", "dtclaims values", "dtclaims report"]
    # nothing buries the answer: no per-cell line (-ra lists bugs only), the headline just above it
    assert "CONTRADICTED" not in out and "short test summary info" not in out, out
    assert lines[summary - 1].startswith("the reason of each of the ") and lines[summary - 1].endswith("with -v")


def test_k_selects_a_claim_by_its_id_or_section_and_unselected_bodies_are_skipped(session_dir):
    session_dir.makeini((ROOT / "pytest.ini").read_text())
    session_dir.makepyfile(test_synthetic=SYNTHETIC_CLAIMS)
    by_id = _run(session_dir, "-q", "--co", "-k", "synthetic_rate")
    assert by_id.stdout.str().count("synthetic_rate[") == 1 and "synthetic_gap" not in by_id.stdout.str()
    full_id = _run(session_dir, "-q", "--co", "-k", "sec5_3.synthetic_gap")
    # hopper, seed 0: 4 per-seed cells (2 bodies x 2 definitions) and their 4 seed aggregates
    assert full_id.stdout.str().count("synthetic_gap[") == 8, full_id.stdout.str()
    section = _run(session_dir, "-q", "--co", "-k", "sec5_3").stdout.str()
    assert section.count("sec5_3.") == 11 and "synthetic_walker" not in section, section   # walker2d not selected
    narrowed = _run(session_dir, "-rs", "--backbones", "gpt2,random", "-k", "synthetic_gap and igpt")
    assert narrowed.parseoutcomes()["skipped"] == 4, narrowed.stdout.str()
    assert "--backbones excluded igpt" in narrowed.stdout.str()


def test_a_claim_without_a_statistic_or_with_a_bad_declaration_stops_collection(session_dir):
    session_dir.makepyfile(test_bad="""
        from dtcore.claim import Claim
        NO_STATISTIC = Claim("sec5_3.x", quote="q", source="§5.3", statistic="s", direction=">", threshold=0.0,
                             basis="b", units="samples", sesoi_basis="b")
    """)
    result = _run(session_dir, "-q")
    assert result.ret == 2 and "sec5_3.x: no statistic" in result.stdout.str(), result.stdout.str()
    session_dir.makepyfile(test_bad="""
        from dtcore.claim import Claim
        BAD = Claim("sec5_3.x", quote="q", source="§5.3", statistic="s", direction=">", threshold=0.0, basis="b",
                    units="samples", envs=("mars",))
        BAD.measure(lambda cell: 1.0)
    """)
    result = _run(session_dir, "-q")
    assert result.ret == 2 and "sec5_3.x: unknown environment(s) ['mars']" in result.stdout.str(), \
        result.stdout.str()


@pytest.mark.parametrize("argv, option, accepted", [
    (["--seeds=-1"], "--seeds", "0-4,42,666"), (["--seeds", "2-0"], "--seeds", "0-9"),
    (["--seeds", "x"], "--seeds", "0-9"), (["--envs", "mars"], "--envs", "hopper, halfcheetah, walker2d"),
    (["--backbones", "bert"], "--backbones", ", ".join(BODIES)),
    (["--envs", "hoper"], "--envs", "unknown 'hoper' (did you mean 'hopper'?); choose among hopper"),
    (["--profile", "mnii"], "--profile", "unknown 'mnii' (did you mean 'mini'?); choose among paper, mini, smoke")])
def test_a_bad_grid_option_is_a_usage_error(session_dir, argv, option, accepted):
    session_dir.makepyfile(test_nothing="def test_nothing(): pass")
    result = _run(session_dir, "-q", *argv)
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()
    err = result.stderr.str()
    assert f"ERROR: {option}:" in err and accepted in err, err
    assert "test_nothing" not in result.stdout.str()


def test_the_correction_family_and_every_verdict_are_the_same_with_and_without_k(session_dir, tmp_path):
    """The family is every declared claim x environment (collected before -k deselects), so a
    narrowed run corrects each claim exactly as the full run does."""
    from reports.headline import build_headline
    from reports.model import Report

    session_dir.makeini((ROOT / "pytest.ini").read_text())
    session_dir.makepyfile(test_synthetic=SYNTHETIC_CLAIMS)
    headlines = {}
    for name, args in (("full", ()), ("narrowed", ("-k", "synthetic_gap or synthetic_across"))):
        report = tmp_path / f"{name}.html"
        _run(session_dir, "-q", "--envs", "hopper,walker2d", "--seeds", "0,1", "--claims-report", str(report), *args)
        headlines[name] = build_headline(Report.from_json(report.with_suffix(".json").read_text()))
    full, narrowed = headlines["full"], headlines["narrowed"]
    assert full.family_size == narrowed.family_size == 8      # gap x 2 envs, walker, noclip x 2, rate x 2, across
    rows = {(r.claim_id, r.env): (r.outcome, r.holm_outcome, r.p_holm) for r in full.rows}
    kept = {(r.claim_id, r.env): (r.outcome, r.holm_outcome, r.p_holm) for r in narrowed.rows}
    assert len(kept) == 3 and kept == {k: rows[k] for k in kept}


def test_a_cell_that_errs_keeps_its_place_so_compare_matches_it(session_dir, tmp_path):
    """The definition is a declared parameter of the cell, not a value the statistic records, so a
    cell that errs keeps its key (claim, variant, env, seed, definition) and ``compare --common``
    still lists it (the fault-injection review's case 53)."""
    session_dir.makepyfile(test_errs="""
        from dtcore.claim import Claim
        BROKEN = Claim("sec5_3.broken", quote="q", source="§5.3", statistic="s", direction=">", threshold=0.0,
                       basis="b", no_units="n", definitions=("paper", "as-run"), sesoi_basis="b")

        @BROKEN.measure
        def fails(cell):
            raise RuntimeError("the analysis broke")
    """)
    report = tmp_path / "claims.html"
    _run(session_dir, "-q", "--claims-report", str(report))
    results = json.loads(report.with_suffix(".json").read_text())["results"]
    assert {(r["outcome"], r["definition"], r["seed"]) for r in results} == {
        ("error", d, s) for d in ("paper", "as-run") for s in (0, None)}
    assert all("the analysis broke" in r["message"] for r in results)


def test_until_decided_runs_the_sequential_design_of_dtcore_claims_with_the_commands_options(session_dir,
                                                                                           monkeypatch):
    from dtcore import cli

    calls = []
    monkeypatch.setattr(cli, "main", lambda argv: calls.append(argv) or 0)
    base = ("-p", "no:cacheprovider", "--import-mode=importlib", "--profile", "smoke", "--envs", "hopper",
            "--until-decided")
    result = session_dir.runpytest_inprocess(*base, "--budget", "2.5", "--max-seeds", "8", "-k", "sec5_3",
                                             "--backbones", "gpt2,random", "--claims-report", "out.html", "-n", "2")
    assert result.ret == 0 and calls == [[
        "claims", "--until-decided", "--profile", "smoke", "--max-seeds", "8", "--envs", "hopper",
        "--backbones", "gpt2,random", "--budget", "2.5", "--report", "out.html", "--workers", "2", "-k", "sec5_3"]]
    assert "collected" not in result.stdout.str()                     # nothing collected: dtcore ran the looks
    calls.clear()
    monkeypatch.setattr(cli, "main", lambda argv: calls.append(argv) or 1)
    assert session_dir.runpytest_inprocess(*base).ret == 1          # its exit status is the command's
    assert calls == [["claims", "--until-decided", "--profile", "smoke", "--max-seeds", "20", "--envs", "hopper"]]
    result = session_dir.runpytest_inprocess(*base, "--seeds", "0-4")
    assert result.ret == pytest.ExitCode.USAGE_ERROR and "the looks choose the seeds" in result.stderr.str()
