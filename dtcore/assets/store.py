"""The asset cache: each offline asset is built once, keyed by its full recipe (STYLE.md item 12).

Layout: ``<DTCORE_CACHE>/assets/<kind>/<name>__<hash8>/`` where the hash covers the recipe, the
builder's version and any content fingerprint the builder adds (e.g. the corpus file's sha256).
Building happens in a temporary sibling directory under a file lock (``filelock``), then the
directory is renamed into place, so a reader never sees a half-built asset and two processes
(pytest-xdist workers) never build the same asset twice. ``provenance.json`` inside holds the
recipe, package versions, git sha, wall time and the sha256 of every file. A second call checks
every file against those sha256 (:mod:`dtcore.assets.integrity`), logs "reusing cached asset ..."
and returns; an asset whose provenance is invalid or whose files are missing or changed is
reported by path (:class:`~dtcore.assets.integrity.CacheCorruptionWarning`), deleted and rebuilt.
A build killed by a signal (``timeout``, ``scancel``) leaves its ``.<key>.tmp<pid>`` folder; every
asset lookup removes such folders of any asset whose builder is gone: its pid is not alive here
and the asset's lock is free (or held by this lookup), so no process on any node that shares the
cache is building it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import platform
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dtcore.assets.integrity import mismatched_files, report_corruption, valid_file_record, writable_or_raise
from dtcore.provenance import cache_dir, file_hashes, git_sha, jsonable, package_versions, sha256_bytes

log = logging.getLogger(__name__)

PROVENANCE = "provenance.json"


def asset_key(kind: str, name: str, recipe: Any, extra: dict[str, Any] | None = None) -> str:
    """Deterministic, self-explaining key: ``<name>__<hash8>`` over kind, recipe and ``extra``."""
    payload = {"kind": kind, "recipe": dataclasses.asdict(recipe) if dataclasses.is_dataclass(recipe) else recipe,
               "extra": extra or {}}
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return f"{name}__{sha256_bytes(blob.encode())[:8]}"


def asset_dir(kind: str, key: str, root: str | Path | None = None) -> Path:
    return Path(root if root is not None else cache_dir()) / "assets" / kind / key


def asset_problems(path: Path) -> list[str] | None:
    """None when no asset was ever put at ``path`` (no provenance JSON, which is written last);
    else what is wrong with it: an invalid provenance, a file missing or whose sha256 differs from
    the one recorded at build time. An empty list means every byte is verified."""
    path = Path(path)
    if not (path / PROVENANCE).exists():
        return None
    try:
        prov = json.loads((path / PROVENANCE).read_text())
    except (OSError, ValueError):
        prov = None
    record = valid_file_record(prov.get("files")) if isinstance(prov, dict) else None
    if record is None:
        return [f"{path / PROVENANCE}: not a valid record of the asset's files and sha256"]
    return mismatched_files(path, record)


def is_built(path: Path) -> bool:
    """True when the asset at ``path`` is complete and every file matches its recorded sha256."""
    return asset_problems(path) == []


def _discard(final: Path, problems: list[str]) -> None:
    """Report every problem of a damaged asset by path, then delete it (read-only: raise)."""
    writable_or_raise(final, "cached asset")
    for problem in problems:
        where, _, reason = problem.partition(": ")
        report_corruption(where, reason or "unverifiable")
    shutil.rmtree(final)


STALE = re.compile(r"^\.(?P<key>.+)\.tmp(?P<pid>\d+)$")   # a build's temporary folder: .<key>.tmp<pid>


def _alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this machine (another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_builds(assets: Path, held: Path | None = None) -> None:
    """Delete the temporary folders that killed builds left anywhere under ``assets`` (the cache's
    ``assets/``): one whose pid is not alive here and whose asset's lock is ``held`` by the caller
    or free now (a builder on another node that shares the cache holds its lock)."""
    from filelock import FileLock, Timeout

    for stale in assets.glob("*/.*.tmp*"):
        match = STALE.match(stale.name)
        if match is None or not stale.is_dir() or _alive(int(match["pid"])):
            continue
        final = stale.with_name(match["key"])
        try:
            with FileLock(str(final) + ".lock", timeout=0) if final != held else contextlib.nullcontext():
                log.info("removing %s, left by a build that was killed", stale)
                shutil.rmtree(stale, ignore_errors=True)
        except Timeout:
            continue


def build_asset(kind: str, name: str, recipe: Any, build: Callable[[Path], Any], *,
                extra: dict[str, Any] | None = None, root: str | Path | None = None) -> Path:
    """Return the cached directory of this asset, calling ``build(tmp_dir)`` first if it is missing.

    ``build`` fills the empty directory it is given; whatever it returns that is JSON-able is kept
    in the provenance under ``"build"``. Raises whatever ``build`` raises, leaving no asset behind.
    """
    from filelock import FileLock

    key = asset_key(kind, name, recipe, extra)
    final = asset_dir(kind, key, root)
    _remove_stale_builds(final.parent.parent)
    if is_built(final):
        log.info("reusing cached asset %s/%s (%s)", kind, key, final)
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(final) + ".lock"):
        _remove_stale_builds(final.parent.parent, held=final)
        problems = asset_problems(final)
        if problems == []:  # built by another process while we waited
            log.info("reusing cached asset %s/%s (%s)", kind, key, final)
            return final
        if problems:
            _discard(final, problems)
        tmp = final.with_name(f".{final.name}.tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        log.info("building asset %s/%s", kind, key)
        t0 = time.perf_counter()
        try:
            info = build(tmp)
            provenance = {
                "kind": kind, "key": key, "name": name,
                "recipe": dataclasses.asdict(recipe) if dataclasses.is_dataclass(recipe) else recipe,
                "extra": extra or {}, "build": jsonable(info),
                "wall_s": time.perf_counter() - t0, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "git_sha": git_sha(), "versions": package_versions(), "host": platform.platform(),
                "files": file_hashes(tmp),
            }
            (tmp / PROVENANCE).write_text(json.dumps(provenance, indent=2, sort_keys=True, default=str))
            if final.exists():  # a stale, incomplete directory (no provenance): replace it
                shutil.rmtree(final)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    log.info("built asset %s/%s in %.1f s", kind, key, provenance["wall_s"])
    return final


def read_provenance(path: str | Path) -> dict[str, Any]:
    return json.loads((Path(path) / PROVENANCE).read_text())
