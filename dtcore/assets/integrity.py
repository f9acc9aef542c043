"""The one integrity rule of every cached artefact: a checkpoint, a dataset, a
pretrained body or an analysis is used only after its bytes match a sha256 recorded when it was
written, by a record (manifest, provenance, meta) that is itself validated. Anything that cannot
be verified (no record, an invalid record, a file missing or changed) is reported by path with a
:class:`CacheCorruptionWarning` and rebuilt; it is never re-approved by hashing it again.

This module holds the one sha256 helper the caches share and the checks of a record.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import warnings
from pathlib import Path
from typing import Any, Mapping

log = logging.getLogger(__name__)

SHA256 = re.compile(r"^[0-9a-f]{64}$")
CHUNK = 1 << 20


class CacheCorruptionWarning(UserWarning):
    """A cached file did not match its recorded sha256 (or had no valid record); it is rebuilt."""


class CacheReadOnlyError(PermissionError):
    """A corrupt cached artefact cannot be deleted: the cache is read-only."""


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


def is_sha256(value: Any) -> bool:
    return isinstance(value, str) and SHA256.fullmatch(value) is not None


def valid_file_record(record: Any) -> dict[str, str] | None:
    """``record`` when it is a non-empty ``{relative file name: sha256 hex}`` mapping, else None."""
    if not isinstance(record, Mapping) or not record:
        return None
    if not all(isinstance(k, str) and k and not k.startswith("/") and ".." not in Path(k).parts
               and is_sha256(v) for k, v in record.items()):
        return None
    return dict(record)


def mismatched_files(folder: Path, record: Mapping[str, str]) -> list[str]:
    """The files of ``record`` (relative to ``folder``) that are missing or whose sha256 differs,
    each with the reason."""
    bad = []
    for name, expected in sorted(record.items()):
        path = Path(folder) / name
        if not path.is_file():
            bad.append(f"{path}: missing")
            continue
        actual = sha256_file(path)
        if actual != expected:
            bad.append(f"{path}: sha256 {actual[:12]} does not match the recorded {expected[:12]}")
    return bad


def report_corruption(path: str | os.PathLike, reason: str, *, action: str = "it is deleted and rebuilt, "
                      "not loaded") -> None:
    """Say which cached file is bad, why, and what happens to it (warning + log)."""
    msg = f"corrupted cache file {path}: {reason}; {action}"
    log.warning(msg)
    warnings.warn(CacheCorruptionWarning(msg), stacklevel=3)


def writable_or_raise(path: Path, what: str) -> None:
    """Raise :class:`CacheReadOnlyError` naming ``path`` when a bad ``what`` cannot be removed."""
    folder = Path(path) if Path(path).is_dir() else Path(path).parent
    if not os.access(folder, os.W_OK):
        raise CacheReadOnlyError(
            f"{what} {path} is corrupt and must be rebuilt, but {folder} is read-only: make the cache "
            "writable (or point DTCORE_CACHE at a writable copy) and run again")
