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
    monkeypatch.setenv("DTCORE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TINY_DATA", str(write_dataset(tmp_path / "data" / "hopper.pkl")))
    monkeypatch.setenv("BUILT_LOG", str(tmp_path / "built.txt"))
    monkeypatch.setenv("PYTEST_PLUGINS", "tinyplugin")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(pytester.path), str(ROOT)]))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return pytester


def _run(pytester, *args: str):
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "--profile", "smoke", *args, timeout=240)


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


def test_collecting_tests_that_use_runs_trains_nothing(session_dir):
    session_dir.makepyfile(test_uses=USES_ONE_RUN)
    collected = _run(session_dir, "--collect-only", "-q")
    assert collected.ret == 0, collected.stdout.str()
    assert "2 tests collected" in collected.stdout.str()
    assert _run_dirs() == []
    ran = _run(session_dir, "-q")
    assert ran.ret == 0, ran.stdout.str()
    assert len(_run_dirs()) == 1


def test_collecting_the_claims_with_an_empty_cache_trains_nothing(tmp_path):
    env = {**os.environ, "DTCORE_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-m", "pytest", "claims/", "--collect-only", "-q", "-p",
                          "no:cacheprovider", "--profile", "smoke"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode in (0, 5), res.stdout[-3000:] + res.stderr[-3000:]
    runs = tmp_path / "cache" / "runs"
    assert not runs.exists() or not any(runs.iterdir())


def test_two_xdist_workers_asking_for_the_same_run_train_it_once(session_dir, monkeypatch):
    monkeypatch.setenv("TINY_STEPS", "60")  # about a second of training: the workers overlap
    session_dir.makepyfile(test_uses=USES_ONE_RUN)
    result = _run(session_dir, "-n", "2", "-q")
    assert result.ret == 0, result.stdout.str()
    lines = Path(os.environ["BUILT_LOG"]).read_text().splitlines()
    workers = {line.split()[0] for line in lines}
    assert workers == {"gw0", "gw1"}, lines
    assert sorted(line.split()[1] for line in lines) == ["False", "True"], lines
    assert len({line.split()[2] for line in lines}) == 1
    assert _summary(result) == {"trained": ["hopper-seed0-random-K1"], "loaded": ["hopper-seed0-random-K1"]}
    assert len(_run_dirs()) == 1


def test_summary_says_trained_then_loaded_and_regen_retrains(session_dir):
    session_dir.makepyfile(test_uses=USES_ONE_RUN)
    first = _run(session_dir, "-q")
    assert _summary(first) == {"trained": ["hopper-seed0-random-K1"], "loaded": []}
    assert "dtclaims: building hopper-seed0-random-K1" in first.stdout.str()
    second = _run(session_dir, "-q")
    assert _summary(second) == {"trained": [], "loaded": ["hopper-seed0-random-K1"]}
    regen = _run(session_dir, "-q", "--regen")
    assert regen.ret == 0, regen.stdout.str()
    assert _summary(regen) == {"trained": ["hopper-seed0-random-K1"], "loaded": []}
    built = [line.split()[1] for line in Path(os.environ["BUILT_LOG"]).read_text().splitlines()]
    assert built == ["True", "True", "False", "False", "True", "True"]


def test_fixtures_and_parametrized_ids_follow_the_selection(session_dir):
    session_dir.makepyfile(test_sel="""
        import pytest

        def test_selection(profile, selection, runs, analysis_cache):
            assert profile.name == "smoke" and selection.envs == ("walker2d",)
            assert selection.seeds == (1,) and runs.profile.name == "smoke"
            assert analysis_cache({"k": 1}, lambda: [1, 2], kind="demo") == [1, 2]

        def test_cells(env_seed):
            pass

        @pytest.mark.backbones("gpt2", "random")
        def test_bodies(env_seed_backbone):
            pass
    """)
    result = _run(session_dir, "-v", "--envs", "walker2d", "--seeds", "1")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["*test_cells[[]walker2d-seed1[]] PASSED*",
                                 "*test_bodies[[]walker2d-seed1-gpt2[]] PASSED*",
                                 "*test_bodies[[]walker2d-seed1-random[]] PASSED*"])
    assert "igpt" not in result.stdout.str()
    assert "analyses computed 1, loaded 0" in result.stdout.str()
