"""The one integrity rule of every cached artefact: a checkpoint, a dataset, a
pretrained body or an analysis is used only after its bytes match a sha256 recorded when it was
written, by a record (manifest, provenance, meta) that is itself validated. Anything that cannot
be verified (no record, an invalid record, a file missing or changed) is reported by path with a
:class:`CacheCorruptionWarning` and rebuilt; it is never re-approved by hashing it again.

This module holds the checks of a record; the sha256 helpers themselves are
:mod:`dtcore.provenance`'s (``sha256_file`` is imported here too, where the asset code reads it).
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from pathlib import Path
from typing import Any, Mapping

from dtcore.provenance import sha256_file  # noqa: F401 - where dtcore.assets.collect reads it

log = logging.getLogger(__name__)

SHA256 = re.compile(r"^[0-9a-f]{64}$")


class CacheCorruptionWarning(UserWarning):
    """A cached file did not match its recorded sha256 (or had no valid record); it is rebuilt."""


class CacheReadOnlyError(PermissionError):
    """A corrupt cached artefact cannot be deleted: the cache is read-only."""


class UnsafeCacheFileError(ValueError):
    """A cached file holds objects that loading would have to unpickle as code (anything beyond
    tensors, arrays and plain values): only a planted file does. It is refused, never loaded."""


def refuse_unsafe(path: str | os.PathLike, fix: str) -> UnsafeCacheFileError:
    """The one-line refusal of a cached file that holds more than tensors and plain values."""
    return UnsafeCacheFileError(
        f"refusing to load {path}: it holds objects other than tensors and plain values, which loading "
        f"would run as code, and no file dtclaims writes does; {fix}, and check who can write the cache "
        "(docs/cluster.md)")


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
