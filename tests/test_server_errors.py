"""An unexpected exception inside a handler is a 500 JSON answer carrying the request's real id (the one
echoed in X-Request-Id and written in the log), never "request id None"."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from handlers.app import make_app
from vocab.config import Config


class BrokenFacade(SimpleNamespace):
    """A facade whose job listing fails with a bug (stands in for any unexpected failure)."""

    async def list_jobs(self, *args: Any) -> Any:
        raise RuntimeError("a bug")

    def observe_request(self, *args: Any) -> None:
        pass


async def test_a_500_names_the_request_id(caplog: pytest.LogCaptureFixture) -> None:
    from daemon.app.service_facade import http_settings

    app = make_app(BrokenFacade(http=http_settings(Config())))  # type: ignore[arg-type]
    async with TestClient(TestServer(app)) as client:
        with caplog.at_level(logging.ERROR):
            r = await client.get("/v1/vision/jobs", headers={"X-Request-Id": "abc-123"})
            body = await r.json()
    assert r.status == 500 and r.headers["X-Request-Id"] == "abc-123"
    assert body["detail"] == "internal error (request id abc-123); see the daemon log"
    assert any("request id abc-123" in rec.getMessage() for rec in caplog.records)
