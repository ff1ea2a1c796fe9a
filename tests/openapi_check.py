"""Validate real answers against the schemas of ``GET /openapi.json`` (OpenAPI 3.1: JSON Schema 2020-12).

Each check validates against a schema whose root carries the document's
``components``, so every ``$ref`` to ``#/components/schemas/...`` resolves
as the document means it.
"""

from __future__ import annotations

from typing import Any

import jsonschema

from handlers.openapi import DOCUMENT

_PREFIX = "#/components/schemas/"


def check(instance: Any, schema_name: str) -> None:
    """AssertionError naming the first place where ``instance`` breaks ``schema_name``."""
    schema = {"$ref": _PREFIX + schema_name, "components": DOCUMENT["components"]}
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(instance), key=lambda e: list(e.path))
    if errors:
        e = errors[0]
        raise AssertionError(f"{schema_name} at {'/'.join(map(str, e.path)) or '(root)'}: {e.message}")
