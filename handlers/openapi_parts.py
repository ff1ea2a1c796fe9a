"""The building blocks of the OpenAPI document (handlers/openapi.py, handlers/openapi_analysis.py): media
types, request bodies in the three encodings, error responses, common parameters."""

from __future__ import annotations

import copy
from typing import Any

from handlers.openapi_schemas import SCHEMAS

JSON = "application/json"
FORM_URLENCODED = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"

# In the form encodings every value is text: objects (weights, config) are JSON text.
_FORM_OBJECT_FIELDS = {"weights", "eval_weights", "config", "gates"}


def form_schema(name: str) -> dict[str, Any]:
    schema = copy.deepcopy(SCHEMAS[name])
    for key in _FORM_OBJECT_FIELDS & set(schema["properties"]):
        schema["properties"][key] = {"type": "string", "description": f"``{key}`` as JSON text"}
    return schema


# -- responses ---------------------------------------------------------------------------------
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


def ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def json_content(schema: dict[str, Any]) -> dict[str, Any]:
    return {JSON: {"schema": schema}}


def responses(ok: int, ok_desc: str, ok_content: dict[str, Any], errors: tuple[int, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {str(ok): {"description": ok_desc, "content": ok_content}}
    for status in sorted({400, 401, 403, 503, *errors}):
        out[str(status)] = {"description": ERROR_TEXT[status], "content": json_content(ref("Error"))}
    return out


def body(name: str, *, required: bool = True) -> dict[str, Any]:
    form = form_schema(name)
    return {
        "required": required,
        "content": {JSON: {"schema": ref(name)}, FORM_URLENCODED: {"schema": form}, MULTIPART: {"schema": form}},
    }


def path_param(name: str, description: str, **schema: Any) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": {"type": "string", **schema}}


def query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


JOB_ID = path_param("job_id", "The job id returned when the job was submitted.", minLength=1, maxLength=64)
MODEL_NAME = path_param("name", "A model name: a folder under the models root.",
                         pattern="^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
LIMIT_1000 = {"type": "integer", "minimum": 1, "maximum": 1000}
POST_ERRORS = (400, 413, 415)
JOB_202 = ("The job, queued: poll it by its job_id.", json_content(ref("Job")))
