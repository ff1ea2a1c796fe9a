"""Cross-site requests and DNS rebinding are refused, on every route, with no effect at all.

In process: a real ``Service`` (real SQLite in tmp_path, real aiohttp server on
a free loopback port, real queue, promoter and submissions) whose executor is
a stand-in that holds every task until it is cancelled -- the guard must stop
requests before any task could start, and the stand-in spares each test the
cost of spawning torch workers. The routes are enumerated from the app's own
router, so a route added later is covered without editing this file.

For every (route, method): a foreign ``Origin``, ``Origin: null``, a rebinding
``Host`` and (state-changing methods) ``Sec-Fetch-Site: cross-site`` answer 403
JSON; POSTs are sent as urlencoded form, multipart and ``text/plain`` bodies
that would otherwise submit work. Afterwards the jobs, evaluations, ledger and
claims tables and every file under the models root and state dir are exactly
as before, and a running job was not cancelled. Controls: the same form POST
without ``Origin`` (a non-browser client) and from the daemon's own origin
creates a job, so the refused requests were live.

A real daemon (child process) is checked too, in tests/test_dashboard.py (whose real daemon it
shares): the issue's exact rollback request with ``Origin: http://evil.example`` and a rebinding
``Host``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import re
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from daemon.app.service import Service
from handlers.browser_guard import BrowserGuard
from tests.daemon_fixtures import STRONG_PT, WEAK_PT, make_dataset, place_model
from vocab.config import Config, ServerConfig, parse_config
from vocab.errors import ConfigError, JobCancelled
from vocab.hosts import parse_origin, split_host_header

TABLES = ("jobs", "eval_results", "promotions", "checkpoint_claims", "skipped_checkpoints")
FOREIGN = ({"Origin": "http://evil.example"}, {"Origin": "null"}, {"Host": "evil.example:11540"},
           {"Origin": "http://localhost:3000"})


class HoldingExecutor:
    """Stand-in executor: a task waits until cancelled (no torch worker needed to hold a job running)."""

    def __init__(self) -> None:
        self.info: dict[str, Any] = {"pid": None}
        self.calls: list[str] = []

    async def start(self) -> None:
        return None

    async def run(self, kind: str, params: dict[str, Any], *, job_id: str, on_progress: Any, timeout: float,
                  cancel: asyncio.Event) -> dict[str, Any]:
        self.calls.append(job_id)
        await cancel.wait()
        raise JobCancelled("cancelled by request")

    def healthy(self) -> bool:
        return True

    async def close(self) -> None:
        return None


def snapshot(root: Path, db: Path) -> dict[str, Any]:
    files = {}
    for base in (root / "models", root / "state"):
        for p in sorted(base.rglob("*")):
            if p.is_file():
                st = p.stat()
                files[str(p)] = (st.st_size, st.st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = {t: conn.execute(f"SELECT * FROM {t} ORDER BY rowid").fetchall() for t in TABLES}
    finally:
        conn.close()
    return {"files": files, "rows": rows}


class Env:
    def __init__(self, svc: Service, root: Path, dataset: Path) -> None:
        self.svc, self.root, self.dataset = svc, root, dataset
        self.base = f"http://127.0.0.1:{svc.bound_port}"

    def snapshot(self) -> dict[str, Any]:
        return snapshot(self.root, self.svc.config.db_path)


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    models = tmp_path / "models"
    place_model(models, "det", STRONG_PT, "current.pt")
    place_model(models, "det", WEAK_PT, "v1.pt")
    dataset = make_dataset(tmp_path / "data", n_val=2, seed=3)
    cfg = parse_config({
        "server": {"port": 1, "allowed_hosts": ["vision.internal"], "allowed_origins": ["https://ui.example"]},
        "paths": {"models_root": str(models), "state_dir": str(tmp_path / "state"),
                  "db_path": str(tmp_path / "eval.db"), "allowed_roots": [str(tmp_path)]},
        "watch": {"enabled": False},
    }, environ={})
    cfg = dataclasses.replace(cfg, server=dataclasses.replace(cfg.server, port=0))  # any free port
    svc = Service(cfg, executor=HoldingExecutor())
    await svc.start()
    try:
        yield Env(svc, tmp_path, dataset)
    finally:
        await svc.close()


def _routes(svc: Service) -> list[tuple[str, str]]:
    """Every (method, concrete path) the app routes; HEAD aside (aiohttp adds it to every GET)."""
    app = svc._runner.app  # type: ignore[union-attr]
    out = []
    for route in app.router.routes():
        if route.method == "HEAD":
            continue
        assert route.resource is not None
        path = re.sub(r"{name}|{model_name}", "det", route.resource.canonical)
        out.append((route.method, re.sub(r"{job_id}", "JOBID", path)))
    assert len(out) >= 15, out
    return out


def _bodies(dataset: Path) -> list[tuple[str, Any]]:
    fields = {"model": "det", "model_a": "det", "model_b": "det", "dataset": str(dataset), "version": "1",
              "reason": "x", "dataset_yaml": str(dataset), "epochs": "1"}
    multipart = aiohttp.FormData()
    for k, v in fields.items():
        multipart.add_field(k, v)
    multipart.add_field("file", b"x", filename="x.txt")  # forces multipart/form-data
    plain = "&".join(f"{k}={v}" for k, v in fields.items())
    return [("form", fields), ("multipart", multipart), ("text/plain", plain)]


async def _send(session: aiohttp.ClientSession, method: str, url: str, headers: dict[str, str],
                body: tuple[str, Any] | None) -> tuple[int, dict[str, Any]]:
    kwargs: dict[str, Any] = {"headers": dict(headers)}
    if body is not None:
        kind, data = body
        kwargs["data"] = data
        if kind == "text/plain":
            kwargs["headers"]["Content-Type"] = "text/plain"
    async with session.request(method, url, **kwargs) as r:
        return r.status, (await r.json() if r.content_type == "application/json" else {})


async def _submit(session: aiohttp.ClientSession, env: Env, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    return await _send(session, "POST", f"{env.base}/v1/vision/eval", headers,
                       ("form", {"model": "det", "dataset": str(env.dataset)}))


async def test_foreign_origins_and_hosts_are_refused_on_every_route_with_no_effect(env: Env) -> None:
    async with aiohttp.ClientSession() as session:
        status, job = await _submit(session, env, {})
        assert status == 202, job
        running_id = job["job_id"]
        deadline = asyncio.get_running_loop().time() + 30
        while running_id not in env.svc.executor.calls:  # type: ignore[attr-defined]  # the stand-in holds it
            assert asyncio.get_running_loop().time() < deadline, "the submitted job never reached the executor"
            await asyncio.sleep(0.05)
        before = env.snapshot()
        calls_before = len(env.svc.executor.calls)  # type: ignore[attr-defined]
        refused = 0
        for method, path in _routes(env.svc):
            url = env.base + path.replace("JOBID", running_id)
            cases = [*FOREIGN, *([{"Sec-Fetch-Site": "cross-site"}] if method != "GET" else [])]
            for headers in cases:
                for body in (_bodies(env.dataset) if method == "POST" else [None]):  # fresh: sent once each
                    status, answer = await _send(session, method, url, headers, body)
                    assert status == 403, (method, path, headers, body and body[0], status, answer)
                    assert isinstance(answer.get("detail"), str) and answer["detail"], answer
                    refused += 1
        assert refused >= 60
        # Every effect a request can have (a job row, a promotion, a file) is committed before its answer is
        # sent, and every refused request has been answered: nothing is left to wait for.
        assert env.snapshot() == before
        assert len(env.svc.executor.calls) == calls_before  # type: ignore[attr-defined]
        status, job = await _send(session, "GET", f"{env.base}/v1/vision/jobs/{running_id}", {}, None)
        assert (status, job["status"]) == (200, "running")

        # Controls: the refused form POST is live for a non-browser client and for our own pages.
        for own in ({}, {"Origin": env.base}, {"Origin": env.base.replace("127.0.0.1", "localhost")},
                    {"Origin": "https://ui.example"}, {"Host": "vision.internal:1"},
                    {"Sec-Fetch-Site": "same-origin", "Origin": env.base}):
            status, job = await _submit(session, env, own)
            assert status == 202, (own, job)
        assert len(env.snapshot()["rows"]["jobs"]) == len(before["rows"]["jobs"]) + 6


async def test_a_refusal_is_logged_with_its_request_id(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    async with aiohttp.ClientSession() as session, session.post(
            f"{env.base}/v1/vision/models/det/rollback",
            headers={"Origin": "http://evil.example", "X-Request-Id": "abc-123"}) as r:
        assert r.status == 403
        assert r.headers["X-Request-Id"] == "abc-123"
    assert any("abc-123" in rec.getMessage() and "evil.example" in rec.getMessage() for rec in caplog.records)


@pytest.mark.parametrize(("value", "host"), [
    ("localhost:11540", "localhost"), ("127.0.0.1", "127.0.0.1"), ("[::1]:11540", "::1"),
    ("Evil.Example.:80", "evil.example"), ("[::1]", "::1"),
])
def test_host_header_parsing(value: str, host: str) -> None:
    assert split_host_header(value) == host


def test_the_allow_lists() -> None:
    g = BrowserGuard("127.0.0.1", ("box.lan",), ("https://ui.example", "http://dash.local:8080/"))
    for host in ("localhost", "app.localhost", "127.0.0.1", "127.8.9.10", "::1", "box.lan"):
        assert g.host_allowed(host), host
    for host in ("evil.example", "localhost.evil.example", "10.0.0.1", "0.0.0.0", "127.0.0.1.nip.io"):
        assert not g.host_allowed(host), host
    assert g.origin_allowed("http://127.0.0.1:11540", 11540)
    assert g.origin_allowed("http://[::1]:11540", 11540)
    assert g.origin_allowed("http://box.lan:11540", 11540)
    assert g.origin_allowed("https://ui.example", 11540)
    assert g.origin_allowed("http://dash.local:8080", 11540)
    for origin in ("http://127.0.0.1:11541", "https://127.0.0.1:11540", "null", "http://evil.example:11540",
                   "https://ui.example:444", "file://", ""):
        assert not g.origin_allowed(origin, 11540), origin
    assert parse_origin("http://a.b/path") is None


def test_allowed_origins_must_be_origins() -> None:
    with pytest.raises(ConfigError, match="allowed_origins"):
        parse_config({"server": {"allowed_origins": ["evil.example"]}}, environ={})
    assert Config().server == ServerConfig()
