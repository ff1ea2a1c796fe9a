"""The building blocks of the OpenAPI document (handlers/openapi.py): media types, request bodies in the
three encodings, answers with their error statuses. Every schema comes from ``vocab.contract.json_schema``."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from vocab.contract import answers, job_results, requests
from vocab.contract.json_schema import REF, components, form_schema

JSON = "application/json"
FORM_URLENCODED = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
SCHEMAS = components((requests.EvalRequest, requests.CompareRequest, requests.TrainRequest, requests.PromoteRequest,
                      requests.RollbackRequest, answers.Error, answers.Job, answers.JobList, answers.HistoryEntry,
                      answers.ModelList, answers.ModelDetail, answers.Health, job_results.LeaderboardEntry,
                      job_results.Detection, job_results.PromotionDecision, answers.GalleryPage,
                      answers.CellPage, answers.Annotations))
ERROR_TEXT = {
    400: "The request is malformed (at the HTTP level too: an over-long URL or header, a body that does "
         "not parse) or a value is out of range; the detail says which.",
    401: "A bearer token is configured and the request lacks it or has a wrong one.",
    403: "A path lies outside the configured allowed roots, or the request is cross-site (a foreign Origin, "
         "Sec-Fetch-Site: cross-site on a state change) or names a Host that is not this daemon's.",
    404: "No such model, job, version, evaluation or endpoint.",
    409: "The request conflicts with the current state.",
    413: "The request body is larger than [server] max_body_bytes.",
    415: "The body is neither JSON nor form data.",
    503: "The job queue is full or the daemon is shutting down (see Retry-After).",
}
POST_ERRORS = (400, 413, 415)


def ref(name: str) -> dict[str, Any]:
    return {"$ref": REF.format(model=name)}


def json_content(schema: dict[str, Any]) -> dict[str, Any]:
    return {JSON: {"schema": schema}}


def array_of(name: str) -> dict[str, Any]:
    return json_content({"type": "array", "items": ref(name)})


def body(model: type[BaseModel], *, required: bool = True) -> dict[str, Any]:
    form = form_schema(model)
    content = {JSON: {"schema": ref(model.__name__)}, FORM_URLENCODED: {"schema": form}, MULTIPART: {"schema": form}}
    return {"required": required, "content": content}


def path_param(name: str, description: str, **schema: Any) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": {"type": "string", **schema}}


def error(status: int) -> dict[str, Any]:
    return {"description": ERROR_TEXT[status], "content": json_content(ref("Error"))}


def op(summary: str, ok: tuple[int, str, dict[str, Any]], errors: tuple[int, ...] = (), **extra: Any) -> dict[str, Any]:
    """One operation: its summary, anything else it declares (parameters, body), its success answer and every
    error answer (400, 401, 403 and 503 on any route, plus ``errors``)."""
    status, description, content = ok
    answers_ = {str(status): {"description": description, "content": content}}
    return {"summary": summary, **extra,
            "responses": {**answers_, **{str(s): error(s) for s in sorted({400, 401, 403, 503, *errors})}}}


def public_op(summary: str, ok: dict[str, Any], *errors: int) -> dict[str, Any]:
    """An operation open without the token: its answers as given, a malformed request's 400 added."""
    return {"summary": summary, "security": [], "responses": {"400": error(400), **ok,
                                                              **{str(s): error(s) for s in errors}}}
