"""The analysis cache: one analysis result per key (checkpoint sha256 + analysis settings).

Layout under :func:`dtcore.provenance.cache_dir` (``DTCORE_CACHE``)::

    analyses/<kind>__<hash16>/        value.{npy,npz,json,pt} and meta.json (the key, provenance,
                                      the value's format and sha256; written last)
    analyses/<kind>__<hash16>.lock    the file lock: one process computes, the others wait, then load

The hash is :func:`dtcore.provenance.key_hash` of ``{"kind": kind, "key": key_parts}``: no
timestamp, no uuid. A value is loaded only when its bytes match the sha256 in a valid meta.json
(:mod:`dtcore.assets.integrity`); otherwise it is reported and computed again.

Nothing in the cache is executed: ``npy``/``npz`` load with ``allow_pickle=False`` and ``pt`` with
``weights_only=True`` (tensors and plain values only). A value holding anything else (a planted
object in a ``pt`` file or an object-dtype array in an ``npy``/``npz`` one, with its sha256
updated) is reported and computed again, never unpickled; a computed value that could not be read
back that way is a ``ValueError`` naming its kind.
"""

from __future__ import annotations

import io
import json
import math
import pickle
import re
import time
from pathlib import Path
from typing import Any, Callable, TypeVar

import numpy as np
import torch

from dtcore.assets.integrity import UnsafeCacheFileError, is_sha256, refuse_unsafe, report_corruption, writable_or_raise
from dtcore.provenance import (atomic_write_bytes, atomic_write_json, cache_dir, jsonable, key_hash, lock_for,
                               provenance, read_json, sha256_bytes, sha256_file)

T = TypeVar("T")
FORMATS = ("npy", "npz", "json", "pt")


def analyses_root(root: Path | None = None) -> Path:
    return (root or cache_dir()) / "analyses"


def _report_bad(path: Path, reason: str) -> None:
    """Report a bad cached file that is about to be recomputed; a read-only cache raises instead."""
    writable_or_raise(path, "cached file")
    report_corruption(path, reason)


def _same(a: Any, b: Any) -> bool:
    """Equality of plain values in which NaN equals NaN (JSON writes and reads it back as NaN)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def _encode(value: Any, kind: str = "") -> tuple[str, bytes]:
    """(format, bytes): ``npy`` for an array, ``npz`` for a dict of arrays, ``json`` for plain
    values that round-trip exactly (NaN included), ``pt`` (torch.save) for tensors and other values
    that ``torch.load(..., weights_only=True)`` reads back; anything else is a ``ValueError``."""
    buf = io.BytesIO()
    if isinstance(value, np.ndarray) and value.dtype != object:
        np.save(buf, value, allow_pickle=False)
        return "npy", buf.getvalue()
    if (isinstance(value, dict) and value and all(isinstance(k, str) for k in value)
            and all(isinstance(v, np.ndarray) and v.dtype != object for v in value.values())):
        np.savez(buf, **value)
        return "npz", buf.getvalue()
    try:
        text = json.dumps(value, sort_keys=True)
        if _same(json.loads(text), value):
            return "json", text.encode()
    except (TypeError, ValueError):
        pass
    torch.save(value, buf)
    try:
        torch.load(io.BytesIO(buf.getvalue()), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise ValueError(f"analysis {kind!r}: a {type(value).__name__} value cannot be cached in a form that "
                         "loads without running code; return arrays, tensors or plain values") from None
    return "pt", buf.getvalue()


def _decode(fmt: str, path: Path) -> Any:
    """The value stored in ``path`` as ``fmt``. A file holding objects beyond arrays, tensors and
    plain values (a ``pt`` pickle of another object, an object-dtype ``npy``/``npz`` array: only a
    planted file does) is an :class:`UnsafeCacheFileError`, never unpickled."""
    try:
        if fmt == "npy":
            return np.load(path, allow_pickle=False)
        if fmt == "npz":
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        if fmt == "json":
            return json.loads(path.read_text())
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:       # torch's weights_only refusal
        raise refuse_unsafe(path, "it is computed again") from None
    except ValueError as err:            # numpy's: "Object arrays cannot be loaded when allow_pickle=False"
        if "allow_pickle" not in str(err):
            raise
        raise refuse_unsafe(path, "it is computed again") from None


class AnalysisCache:
    """Analysis results cached by key (checkpoint sha256 + analysis config), locked and atomic.

    ``cache(key_parts, compute, kind="cka")`` returns the stored value when ``key_parts`` were
    seen before, else runs ``compute()`` once (other processes wait on the lock) and stores it.
    With ``regen`` every key is recomputed once per session (``session`` names the session, so
    that pytest-xdist workers of the same session share one recomputation).
    """

    def __init__(self, root: Path | None = None, *, regen: bool = False, session: str = "") -> None:
        self.root = Path(root) if root is not None else None
        self.regen = regen
        self.session = session
        self.computed: list[str] = []
        self.loaded: list[str] = []

    def path(self, key_parts: dict[str, Any], kind: str) -> Path:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", kind):
            raise ValueError(f"kind must be a short name of letters, digits, '_', '-', '.', got {kind!r}")
        return analyses_root(self.root) / f"{kind}__{key_hash({'kind': kind, 'key': key_parts})}"

    def __call__(self, key_parts: dict[str, Any], compute: Callable[[], T], *, kind: str) -> T:
        folder = self.path(key_parts, kind)
        with lock_for(folder):
            meta = self._valid_meta(folder)
            if meta is not None:
                value_path = folder / f"value.{meta['format']}"
                try:
                    value = _decode(meta["format"], value_path)
                except UnsafeCacheFileError:   # a planted object: refused, never unpickled
                    _report_bad(value_path, "it holds objects other than tensors and plain values, which "
                                "loading would run as code; check who can write the cache (docs/cluster.md)")
                else:
                    self.loaded.append(folder.name)
                    return value
            start = time.perf_counter()
            value = compute()
            fmt, data = _encode(value, kind)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "meta.json").unlink(missing_ok=True)
            atomic_write_bytes(folder / f"value.{fmt}", data)
            atomic_write_json(folder / "meta.json", provenance(
                jsonable(key_parts), wall_time_s=time.perf_counter() - start, kind=kind, format=fmt,
                sha256=sha256_bytes(data), session=self.session))
            self.computed.append(folder.name)
            return value

    def _valid_meta(self, folder: Path) -> dict[str, Any] | None:
        """meta.json when it is a valid record and the value's bytes match its sha256, else None
        (a damaged record or value is reported; a folder without meta.json is simply not built)."""
        meta = read_json(folder / "meta.json")
        if not isinstance(meta, dict) or meta.get("format") not in FORMATS \
                or not is_sha256(meta.get("sha256")):
            if (folder / "meta.json").exists():
                _report_bad(folder / "meta.json", "not a valid record (format, sha256)")
            return None
        if self.regen and not (self.session and meta.get("session") == self.session):
            return None
        value = folder / f"value.{meta['format']}"
        if not value.exists() or sha256_file(value) != meta["sha256"]:
            _report_bad(value, "missing or its sha256 does not match meta.json")
            return None
        return meta
