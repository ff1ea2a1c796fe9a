"""The synchronous client, on the standard library only (no aiohttp, no torch).

``Client(url, token).eval("det", "/data/coco.yaml")`` submits a job and
returns it; ``wait(job_id)`` polls until it has finished. Every operation of
``vision_eval.api.Endpoints`` returns the decoded JSON body or raises
``ApiError`` / ``Unreachable`` (see that module's contract).
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from vision_eval.api import (
    DEFAULT_URL,
    FINISHED,
    ApiError,
    Call,
    Endpoints,
    Unreachable,
    decode,
    error_detail,
    poll_intervals,
)

__all__ = ["DEFAULT_URL", "ApiError", "Client", "Unreachable"]


class Client(Endpoints[Any]):
    """A blocking client of one daemon; ``timeout`` applies to each request."""

    def __init__(self, url: str = DEFAULT_URL, token: str | None = None, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def _send(self, call: Call) -> Any:
        headers = {"Accept": call.accept}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = None
        if call.body is not None:
            data = json.dumps(call.body).encode()
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(call.url(self.url), data=data, method=call.method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raise ApiError(exc.code, error_detail(_read(exc), str(exc.reason)), exc.headers.get("Retry-After")) \
                from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:  # refused, DNS, timeout, not HTTP
            reason = getattr(exc, "reason", None) or exc
            raise Unreachable(self.url, str(reason)) from None
        return decode(raw, self.url, call)

    def wait(self, job_id: str, on_update: Callable[[dict[str, Any]], None] | None = None,
             interval: float = 0.25, max_interval: float = 2.0) -> dict[str, Any]:
        """Poll a job until it is completed, failed or cancelled; return it. ``on_update`` sees every poll."""
        for pause in poll_intervals(interval, max_interval):
            job: dict[str, Any] = self.job(job_id)
            if on_update is not None:
                on_update(job)
            if job["status"] in FINISHED:
                return job
            time.sleep(pause)
        raise AssertionError("unreachable: poll_intervals never ends")


def _read(exc: urllib.error.HTTPError) -> bytes:
    try:
        return exc.read()
    except OSError:
        return b""
