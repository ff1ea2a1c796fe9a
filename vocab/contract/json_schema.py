"""The contract's JSON Schema (2020-12, as OpenAPI 3.1 takes it), in the shapes the OpenAPI document uses:
component schemas referenced as ``#/components/schemas/<Model>``, a body's form-encoded variant, and
the parameters a query or path model declares."""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, models_json_schema

REF = "#/components/schemas/{model}"


class Untitled(GenerateJsonSchema):
    """pydantic's JSON Schema without the titles it derives from field names (noise in a document)."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False


def components(models: tuple[type[BaseModel], ...]) -> dict[str, Any]:
    """The schemas of ``models`` and of every model they use, by name."""
    _, top = models_json_schema([(m, "validation") for m in models], ref_template=REF, schema_generator=Untitled)
    return dict(sorted(top["$defs"].items()))


def _is_object(schema: dict[str, Any]) -> bool:
    return schema.get("type") == "object" or "$ref" in schema or any(_is_object(b) for b in schema.get("anyOf", ()))


def form_schema(model: type[BaseModel]) -> dict[str, Any]:
    """A body model's schema in the form encodings: every value is text, and an object is JSON text."""
    schema = copy.deepcopy(model.model_json_schema(ref_template=REF, schema_generator=Untitled))
    schema.pop("$defs", None)
    for key, prop in schema["properties"].items():
        if _is_object(prop):
            schema["properties"][key] = {"type": "string", "description": f"``{key}`` as JSON text"}
    return schema


def _non_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A nullable's non-null branch, with its description and default (a parameter is never null)."""
    branches = [b for b in schema.get("anyOf", ()) if b.get("type") != "null"]
    if len(branches) != 1:
        return schema
    return {**branches[0], **{k: v for k, v in schema.items() if k != "anyOf" and (k != "default" or v is not None)}}


def parameters(model: type[BaseModel], where: str = "query") -> list[dict[str, Any]]:
    """The OpenAPI parameters a query (or path) model declares, each with its schema."""
    schema = model.model_json_schema(ref_template=REF, schema_generator=Untitled)
    out = []
    for name, prop in schema.get("properties", {}).items():
        prop = _non_null(prop)
        out.append({"name": name, "in": where, "required": where == "path" or name in schema.get("required", ()),
                    "description": prop.pop("description", ""), "schema": prop})
    return out
