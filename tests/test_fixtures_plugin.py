"""The pytest plugin (fixtures/plugin.py): lazy session fixtures, xdist sharing, summary, --regen.

Each test runs a real pytest subprocess in a pytester folder that holds a copy of the root
conftest (options, ``grid_selection``, plugin registration) and a small plugin that points the
session's RunStore at a synthetic dataset (``STORE_OPTIONS``), so no asset is built.
"""

from __future__ import annotations

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


def test_fixtures_and_parametrized_ids_follow_the_selection(session_dir):
    session_dir.makepyfile(test_sel="""
        def test_selection(profile, selection, runs, analysis_cache):
            assert profile.name == "smoke" and selection.envs == ("hopper",)
            assert selection.seeds == (0,) and runs.selection == selection
            assert analysis_cache({"k": 1}, lambda: [1, 2], kind="demo") == [1, 2]

        def test_cells(env, seed):
            assert (env, seed) == ("hopper", 0)
    """)
    result = _run(session_dir, "-v")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["*test_cells[[]hopper-seed0[]] PASSED*"])
    assert "analyses computed 1, loaded 0" in result.stdout.str()
    assert result.parseoutcomes()["passed"] == 2


MARKED_CLAIMS = """
import pytest


def test_per_seed(env, seed):
    pass


def test_aggregate(env, seeds):
    assert seeds == (0, 1)


@pytest.mark.envs("walker2d")
def test_stated_for_walker2d(env, seed):
    pass


@pytest.mark.envs("halfcheetah")
def test_stated_for_an_env_outside_envs(env, seed):
    pass


@pytest.mark.seeds_from("noclip_seeds")
def test_noclip(env, seed):
    pass


@pytest.mark.seeds_from("noclip_seeds")
def test_noclip_aggregate(env, seeds):
    assert seeds == (0,)


@pytest.mark.envs("hopper")
def test_hopper_aggregate(env):
    pass


@pytest.mark.parametrize("env", ["mars"])
def test_parametrized_by_itself(env):
    pass
"""


def test_the_envs_and_seeds_from_markers_parametrize_the_claims(session_dir):
    session_dir.makeini((ROOT / "pytest.ini").read_text())   # --strict-markers and the registered markers
    session_dir.makepyfile(test_marked=MARKED_CLAIMS)
    result = _run(session_dir, "-v", "-p", "claims.conftest", "--envs", "hopper,walker2d", "--seeds", "0,1")
    out = result.stdout.str()
    assert result.ret == 0, out
    expected = {
        "test_per_seed": ["hopper-seed0", "hopper-seed1", "walker2d-seed0", "walker2d-seed1"],
        "test_aggregate": ["hopper", "walker2d"],                       # the seed aggregate: one per env
        "test_stated_for_walker2d": ["walker2d-seed0", "walker2d-seed1"],
        "test_noclip": ["hopper-seed0", "walker2d-seed0"],              # smoke noclip_seeds = (0,)
        "test_noclip_aggregate": ["hopper", "walker2d"],
        "test_hopper_aggregate": ["hopper"],
        "test_parametrized_by_itself": ["mars"],
    }
    ran = re.findall(r"::(test_\w+)\[([^\]]+)\] PASSED", out)
    assert sorted(ran) == sorted((name, i) for name, ids in expected.items() for i in ids), out
    assert "test_stated_for_an_env_outside_envs" not in out and "1 deselected" in out
    # --seeds narrows seeds_from: without the noclip seed both noclip claims have no cell and are
    # deselected (not run, not skipped): nothing is left of the 8 tests once -k picked them
    narrowed = _run(session_dir, "-v", "-p", "claims.conftest", "--seeds", "1", "-k", "noclip")
    assert narrowed.ret == pytest.ExitCode.NO_TESTS_COLLECTED, narrowed.stdout.str()
    assert "8 deselected" in narrowed.stdout.str() and "skipped" not in narrowed.stdout.str()


@pytest.mark.parametrize("source, message", [
    ('@pytest.mark.env("hopper")\ndef test_x(env): pass', "'env' not found in `markers`"),
    ('@pytest.mark.seeds_from("noclip_seed")\ndef test_x(env, seed): pass', "no seed tuple 'noclip_seed'"),
    ('@pytest.mark.envs("mars")\ndef test_x(env): pass', "choose among hopper"),
], ids=["unregistered-marker", "unknown-profile-attribute", "unknown-env"])
def test_a_misspelt_grid_marker_stops_collection(session_dir, source, message):
    session_dir.makeini((ROOT / "pytest.ini").read_text())
    session_dir.makepyfile(test_typo="import pytest\n\n" + source + "\n")
    result = _run(session_dir, "-q")
    assert result.ret == 2, result.stdout.str()
    assert message in result.stdout.str()


@pytest.mark.parametrize("argv, option, accepted", [
    (["--seeds=-1"], "--seeds", "0-4,42,666"), (["--seeds", "2-0"], "--seeds", "0-9"),
    (["--seeds", "x"], "--seeds", "0-9"), (["--envs", "mars"], "--envs", "hopper, halfcheetah, walker2d"),
    (["--backbones", "bert"], "--backbones", ", ".join(BODIES))])
def test_a_bad_grid_option_is_a_usage_error(session_dir, argv, option, accepted):
    session_dir.makepyfile(test_nothing="def test_nothing(): pass")
    result = _run(session_dir, "-q", *argv)
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()
    err = result.stderr.str()
    assert f"ERROR: {option}:" in err and accepted in err, err
    assert "test_nothing" not in result.stdout.str()
