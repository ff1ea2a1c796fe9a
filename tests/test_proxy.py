"""``[server] upstream_url`` (issue 10, item 3): what we do not route under /v1/ goes to LlamaFarm's runtime.

Our real aiohttp app (``make_app``) in front of a stand-in runtime: a real
aiohttp server on another port that echoes what it received, streams
server-sent events and chunked bodies, and sends a gzip body. The service
object is a stand-in with only the config: the routes exercised here
(forwarded ones, ``/openapi.json``) never reach the daemon's services.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from daemon.app.service_facade import http_settings
from handlers.app import make_app
from vocab.config import Config, ServerConfig, parse_config
from vocab.errors import ConfigError

TOKEN = "s3cret-token"
GZIPPED = gzip.compress(b'{"packed": true}')


class Runtime:
    """The stand-in runtime: records each request, streams on demand."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.release = asyncio.Event()  # the SSE stream's second event waits for this

    async def echo(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.seen.append({"method": request.method, "path_qs": request.raw_path, "body": body,
                          "headers": dict(request.headers)})
        return web.json_response({"runtime": True, "path": request.path, "query": dict(request.query),
                                  "body": body.decode(errors="replace")},
                                 status=201, headers={"X-Runtime": "yes", "Set-Cookie": "a=b"})

    async def events(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        await response.write(b"data: first\n\n")
        await self.release.wait()  # only once the client has seen the first event through the proxy
        await response.write(b"data: second\n\n")
        await response.write_eof()
        return response

    async def chunked(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for i in range(3):
            await response.write(f"part{i};".encode())
        await response.write_eof()
        return response

    async def packed(self, request: web.Request) -> web.Response:
        return web.Response(body=GZIPPED, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v1/vision/stream", self.events)
        app.router.add_get("/v1/vision/chunked", self.chunked)
        app.router.add_get("/v1/vision/packed", self.packed)
        app.router.add_route("*", "/{tail:.*}", self.echo)
        return app


@pytest.fixture
async def runtime():
    rt = Runtime()
    server = TestServer(rt.app())
    await server.start_server()
    rt.url = str(server.make_url("")).rstrip("/")
    yield rt
    rt.release.set()
    await server.close()


async def front(upstream_url: str, token: str = "", **session: Any) -> TestClient:
    config = Config(server=ServerConfig(upstream_url=upstream_url, auth_token=token))
    svc = SimpleNamespace(http=http_settings(config), observe_request=lambda *args: None)  # telemetry's sink
    client = TestClient(TestServer(make_app(svc)), **session)  # type: ignore[arg-type]
    await client.start_server()
    return client


async def test_unrouted_request_reaches_the_runtime_and_its_answer_comes_back_unchanged(runtime: Runtime) -> None:
    client = await front(runtime.url)
    try:
        body = b'{"model": "yolo", "image": "aGVsbG8="}'
        r = await client.post("/v1/vision/detect?conf=0.4&x=a%20b%26c", data=body,
                              headers={"Content-Type": "application/json", "X-Custom": "kept",
                                       "Connection": "keep-alive, X-Hop", "X-Hop": "dropped",
                                       "X-Forwarded-For": "10.1.2.3"})
        assert r.status == 201
        assert r.headers["X-Runtime"] == "yes" and r.headers["Set-Cookie"] == "a=b"
        answer = await r.json()
        assert answer == {"runtime": True, "path": "/v1/vision/detect", "query": {"conf": "0.4", "x": "a b&c"},
                          "body": body.decode()}
        seen = runtime.seen[-1]
        assert seen["method"] == "POST" and seen["path_qs"] == "/v1/vision/detect?conf=0.4&x=a%20b%26c"
        assert seen["body"] == body
        headers = {k.lower(): v for k, v in seen["headers"].items()}
        assert headers["x-custom"] == "kept" and headers["content-type"] == "application/json"
        assert "x-hop" not in headers  # named by Connection: hop-by-hop
        assert headers["x-forwarded-for"] == "10.1.2.3, 127.0.0.1"
        assert "user-agent" not in headers or headers["user-agent"] == seen["headers"].get("User-Agent")
    finally:
        await client.close()


async def test_a_large_upload_with_expect_100_continue_passes_whole(runtime: Runtime) -> None:
    """curl sends ``Expect: 100-continue`` with any body over 1 KiB (an image upload): we answer the
    100 ourselves and stream the body on, chunked when the client chunked it."""
    client = await front(runtime.url)
    try:
        image = bytes(range(256)) * 400  # 100 KiB, more than max_body_bytes would allow for our routes
        r = await client.post("/v1/vision/detect", data=image, expect100=True,
                              headers={"Content-Type": "application/octet-stream"})
        assert r.status == 201 and runtime.seen[-1]["body"] == image

        async def chunks():
            for i in range(0, len(image), 8192):
                yield image[i:i + 8192]

        r = await client.post("/v1/vision/detect", data=chunks())
        assert r.status == 201 and runtime.seen[-1]["body"] == image
        assert "expect" not in {k.lower() for k in runtime.seen[-2]["headers"]}
    finally:
        await client.close()


async def test_methods_we_do_not_serve_on_our_paths_are_forwarded_and_our_routes_are_not(runtime: Runtime) -> None:
    client = await front(runtime.url)
    try:
        r = await client.post("/v1/vision/models/export", json={"model_id": "m", "format": "onnx"})
        assert r.status == 201 and (await r.json())["path"] == "/v1/vision/models/export"
        r = await client.put("/v1/vision/eval/leaderboard")
        assert r.status == 201 and runtime.seen[-1]["method"] == "PUT"
        before = len(runtime.seen)
        r = await client.get("/openapi.json")  # ours
        assert r.status == 200 and "paths" in await r.json()
        r = await client.get("/not-v1/anything")  # outside /v1/: ours, a 404
        assert r.status == 404 and "detail" in await r.json()
        assert len(runtime.seen) == before
    finally:
        await client.close()


async def test_server_sent_events_and_chunked_bodies_stream_through(runtime: Runtime) -> None:
    client = await front(runtime.url)
    try:
        r = await client.get("/v1/vision/stream")
        assert r.status == 200 and r.headers["Content-Type"] == "text/event-stream"
        first = await asyncio.wait_for(r.content.readuntil(b"\n\n"), timeout=30)
        assert first == b"data: first\n\n"  # arrived while the runtime still holds the stream open
        runtime.release.set()
        assert await asyncio.wait_for(r.content.read(), timeout=30) == b"data: second\n\n"
        r = await client.get("/v1/vision/chunked")
        assert r.status == 200 and await r.read() == b"part0;part1;part2;"
    finally:
        await client.close()


async def test_compressed_bodies_are_passed_as_bytes(runtime: Runtime) -> None:
    client = await front(runtime.url, auto_decompress=False)  # the bytes on the wire, as the runtime sent them
    try:
        r = await client.get("/v1/vision/packed")
        assert r.headers["Content-Encoding"] == "gzip"
        assert await r.read() == GZIPPED
    finally:
        await client.close()


async def test_our_token_applies_first_and_is_not_passed_on(runtime: Runtime) -> None:
    client = await front(runtime.url, token=TOKEN)
    try:
        r = await client.post("/v1/vision/detect", data=b"x")
        assert r.status == 401 and runtime.seen == []
        r = await client.post("/v1/vision/detect", data=b"x", headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status == 201
        assert "authorization" not in {k.lower() for k in runtime.seen[-1]["headers"]}
    finally:
        await client.close()


async def test_an_unreachable_upstream_is_a_502_naming_it() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    url = f"http://127.0.0.1:{port}"
    client = await front(url)
    try:
        r = await client.get("/v1/vision/detect")
        assert r.status == 502
        body = await r.json()
        assert set(body) == {"detail"} and url in body["detail"]
    finally:
        await client.close()


async def test_without_upstream_url_unrouted_paths_stay_404() -> None:
    client = await front("")
    try:
        r = await client.post("/v1/vision/detect", data=b"x")
        assert r.status == 404 and json.loads(await r.text())["detail"].startswith("no such endpoint")
    finally:
        await client.close()


@pytest.mark.parametrize("bad", ["127.0.0.1:11541", "ftp://host:1", "http://", "http://h:1/?q=1"])
def test_upstream_url_must_be_an_http_url(bad: str) -> None:
    with pytest.raises(ConfigError, match="upstream_url"):
        parse_config({"server": {"upstream_url": bad}}, environ={})
    assert parse_config({"server": {"upstream_url": "http://127.0.0.1:11541"}}, environ={}).server.upstream_url


def test_a_started_daemon_forwards_to_its_upstream_url(tmp_path) -> None:
    """The config key, the started service and its app together (the real ``Service`` in this process,
    ``tests.inprocess.InProcessDaemon``, on a real port): a stand-in runtime (stdlib server in a thread)
    gets the unknown /v1/vision/detect request, and its answer comes back unchanged."""
    import http.server
    import threading

    from tests.inprocess import InProcessDaemon

    seen: list[tuple[str, str, bytes]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            seen.append((self.command, self.path, body))
            answer = b'{"detections": [{"class": "car", "confidence": 0.9}]}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("X-Runtime", "stand-in")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: Any) -> None:
            pass

    runtime = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=runtime.serve_forever, daemon=True).start()
    daemon = InProcessDaemon(tmp_path, config={"server": {"upstream_url": f"http://127.0.0.1:{runtime.server_port}"}})
    try:
        daemon.start(wait_workers=False)
        r = daemon.http.post("/v1/vision/detect?model=yolo", content=b'{"image": "x"}', timeout=30)
        assert r.status_code == 200 and r.headers["X-Runtime"] == "stand-in"
        assert r.content == b'{"detections": [{"class": "car", "confidence": 0.9}]}'
        assert seen == [("POST", "/v1/vision/detect?model=yolo", b'{"image": "x"}')]
        assert daemon.http.get("/health", timeout=30).json()["database"] == "ok"  # ours, not forwarded
        assert len(seen) == 1
    finally:
        daemon.stop()
        runtime.shutdown()
    assert "Traceback" not in daemon.log(), daemon.log_tail()
