"""Where artefacts live and what made them: the cache root, file hashes, atomic writes, the JSON
form of values, and the git sha, package versions and device recorded beside every artefact.

Standard library only at import (torch is read only when the process has loaded it), so a
launcher, the report and the asset store can all use it cheaply.

* :func:`cache_dir`: ``DTCORE_CACHE``, default ``~/.cache/dtcore``: assets, runs, analyses;
  :func:`private_dir`: a folder only its user can write (for files that run code when read).
* :func:`sha256_file` / :func:`sha256_tree` / :func:`sha256_bytes`: the one content hash.
* :func:`atomic_write` (and ``_bytes`` / ``_json``): temporary file in the same folder, fsync,
  rename, with the umask's permissions (a cache shared by a group stays readable);
  :func:`lock_for`: the file lock beside a cached folder, held for a ``with`` block.
* :func:`jsonable`: any value as JSON types (unknown objects as ``str``, or as the caller says);
  :func:`canonical_json`: the sorted compact JSON of plain values that keys hash.
* :func:`git_sha`, :func:`package_versions`, :func:`device_name`: what the provenance records.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import functools
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator, Mapping

CHUNK = 1 << 20
# Packages whose versions every provenance record lists (those absent here are left out).
PACKAGES = ("torch", "numpy", "transformers", "gymnasium", "mujoco", "h5py", "scipy", "matplotlib",
            "jinja2", "pytest", "pytest-xdist", "hypothesis", "stable-baselines3", "sb3-contrib", "scikit-learn", "dtclaims")


def cache_dir() -> Path:
    """Root of every cached artefact: assets, trained runs, analyses."""
    return Path(os.environ.get("DTCORE_CACHE", Path.home() / ".cache" / "dtcore")).expanduser()


def private_dir(path: str | os.PathLike, what: str, why: str) -> Path:
    """``path``, created with mode 0700 if missing; a ``PermissionError`` naming ``what`` and
    the folder when it is another user's or others can write it: ``why`` says what its files do
    (run code as the user), so whoever can write it could."""
    path = Path(path)
    if not path.exists():
        path.mkdir(parents=True, mode=0o700, exist_ok=True)
        path.chmod(0o700)   # mkdir's mode is cut by the umask
    st = path.stat()
    if st.st_uid != os.getuid() or st.st_mode & 0o022:
        raise PermissionError(
            f"{what} {path}: {'owned by another user' if st.st_uid != os.getuid() else 'writable by others'} "
            f"(mode {st.st_mode & 0o777:o}); {why}, so whoever can write it runs code as you: "
            f"`chmod 700 {path}` or use a folder of your own")
    return path


# --- content hashes -------------------------------------------------------------------------

def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike, chunk: int = CHUNK) -> str:
    """Hex sha256 of a file's bytes, read in ``chunk``-byte blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def sha256_tree(path: str | os.PathLike, skip: tuple[str, ...] = ("provenance.json",)) -> str:
    """sha256 of a file, or of a folder: over the relative name and sha256 of every file under it
    (names in ``skip`` left out). A missing path raises ``FileNotFoundError`` naming it (it never
    hashes as an empty folder)."""
    path = Path(path)
    if path.is_file():
        return sha256_file(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such file or folder to hash")
    h = hashlib.sha256()
    for p in sorted(q for q in path.rglob("*") if q.is_file() and q.name not in skip):
        h.update(f"{p.relative_to(path).as_posix()}\0{sha256_file(p)}\n".encode())
    return h.hexdigest()


def file_hashes(folder: Path) -> dict[str, str]:
    """``{relative name: sha256}`` of every file under ``folder``."""
    return {str(f.relative_to(folder)): sha256_file(f) for f in sorted(p for p in folder.rglob("*") if p.is_file())}


# --- atomic writes --------------------------------------------------------------------------

def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], Any]) -> Path:
    """Call ``write(file)`` on a temporary file in ``path``'s folder, fsync, rename onto ``path``.

    The file gets the umask's permissions (``mkstemp`` makes 0600; a shared cache must be readable).
    A failure leaves ``path`` as it was and no temporary file behind; an OS error that names no
    file (a full disk at ``write`` or ``fsync``: ENOSPC) is raised again naming ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError) and err.errno is not None and err.filename is None:
            raise OSError(err.errno, err.strerror or os.strerror(err.errno), str(path)) from err
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return atomic_write(path, lambda f: f.write(data))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """``obj`` as indented, key-sorted JSON (unknown values as ``str``), written atomically."""
    return atomic_write_bytes(path, (json.dumps(obj, indent=1, sort_keys=True, default=str) + "\n").encode())


def read_json(path: str | os.PathLike) -> Any | None:
    """The JSON in ``path``, or None if it is missing or unreadable."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def lock_for(path: str | os.PathLike) -> Iterator[None]:
    """Hold the lock guarding ``path`` (a run or analysis folder), ``<path>.lock`` beside it, for
    the ``with`` block.

    An OS-level lock (``flock``): a killed holder releases it, so a crash leaves no stale lock.
    A lock file this user cannot open for writing (a cache another user built with umask 022, a
    read-only cache) is a ``PermissionError`` naming it, the cause and the fix.
    """
    from filelock import FileLock

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path) + ".lock")
    try:
        lock.acquire()
    except OSError as err:
        if not isinstance(err, PermissionError) and err.errno != errno.EROFS:
            raise
        raise PermissionError(_unwritable_lock(Path(lock.lock_file), err)) from err
    try:
        yield
    finally:
        lock.release()


def _unwritable_lock(lock: Path, err: OSError) -> str:
    """Why the lock file ``lock`` cannot be opened for writing, and the fix."""
    try:
        st = lock.stat()
        whose = f" (owner uid {st.st_uid}, mode {st.st_mode & 0o777:o}; you are uid {os.getuid()})"
    except OSError:
        whose = ""
    return (f"cannot take the lock {lock}{whose}: {err.strerror or err}. The cache it is in belongs to another user "
            f"or is not writable by you, and even reading a cached run or analysis takes its lock. Point "
            f"DTCORE_CACHE at a cache of your own, or share this one with group-writable permissions (its owner "
            f"runs `chmod -R g+w {cache_dir()}` and builds with umask 002; docs/cluster.md)")


# --- JSON form of values --------------------------------------------------------------------

def jsonable(value: Any, unknown: Callable[[Any], Any] = str) -> Any:
    """``value`` as builtin JSON types: ``to_dict()`` results and dataclasses as dicts (string
    keys), tuples as lists, paths as strings, numpy arrays and scalars and torch tensors by their
    ``tolist()``; anything else is ``unknown(value)`` (default ``str``)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if callable(getattr(value, "to_dict", None)):
        return jsonable(value.to_dict(), unknown)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value), unknown)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v, unknown) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v, unknown) for v in value]
    if isinstance(value, Path):
        return str(value)
    if callable(getattr(value, "tolist", None)):  # numpy arrays and scalars, torch tensors
        return jsonable(value.tolist(), unknown)
    return unknown(value)


def _refuse(value: Any) -> Any:
    raise ValueError(f"key_parts: cannot key on {type(value).__name__} {value!r}; pass plain values or hashes")


def canonical_json(obj: Any) -> str:
    """Sorted-key compact JSON of plain values, dataclasses, tuples, paths and numpy scalars; any
    other object is a ``ValueError`` (a key must not depend on a ``repr``)."""
    return json.dumps(jsonable(obj, _refuse), sort_keys=True, separators=(",", ":"))


def key_hash(parts: Any, length: int = 16) -> str:
    """Hex sha256 of the canonical JSON of ``parts``, cut to ``length``."""
    return sha256_bytes(canonical_json(parts).encode())[:length]


# --- what made an artefact ------------------------------------------------------------------

@functools.cache
def git_sha() -> str | None:
    """HEAD of the repository holding this package, ``+dirty`` when tracked files changed; None
    outside a git checkout."""
    repo = Path(__file__).resolve().parent.parent
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True,
                             timeout=10, env=env, check=True).stdout.strip()
        dirty = subprocess.run(["git", "diff-index", "--quiet", "HEAD", "--"], cwd=repo,
                               capture_output=True, timeout=10, env=env).returncode != 0
    except (OSError, subprocess.SubprocessError):
        return None
    return sha + ("+dirty" if dirty else "")


@functools.cache
def package_versions() -> dict[str, str]:
    """``{"python": ..., package: version}`` of the installed :data:`PACKAGES`."""
    versions = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def device_name() -> str | None:
    """``cuda (<GPU name>)`` or ``cpu``; None when this process has not imported torch (it is
    never imported for this)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    return f"cuda ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else "cpu"


def provenance(config: Any, *, wall_time_s: float, **extra: Any) -> dict[str, Any]:
    """The JSON written beside a run or an analysis: what made it, with which code, where, how long."""
    torch = sys.modules.get("torch")
    return {"config": jsonable(config), "git_sha": git_sha(), "packages": package_versions(),
            "device": device_name(), "torch_threads": torch.get_num_threads() if torch else None,
            "wall_time_s": round(wall_time_s, 3),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **extra}
