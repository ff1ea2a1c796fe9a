"""Default locations of the daemon's files."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_MODELS_ROOT = Path("~/.llamafarm/models/vision")


def default_state_dir() -> Path:
    """Where ultralytics' private config, fonts and scratch files live (``$XDG_CACHE_HOME/vision-evald``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vision-evald"
