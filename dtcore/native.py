"""The project's C kernels (``dtcore/csrc/*.c``): compiled at first use with the system's C
compiler into a folder of the user's own, verified, then loaded with :mod:`ctypes`.

The sources use only the C standard library and GCC/Clang vector extensions, so any ``cc``
builds them in well under a second and no Python build tool is needed. A library is compiled
with ``-O3 -march=native`` (vector width and FMA of this CPU) into ``<name>-<hash>.so``, the hash
covering the source and the shared headers (``csrc/*.h``), the flags, the compiler's version and
this CPU's model and flags: one library per CPU type, and an edited source is compiled again.

Loading a library runs its code, so libraries never live in the (possibly shared) cache: they live
in :func:`library_dir`, ``$XDG_CACHE_HOME/dtcore-native-<uid>`` (default
``~/.cache/dtcore-native-<uid>``), created with mode 0700 and refused, before anything in it is
compiled or loaded, when it is another user's or others can write it. Beside each library,
``<name>-<hash>.json`` (written last) records its sha256 and the compile command; every load checks
the library against it first, before ``ctypes.CDLL``, so a truncated, swapped or planted file is
never loaded: it is reported and compiled again. Concurrent first uses (pytest-xdist workers, grid
workers) each compile into a temporary file and rename it into place; the linker creates that file,
so its mode follows the umask.

Where no compiler is found (said once per process) or compiling or loading fails (said once per
library), :func:`library` logs why, with the fix, and returns ``None``; ``kernels="cpu"`` runs then
refuse to train (:func:`dtcore.kernels.require_c_kernels`), as their run ids name the C kernels'
bits. ``DTCORE_NATIVE=0`` turns the C kernels off without a warning: ``kernels="cpu"`` runs refuse
to train then too, and the other kernels are unaffected.
"""

from __future__ import annotations

import ctypes
import functools
import json
import logging
import os
import platform
import shutil
import subprocess
from pathlib import Path

from dtcore.provenance import atomic_write_json, private_dir, sha256_bytes, sha256_file

log = logging.getLogger(__name__)

SOURCES = Path(__file__).resolve().parent / "csrc"
FLAGS = ("-O3", "-march=native", "-fno-trapping-math", "-fno-math-errno", "-shared", "-fPIC")
# -fno-trapping-math lets comparisons become vector selects (no FP exception is ever read);
# -fno-math-errno: no errno from math functions. Neither changes a result.


def enabled() -> bool:
    """False when ``DTCORE_NATIVE=0``."""
    return os.environ.get("DTCORE_NATIVE", "1") != "0"


def compiler() -> str | None:
    """The C compiler: ``CC`` if set, else the first of cc, gcc, clang on the PATH."""
    if os.environ.get("CC"):
        return os.environ["CC"]
    return next((c for c in ("cc", "gcc", "clang") if shutil.which(c)), None)


def _cpu_identity() -> str:
    """This CPU's model and feature flags (Linux), else the platform's machine and processor."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        keep = [ln for ln in lines if ln.split(":")[0].strip() in ("model name", "flags", "Features")]
        return "\n".join(sorted(set(keep)))
    except OSError:
        return f"{platform.machine()} {platform.processor()}"


def library_dir() -> Path:
    """The user's own folder of compiled libraries: ``$XDG_CACHE_HOME/dtcore-native-<uid>``
    (``~/.cache/...``), never inside ``DTCORE_CACHE``; not created here."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / f"dtcore-native-{os.getuid()}"


def library_path(name: str, cc: str) -> Path:
    """Where the compiled ``csrc/<name>.c`` for this compiler and CPU lives (:func:`library_dir`)."""
    version = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30).stdout
    sources = [(SOURCES / f"{name}.c").read_bytes()] + [h.read_bytes() for h in sorted(SOURCES.glob("*.h"))]
    key = sha256_bytes(b"\0".join([*sources, " ".join(FLAGS).encode(), version.encode(),
                                   _cpu_identity().encode()]))[:16]
    return library_dir() / f"{name}-{key}.so"


def compile_command(name: str, cc: str, out: Path) -> list[str]:
    """The command that compiles ``csrc/<name>.c`` into ``out``."""
    return [cc, *FLAGS, "-o", str(out), str(SOURCES / f"{name}.c")]


def recorded_command(name: str, cc: str, out: Path) -> list[str]:
    """The compile command as a library's record keeps it: the library by its file name and the
    source relative to the package, so checkouts of the same sources at other paths (their bytes
    are in the library's key, :func:`library_path`) share one library instead of each compiling
    it again over the other's."""
    return [cc, *FLAGS, "-o", out.name, f"csrc/{name}.c"]


def record_path(path: Path) -> Path:
    """The sidecar of a library: its sha256 and compile command, ``<name>-<hash>.json``."""
    return path.with_suffix(".json")


def _compile(name: str, cc: str, target: Path) -> None:
    """Compile into a temporary name the linker creates (mode from the umask), rename it into
    place, then write the sidecar record (last: a library without one is never loaded)."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        proc = subprocess.run(compile_command(name, cc, tmp), capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            raise RuntimeError(f"{cc} failed on {SOURCES / f'{name}.c'}:\n{proc.stderr[-2000:]}")
        digest = sha256_file(tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    atomic_write_json(record_path(target), {"sha256": digest, "compile": recorded_command(name, cc, target)})


def problem(path: Path, cc: str, name: str) -> str | None:
    """Why the library at ``path`` must not be loaded (missing, no valid record, another sha256
    or compile command than recorded), or None when it is the one compiled here."""
    if not path.is_file():
        return "not built yet"
    try:
        record = json.loads(record_path(path).read_text())
        expected, command = record["sha256"], record["compile"]
    except (OSError, ValueError, KeyError, TypeError):
        return f"no valid record {record_path(path).name} of its sha256"
    if command != recorded_command(name, cc, path):
        return "compiled by another command than this one"
    actual = sha256_file(path)
    if actual != expected:
        return f"its sha256 {actual[:12]} is not the recorded {str(expected)[:12]} (truncated, replaced or damaged)"
    return None


# What DTCORE_NATIVE=0 does, as the warnings say it.
NATIVE_OFF = ("DTCORE_NATIVE=0 turns the C kernels off without this warning (kernels='cpu' runs refuse "
              "to train then too)")


@functools.cache
def _say_no_compiler() -> None:
    """Log, once per process (every library needs the compiler), that none is found and the fix."""
    log.warning("no C compiler (cc, gcc or clang) on the PATH: kernels='cpu' (the mini and smoke profiles) "
                "cannot train here. Install gcc or clang, or set CC; kernels='cpu-torch' computes the same "
                "functions in plain torch under another run id. %s.", NATIVE_OFF)


@functools.cache
def library(name: str) -> ctypes.CDLL | None:
    """``csrc/<name>.c`` compiled (once per source, compiler and CPU), verified against its record
    and loaded, or ``None`` when the C kernels are off, no compiler is found (logged once per
    process), :func:`library_dir` is another user's or others can write it, or compiling or loading
    fails (logged once per library, with the fix). A library that fails the check is compiled
    again, never loaded."""
    if not enabled():
        return None
    cc = compiler()
    if cc is None:
        _say_no_compiler()
        return None
    try:
        path = library_path(name, cc)
        private_dir(path.parent, "the C kernel library folder", "a library there is loaded into every training process")
        why = problem(path, cc, name)
        if why is not None:
            if path.exists():
                log.warning("the C kernel library %s: %s; it is compiled again", path, why)
            _compile(name, cc, path)
            why = problem(path, cc, name)
            if why is not None:
                raise RuntimeError(f"{path} fails its check right after compiling: {why}")
        return ctypes.CDLL(str(path))
    except (OSError, RuntimeError, subprocess.SubprocessError) as err:
        log.warning("could not build or load the C kernel %s (%s); kernels='cpu' cannot train here "
                    "(kernels='cpu-torch': the same in plain torch, another run id). %s.", name, err, NATIVE_OFF)
        return None
