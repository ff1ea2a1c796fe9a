"""``GET /openapi.json`` describes the real app, and the real daemon honours it under fuzzing.

1. Route coverage, no daemon needed: every (path, method) of the aiohttp app
   that ``handlers.app.make_app`` builds (HEAD aside: aiohttp adds it to every
   GET) is in the document, and every documented (path, method) is a route.
   Every POST takes JSON and both form encodings; every operation lists its
   error statuses with the ``{"detail": string}`` body.
2. A schemathesis run against a real service over real HTTP (in the test
   process, ``tests.inprocess.InProcessDaemon``; nothing mocked): for every operation, positive and negative cases generated from
   the document (a fixed number per operation, derandomised, no shrinking
   phase so a failure does not run away with the clock), each sent to the
   daemon and checked for: no 5xx, a documented status code, a documented
   content type, and a body that conforms to the documented schema.
   The daemon has no models and only a dataset-free tmp dir as allowed root,
   so no generated request can start heavy work: model names 404, paths 403.
   Afterwards the daemon is healthy and its log holds no traceback and no 500.

The bearer token in front of /openapi.json is checked in tests/test_security.py.

What this cannot show: operations whose success needs real state (a
completed job's predictions, a promotion) are fuzzed only on their error
paths here; tests/test_api.py covers their success shapes.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from daemon.app.service_facade import http_settings
from handlers.app import make_app
from handlers.middleware import is_public
from handlers.openapi import DOCUMENT, document
from handlers.openapi_parts import FORM_URLENCODED, JSON, MULTIPART
from tests.inprocess import InProcessDaemon
from vocab.config import Config

EXAMPLES_PER_OPERATION = 8  # positive and negative each: about 400 requests in all
METHODS = ("get", "post", "put", "patch", "delete")


def _app_routes() -> set[tuple[str, str]]:
    app = make_app(SimpleNamespace(http=http_settings(Config())))  # type: ignore[arg-type]  (routes only)
    out = set()
    for route in app.router.routes():
        if route.method == "HEAD":
            continue
        out.add((route.resource.canonical, route.method.lower()))
    return out


def _documented() -> set[tuple[str, str]]:
    return {(path, method) for path, item in DOCUMENT["paths"].items() for method in item if method in METHODS}


def test_every_route_is_documented_and_every_documented_operation_exists() -> None:
    routes, documented = _app_routes(), _documented()
    assert routes - documented == set(), f"routes missing from /openapi.json: {sorted(routes - documented)}"
    assert documented - routes == set(), f"documented but not routed: {sorted(documented - routes)}"
    assert ("/openapi.json", "get") in routes


def _resolve(ref_or_schema: dict[str, Any]) -> dict[str, Any]:
    ref = ref_or_schema.get("$ref")
    if ref is None:
        return ref_or_schema
    return DOCUMENT["components"]["schemas"][ref.rsplit("/", 1)[1]]


def test_every_operation_documents_its_bodies_and_errors() -> None:
    for path, item in DOCUMENT["paths"].items():
        for method, op in item.items():
            where = f"{method.upper()} {path}"
            responses = op["responses"]
            assert any(s.startswith("2") for s in responses), where
            params = re.findall(r"{(\w+)}", path)
            assert sorted(p["name"] for p in op.get("parameters", []) if p["in"] == "path") == sorted(params), where
            if method == "post":
                content = op["requestBody"]["content"]
                assert {JSON, FORM_URLENCODED, MULTIPART} <= set(content), where
                for media in (FORM_URLENCODED, MULTIPART):
                    form = content[media]["schema"]
                    assert all(s.get("type") != "object" for s in form["properties"].values()), (where, media)
                assert {"400", "413", "415"} <= set(responses), where
            assert "400" in responses, where  # a malformed HTTP request is answered 400 on any route
            if not is_public(path.split("{")[0]):
                assert "401" in responses, where
            if params:
                assert "404" in responses, where
            for status, response in responses.items():
                if status.startswith(("4", "5")) and (path[:7], status) != ("/health", "503"):
                    schema = response["content"][JSON]["schema"]
                    assert _resolve(schema) == DOCUMENT["components"]["schemas"]["Error"], (where, status)


def test_the_hand_written_document_stays_a_list_of_routes() -> None:
    """Schemas come from the contract; what handlers/openapi*.py write by hand (routes, summaries, error
    statuses) stays within 250 lines, so that a new field never needs an edit there."""
    handlers = Path(__file__).resolve().parents[1] / "handlers"
    lines = {p.name: len(p.read_text().splitlines()) for p in handlers.glob("openapi*.py")}
    assert lines and sum(lines.values()) <= 250, lines


# --------------------------------------------------------------------------- against a real daemon


@pytest.fixture(scope="module")
def empty_daemon(tmp_path_factory: pytest.TempPathFactory):
    """A daemon with no models and nothing evaluable under its allowed root."""
    root = tmp_path_factory.mktemp("openapi")
    daemon = InProcessDaemon(root, config={"paths": {"allowed_roots": [str(root / "allowed")]},
                                  "jobs": {"max_queued": 5}})
    (root / "allowed").mkdir()
    try:
        daemon.start(wait_workers=False)
        yield daemon
    finally:
        daemon.stop()


def test_served_document_is_the_module_document(empty_daemon: InProcessDaemon) -> None:
    r = empty_daemon.http.get("/openapi.json", timeout=10)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.json() == document()


def test_schemathesis_no_server_errors_and_responses_conform(empty_daemon: InProcessDaemon) -> None:
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis.checks import (
        content_type_conformance,
        not_a_server_error,
        response_schema_conformance,
        status_code_conformance,
    )
    from schemathesis.generation import GenerationMode

    d = empty_daemon
    schema = schemathesis.openapi.from_url(f"{d.url}/openapi.json")
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    failures: list[str] = []
    counts: dict[str, int] = {}
    operations = [result.ok() for result in schema.get_all_operations()]
    # schemathesis leaves out the operation that serves the schema itself
    missing = {(path, m) for path, m in _documented()} - {(op.path, op.method.lower()) for op in operations}
    assert missing <= {("/openapi.json", "get")}, missing

    for op in operations:
        label = f"{op.method.upper()} {op.path}"
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            seen = 0

            @settings(max_examples=EXAMPLES_PER_OPERATION, derandomize=True, database=None, deadline=None,
                      phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
            @given(case=op.as_strategy(generation_mode=mode))
            def run(case: Any) -> None:
                nonlocal seen
                # A job id that spells a fixed route segment is that route, not a job (documented).
                if (case.path_parameters or {}).get("job_id") == "leaderboard":
                    return
                seen += 1
                case.call_and_validate(base_url=d.url, checks=checks, timeout=30)

            try:
                run()
            except Unsatisfiable:  # negative mode: nothing to violate (no parameters, no body)
                assert mode is GenerationMode.NEGATIVE, label
                continue
            except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - collected, reported together
                failures.append(f"{label} [{mode.value}]: {exc}"[:3000])
            counts[f"{label} [{mode.value}]"] = seen

    assert not failures, "\n\n".join(failures)
    assert all(n > 0 for n in counts.values()), counts  # every operation really ran

    health = d.health()
    assert health["ok"] is True, health
    log = d.log()
    assert "Traceback" not in log, d.log_tail(80)
    assert '" 500 ' not in log, [line for line in log.splitlines() if '" 500 ' in line][:10]
    jobs = d.query("SELECT COUNT(*) FROM jobs")[0][0]
    assert jobs == 0, "a generated request created a job"
