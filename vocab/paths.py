"""Default locations of the daemon's files, following the XDG base directory spec.

An ``$XDG_*_HOME`` variable counts only when it is an absolute path (the spec
says relative ones are to be ignored); otherwise the spec's default under
the home folder applies.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

DEFAULT_MODELS_ROOT = Path("~/.llamafarm/models/vision")
APP = "vision-evald"
SYSTEM_CONFIG = Path("/etc") / APP / "config.toml"


def xdg_home(variable: str, fallback: str, environ: Mapping[str, str] | None = None) -> Path:
    """``$variable`` when set to an absolute path, else ``~/<fallback>``."""
    value = (os.environ if environ is None else environ).get(variable, "")
    return Path(value) if value and Path(value).is_absolute() else Path.home() / fallback


def default_state_dir() -> Path:
    """Where ``eval --local`` keeps ultralytics' private config, fonts and scratch files
    (``$XDG_CACHE_HOME/vision-evald``)."""
    return xdg_home("XDG_CACHE_HOME", ".cache") / APP


def daemon_state_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The daemon's own files when ``[paths] state_dir`` is empty: ``$XDG_STATE_HOME/vision-evald``
    (default ``~/.local/state/vision-evald``)."""
    return xdg_home("XDG_STATE_HOME", ".local/state", environ) / APP


def config_candidates(environ: Mapping[str, str] | None = None) -> list[Path]:
    """Where ``vision-evald`` looks for a config file without ``--config``, first match wins."""
    return [xdg_home("XDG_CONFIG_HOME", ".config", environ) / APP / "config.toml", SYSTEM_CONFIG]


def discover_config(environ: Mapping[str, str] | None = None) -> Path | None:
    """The first of ``config_candidates`` that is a file, else None (built-in defaults)."""
    return next((path for path in config_candidates(environ) if path.is_file()), None)
