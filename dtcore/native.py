"""The project's C kernels (``dtcore/csrc/*.c``): compiled at first use with the system's C
compiler into the cache, then loaded with :mod:`ctypes`.

The sources use only the C standard library and GCC/Clang vector extensions, so any ``cc``
builds them in well under a second and no Python build tool is needed. A library is compiled
with ``-O3 -march=native`` (vector width and FMA of this CPU) and cached under
``<cache>/native/<name>-<hash>.so``, the hash covering the source and the shared headers
(``csrc/*.h``), the flags, the compiler's version and this CPU's model and flags: a cache shared
by different machines keeps one library per CPU type, and an edited source is compiled again.
Concurrent first uses (pytest-xdist workers, grid workers) each compile into a temporary file and
rename it into place.

Where no compiler is found or compiling fails, :func:`library` logs why once, with the fix, and
returns ``None``; ``kernels="cpu"`` runs then refuse to train (:func:`dtcore.kernels.require_c_kernels`),
as their run ids name the C kernels' bits. ``DTCORE_NATIVE=0`` turns the C kernels off.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

from dtcore.provenance import cache_dir, sha256_bytes

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


def library_path(name: str, cc: str) -> Path:
    """Where the compiled ``csrc/<name>.c`` for this compiler and CPU lives in the cache."""
    version = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30).stdout
    sources = [(SOURCES / f"{name}.c").read_bytes()] + [h.read_bytes() for h in sorted(SOURCES.glob("*.h"))]
    key = sha256_bytes(b"\0".join([*sources, " ".join(FLAGS).encode(), version.encode(),
                                   _cpu_identity().encode()]))[:16]
    return cache_dir() / "native" / f"{name}-{key}.so"


def _compile(name: str, cc: str, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        proc = subprocess.run([cc, *FLAGS, "-o", tmp, str(SOURCES / f"{name}.c")], capture_output=True,
                              text=True, timeout=300)
        if proc.returncode != 0:
            raise RuntimeError(f"{cc} failed on {SOURCES / f'{name}.c'}:\n{proc.stderr[-2000:]}")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@functools.cache
def library(name: str) -> ctypes.CDLL | None:
    """``csrc/<name>.c`` compiled (once per source, compiler and CPU) and loaded, or ``None`` when
    the C kernels are off, no compiler is found or compiling fails (logged once, with the fix)."""
    if not enabled():
        return None
    cc = compiler()
    if cc is None:
        log.warning("no C compiler (cc, gcc or clang) on the PATH: kernels='cpu' (the mini and smoke profiles) "
                    "cannot train here. Install gcc or clang, or set CC; kernels='cpu-torch' computes the same "
                    "functions in plain torch under another run id. DTCORE_NATIVE=0 silences this.")
        return None
    try:
        path = library_path(name, cc)
        if not path.exists():
            _compile(name, cc, path)
        return ctypes.CDLL(str(path))
    except (OSError, RuntimeError, subprocess.SubprocessError) as err:
        log.warning("could not build or load the C kernel %s (%s); kernels='cpu' cannot train here "
                    "(kernels='cpu-torch': the same in plain torch, another run id). DTCORE_NATIVE=0 silences this.",
                    name, err)
        return None
