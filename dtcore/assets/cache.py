"""The asset and run cache directory (``DTCORE_CACHE``, default ``~/.cache/dtcore``)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Root of every cached artefact: assets, trained runs, analyses."""
    return Path(os.environ.get("DTCORE_CACHE", Path.home() / ".cache" / "dtcore")).expanduser()
