"""``parse``: a contract model from untrusted data, or one ``InvalidRequest`` that says what is wrong.

pydantic's ``ValidationError`` is turned into our style of message: the field
(dotted for nested ones: ``gates.min_delta``), what was expected and what was
got; unknown fields are listed with the allowed ones. Bounds are quoted from
the model's JSON Schema, the same document the API publishes. Every message
about a field starts with ``<what> '<field>'`` (e.g. ``field 'imgsz' must be
between 320 and 2560, got 319``).
"""

from __future__ import annotations

import functools
import typing
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from vocab.contract.fields import PATTERN_RULES
from vocab.errors import InvalidRequest

M = TypeVar("M", bound=BaseModel)

_EXPECTED = {
    "int_type": "an integer", "int_from_float": "an integer", "int_parsing": "an integer",
    "float_type": "a number", "float_parsing": "a number", "finite_number": "a finite number",
    "bool_type": "true or false", "bool_parsing": "true or false",
    "string_type": "a string", "dict_type": "an object", "model_type": "an object", "model_attributes_type": "an object",
    "list_type": "an array",
}
_BOUNDS = ("greater_than", "greater_than_equal", "less_than", "less_than_equal")


def parse(model: type[M], data: Any, what: str = "field") -> M:
    """``model`` validated from ``data``; InvalidRequest naming the first problem (see module contract).
    ``what`` is how a top-level key is called ("field", "query parameter")."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequest(message(model, exc.errors(include_url=False), what)) from None


def message(model: type[BaseModel], errors: list[ErrorDetails], what: str = "field") -> str:
    """The message of a validation failure: its first error about a value sent (else its first missing
    field), with every unknown key beside it."""
    first = next((e for e in errors if e["type"] != "missing"), errors[0])
    if first["type"] == "request":  # a model's own check: its message is ours already
        return first["msg"]
    loc = tuple(str(part) for part in first["loc"])
    if first["type"] == "extra_forbidden":
        parent = loc[:-1]
        unknown = [str(e["loc"][-1]) for e in errors if e["type"] == "extra_forbidden" and
                   tuple(str(p) for p in e["loc"][:-1]) == parent]
        inner = _model_at(model, parent)
        noun = getattr(inner, "NOUN", "field") if parent else what
        allowed = sorted(inner.model_fields) if inner is not None else []
        where = f" in {'.'.join(parent)}" if parent else ""
        return f"unknown {noun}(s){where}: {', '.join(unknown)}; allowed: {', '.join(allowed)}"
    if loc and loc[-1] == "[key]":
        keys = str((first.get("ctx") or {}).get("expected", "")).replace("'", "").replace(" or ", ", ")
        return f"unknown {'.'.join(loc[:-2])} key {first['input']!r}; allowed: {keys}"
    if not loc:  # the data as a whole (not an object)
        return f"{model.__name__} {_problem(model, loc, first)}"
    return f"{what} {'.'.join(loc)!r} {_problem(model, loc, first)}"


def _problem(model: type[BaseModel], loc: tuple[str, ...], error: ErrorDetails) -> str:
    kind, ctx, got = error["type"], error.get("ctx") or {}, _shown(error["input"])
    if kind == "missing":
        return "is required"
    if kind in _EXPECTED:
        return f"must be {_EXPECTED[kind]}, got {got}"
    if kind == "literal_error":
        return f"must be one of {str(ctx.get('expected', '')).replace(chr(39), '').replace(' or ', ', ')}, got {got}"
    if kind in _BOUNDS:
        return f"must be {_range(schema_at(model, loc))}, got {got}"
    if kind == "multiple_of":
        return f"must be a multiple of {ctx.get('multiple_of')}, got {got}"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "string_too_long":
        return f"is too long: at most {ctx.get('max_length')} characters"
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern"))
        return f"must be {PATTERN_RULES.get(pattern, f'text matching {pattern}')}, got {got}"
    return f"is invalid: {error['msg']}"


def _range(schema: dict[str, Any]) -> str:
    """How a person reads a number's bounds: "between 1 and 256", "in (0, 1]", "at least 0"."""
    lo, hi = schema.get("minimum", schema.get("exclusiveMinimum")), schema.get("maximum", schema.get("exclusiveMaximum"))
    if lo is not None and hi is not None:
        if "exclusiveMinimum" in schema or "exclusiveMaximum" in schema:
            return (f"in {'(' if 'exclusiveMinimum' in schema else '['}{lo:g}, {hi:g}"
                    f"{')' if 'exclusiveMaximum' in schema else ']'}")
        return f"between {lo} and {hi}"
    if lo is not None:
        return f"{'over' if 'exclusiveMinimum' in schema else 'at least'} {lo}"
    return f"{'under' if 'exclusiveMaximum' in schema else 'at most'} {hi}"


def _shown(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


@functools.cache
def _schema(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema()


def schema_at(model: type[BaseModel], loc: tuple[str, ...]) -> dict[str, Any]:
    """The JSON Schema of the value at ``loc`` in ``model``'s (references resolved, a nullable's non-null
    branch); ``{}`` where there is none."""
    root = _schema(model)
    node: dict[str, Any] = root
    for part in loc:
        node = _resolved(root, node)
        props = node.get("properties", {})
        if part in props:
            node = props[part]
        elif isinstance(node.get("additionalProperties"), dict):
            node = node["additionalProperties"]
        else:
            return {}
    return _resolved(root, node)


def _resolved(root: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while True:
        if "$ref" in node:
            node = root["$defs"][node["$ref"].rsplit("/", 1)[1]]
        elif "anyOf" in node:
            node = next((b for b in node["anyOf"] if b.get("type") != "null"), {})
        else:
            return node


def _model_at(model: type[BaseModel], loc: tuple[str, ...]) -> type[BaseModel] | None:
    """The model class of the object at ``loc`` (the model itself for ``()``), or None."""
    current: type[BaseModel] | None = model
    for part in loc:
        field = current.model_fields.get(part) if current is not None else None
        current = _model_in(field.annotation) if field is not None else None
    return current


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The BaseModel class inside an annotation such as ``Gates | None``, or None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None
