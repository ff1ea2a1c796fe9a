"""Every bound the OpenAPI document declares on a request field is the bound the server enforces.

The bounds are read from the served document, not listed here, so a bound
added to the contract (``vocab.contract``) is covered without a new test:
for every body field and query parameter (nested ones too: ``gates.*``,
``config.*``, each ``weights`` key) and each of its ``minimum``,
``maximum``, ``exclusiveMinimum``, ``exclusiveMaximum``, ``multipleOf``,
``enum``, ``pattern``, ``minLength`` and ``maxLength``, and each task's
``imgsz`` bounds of a request that names its task, the value at the bound
(inside it) and the value just outside are sent to a real daemon
(``tests.inprocess.InProcessDaemon``) on an otherwise valid request.

The value outside must be refused with a 400 whose detail names the field
(``field 'gates.min_delta' ...``, ``query parameter 'limit' ...``; an
unknown key: ``unknown ...``); the value inside must not be. A value inside
may still be refused for another reason by the later checks (a 4096-character
"model" names no model, a 404): what is shown is that the contract does
not refuse it. The daemon is paused throughout and every job a request
queued is cancelled, so nothing is evaluated or trained.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.daemon_fixtures import STRONG_PT, make_dataset, place_model
from tests.inprocess import InProcessDaemon
from vocab.tasks import TASKS

pytestmark = pytest.mark.ultralytics
KEYWORDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "enum", "pattern",
            "minLength", "maxLength")
# Texts tried against a pattern: each must be refused exactly when the pattern refuses it ("" is absent).
PATTERN_PROBES = ("a", "A0", "model-1", "x.y_z", "-a", ".a", "a b", "a..b", "a/b", "é", "a" * 128, "a" * 129)
Case = tuple[str, Any, bool]  # (what is probed, value, whether the contract must refuse it)
MODEL_TASK = "detection"  # the task of the fixture's checkpoint, and of a train request that names none


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[InProcessDaemon, str]]:
    root = tmp_path_factory.mktemp("bounds")
    dataset = make_dataset(root / "data", n_val=4, seed=5)
    dataset.write_text(dataset.read_text() + "test: images/val\n")  # every split exists
    d = InProcessDaemon(root, config={"paths": {"allowed_roots": [str(root)]}, "jobs": {"max_queued": 100_000}})
    place_model(d.models_root, "bounded", STRONG_PT, "current.pt")
    try:
        d.start()
        with d.paused():
            yield d, str(dataset)
            for job in d.http.get("/v1/vision/jobs", params={"limit": 1000}).json()["jobs"]:
                if job["status"] in ("queued", "running"):
                    d.http.delete(f"/v1/vision/jobs/{job['job_id']}")
    finally:
        d.stop()


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _text(length: int) -> str:
    """Text of ``length`` characters that is also JSON (``{   }``), so a JSON-text field reads it."""
    return "{" + " " * (length - 2) + "}" if length >= 2 else "a" * length


def _cases(schema: dict[str, Any], integer: bool) -> Iterator[Case]:
    """The values at and just outside each bound of one value's schema."""
    step = 1 if integer else 1e-6
    if "minimum" in schema:
        yield "minimum", schema["minimum"], False
        yield "minimum", schema["minimum"] - step, True
    if "maximum" in schema:
        yield "maximum", schema["maximum"], False
        yield "maximum", schema["maximum"] + step, True
    if "exclusiveMinimum" in schema:
        yield "exclusiveMinimum", schema["exclusiveMinimum"] + step, False
        yield "exclusiveMinimum", schema["exclusiveMinimum"], True
    if "exclusiveMaximum" in schema:
        yield "exclusiveMaximum", schema["exclusiveMaximum"] - step, False
        yield "exclusiveMaximum", schema["exclusiveMaximum"], True
    if "multipleOf" in schema:
        yield "multipleOf", schema["multipleOf"] * 10, False
        yield "multipleOf", schema["multipleOf"] * 10 + 1, True
    for value in schema.get("enum", ()):
        yield "enum", value, False
    if "enum" in schema:
        yield "enum", "not-" + "-".join(map(str, schema["enum"])), True
    if "pattern" in schema:
        for probe in PATTERN_PROBES:
            yield "pattern", probe, re.search(schema["pattern"], probe) is None
    if "minLength" in schema and schema["minLength"] > 0:
        yield "minLength", "a" * schema["minLength"], False
        yield "minLength", "", True  # empty text counts as absent: refused where it is required
    if "maxLength" in schema:
        yield "maxLength", _text(schema["maxLength"]), False
        yield "maxLength", _text(schema["maxLength"] + 1), True


def _branches(doc: dict[str, Any], schema: dict[str, Any]) -> list[dict[str, Any]]:
    schema = _resolve(doc, schema)
    return [_resolve(doc, b) for b in schema["anyOf"] if b.get("type") != "null"] if "anyOf" in schema else [schema]


def _probes(doc: dict[str, Any], schema: dict[str, Any], path: tuple[str, ...],
            tasks: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], dict[str, Any], Case]]:
    """(field path, other fields to send, case) for every bound under ``schema``. ``tasks``: the request's
    task enum, whose own imgsz bounds are probed with the task named; a request without one is about the
    checkpoint's task (``MODEL_TASK``), whose imgsz bounds and weight keys apply."""
    for branch in _branches(doc, schema):
        by_task = branch.get("x-imgsz-by-task", {})
        if not by_task:  # an imgsz's own bounds are the loosest of every task's: each task's are probed instead
            for case in _cases(branch, branch.get("type") == "integer"):
                yield path, {}, case
        for task, bounds in by_task.items():
            if task in tasks or (not tasks and task == MODEL_TASK):
                for case in _cases(bounds, True):
                    yield path, {"task": task} if tasks else {}, (f"{task} {case[0]}", *case[1:])
        for name, prop in branch.get("properties", {}).items():
            yield from _probes(doc, prop, (*path, name), tasks)
        keys = branch.get("propertyNames", {}).get("enum", ())
        own = TASKS[MODEL_TASK].weight_keys  # the keys of the request's task (detection: the default and the model's)
        for key in keys:
            if path[-1:] in (("weights",), ("eval_weights",)) and key not in own:
                yield (*path, key), {}, ("another task's key", 0.1, True)
            else:
                yield from _probes(doc, branch["additionalProperties"], (*path, key), tasks)
        if keys:
            yield (*path, "not-a-key"), {}, ("propertyNames", 0.1, True)


def _nest(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    return {path[0]: value} if len(path) == 1 else {path[0]: _nest(path[1:], value)}


def _operations(doc: dict[str, Any], dataset: str) -> Iterator[tuple[str, str, str, dict[str, Any], Any]]:
    """(label, method, url, the valid request, the schema of its body or of one query parameter)."""
    bodies = {"EvalRequest": {"model": "bounded", "dataset": dataset},
              "CompareRequest": {"model_a": "bounded", "model_b": "bounded", "dataset": dataset},
              "TrainRequest": {"model": "bounded-train", "dataset": dataset},
              "PromoteRequest": {"version": 1}, "RollbackRequest": {}}
    for path, item in doc["paths"].items():
        url = path.format(name="bounded", model_name="bounded", job_id="0123456789ab", eval_id=1, image="x.jpg")
        for method, op in item.items():
            if "requestBody" in op:
                ref = op["requestBody"]["content"]["application/json"]["schema"]
                yield f"{method.upper()} {path}", method, url, bodies[ref["$ref"].rsplit("/", 1)[1]], _resolve(doc, ref)
            for param in op.get("parameters", ()):
                if param["in"] == "query":
                    yield f"{method.upper()} {path}?{param['name']}", method, url, {}, \
                        {"type": "object", "properties": {param["name"]: param["schema"]}, "query": True}


def test_every_declared_bound_is_the_bound_the_server_enforces(daemon: tuple[InProcessDaemon, str]) -> None:
    d, dataset = daemon
    doc = d.http.get("/openapi.json").json()
    wrong, probed = [], set()
    for label, method, url, valid, schema in _operations(doc, dataset):
        query = schema.pop("query", False)
        task_enum = tuple(_resolve(doc, schema).get("properties", {}).get("task", {}).get("enum", ()))
        for path, extra, (bound, value, refused) in _probes(doc, schema, (), task_enum):
            what = "query parameter" if query else "field"
            if query:
                request = {"params": {path[0]: value if isinstance(value, str) else json.dumps(value)}}
            else:
                body = {**valid, **extra}
                nested = _nest(path, value)
                for key, part in nested.items():  # merge into what the valid body already has there
                    body[key] = {**body[key], **part} if isinstance(body.get(key), dict) else part
                request = {"json": body}
            r = d.http.request(method.upper(), url, **request)
            dotted = ".".join(path)
            detail = r.json().get("detail", "") if r.headers.get("content-type", "").startswith("application/json") \
                and isinstance(r.json(), dict) else ""
            by_contract = r.status_code == 400 and (detail.startswith(f"{what} {dotted!r}")
                                                    or detail.startswith(f"{what} {path[-1]!r}")
                                                    or (detail.startswith("unknown") and repr(path[-1]) in detail))
            if by_contract != refused:
                wrong.append(f"{label} {dotted}={str(value)[:30]!r} ({bound}): {r.status_code} {detail[:160]}")
            probed.add((label, dotted, bound))
    assert not wrong, "\n".join(wrong)
    # The probing reached the bounds the issue named (a guard against reading nothing from the document).
    labels = {(label.split("?")[0], dotted, bound) for label, dotted, bound in probed}
    for expected in [("POST /v1/vision/eval", "imgsz", "detection minimum"), ("POST /v1/vision/eval", "gates.min_delta", "maximum"),
                     ("POST /v1/vision/eval", "weights.mAP50", "maximum"), ("POST /v1/vision/train", "imgsz",
                                                                            "detection minimum"),
                     ("POST /v1/vision/train", "config.learning_rate", "exclusiveMinimum"),
                     ("GET /v1/vision/jobs", "status", "enum"), ("GET /v1/vision/eval/leaderboard", "limit", "maximum")]:
        assert expected in labels, expected
    assert d.health()["ok"] is True


def test_the_gates_bound_is_in_the_document_and_enforced(daemon: tuple[InProcessDaemon, str]) -> None:
    """The disagreement the issue found: the document's Gates had no maximum while the server refused > 1."""
    d, dataset = daemon
    gates = d.http.get("/openapi.json").json()["components"]["schemas"]["Gates"]["properties"]
    assert gates["min_delta"]["maximum"] == 1
    r = d.http.post("/v1/vision/eval", json={"model": "bounded", "dataset": dataset, "gates": {"min_delta": 1.5}})
    assert r.status_code == 400 and r.json()["detail"] == "field 'gates.min_delta' must be between 0 and 1, got 1.5"
