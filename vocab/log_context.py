"""The fields a log line carries about what it is doing: ``request_id``, ``job_id``, ``model``.

Set with ``bind`` around the work (an HTTP request, a job) in the task doing it: asyncio copies the
context into every task it creates, so the fields follow the work and never leak into other tasks.
The daemon's log formatter (``daemon.app.logs``) writes them as fields of JSON lines.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

FIELDS: tuple[str, ...] = ("request_id", "job_id", "model")
_current: ContextVar[dict[str, str]] = ContextVar("vision_evald_log_fields", default={})  # noqa: B039 - never mutated


def current() -> dict[str, str]:
    """The fields bound where this is called."""
    return _current.get()


@contextmanager
def bind(**fields: str | None) -> Iterator[None]:
    """Add ``fields`` (those not None) to the log fields for the duration of the block."""
    token = _current.set({**_current.get(), **{k: str(v) for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _current.reset(token)
