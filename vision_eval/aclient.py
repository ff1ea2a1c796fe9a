"""The asynchronous client (aiohttp), for callers that run an event loop, e.g. LlamaFarm's server.

    async with AsyncClient("http://127.0.0.1:11540", token) as client:
        job = await client.eval("det", "/data/coco.yaml")
        job = await client.wait(job["job_id"])

The same operations as the synchronous ``Client`` (``vision_eval.api.Endpoints``),
each a coroutine returning the decoded JSON body or raising ``ApiError`` /
``Unreachable``. Pass ``session`` to share the caller's ``aiohttp.ClientSession``
(then the caller closes it); otherwise the client opens its own and closes it
in ``close()`` or on leaving ``async with``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Self

import aiohttp
from yarl import URL

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

__all__ = ["DEFAULT_URL", "ApiError", "AsyncClient", "Unreachable"]


class AsyncClient(Endpoints[Coroutine[Any, Any, Any]]):
    """A non-blocking client of one daemon; ``timeout`` applies to each request."""

    def __init__(self, url: str = DEFAULT_URL, token: str | None = None, timeout: float = 30.0,
                 session: aiohttp.ClientSession | None = None) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._session = session
        self._owns_session = session is None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the session this client opened (a session passed in is the caller's to close)."""
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    def _send(self, call: Call) -> Coroutine[Any, Any, Any]:
        return self._request(call)

    async def _request(self, call: Call) -> Any:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        headers = {"Accept": call.accept}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            async with self._session.request(call.method, URL(call.url(self.url), encoded=True), json=call.body,
                                             headers=headers, timeout=self.timeout) as resp:
                raw = await resp.read()
                if resp.status >= 400:
                    raise ApiError(resp.status, error_detail(raw, resp.reason or ""), resp.headers.get("Retry-After"))
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:  # refused, DNS, timeout, not HTTP
            raise Unreachable(self.url, str(exc) or type(exc).__name__) from None
        return decode(raw, self.url, call)

    async def wait(self, job_id: str, on_update: Callable[[dict[str, Any]], Awaitable[None] | None] | None = None,
                   interval: float = 0.25, max_interval: float = 2.0) -> dict[str, Any]:
        """Poll a job until it is completed, failed or cancelled; return it. ``on_update`` (plain or
        async) sees every poll."""
        for pause in poll_intervals(interval, max_interval):
            job: dict[str, Any] = await self.job(job_id)
            if on_update is not None:
                update = on_update(job)
                if update is not None:
                    await update
            if job["status"] in FINISHED:
                return job
            await asyncio.sleep(pause)
        raise AssertionError("unreachable: poll_intervals never ends")
