"""Logging set-up for ``vision-evald``: readable text, or one JSON object per line for log shippers.

Text lines are ``<time> <LEVEL> <logger>: <message>``; when stderr is the
systemd journal (``$JOURNAL_STREAM`` names stderr's device and inode, as
systemd.exec(5) documents) the time is left out, since the journal stamps
every line itself. JSON lines always carry their own ``time`` (UTC, ISO 8601).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

FORMATS = ("text", "json")
TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
TEXT_UNDER_JOURNALD = "%(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message"[, "exception"]}``, one object per line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def stream_is_journal(stream: TextIO, environ: Mapping[str, str]) -> bool:
    """Whether ``stream`` is the journal: ``$JOURNAL_STREAM`` (``<device>:<inode>``) names its file."""
    expected = environ.get("JOURNAL_STREAM", "")
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):  # no file behind it (e.g. io.StringIO)
        return False
    return expected == f"{st.st_dev}:{st.st_ino}"


def configure_logging(level: str, fmt: str, stream: TextIO, environ: Mapping[str, str] | None = None) -> None:
    """Send the root logger's records at ``level`` and above to ``stream`` in ``fmt`` (``text`` or ``json``)."""
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {FORMATS}, got {fmt!r}")
    handler = logging.StreamHandler(stream)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        journal = stream_is_journal(stream, os.environ if environ is None else environ)
        handler.setFormatter(logging.Formatter(TEXT_UNDER_JOURNALD if journal else TEXT))
    logging.basicConfig(level=level, handlers=[handler], force=True)
