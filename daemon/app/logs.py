"""Logging set-up for ``vision-evald``: readable text, or one JSON object per line for log shippers.

Text lines are ``<time> <LEVEL> <logger>: <message>``; when stderr is the
systemd journal (``$JOURNAL_STREAM`` names stderr's device and inode, as
systemd.exec(5) documents) the time is left out, since the journal stamps
every line itself. JSON lines always carry their own ``time`` (UTC, ISO 8601).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

from vocab import log_context

FORMATS = ("text", "json")
TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
TEXT_UNDER_JOURNALD = "%(levelname)s %(name)s: %(message)s"


# apscheduler logs every run of every job at INFO ("Running job ...", "... executed successfully"): one
# pair per rescan and WAL checkpoint. Those are DEBUG lines to a reader of this daemon's log.
DEMOTED_TO_DEBUG = ("apscheduler.executors",)


class ContextFields(logging.Filter):
    """Stamps each record with a sequence number (``seq``, per process, in the order records are handled)
    and the log fields bound where it was logged (``vocab.log_context``: request_id, job_id, model);
    demotes the ``DEMOTED_TO_DEBUG`` loggers' INFO records to DEBUG and keeps only what ``level`` admits."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level
        self.seq = itertools.count(1)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO and record.name.startswith(DEMOTED_TO_DEBUG):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        if record.levelno < self.level:
            return False
        record.seq = next(self.seq)
        for key, value in log_context.current().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class JsonFormatter(logging.Formatter):
    """``{"time", "seq", "level", "logger", "message"[, "request_id", "job_id", "model"][, "exception"]}``, one
    object per line (the context fields when bound, or given as ``extra=``)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "seq": getattr(record, "seq", None),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: getattr(record, k) for k in log_context.FIELDS if getattr(record, k, None) is not None})
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
    handler.addFilter(ContextFields(logging.getLevelName(level)))
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        journal = stream_is_journal(stream, os.environ if environ is None else environ)
        handler.setFormatter(logging.Formatter(TEXT_UNDER_JOURNALD if journal else TEXT))
    logging.basicConfig(level=level, handlers=[handler], force=True)
