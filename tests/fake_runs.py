"""Fake grid runs for the build-loop tests (``dtcore.build.build_in_pool``): top-level functions of
a :class:`~dtcore.grid.RunSpec` (bound with ``functools.partial``) that a spawned worker imports
cheaply, standard library only. Each writes ``started-<run id>`` (holding its pid) into ``folder``
when it begins and ``finished-<run id>`` when it returns.
"""

from __future__ import annotations

import errno
import os
import signal
import time
from pathlib import Path

HOLD_S = 60.0   # how long a held run waits for its release file before it finishes anyway


def _mark(folder: str, what: str, run_id: str) -> None:
    (Path(folder) / f"{what}-{run_id}").write_text(str(os.getpid()))


def held(folder: str, quick: str, spec) -> tuple[str, bool, float]:
    """``quick`` finishes at once; every other run waits for ``folder/release`` (at most
    :data:`HOLD_S`): a run that is still training when the test acts."""
    _mark(folder, "started", spec.id)
    deadline = time.monotonic() + HOLD_S
    while spec.id != quick and not (Path(folder) / "release").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    _mark(folder, "finished", spec.id)
    return spec.id, True, 1.0


def killed(folder: str, victim: str, spec) -> tuple[str, bool, float]:
    """The worker building ``victim`` is killed (SIGKILL, as the OOM killer does); the rest finish."""
    _mark(folder, "started", spec.id)
    if spec.id == victim:
        os.kill(os.getpid(), signal.SIGKILL)
    _mark(folder, "finished", spec.id)
    return spec.id, True, 1.0


def disk_full(folder: str, victim: str, spec) -> tuple[str, bool, float]:
    """``victim`` fails as torch.save does on a full disk: ``unexpected pos`` raised while
    handling ENOSPC; the rest finish."""
    _mark(folder, "started", spec.id)
    if spec.id == victim:
        try:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 312832 vs 312720")
    _mark(folder, "finished", spec.id)
    return spec.id, True, 1.0


def marked(folder: str | Path, what: str) -> set[str]:
    """The run ids with a ``what`` (started / finished) mark in ``folder``."""
    return {p.name.split("-", 1)[1] for p in Path(folder).glob(f"{what}-*")}
