"""Validate real answers against the schemas of ``GET /openapi.json`` (OpenAPI 3.0 -> JSON Schema draft 4).

OpenAPI 3.0's ``nullable: true`` becomes ``anyOf [schema, {"type": "null"}]``
and every ``$ref`` to ``#/components/schemas/...`` is inlined (our schemas
have no cycles), so that ``jsonschema``'s Draft 4 validator checks them as
the document means them.
"""

from __future__ import annotations

from typing import Any

import jsonschema

from handlers.openapi import DOCUMENT

_PREFIX = "#/components/schemas/"


def json_schema(node: Any) -> Any:
    """The JSON Schema of an OpenAPI schema node (see module contract)."""
    if isinstance(node, list):
        return [json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return json_schema(DOCUMENT["components"]["schemas"][node["$ref"][len(_PREFIX):]])
    out = {k: (json_schema(v) if k not in ("enum", "required") else v) for k, v in node.items() if k != "nullable"}
    if node.get("nullable"):
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
        return {"anyOf": [out, {"type": "null"}]}
    return out


def check(instance: Any, schema_name: str) -> None:
    """AssertionError naming the first place where ``instance`` breaks ``schema_name``."""
    schema = json_schema({"$ref": _PREFIX + schema_name})
    errors = sorted(jsonschema.Draft4Validator(schema).iter_errors(instance), key=lambda e: list(e.path))
    if errors:
        e = errors[0]
        raise AssertionError(f"{schema_name} at {'/'.join(map(str, e.path)) or '(root)'}: {e.message}")
