"""The dashboard: static files served at ``/`` and ``/dashboard/<file>``, read-only, no build step.

The page (vanilla JavaScript, charts drawn as inline SVG) reads the same JSON
API as every other client, sending the bearer token a person enters once per
browser session. The static files hold no data (``/dashboard/session`` says
only whether a token is needed), so they are served without the token (``handlers.middleware.PUBLIC_PATHS``); files are looked up in a
fixed table, never by a client's path.
"""

from __future__ import annotations

from importlib import resources

from aiohttp import web

from handlers.context import service
from vocab.errors import NotFound

STATIC_FILES: dict[str, str] = {
    "app.js": "text/javascript",
    "charts.js": "text/javascript",
    "widgets.js": "text/javascript",
    "overlays.js": "text/javascript",
    "pages.js": "text/javascript",
    "evaluation.js": "text/javascript",
    "compare.js": "text/javascript",
    "style.css": "text/css",
}
_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; style-src 'self' 'unsafe-inline'; "
                               "script-src 'self'; frame-ancestors 'none'",
}


def _read(name: str) -> bytes:
    return resources.files("handlers").joinpath("static", name).read_bytes()


async def index(request: web.Request) -> web.Response:
    return web.Response(body=_read("index.html"), content_type="text/html", charset="utf-8", headers=_HEADERS)


async def static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in STATIC_FILES:
        raise NotFound(f"no such dashboard file: {name}")
    return web.Response(body=_read(name), content_type=STATIC_FILES[name], headers=_HEADERS)


async def session(request: web.Request) -> web.Response:
    """Whether API calls need the bearer token: the page asks before its first call (no 401 to show)."""
    return web.json_response({"auth_required": bool(service(request).http.auth_token)},
                             headers={"Cache-Control": "no-store"})


def routes() -> list[web.RouteDef]:
    return [web.get("/", index), web.get("/dashboard/session", session), web.get("/dashboard/{name}", static)]
