"""Checkpoint files of a run folder: their names, atomic save and load, and the hash manifest.

Layout of a run folder (written by :func:`dtcore.train.train`)::

    epoch_000.pt ...    one checkpoint per epoch (0: before training), written atomically
    log.json            per-epoch records
    manifest.json       {file name: sha256}: each checkpoint's hash, recorded by :func:`save` as
                        soon as the file is in place; ``log.json``'s hash is added when the run
                        is complete (:func:`record_file`)

The integrity rule (:mod:`dtcore.assets.integrity`): a checkpoint is used only when its bytes
match the sha256 the manifest recorded when it was written, and the manifest must itself be valid
(a JSON object of checkpoint or log name -> sha256 hex). A checkpoint that differs, or that no
valid manifest lists, is reported with a ``CacheCorruptionWarning`` naming the file and deleted
together with every later epoch (:func:`drop_corrupt`), so that a resumed training rebuilds from
the last verified epoch; it is never re-approved by hashing it again. An invalid completion mark
(``provenance.json``) is reported too, saying whether anything is retrained (:func:`report_invalid_mark`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from dtcore.assets.integrity import is_sha256, refuse_unsafe, report_corruption, writable_or_raise
from dtcore.provenance import atomic_write, atomic_write_json, read_json, sha256_file

MANIFEST = "manifest.json"
LOG_FILE = "log.json"
PROVENANCE = "provenance.json"      # the run's completion mark (written by dtcore.runs)
NAME = re.compile(r"^epoch_(\d+)\.pt$")


def checkpoint_path(run_dir: str | os.PathLike, epoch: int) -> Path:
    return Path(run_dir) / f"epoch_{epoch:03d}.pt"


def checkpoint_files(directory: str | os.PathLike | None) -> dict[int, Path]:
    """``{epoch: path}`` of the ``epoch_XXX.pt`` files in ``directory``, sorted by epoch."""
    if directory is None or not Path(directory).is_dir():
        return {}
    found = {int(m.group(1)): p for p in Path(directory).iterdir() if (m := NAME.match(p.name))}
    return dict(sorted(found.items()))


def save(path: Path, state: dict[str, Any]) -> Path:
    """``torch.save(state)`` to ``path`` atomically, then record its sha256 in the folder's manifest."""
    import torch

    atomic_write(path, lambda f: torch.save(state, f))
    record_file(path)
    return path


def load(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """A checkpoint written by :func:`dtcore.train.train`: keys ``format``, ``epoch``, ``step``,
    ``config``, ``resume_key``, ``model``, ``optimizer`` (None once stripped), ``scheduler``,
    ``sampler``, ``rng``, ``epochs`` (EpochLog dicts), ``initial_action_error``. Plain types and
    tensors only, so ``weights_only=True`` reads it: nothing in the file is executed. A file that
    holds anything else (a planted object) is refused with :class:`UnsafeCacheFileError`."""
    import pickle

    import torch

    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        raise refuse_unsafe(path, f"delete {Path(path).parent} and run again to rebuild it") from None


# --- the manifest ---------------------------------------------------------------------------

def read_manifest(directory: str | os.PathLike) -> dict[str, str]:
    """``{file name: sha256}`` of the run folder; empty if missing or invalid: an invalid
    manifest vouches for nothing."""
    m = read_json(Path(directory) / MANIFEST)
    return dict(m) if _valid_manifest(m) else {}


def _valid_manifest(m: Any) -> bool:
    return isinstance(m, dict) and all(
        isinstance(k, str) and (NAME.match(k) or k == LOG_FILE) and is_sha256(v) for k, v in m.items())


def manifest_invalid(directory: str | os.PathLike) -> bool:
    """True when ``manifest.json`` exists but is not a valid ``{file: sha256}`` record."""
    path = Path(directory) / MANIFEST
    return path.exists() and not _valid_manifest(read_json(path))


def record_file(path: str | os.PathLike) -> None:
    """Record (or replace) the sha256 of ``path`` (a checkpoint or the log) in its folder's manifest."""
    path = Path(path)
    manifest = read_manifest(path.parent)
    manifest[path.name] = sha256_file(path)
    atomic_write_json(path.parent / MANIFEST, manifest)


def verify(directory: str | os.PathLike, epoch: int, *, report: bool = True) -> bool:
    """True when ``epoch_XXX.pt`` exists and matches its manifest sha256; a mismatch is reported
    unless ``report`` is off (the caller then repairs the run, and :func:`drop_corrupt` reports the
    file once, after checking that it can be deleted)."""
    path = checkpoint_files(directory).get(epoch)
    if path is None:
        return False
    problem = _problem(path, read_manifest(directory).get(path.name))
    if problem and report:
        report_corruption(path, problem)
    return problem is None


def _problem(path: Path, expected: str | None) -> str | None:
    if expected is None:
        return "no valid manifest records its sha256, so it cannot be verified"
    actual = sha256_file(path)
    if actual != expected:
        return f"sha256 {actual[:12]} does not match the manifest's {expected[:12]}"
    return None


def _report_bad(path: Path, reason: str, **action: str) -> None:
    """Report a bad file that is about to be deleted (or rewritten: ``action``); a read-only cache
    raises instead."""
    writable_or_raise(path, "cached file")
    report_corruption(path, reason, **action)


def mark_invalid(directory: str | os.PathLike) -> bool:
    """True when the run's completion mark (``provenance.json``) exists but is not a JSON object."""
    path = Path(directory) / PROVENANCE
    return path.exists() and not isinstance(read_json(path), dict)


def report_invalid_mark(directory: str | os.PathLike, resumed_from: int | None, epochs: int) -> None:
    """Report an invalid completion mark (:func:`mark_invalid`) with what happens to the run: when
    every epoch up to ``epochs`` verified (``resumed_from == epochs``), nothing is retrained and the
    mark is written again; else the run resumes after ``resumed_from`` (None: from the start) and
    the mark is written when it completes. A read-only folder raises instead."""
    if resumed_from == epochs:
        action = "every checkpoint matches the manifest, so nothing is retrained; the mark is written again"
    else:
        where = "from the start" if resumed_from is None else f"resuming after epoch {resumed_from}"
        action = f"the run is trained again {where} and the mark is written when it completes"
    _report_bad(Path(directory) / PROVENANCE, "not a JSON object (the run's completion mark)", action=action)


def drop_corrupt(directory: str | os.PathLike) -> int | None:
    """Delete the first bad checkpoint and every later one; return its epoch (None if all good).

    A checkpoint is bad when its bytes differ from the manifest or when no valid manifest lists
    it (lost or invalid manifest, or the process died between saving and recording it). The
    run's completion mark (provenance) goes too.
    """
    directory = Path(directory)
    if manifest_invalid(directory):
        _report_bad(directory / MANIFEST, "not a valid {file: sha256} record; every file it listed is unverifiable")
        (directory / MANIFEST).unlink()
    manifest = read_manifest(directory)
    for epoch, path in checkpoint_files(directory).items():
        problem = _problem(path, manifest.get(path.name))
        if problem:
            _report_bad(path, problem)
            drop_from(directory, epoch)
            return epoch
    return None


def drop_from(directory: str | os.PathLike, first: int) -> None:
    """Delete checkpoints ``first``.. with their manifest entries, and the completion mark."""
    directory = Path(directory)
    (directory / PROVENANCE).unlink(missing_ok=True)
    manifest = read_manifest(directory)
    for epoch, path in checkpoint_files(directory).items():
        if epoch >= first:
            path.unlink(missing_ok=True)
            manifest.pop(path.name, None)
    atomic_write_json(directory / MANIFEST, manifest)
