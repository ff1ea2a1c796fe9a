"""OpenAPI paths of the evaluation-analysis routes (handlers/evaluation_routes.py) and the dashboard (handlers/dashboard.py).

Merged into ``handlers.openapi.PATHS``; kept apart so that module stays small.
"""

from __future__ import annotations

from typing import Any

from handlers.openapi_parts import ERROR_TEXT, JOB_ID, json_content, path_param, query, responses

_OBJECT = {"type": "object", "additionalProperties": True}


def paths() -> dict[str, Any]:
    """The documented operations, keyed by path."""
    eval_id = path_param("eval_id", "A stored evaluation's id (eval_id in results, leaderboard and history).",
                          pattern="^[0-9]{1,18}$")
    image = path_param("image", "An image name the evaluation lists (its errors' ``images``), relative to the "
                                 "val folder. Nothing else is served.", minLength=1)
    boxes = query("boxes", {"type": "boolean", "default": True},
                   "Include the per-box lists (prediction_types, missed_boxes); false leaves them out.")
    curves = {"summary": "Curves of an evaluation: PR per class and all, P/R/F1 against confidence "
                         "(at most 101 points each), with the operating point.",
              "responses": responses(200, "The curves.", json_content(_OBJECT), (404, 409))}
    errors = {"summary": "Error analysis of an evaluation at its operating point (DESIGN.md): error types "
                         "overall, per class and per size bucket, confusion matrix, failure examples.",
              "responses": responses(200, "The error analysis.", json_content(_OBJECT), (404, 409))}
    images = {"summary": "An image of the evaluation's dataset, by a name the evaluation lists.",
              "responses": {**responses(200, "The image file.", {"image/*": {"schema": {"type": "string",
                                                                                      "format": "binary"}}},
                                         (404, 409))}}
    out: dict[str, Any] = {}
    for base, param in (("/v1/vision/eval/{job_id}", JOB_ID), ("/v1/vision/evaluations/{eval_id}", eval_id)):
        out[f"{base}/curves"] = {"get": {**curves, "parameters": [param]}}
        out[f"{base}/errors"] = {"get": {**errors, "parameters": [param, boxes]}}
        out[base + "/images/{image}"] = {"get": {**images, "parameters": [param, image]}}
    out["/v1/vision/evaluations/{eval_id}"] = {"get": {
        "summary": "A stored evaluation's result, by id (also when its job was pruned).",
        "parameters": [eval_id], "responses": responses(200, "The result.", json_content(_OBJECT), (404,))}}
    html_error = {"description": ERROR_TEXT[400], "content": json_content({"$ref": "#/components/schemas/Error"})}
    out["/"] = {"get": {"summary": "The dashboard (HTML; open without the token: it holds no data).", "security": [],
                        "responses": {"200": {"description": "The page.", "content": {"text/html": {"schema": {"type": "string"}}}},
                                      "400": html_error}}}
    out["/dashboard/session"] = {"get": {
        "summary": "Whether API calls need the bearer token (asked by the dashboard before its first call).",
        "security": [], "responses": {"200": {"description": "auth_required", "content": json_content(_OBJECT)},
                                      "400": html_error}}}
    out["/dashboard/{name}"] = {"get": {
        "summary": "A static file of the dashboard (a fixed list: app.js, charts.js, pages.js, style.css).",
        "security": [], "parameters": [path_param("name", "The file name.", minLength=1)],
        "responses": {"200": {"description": "The file.", "content": {"text/javascript": {"schema": {"type": "string"}},
                                                                      "text/css": {"schema": {"type": "string"}}}},
                      "400": html_error,
                      "404": {"description": ERROR_TEXT[404], "content": json_content({"$ref": "#/components/schemas/Error"})}}}}
    return out
