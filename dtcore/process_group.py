"""A child command in a process group of its own, stopped cleanly on Ctrl-C: how ``dtcore claims``
runs pytest (issue #34, case 45 of the reliability review).

``subprocess.call`` answers a ``KeyboardInterrupt`` by SIGKILLing its child alone; pytest then
died under its xdist workers, which went on to print ``PluggyTeardownRaisedWarning ... OSError:
cannot send (already closed?)`` and tracebacks of their own Ctrl-C. :func:`call` starts the child
as the leader of a new process group, so the terminal's Ctrl-C reaches this process alone, and
answers it by sending the group one SIGINT: pytest and its workers stop as on a Ctrl-C of their
own (caches are written atomically: finished runs and analyses stay). Whatever of the group is
left after ``grace_s`` seconds, or after a second Ctrl-C, is killed, and the
``KeyboardInterrupt`` goes on, for the caller's one line.

The child's output passes through this process (to the terminal as it comes, with colours and
width as on the terminal: ``PY_COLORS``, ``COLUMNS``) and is dropped from the Ctrl-C on: a process
interrupted at any point (a test, a teardown, the report being written) may print a traceback,
and none reaches the terminal. Other signals a shell or a terminal sends to this process's group
reach the child's group too: SIGTERM and SIGHUP are passed on, and this process then ends of the
same signal; Ctrl-Z (SIGTSTP) stops the child's group with this process, ``fg`` resumes both.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Mapping, Sequence

GRACE_S = 30.0                                     # seconds the group has to stop after its SIGINT
PASSED_ON = (signal.SIGTERM, signal.SIGHUP)        # passed on to the group, then end this process
DRAIN_S = 5.0                                      # seconds to pass on the output left after an exit


def call(cmd: Sequence[str], *, cwd: str | Path, env: Mapping[str, str], grace_s: float = GRACE_S) -> int:
    """Run ``cmd`` in a new process group, its output passed on, and return its exit status. On
    Ctrl-C its output is dropped, the group gets one SIGINT and ``grace_s`` seconds to end (a
    second Ctrl-C cuts that short), what is left is killed, and the ``KeyboardInterrupt`` is raised
    again with no process of the group left."""
    sys.stdout.flush()
    sys.stderr.flush()
    child = subprocess.Popen(list(cmd), cwd=cwd, env=_terminal_env(env), process_group=0,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    relays = [_Relay(child.stdout, sys.stdout), _Relay(child.stderr, sys.stderr)]
    received: list[int] = []
    previous = _handle_signals(child.pid, received)
    try:
        rc = child.wait()
        for relay in relays:
            relay.join(DRAIN_S)
        return rc
    except KeyboardInterrupt:
        for relay in relays:
            relay.mute()
        stop(child, grace_s)
        raise
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if received:                               # SIGTERM or SIGHUP: end as it asked, after the child
            child.wait()
            signal.raise_signal(received[0])


def stop(child: subprocess.Popen, grace_s: float = GRACE_S) -> None:
    """SIGINT to ``child``'s process group, up to ``grace_s`` seconds for it to exit (a Ctrl-C
    meanwhile cuts that short), then SIGKILL to whatever of the group is left."""
    _signal_group(child.pid, signal.SIGINT)
    try:
        child.wait(timeout=grace_s)
    except (subprocess.TimeoutExpired, KeyboardInterrupt):
        pass
    _signal_group(child.pid, signal.SIGKILL)
    child.wait()


class _Relay:
    """Copies a child's pipe to one of this process's streams as the bytes come, until the pipe
    closes; after :meth:`mute` it reads on (so the child never blocks on a full pipe) but shows
    nothing."""

    def __init__(self, pipe: IO[bytes], out: IO[str]) -> None:
        self.pipe, self.out = pipe, out
        self.muted = False
        self.line_open = False                     # the last byte shown was not a newline
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._copy, daemon=True)
        self.thread.start()

    def _copy(self) -> None:
        while chunk := os.read(self.pipe.fileno(), 65536):
            with self.lock:
                if not self.muted:
                    self._show(chunk)

    def _show(self, chunk: bytes) -> None:
        target = getattr(self.out, "buffer", None)
        if target is not None:
            target.write(chunk)
        else:
            self.out.write(chunk.decode(errors="replace"))
        self.out.flush()
        self.line_open = not chunk.endswith(b"\n")

    def mute(self) -> None:
        """Show nothing more; end a line left open (pytest's progress dots), so that what this
        process prints next starts a line of its own."""
        with self.lock:
            if self.line_open:
                self._show(b"\n")
            self.muted = True

    def join(self, timeout: float) -> None:
        self.thread.join(timeout)


def _terminal_env(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` plus what a child writing into a pipe needs to look as it would on this terminal:
    colours (``PY_COLORS=1``, unless ``NO_COLOR`` or ``PY_COLORS`` is set) and the width."""
    env = dict(env)
    if sys.stdout.isatty():
        if "NO_COLOR" not in env:
            env.setdefault("PY_COLORS", "1")
        env.setdefault("COLUMNS", str(shutil.get_terminal_size().columns))
    return env


def _handle_signals(pgid: int, received: list[int]) -> dict[int, object]:
    """Install the handlers that pass SIGTERM, SIGHUP and SIGTSTP on to the group ``pgid``; the
    previous handlers, to restore. Python installs handlers only in its main thread: elsewhere
    (a test calling ``cli.main`` in a thread) none is installed."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def pass_on(signum, frame):
        received.append(signum)
        _signal_group(pgid, signum)

    def suspend(signum, frame):                    # Ctrl-Z: stop the group, then this process
        _signal_group(pgid, signal.SIGSTOP)
        os.kill(os.getpid(), signal.SIGSTOP)
        _signal_group(pgid, signal.SIGCONT)        # resumed (fg): resume the group too

    previous = {signum: signal.signal(signum, pass_on) for signum in PASSED_ON}
    previous[signal.SIGTSTP] = signal.signal(signal.SIGTSTP, suspend)
    return previous


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:                     # the group has ended
        pass
