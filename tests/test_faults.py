"""Faults of the reliability review of 2026-12-05 (issue #34) left after tests/test_untrusted_cache.py:
the compiled kernel libraries, the build loop (Ctrl-C, a lost worker, a full disk, its progress
line), the run cache's damaged records, a real Ctrl-C through ``dtcore claims`` end to end, the
asset preflight under pytest, a tampered policy, Slurm without a cluster, and the one exit rule of
``python -m dtcore``. Each test names its case of the review's table; each injects its fault into a
cache and library folder of its own.

The build-loop tests run :func:`dtcore.build.build_in_pool` (the loop ``dtcore build`` and
``dtcore claims`` use) on fake runs (``tests/fake_runs.py``) in real spawned worker processes; the
run-cache tests train tiny runs (``tests/tiny_runs.py``); the Ctrl-C tests run the smoke profile.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

import dtcore.build
from dtcore import checkpoints, cli, native, provenance
from dtcore.analysis_cache import AnalysisCache
from dtcore.assets import integrity
from dtcore.assets.integrity import CacheCorruptionWarning, CacheReadOnlyError
from dtcore.build import BuildError, build_in_pool
from dtcore.build_progress import BuildProgress, run_cost
from dtcore.grid import RunSpec
from dtcore.profiles import SMOKE
from dtcore.provenance import sha256_file
from tests import fake_runs
from tests.tiny_runs import store, write_dataset

ROOT = Path(__file__).resolve().parent.parent
LIBRARIES = ("attention", "elementwise")
# Loads both C kernel libraries and touches a function of each; prints "loaded".
LOAD = ("from dtcore import native; libs = {n: native.library(n) for n in ('attention', 'elementwise')}; "
        "libs['attention'].attn_ranges; libs['elementwise'].splitmix64_fill; print('loaded')")


@pytest.fixture(autouse=True)
def _own_folders(tmp_path, monkeypatch):
    """A cache and a library folder of the test's own; no library loaded by this process."""
    monkeypatch.setenv("DTCORE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user-cache"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "user-state"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("DTCORE_POLICY_DIR", raising=False)
    native.library.cache_clear()
    yield
    native.library.cache_clear()


def _one_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got:\n{text}"
    return lines[0]


def _python(code: str, **kwargs) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter (a load that faults must not take pytest with it)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300,
                          **kwargs)


# --- compiled kernel libraries (cases 37, 38, 39, 62, 65) ----------------------------------

@pytest.fixture(scope="module")
def built_libraries(tmp_path_factory):
    """Both libraries compiled once into a library folder that each test copies."""
    home = tmp_path_factory.mktemp("built-libraries")
    env = dict(os.environ, PYTHONPATH=str(ROOT), XDG_CACHE_HOME=str(home))
    proc = subprocess.run([sys.executable, "-c", LOAD], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0 and "loaded" in proc.stdout, proc.stderr
    return home


def _libraries(built_libraries: Path) -> dict[str, Path]:
    """The test's own copy of the compiled libraries: name -> library file."""
    shutil.copytree(built_libraries, os.environ["XDG_CACHE_HOME"], dirs_exist_ok=True)
    cc = native.compiler()
    return {name: native.library_path(name, cc) for name in LIBRARIES}


def _damage(paths: dict[str, Path], how: str) -> None:
    attention = paths["attention"]
    if how == "zero bytes":                                   # case 37
        attention.write_bytes(b"")
    elif how == "random bytes":                               # case 37
        attention.write_bytes(os.urandom(4096))
    elif how == "truncated":                                  # case 38: SIGBUS at load on the old code
        with open(attention, "r+b") as f:
            f.truncate(attention.stat().st_size // 2)
    elif how == "swapped":                                    # case 39: valid ELF files, wrong symbols
        elementwise = paths["elementwise"]
        tmp = attention.with_name("swap")
        attention.rename(tmp)
        elementwise.rename(attention)
        tmp.rename(elementwise)


@pytest.mark.parametrize("how", ["zero bytes", "random bytes", "truncated", "swapped"])
def test_a_damaged_kernel_library_is_compiled_again_before_it_is_loaded(built_libraries, how):
    """Cases 37-39: the library is checked against its sha256 record before ``ctypes.CDLL``; one
    that fails is named in a warning and compiled again, and both kernels load."""
    paths = _libraries(built_libraries)
    _damage(paths, how)
    proc = _python(LOAD)
    assert proc.returncode == 0 and "loaded" in proc.stdout, proc.stderr
    assert "compiled again" in proc.stderr and str(paths["attention"]) in proc.stderr
    for path in paths.values():
        assert sha256_file(path) == json.loads(native.record_path(path).read_text())["sha256"]


def test_a_library_planted_in_the_shared_cache_or_without_its_record_is_never_loaded(tmp_path):
    """Case 62: a library that runs code when loaded, at the name the loader looks for in the
    cache's ``native/`` and in the user's library folder (without a record), never runs."""
    marker = tmp_path / "ran"
    source = tmp_path / "plant.c"
    source.write_text('#include <sys/stat.h>\n__attribute__((constructor)) static void plant(void) '
                      f'{{ mkdir("{marker}", 0700); }}\n')
    cc = native.compiler()
    for name in LIBRARIES:
        path = native.library_path(name, cc)
        for target in (path, Path(os.environ["DTCORE_CACHE"]) / "native" / path.name):
            target.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run([cc, "-shared", "-fPIC", "-o", str(target), str(source)], check=True)
    proc = _python(LOAD)
    assert proc.returncode == 0 and "loaded" in proc.stdout, proc.stderr
    assert not marker.exists(), "a planted library ran its code"
    assert not native.library_dir().is_relative_to(os.environ["DTCORE_CACHE"])


def test_kernel_libraries_live_in_a_private_folder_with_modes_from_the_umask():
    """Case 65: the library's mode follows the umask (not 0711 whatever it is); its folder is the
    user's own, mode 0700, outside the cache."""
    proc = _python(LOAD, umask=0o027)
    assert proc.returncode == 0, proc.stderr
    folder = native.library_dir()
    assert (folder.stat().st_mode & 0o777) == 0o700
    for name in LIBRARIES:
        assert (native.library_path(name, native.compiler()).stat().st_mode & 0o777) == 0o750
    assert not (Path(os.environ["DTCORE_CACHE"]) / "native").exists()


# --- the analysis cache (case 41) ----------------------------------------------------------

def test_a_full_disk_while_an_analysis_is_cached_keeps_the_cached_ones_and_names_the_file(monkeypatch):
    """Case 41: ENOSPC while an analysis value is written (at the atomic write's fsync, where a full
    disk shows): the analysis cached before it stays cached, the failed one leaves no file behind
    (no value, no meta.json, no temporary), the error is ENOSPC naming the file, and once there is
    space again the same call computes it."""
    def disk_full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def never():
        raise AssertionError("an analysis cached before the full disk was computed again")

    first = AnalysisCache()({"ckpt": "a"}, lambda: np.arange(4.0), kind="demo")
    folder = AnalysisCache().path({"ckpt": "b"}, "demo")
    with monkeypatch.context() as full:
        full.setattr(provenance.os, "fsync", disk_full)
        with pytest.raises(OSError) as err:
            AnalysisCache()({"ckpt": "b"}, lambda: np.ones(4), kind="demo")
    assert err.value.errno == errno.ENOSPC and "No space left on device" in str(err.value)
    assert str(folder / "value.npy") in _one_line(str(err.value))
    assert not folder.exists() or not list(folder.iterdir())                 # nothing half-written
    np.testing.assert_array_equal(AnalysisCache()({"ckpt": "a"}, never, kind="demo"), first)
    again = AnalysisCache()
    np.testing.assert_array_equal(again({"ckpt": "b"}, lambda: np.ones(4), kind="demo"), np.ones(4))
    assert again.computed == [folder.name]


# --- the build loop (cases 40, 43, 44; issue #33 point 2) ----------------------------------

SPECS = [RunSpec("hopper", seed, "random", "K20") for seed in range(6)]
COSTS = {spec.id: 1.0 for spec in SPECS}


@pytest.fixture
def marks(tmp_path):
    folder = tmp_path / "marks"
    folder.mkdir()
    yield folder
    (folder / "release").write_text("")                      # any run still held ends


def _build_with(monkeypatch, job, say=print) -> None:
    """``dtcore build`` (assets taken as present) running the fake ``job`` in the real build loop."""
    monkeypatch.setattr(cli, "_assets_missing", lambda *a: False)
    monkeypatch.setattr(dtcore.build, "build_grid", lambda *a, workers, **kw: build_in_pool(
        SPECS, job, COSTS, workers=workers, say=say, initializer=None))


def test_ctrl_c_during_the_build_cancels_the_queue_and_ends_the_workers(monkeypatch, marks, capsys):
    """Case 44: Ctrl-C reaches the main process after the first run; the runs queued behind the
    two being built never start, the workers are ended, one line and rc 130."""
    def ctrl_c(line):
        raise KeyboardInterrupt

    _build_with(monkeypatch, functools.partial(fake_runs.held, str(marks), SPECS[0].id), say=ctrl_c)
    assert cli.main(["build", "--profile", "smoke", "--envs", "hopper", "--workers", "2"]) == 130
    assert "interrupted (Ctrl-C)" in _one_line(capsys.readouterr().err)
    assert fake_runs.marked(marks, "finished") == {SPECS[0].id}          # the held runs were stopped
    assert fake_runs.marked(marks, "started") <= {s.id for s in SPECS[:3]}  # the queue never ran
    for started in marks.glob("started-*"):
        with pytest.raises(ProcessLookupError):
            os.kill(int(started.read_text()), 0)                          # no worker left


def test_a_killed_build_worker_names_its_run_and_says_a_rerun_resumes(monkeypatch, marks, capsys):
    """Case 43: SIGKILL of the worker building a run: one line naming it, rc 1, no traceback."""
    victim = SPECS[1].id
    _build_with(monkeypatch, functools.partial(fake_runs.killed, str(marks), victim))
    assert cli.main(["build", "--profile", "smoke", "--envs", "hopper"]) == 1
    line = _one_line(capsys.readouterr().err)
    assert victim in line and "worker died" in line and "resume" in line and "Traceback" not in line


def test_a_full_disk_during_the_build_is_named_in_one_line_that_says_a_rerun_resumes(monkeypatch, marks, capsys):
    """Case 40: torch's ``unexpected pos`` on a full disk: one line naming the run and "No space
    left", rc 1."""
    victim = SPECS[0].id
    _build_with(monkeypatch, functools.partial(fake_runs.disk_full, str(marks), victim))
    assert cli.main(["build", "--profile", "smoke", "--envs", "hopper", "--workers", "1"]) == 1
    line = _one_line(capsys.readouterr().err)
    assert victim in line and "No space left" in line and "resume" in line
    assert victim not in fake_runs.marked(marks, "finished")


def test_debug_shows_the_traceback_of_a_failed_run(monkeypatch, marks):
    """The exit rule: with --debug the failure propagates (a traceback); without, one line, rc 1."""
    _build_with(monkeypatch, functools.partial(fake_runs.disk_full, str(marks), SPECS[0].id))
    with pytest.raises(BuildError, match="No space left"):
        cli.main(["--debug", "build", "--profile", "smoke", "--envs", "hopper", "--workers", "1"])


def test_the_build_runs_in_order_and_says_a_line_per_run(marks):
    lines: list[str] = []
    job = functools.partial(fake_runs.held, str(marks), "none")
    (marks / "release").write_text("")
    done = build_in_pool(SPECS[:3], job, COSTS, workers=2, say=lines.append, initializer=None)
    assert set(done) == {s.id for s in SPECS[:3]}
    assert [line.split()[0] for line in lines] == ["[1/3]", "[2/3]", "[3/3]"]
    assert all(" built hopper-seed" in line for line in lines)


def test_each_finished_run_says_an_eta_from_the_cost_model_and_the_run_that_is_slow_now():
    """Issue #33 point 2: the ETA is the cost left at the seconds per cost measured so far,
    shared by the workers, less what the running runs have done; the longest-running run is named."""
    now = [0.0]
    progress = BuildProgress({"a": 3.0, "b": 3.0, "c": 1.0, "d": 1.0}, workers=2, clock=lambda: now[0])
    now[0] = 90.0                               # a took 90 s: 30 s per unit of cost; c starts now
    assert progress.finished("a", True, 90.0) == "[1/4] built a in 90 s · ETA 30 s (running: b, 90 s)"
    now[0] = 100.0                              # c found cached at once; d starts
    assert progress.finished("c", False, 0.2) == "[2/4] cached c in 0 s · ETA 15 s (running: b, 100 s)"
    now[0] = 400.0                              # b was slow: 400 s; the rate is corrected to 490/6 s
    line = progress.finished("b", True, 400.0)
    assert line.startswith("[3/4] built b in 400 s · ETA 0 s (running: d, 300 s)")
    now[0] = 401.0
    assert progress.finished("d", True, 301.0) == "[4/4] built d in 301 s · ETA 0 s"


def test_the_first_run_has_no_eta_and_long_etas_read_in_minutes():
    now = [0.0]
    progress = BuildProgress({"a": 1.0, "b": 1.0, "c": 100.0}, workers=1, clock=lambda: now[0])
    now[0] = 1.0
    assert progress.finished("a", False, 0.1) == "[1/3] cached a in 0 s (running: b, 0 s)"
    now[0] = 61.0
    assert progress.finished("b", True, 60.0) == "[2/3] built b in 60 s · ETA 100 min (running: c, 0 s)"


def test_the_cost_model_counts_training_steps_weighted_by_the_window():
    k20, k1 = (RunSpec("hopper", 0, "random", v) for v in ("K20", "K1"))
    assert run_cost(SMOKE, k20) == SMOKE.train.epochs * SMOKE.train.steps_per_epoch * 3
    assert run_cost(SMOKE, k1) == SMOKE.k1_epochs * SMOKE.train.steps_per_epoch
    assert run_cost(SMOKE, RunSpec("hopper", 0, "random", "block0")) > 0


# --- the run cache's records (cases 8, 11) ---------------------------------------------------

@pytest.fixture
def tiny_run(tmp_path):
    """A tiny trained run (hopper, random body, seed 0, K20) and its dataset."""
    data = write_dataset(tmp_path / "data" / "hopper.pkl")
    return data, store(data).get("hopper", "random", 0, "K20")


def _corruption_warnings(caught) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, CacheCorruptionWarning)]


@pytest.mark.parametrize("text", ["{", "[]"])
def test_a_damaged_completion_mark_is_named_in_one_warning_saying_nothing_is_retrained(tiny_run, text):
    """Case 8: an invalid ``provenance.json`` (the run's completion mark) beside verified
    checkpoints: one warning naming the file, the cause and that nothing is retrained; the mark
    is written again and every checkpoint is left as it was."""
    data, run = tiny_run
    mark = run.run_dir / checkpoints.PROVENANCE
    before = {p.name: sha256_file(p) for p in checkpoints.checkpoint_files(run.run_dir).values()}
    mark.write_text(text)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        store(data).get("hopper", "random", 0, "K20")
    (line,) = _corruption_warnings(caught)
    assert str(mark) in line and "not a JSON object" in line and "nothing is retrained" in line
    assert isinstance(json.loads(mark.read_text()), dict)
    assert {p.name: sha256_file(p) for p in checkpoints.checkpoint_files(run.run_dir).values()} == before


def test_a_damaged_completion_mark_beside_a_corrupt_checkpoint_says_the_run_resumes(tiny_run):
    data, run = tiny_run
    (run.run_dir / checkpoints.PROVENANCE).write_text("{")
    last = checkpoints.checkpoint_path(run.run_dir, 2)
    last.write_bytes(last.read_bytes()[:100])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert store(data).get("hopper", "random", 0, "K20").built
    lines = _corruption_warnings(caught)
    assert len(lines) == 2 and any("epoch_002.pt" in line for line in lines)
    (line,) = [line for line in lines if checkpoints.PROVENANCE in line]
    assert "resuming after epoch 1" in line and "nothing is retrained" not in line


@pytest.mark.parametrize("held", [False, True], ids=["found-by-a-new-store", "read-by-a-loaded-run"])
def test_a_corrupt_checkpoint_in_a_read_only_cache_promises_no_rebuild(tiny_run, monkeypatch, held):
    """Case 11: a corrupt checkpoint in a run folder that cannot be written (``chattr +i``, a
    read-only mount): only the ``CacheReadOnlyError`` naming the file, the folder and the fix, no
    warning that it "is deleted and rebuilt"; in a writable cache, one warning for the file."""
    data, run = tiny_run
    loaded = store(data).get("hopper", "random", 0, "K20")
    middle = checkpoints.checkpoint_path(run.run_dir, 1)
    damaged = bytearray(middle.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    middle.write_bytes(bytes(damaged))

    def use():
        return loaded.checkpoint(1) if held else store(data).get("hopper", "random", 0, "K20")

    with monkeypatch.context() as read_only:
        read_only.setattr(integrity.os, "access", lambda *a, **k: False)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with pytest.raises(CacheReadOnlyError) as err:
                use()
    assert _corruption_warnings(caught) == []
    message = _one_line(str(err.value))
    assert str(middle) in message and str(run.run_dir) in message and "writable" in message
    assert middle.read_bytes() == bytes(damaged)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        use()
    (line,) = _corruption_warnings(caught)
    assert str(middle) in line and "deleted and rebuilt" in line
    assert checkpoints.verify(run.run_dir, 1)


# --- Ctrl-C across a child process group (case 45): dtcore.process_group ---------------------

# The child of the process_group tests: it starts a worker of its own (same group), prints a
# line, marks "ready", and on SIGINT (or SIGTERM) appends the signal's name to marks/signals,
# prints a traceback's first line and exits, or ignores SIGINT when told. The driver calls
# process_group.call on it: "interrupted", rc 130.
CHILD = """
import os, signal, subprocess, sys, time
marks, on_int = sys.argv[1], sys.argv[2]
worker = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGINT, signal.SIG_DFL); time.sleep(60)"])
open(os.path.join(marks, "worker"), "w").write(str(worker.pid))
def mark(signum, frame):
    open(os.path.join(marks, "signals"), "a").write(signal.Signals(signum).name + " ")
    print("Traceback (most recent call last):", file=sys.stderr, flush=True)
    sys.exit(3)
signal.signal(signal.SIGINT, signal.SIG_IGN if on_int == "ignore" else mark)
signal.signal(signal.SIGTERM, mark)
print("child running", flush=True)
time.sleep(0.5)
open(os.path.join(marks, "ready"), "w").write(str(os.getpid()))
time.sleep(60)
"""
DRIVER = """
import os, sys
from dtcore import process_group
try:
    rc = process_group.call([sys.executable, "-c", sys.argv[1], sys.argv[2], sys.argv[3]], cwd=".", env=os.environ,
                            grace_s=float(sys.argv[4]))
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(130)
print("rc", rc)
"""


def _drive(marks: Path, on_int: str = "exit", grace_s: float = 30.0) -> subprocess.Popen:
    """The driver in a session of its own, once its child is ready."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    driver = subprocess.Popen([sys.executable, "-c", DRIVER, CHILD, str(marks), on_int, str(grace_s)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    deadline = time.monotonic() + 60
    while not (marks / "ready").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (marks / "ready").exists(), driver.communicate(timeout=10)[0]
    return driver


def _gone(pid: int, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_ctrl_c_reaches_the_childs_group_once_and_the_call_ends_with_it(marks):
    """Case 45: the terminal's Ctrl-C (SIGINT to the driver's group) reaches the child's own group
    as one SIGINT, not a SIGKILL; the child's output is shown until then and dropped after (no
    traceback of its interruption); the call raises KeyboardInterrupt once the child and its worker
    are gone."""
    driver = _drive(marks)
    os.killpg(driver.pid, signal.SIGINT)
    out = driver.communicate(timeout=60)[0]
    assert driver.returncode == 130 and out.split() == ["child", "running", "interrupted"], out
    assert (marks / "signals").read_text() == "SIGINT "
    assert _gone(int((marks / "worker").read_text()))


def test_a_child_that_does_not_stop_on_ctrl_c_is_killed_after_the_grace_period(marks):
    driver = _drive(marks, on_int="ignore", grace_s=1.0)
    start = time.monotonic()
    os.killpg(driver.pid, signal.SIGINT)
    out = driver.communicate(timeout=60)[0]
    assert driver.returncode == 130 and out.split() == ["child", "running", "interrupted"], out
    assert time.monotonic() - start < 30
    assert _gone(int((marks / "ready").read_text())) and _gone(int((marks / "worker").read_text()))


def test_sigterm_to_the_command_is_passed_on_to_the_child_and_ends_the_command(marks):
    """A SIGTERM to the driver's group (a shell's ``kill %1``, a scheduler) ends the child's group
    too, then the driver of the same signal."""
    driver = _drive(marks)
    os.killpg(driver.pid, signal.SIGTERM)
    out = driver.communicate(timeout=60)[0]
    assert driver.returncode == -signal.SIGTERM and "child running" in out
    assert (marks / "signals").read_text() == "SIGTERM "
    assert _gone(int((marks / "worker").read_text()))


# --- a real Ctrl-C through `dtcore claims`, end to end (cases 44, 45) -------------------------

SMOKE_CLAIMS = ["-m", "dtcore", "claims", "--profile", "smoke", "--envs", "hopper", "--seeds", "0",
                "--backbones", "random", "--workers", "2"]
NOISE = ("Traceback", "PluggyTeardownRaisedWarning", "cannot send", "BrokenProcessPool")


class _Terminal:
    """A command in a process group of its own, as a shell runs it in the foreground: ``ctrl_c``
    sends SIGINT to the whole group, as the terminal does. Its output is read as it comes (pytest's
    progress characters before their line ends too)."""

    def __init__(self, args: list[str], cwd: Path) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.proc = subprocess.Popen([sys.executable, *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.chunks: list[bytes] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while chunk := os.read(self.proc.stdout.fileno(), 4096):
            self.chunks.append(chunk)

    @property
    def text(self) -> str:
        return b"".join(self.chunks).decode(errors="replace")

    def wait_for(self, pattern: str, timeout: float = 900) -> re.Match:
        """The first match of ``pattern`` in the output (the test fails if the command ends first)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.text, re.MULTILINE)
            if found:
                return found
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.proc.kill()
        pytest.fail(f"no output matched {pattern!r}; output:\n{self.text[-4000:]}")

    def ctrl_c(self) -> tuple[int, str, str]:
        """SIGINT to the group; (exit status, whole output, output after the signal), and no
        process of the group left."""
        before = len(self.text)
        os.killpg(self.proc.pid, signal.SIGINT)
        rc = self.proc.wait(timeout=120)
        self.reader.join(timeout=30)
        deadline = time.monotonic() + 15
        while _group_alive(self.proc.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _group_alive(self.proc.pid), "a process of the command outlived it"
        return rc, self.text, self.text[before:]


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _complete_runs(cache: Path) -> set[str]:
    """Run ids with a completion mark in ``cache``."""
    return {json.loads(p.read_text())["run"] for p in (cache / "runs").glob("*/provenance.json")}


@pytest.mark.slow
@pytest.mark.trains
def test_a_real_ctrl_c_in_the_build_and_then_in_the_claim_tests_ends_in_one_line_keeping_finished_runs(tmp_path):
    """Cases 44 and 45, end to end on the smoke profile: SIGINT to the process group of a running
    ``dtcore claims``, first while the grid builds, then (the same command again) while pytest
    runs the claim tests with xdist workers. Each time: rc 130, one "interrupted" line, no
    traceback and none of pytest's teardown noise (``PluggyTeardownRaisedWarning ... cannot send``,
    from a pytest killed under its workers), no process left; finished runs are kept."""
    cache = Path(os.environ["DTCORE_CACHE"])
    args = [*SMOKE_CLAIMS, "--report", str(tmp_path / "claims.html")]

    building = _Terminal(args, cwd=tmp_path)
    first = building.wait_for(r"\[1/4\] built (\S+)")[1]
    rc, out, after = building.ctrl_c()
    assert rc == 130, out[-4000:]
    assert out.count("interrupted (Ctrl-C)") == 1 and not any(n in out for n in NOISE), after
    assert first in _complete_runs(cache) and len(_complete_runs(cache)) < 4

    testing = _Terminal(args, cwd=tmp_path)
    testing.wait_for(rf"\[\d/4\] cached {first}\b")
    testing.wait_for(r"\d+ workers \[\d+ items?\]\s+[.sDIFE]")      # the first test has ended
    rc, out, after = testing.ctrl_c()
    assert rc == 130, out[-4000:]
    assert out.count("interrupted (Ctrl-C)") == 1 and not any(n in out for n in NOISE), after
    line = re.search(r"^dtcore claims: interrupted \(Ctrl-C\).*$", out, re.MULTILINE)   # a line of its own
    assert line and out.rstrip().endswith(line[0]), after
    assert len(_complete_runs(cache)) == 4


# --- assets: the preflight under pytest (case 29), a tampered shipped policy (case 27) ------

def test_pytest_claims_checks_missing_assets_up_front_on_every_profile(tmp_path):
    """Case 29: a missing policy under ``pytest claims/`` (smoke) is one usage error, rc 4, not an
    error per test."""
    empty = tmp_path / "policies"
    empty.mkdir()
    env = dict(os.environ, PYTHONPATH=str(ROOT), DTCORE_POLICY_DIR=str(empty))
    proc = subprocess.run([sys.executable, "-m", "pytest", "claims/", "--profile", "smoke", "--envs", "hopper",
                           "--seeds", "0", "-x", "-q", "-p", "no:cacheprovider", "-p", "no:xdist"],
                          cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 4, out[-2000:]
    assert out.count("asset(s) missing") == 1 and "DTCORE_POLICY_DIR" in out and "Traceback" not in out


def test_a_tampered_shipped_policy_is_refused_up_front_saying_to_restore_it_with_git(tmp_path, monkeypatch, capsys):
    """Case 27: one byte appended to a shipped policy zip: refused before any build, naming the
    file and `git checkout`; rc 2, no traceback."""
    from dtcore.assets import collect

    shipped = tmp_path / "policies"
    shutil.copytree(collect.PACKAGED_POLICIES, shipped)
    agent = SMOKE.dataset_recipe("hopper").agent
    with open(shipped / agent, "ab") as f:
        f.write(b"\0")
    monkeypatch.setattr(collect, "PACKAGED_POLICIES", shipped)
    monkeypatch.setattr(dtcore.build, "build_grid", lambda *a, **kw: pytest.fail("the build started"))
    assert cli.main(["claims", "--profile", "smoke", "--envs", "hopper", "--seeds", "0"]) == 2
    captured = capsys.readouterr()
    out = captured.out + captured.err
    assert str(shipped / agent) in out and "git checkout" in out and "Traceback" not in out
    with pytest.raises(collect.UntrustedPolicyError, match="git checkout"):
        collect.verify_trusted(shipped / agent)               # the loader's own refusal says so too


# --- Slurm without a cluster (case 58) -----------------------------------------------------

def test_launcher_slurm_without_a_reachable_controller_is_one_line_naming_cause_and_fix(tmp_path, monkeypatch, capsys):
    """Case 58: sinfo and sbatch cannot reach a controller (as after `.ci/slurm-cluster.sh stop`):
    one line with the cause and the fix, rc 1, nothing submitted."""
    from dtcore.runs import RunStore

    bin_ = tmp_path / "bin"
    bin_.mkdir()
    for tool in ("sinfo", "sbatch", "squeue"):
        script = bin_ / tool
        script.write_text("#!/bin/sh\necho 'slurm_load_partitions: Unable to contact slurm controller "
                          "(connect failure)' >&2\nexit 1\n")
        script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_}:{os.environ['PATH']}")
    monkeypatch.setattr(cli, "_assets_missing", lambda *a: False)
    monkeypatch.setattr(RunStore, "complete", lambda self, spec: False)   # every run needs a job
    assert cli.main(["build", "--profile", "smoke", "--envs", "hopper", "--seeds", "0", "--launcher", "slurm"]) == 1
    line = _one_line(capsys.readouterr().err)
    assert "Unable to contact slurm controller" in line and "--launcher local" in line and "sinfo" in line
