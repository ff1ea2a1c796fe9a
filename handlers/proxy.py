"""``[server] upstream_url``: every ``/v1/`` request we do not route ourselves goes to LlamaFarm's runtime.

vision-evald takes port 11540 from LlamaFarm's universal runtime, whose other
``/v1/vision/*`` routes (detect, stream, review...) LlamaFarm's designer still
calls there. With ``upstream_url`` set, a catch-all route registered after all
of ours forwards any ``/v1/`` request that no route of ours takes (unknown
path, or a method we do not serve on that path):

- method, raw path and query, body (streamed, no size limit of ours) and
  headers, less the hop-by-hop ones and ``Host``, plus ``X-Forwarded-For``;
  our own bearer token is checked first (auth middleware) and, when one is
  configured, the ``Authorization`` header is ours and is not passed on;
- the answer is streamed back as it comes (status, headers less hop-by-hop,
  body bytes unchanged: no decompression), so chunked bodies and server-sent
  events arrive as they are produced;
- an upstream that cannot be reached: 502 ``{"detail"}`` naming it.
WebSocket upgrades are not forwarded (``Upgrade`` is hop-by-hop).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, MultiMapping
from yarl import URL

from handlers.middleware import REQUEST_ID, json_error

log = logging.getLogger("vision_evald.proxy")

UPSTREAM_SESSION: web.AppKey[aiohttp.ClientSession] = web.AppKey("upstream_session", aiohttp.ClientSession)
UPSTREAM_URL = web.AppKey("upstream_url", str)
OWN_TOKEN = web.AppKey("own_token", bool)
CONNECT_TIMEOUT_S = 10.0
# Hop-by-hop headers, and Host; Expect too: this server has already answered "100 Continue" itself.
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
                         "trailer", "trailers", "transfer-encoding", "upgrade", "host", "expect"})


def _end_to_end(headers: MultiMapping[str], drop: frozenset[str] = frozenset()) -> CIMultiDict[str]:
    """``headers`` less the hop-by-hop ones (and those the ``Connection`` header names) and ``drop``."""
    items = list(headers.items())
    named = {t.strip().lower() for k, v in items if k.lower() == "connection" for t in v.split(",")}
    out: CIMultiDict[str] = CIMultiDict()
    for key, value in items:
        lower = key.lower()
        if lower not in _HOP_BY_HOP and lower not in named and lower not in drop:
            out.add(key, value)
    return out


def _request_headers(request: web.Request) -> CIMultiDict[str]:
    headers = _end_to_end(request.headers, frozenset({"authorization"}) if request.app[OWN_TOKEN] else frozenset())
    previous = request.headers.get("X-Forwarded-For")
    remote = request.remote or "unknown"
    headers["X-Forwarded-For"] = f"{previous}, {remote}" if previous else remote
    return headers


async def _body(request: web.Request) -> AsyncIterator[bytes]:
    async for chunk in request.content.iter_any():
        yield chunk


async def forward(request: web.Request) -> web.StreamResponse:
    """Send the request upstream and stream its answer back (see module contract)."""
    base = request.app[UPSTREAM_URL]
    url = URL(base.rstrip("/") + request.raw_path, encoded=True)  # the path and query as sent, not requoted
    has_body = request.body_exists
    try:
        upstream = await request.app[UPSTREAM_SESSION].request(
            request.method, url, headers=_request_headers(request), data=_body(request) if has_body else None,
            allow_redirects=False,
        )
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        log.warning("upstream %s unreachable for %s %s: %s", base, request.method, request.path, exc)
        return json_error(502, f"the upstream runtime at {base} (server.upstream_url) could not be reached: "
                               f"{exc or type(exc).__name__}")
    async with upstream:
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason,
                                      headers=_end_to_end(upstream.headers))
        response.headers["X-Request-Id"] = request[REQUEST_ID]
        await response.prepare(request)
        try:
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
        except (aiohttp.ClientError, OSError) as exc:
            log.warning("upstream %s broke off %s %s mid-answer: %s", base, request.method, request.path, exc)
            if request.transport is not None:
                request.transport.abort()  # the client must see a broken answer, not a complete one
            return response
        await response.write_eof()
    return response


def install(app: web.Application, upstream_url: str, own_token: bool) -> None:
    """Add the catch-all ``/v1/`` route (after every other route) and the upstream client session."""
    app[UPSTREAM_URL] = upstream_url
    app[OWN_TOKEN] = own_token

    async def session(app: web.Application) -> AsyncIterator[None]:
        timeout = aiohttp.ClientTimeout(total=None, connect=CONNECT_TIMEOUT_S, sock_read=None)
        # Nothing added of aiohttp's own: the runtime sees the client's headers (and bytes) as they were.
        async with aiohttp.ClientSession(timeout=timeout, auto_decompress=False,
                                         skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding",
                                                            "Content-Type")) as client:
            app[UPSTREAM_SESSION] = client
            yield

    app.cleanup_ctx.append(session)
    app.router.add_route("*", "/v1/{tail:.*}", forward)
