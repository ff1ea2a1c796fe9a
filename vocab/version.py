"""The installed version of vision-evald: one lookup for ``--version`` and ``vision_evald_build_info``."""

from __future__ import annotations

from importlib import metadata

DISTRIBUTION = "vision-evald"


def version() -> str:
    """The distribution's version; ``0+unknown`` when run from a source tree that was never installed."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "0+unknown"
