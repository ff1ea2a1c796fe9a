"""Request bodies and query strings into contract models (``vocab.contract``), JSON and form data alike.

Every POST accepts ``application/json`` (an object), and
``application/x-www-form-urlencoded`` or ``multipart/form-data`` (flat
fields; an object-valued field such as ``weights`` is sent as JSON text).
Anything else is a 415; a body that does not parse is a 400.

A request model's fields are read as their declared types first
(``as_declared``), so numbers and booleans read the same from JSON, form
text and query strings: ``imgsz=320.0`` is JSON's ``320.0`` (an integer
field takes it as 320); booleans are ``true``/``false``/``1``/``0`` in any
case; an object field's text is parsed as JSON. A field given as null or
empty text counts as absent. Then the same model validates every encoding.

Guards before any model sees the data: a number too long to mean anything
(over ``MAX_INT_DIGITS`` digits, or a float that overflows), NaN or Infinity,
JSON nested too deeply, a NUL byte in any text, a form field or query
parameter given twice, a file upload: each is a 400.
"""

from __future__ import annotations

import json
import math
import re
import typing
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel

from vocab.contract.fields import Request
from vocab.contract.validation import parse
from vocab.errors import InvalidRequest

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
MAX_INT_DIGITS = 30  # no field means anything by an integer longer than this
MAX_FLOAT_CHARS = 64
_NUMBER_RE = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")  # JSON's number grammar
_TRUE, _FALSE = ("true", "1"), ("false", "0")
R = TypeVar("R", bound=Request)


class UnsupportedMediaType(InvalidRequest):
    """The request body's Content-Type is not JSON or form data (HTTP 415)."""


def _json_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise InvalidRequest(f"number {text[:12]}... has {len(text.lstrip('-'))} digits: out of any sane range")
    return int(text)


def _json_float(text: str) -> float:
    value = float(text) if len(text) <= MAX_FLOAT_CHARS else math.inf
    if not math.isfinite(value):
        raise InvalidRequest(f"number {text[:12]}{'...' if len(text) > 12 else ''} is out of any sane range")
    return value


def _json_constant(name: str) -> Any:
    raise InvalidRequest(f"{name} is not a number: JSON has no NaN or Infinity")


def parse_json(text: str | bytes, what: str) -> Any:
    """JSON text as Python values, numbers bounded (see module contract); InvalidRequest naming ``what``."""
    try:
        return json.loads(text, parse_int=_json_int, parse_float=_json_float, parse_constant=_json_constant)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"{what} is not valid JSON: {exc}") from exc
    except RecursionError as exc:  # e.g. "[[[[...]]]]" tens of thousands deep: still the client's
        raise InvalidRequest(f"{what} is not valid JSON: nested too deeply") from exc


def _no_nul(value: Any, where: str) -> None:
    """InvalidRequest if any text in ``value`` (keys included) holds a NUL byte."""
    if isinstance(value, str):
        if "\x00" in value:
            raise InvalidRequest(f"{where} contains a NUL byte")
    elif isinstance(value, dict):
        for key, item in value.items():
            _no_nul(key, where)
            _no_nul(item, where)
    elif isinstance(value, list):
        for item in value:
            _no_nul(item, where)


def _declared(annotation: Any) -> tuple[type, type[BaseModel] | None]:
    """The JSON type a field's annotation declares (``int``, ``float``, ``bool``, ``str`` or ``dict``) and, for
    a nested request model, its class."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return dict, annotation if issubclass(annotation, Request) else None
    if annotation in (bool, int, float, str):
        return annotation, None
    if typing.get_origin(annotation) is dict:
        return dict, None
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    return _declared(args[0]) if args else (str, None)


def _as_type(key: str, value: Any, kind: type, nested: type[BaseModel] | None) -> Any:
    """``value`` read as ``kind`` where it is text (or a whole-number float for an integer); otherwise as given,
    for the model to accept or refuse."""
    if kind in (int, float) and isinstance(value, str) and _NUMBER_RE.fullmatch(value.strip()):
        value = parse_json(value.strip(), f"field {key!r}")
    if kind is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if kind is bool and isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    if kind is bool and type(value) is int and value in (0, 1):
        return bool(value)
    if kind is dict and isinstance(value, str):
        value = parse_json(value, f"field {key!r}")
    if nested is not None and isinstance(value, dict):
        return as_declared(nested, value)
    return value


def as_declared(model: type[BaseModel], data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with each of ``model``'s fields read as its declared type (see module contract); null or empty
    fields left out, unknown ones kept for the model to refuse."""
    out = {}
    for key, value in data.items():
        field = model.model_fields.get(key)
        if field is not None:
            if value is None or (isinstance(value, str) and not value.strip()):
                continue
            value = _as_type(key, value, *_declared(field.annotation))
            if value is None:  # an object field given as the text "null"
                continue
        out[key] = value
    return out


async def read_body(request: web.Request) -> dict[str, Any]:
    """The body as a dict (a form's values are text); the guards of the module contract applied."""
    ctype = request.content_type
    if ctype == "application/json":
        raw = await request.read()
        if not raw.strip():
            raise InvalidRequest("request body is empty: send a JSON object")
        data = parse_json(raw, "request body")
        if not isinstance(data, dict):
            raise InvalidRequest(f"request body must be a JSON object, got {type(data).__name__}")
        _no_nul(data, "request body")
        return data
    if ctype in FORM_TYPES:
        try:
            form = await request.post()
        except web.HTTPException:  # 413: the body is over the limit
            raise
        except Exception as exc:  # noqa: BLE001 - any parse failure of untrusted bytes is the client's
            raise InvalidRequest(f"request body is not valid {ctype} data: {type(exc).__name__}: "
                                 f"{str(exc).strip()[:200]}") from exc
        fields = {}
        for key in form:
            values = form.getall(key)
            if len(values) > 1:
                raise InvalidRequest(f"form field {key!r} is given {len(values)} times")
            if not isinstance(values[0], str):
                raise InvalidRequest(f"form field {key!r} must be text, not a file upload")
            _no_nul(values[0], f"form field {key!r}")
            fields[key] = values[0]
        return fields
    raise UnsupportedMediaType(
        f"unsupported Content-Type {ctype or '(none)'!r}: send application/json or form data"
    )


async def parse_body(request: web.Request, model: type[R]) -> R:
    """The request body as ``model`` (JSON or form data alike); InvalidRequest saying what is wrong."""
    return parse(model, as_declared(model, await read_body(request)))


def parse_query(request: web.Request, model: type[R]) -> R:
    """The query string as ``model``: a parameter given twice, or one ``model`` does not declare, is a 400."""
    query = request.query
    for key in query:
        if len(query.getall(key)) > 1:
            raise InvalidRequest(f"query parameter {key!r} is given {len(query.getall(key))} times; give it once")
        _no_nul(query[key], f"query parameter {key!r}")
    return parse(model, as_declared(model, dict(query)), "query parameter")


def parse_path(request: web.Request, model: type[R]) -> R:
    """The route's path parameters that ``model`` declares, as ``model``."""
    params = {key: value for key, value in request.match_info.items() if key in model.model_fields}
    return parse(model, as_declared(model, params), "path parameter")
