"""A small HTTP client for the daemon's API, on the standard library only (no aiohttp, no torch).

Every call returns the decoded JSON body or raises one of two errors:
``ApiError`` (the daemon answered with an error status; ``detail`` is its
``{"detail": ...}``) or ``Unreachable`` (nothing answered at the URL).
``wait`` polls ``GET /v1/vision/jobs/{id}`` until the job has finished.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

DEFAULT_URL = "http://127.0.0.1:11540"
FINISHED = ("completed", "failed", "cancelled")


class ApiError(Exception):
    """The daemon answered with an HTTP error status."""

    def __init__(self, status: int, detail: str, retry_after: str | None = None) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status, self.detail, self.retry_after = status, detail, retry_after


class Unreachable(Exception):
    """No HTTP answer from the daemon's URL (refused, timed out, not HTTP)."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"cannot reach the daemon at {url}: {reason}")
        self.url, self.reason = url, reason


class Client:
    """``Client(url, token).get("/v1/vision/jobs", limit=5)``; see the module contract."""

    def __init__(self, url: str = DEFAULT_URL, token: str | None = None, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def request(self, method: str, path: str, body: dict[str, Any] | None = None,
                query: dict[str, Any] | None = None) -> Any:
        params = {k: v for k, v in (query or {}).items() if v is not None}
        url = self.url + urllib.parse.quote(path) + (f"?{urllib.parse.urlencode(params)}" if params else "")
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raise ApiError(exc.code, _detail(exc), exc.headers.get("Retry-After")) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:  # refused, DNS, timeout, not HTTP
            reason = getattr(exc, "reason", None) or exc
            raise Unreachable(self.url, str(reason)) from None
        try:
            return json.loads(raw) if raw else None
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise Unreachable(self.url, "the answer is not JSON (is this the vision-evald API?)") from None

    def get(self, path: str, **query: Any) -> Any:
        return self.request("GET", path, query=query)

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self.request("POST", path, body=body)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)

    def wait(self, job_id: str, on_update: Callable[[dict[str, Any]], None] | None = None,
             interval: float = 0.25, max_interval: float = 2.0) -> dict[str, Any]:
        """Poll a job until it is completed, failed or cancelled; return it."""
        while True:
            job = self.get(f"/v1/vision/jobs/{job_id}")
            if on_update is not None:
                on_update(job)
            if job["status"] in FINISHED:
                return job
            time.sleep(interval)
            interval = min(max_interval, interval * 1.5)


def _detail(exc: urllib.error.HTTPError) -> str:
    """The server's ``detail``, else the body's text, else the HTTP reason."""
    try:
        raw = exc.read()
    except OSError:
        raw = b""
    try:
        body = json.loads(raw)
        if isinstance(body, dict) and "detail" in body:
            return str(body["detail"])
    except (json.JSONDecodeError, UnicodeDecodeError):
        pass
    text = raw.decode("utf-8", "replace").strip()
    return text[:500] or str(exc.reason)
