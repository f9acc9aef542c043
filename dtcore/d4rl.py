"""D4RL's own files (docs/spec.md §2.1): fetches D4RL's own files into ``DTCORE_DATA_DIR``
(default ``~/.d4rl/datasets``, where d4rl keeps them), checks sha256 where a hash is known and
writes atomically; offline it fails at once and says which file to put where.
"""

from __future__ import annotations

import hashlib
import logging
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import BinaryIO

from dtcore.envs import env_spec
from dtcore.provenance import atomic_write, sha256_file

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------
# Download (docs/spec.md §2.1; docs/dependencies.md: D4RL's own URLs)
# --------------------------------------------------------------------------------------------

D4RL_BASE_URL = "http://rail.eecs.berkeley.edu/datasets/offline_rl/gym_mujoco_v2"
D4RL_KINDS = ("medium", "random", "expert")

# sha256 of D4RL's files where known. None is verified here yet (no network on the machine that
# wrote this), so every entry is empty and downloads are not checked; fill in from a trusted copy.
KNOWN_SHA256: dict[str, str] = {
    f"{env}_{kind}-v2.hdf5": "" for env in ("hopper", "halfcheetah", "walker2d") for kind in D4RL_KINDS
}


class DatasetDownloadError(OSError):
    """A D4RL file could not be fetched (offline, HTTP error) or failed its checksum."""


def data_dir() -> Path:
    """Where D4RL files live: ``DTCORE_DATA_DIR``, default ``~/.d4rl/datasets`` (d4rl's own)."""
    return _default_data_dir()


def _default_data_dir() -> Path:
    return Path(os.environ.get("DTCORE_DATA_DIR", Path.home() / ".d4rl" / "datasets")).expanduser()


def d4rl_filename(env: str, kind: str = "medium") -> str:
    env_spec(env)
    if kind not in D4RL_KINDS:
        raise ValueError(f"unknown dataset kind {kind!r}; known: {', '.join(D4RL_KINDS)}")
    return f"{env}_{kind}-v2.hdf5"


def d4rl_url(env: str, kind: str = "medium") -> str:
    """D4RL's URL of ``{env}_{kind}-v2.hdf5``."""
    return f"{D4RL_BASE_URL}/{d4rl_filename(env, kind)}"


def download_d4rl(env: str, kind: str = "medium", data_dir: str | os.PathLike | None = None, *,
                  url: str | None = None, sha256: str | None = None, timeout: float = 10.0) -> Path:
    """The local path of D4RL's ``{env}_{kind}-v2.hdf5``, downloading it first if absent.

    ``url`` overrides D4RL's URL (tests use a loopback server) and ``sha256`` the known hash. The
    file is written to a temporary name in the same folder and renamed only after its hash
    matched, so a failed or refused download leaves nothing behind.
    """
    name = d4rl_filename(env, kind)
    folder = Path(data_dir).expanduser() if data_dir is not None else _default_data_dir()
    target = folder / name
    expected = sha256 if sha256 is not None else KNOWN_SHA256.get(name, "")
    if target.exists():
        if not expected or sha256_file(target) == expected:
            return target
        log.warning("%s does not match its known sha256; downloading it again", target)
    src = url or d4rl_url(env, kind)

    def write(out) -> None:   # inside atomic_write: a raise leaves nothing behind
        digest = _fetch(src, out, timeout, name, target)
        if expected and digest != expected:
            raise DatasetDownloadError(f"{name} from {src}: sha256 {digest} does not match the "
                                       f"known {expected}; the file was not kept")

    atomic_write(target, write)
    log.info("downloaded %s to %s", src, target)
    return target


def _fetch(src: str, out: BinaryIO, timeout: float, name: str, target: Path) -> str:
    """Stream ``src`` into the open file ``out``; the sha256 of what was written."""
    h = hashlib.sha256()
    try:
        with urllib.request.urlopen(src, timeout=timeout) as resp:
            while block := resp.read(1 << 20):
                h.update(block)
                out.write(block)
    except (urllib.error.URLError, OSError) as e:
        raise DatasetDownloadError(
            f"cannot download {name} from {src} ({e}). Without network access, copy {name} "
            f"(from {src} on a connected machine) to {target}, or set DTCORE_DATA_DIR to the "
            f"folder that holds it") from e
    return h.hexdigest()
