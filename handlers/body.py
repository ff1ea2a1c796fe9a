"""Request bodies: JSON or form data into one dict, and typed field readers with clear errors.

Every POST accepts ``application/json`` (an object), and
``application/x-www-form-urlencoded`` or ``multipart/form-data`` (flat
fields; an object-valued field such as ``weights`` is sent as JSON text).
Anything else is a 415; a body that does not parse is a 400.

Numbers and booleans read the same from JSON and from form text: a form's
``imgsz=320.0`` is JSON's ``320.0``; booleans are ``true``/``false``/``1``/``0``
in either. A number too long to mean anything (over ``MAX_INT_DIGITS`` digits,
or a float that overflows) is a 400 wherever it appears, nested objects
included. A query parameter may be given once.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from vocab.errors import InvalidRequest
from vocab.terms import IMGSZ_MAX, IMGSZ_MIN, SPLITS

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
MAX_INT_DIGITS = 30  # no field means anything by an integer longer than this
MAX_FLOAT_CHARS = 64
_NUMBER_RE = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")  # JSON's number grammar


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


def _form_number(key: str, text: str) -> int | float:
    """Form text read as JSON reads a number, or InvalidRequest."""
    text = text.strip()
    if not _NUMBER_RE.fullmatch(text):
        raise InvalidRequest(f"field {key!r} must be a number, got {text[:40]!r}")
    return parse_json(text, f"field {key!r}")


def query_params(request: web.Request, allowed: Iterable[str]) -> dict[str, str]:
    """The query string as a dict: unknown or repeated parameters are a 400."""
    query = request.query
    reject_unknown(dict(query), allowed)
    for key in query:
        if len(query.getall(key)) > 1:
            raise InvalidRequest(f"query parameter {key!r} is given {len(query.getall(key))} times; give it once")
    return dict(query)


async def read_body(request: web.Request) -> tuple[dict[str, Any], bool]:
    """The body as a dict and whether it came from a form (whose values are strings)."""
    ctype = request.content_type
    if ctype == "application/json":
        raw = await request.read()
        if not raw.strip():
            raise InvalidRequest("request body is empty: send a JSON object")
        data = parse_json(raw, "request body")
        if not isinstance(data, dict):
            raise InvalidRequest(f"request body must be a JSON object, got {type(data).__name__}")
        return data, False
    if ctype in FORM_TYPES:
        try:
            form = await request.post()
        except web.HTTPException:  # 413: the body is over the limit
            raise
        except Exception as exc:  # noqa: BLE001 - any parse failure of untrusted bytes is the client's
            raise InvalidRequest(f"request body is not valid {ctype} data: {type(exc).__name__}: "
                                 f"{str(exc).strip()[:200]}") from exc
        data = {}
        for key in form:
            values = form.getall(key)
            if len(values) > 1:
                raise InvalidRequest(f"form field {key!r} is given {len(values)} times")
            if not isinstance(values[0], str):
                raise InvalidRequest(f"form field {key!r} must be text, not a file upload")
            data[key] = values[0]
        return data, True
    raise UnsupportedMediaType(
        f"unsupported Content-Type {ctype or '(none)'!r}: send application/json or form data"
    )


def reject_unknown(data: dict[str, Any], allowed: Iterable[str]) -> None:
    allowed = set(allowed)
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise InvalidRequest(f"unknown field(s): {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")


def get_str(data: dict[str, Any], key: str, *, required: bool = False, default: str | None = None,
            max_len: int = 4096) -> str | None:
    value = data.get(key)
    if value is None or value == "":
        if required:
            raise InvalidRequest(f"field {key!r} is required")
        return default
    if not isinstance(value, str):
        raise InvalidRequest(f"field {key!r} must be a string, got {type(value).__name__}")
    if len(value) > max_len or "\x00" in value:
        raise InvalidRequest(f"field {key!r} is too long or contains a NUL byte")
    return value


def require_str(data: dict[str, Any], key: str, *, max_len: int = 4096) -> str:
    """A required string field (absent or empty: 400)."""
    value = get_str(data, key, required=True, max_len=max_len)
    assert value is not None
    return value


def get_split(data: dict[str, Any]) -> str | None:
    """The request's dataset split (val, test or train); None when it names none."""
    value = get_str(data, "split", max_len=16)
    if value is not None and value not in SPLITS:
        raise InvalidRequest(f"field 'split' must be one of {', '.join(SPLITS)}, got {value!r}")
    return value


def get_imgsz(data: dict[str, Any]) -> int | None:
    """The request's imgsz, or None when it names none (the daemon's default, or a static export's own)."""
    if data.get("imgsz") in (None, ""):
        return None
    return get_int(data, "imgsz", default=0, lo=IMGSZ_MIN, hi=IMGSZ_MAX)


def _number(data: dict[str, Any], key: str, what: str) -> int | float | None:
    """A numeric field as JSON would give it (form text parsed as a JSON number); None when absent."""
    value = data.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise InvalidRequest(f"field {key!r} must be {what}, got a boolean")
    if isinstance(value, str):
        value = _form_number(key, value)
    if not isinstance(value, (int, float)):
        raise InvalidRequest(f"field {key!r} must be {what}, got {type(value).__name__}")
    if not math.isfinite(value):
        raise InvalidRequest(f"field {key!r} must be a finite number, got {value!r}")
    return value


def get_int(data: dict[str, Any], key: str, *, default: int, lo: int, hi: int) -> int:
    """An integer field in [lo, hi]; a float with no fraction (``320.0``) counts as its integer."""
    value = _number(data, key, "an integer")
    if value is None:
        return default
    if isinstance(value, float):
        if value != int(value):
            raise InvalidRequest(f"field {key!r} must be an integer, got {value!r}")
        value = int(value)
    if not lo <= value <= hi:
        raise InvalidRequest(f"field {key!r} must be between {lo} and {hi}, got {value}")
    return value


def get_float(data: dict[str, Any], key: str, *, default: float, lo: float, hi: float,
              lo_open: bool = False) -> float:
    """A number field in [lo, hi] (``(lo, hi]`` with ``lo_open``)."""
    value = _number(data, key, "a number")
    if value is None:
        return default
    if not (lo < value if lo_open else lo <= value) or not value <= hi:
        bounds = f"{'(' if lo_open else '['}{lo:g}, {hi:g}]"
        raise InvalidRequest(f"field {key!r} must be in {bounds}, got {value!r}")
    return float(value)


_TRUE, _FALSE = ("true", "1"), ("false", "0")


def get_bool(data: dict[str, Any], key: str, *, default: bool = False) -> bool:
    """true/false, or 1/0, as JSON values or as text (any case)."""
    value = data.get(key)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise InvalidRequest(f"field {key!r} must be true or false (or 1 or 0), got {value!r}")


def get_object(data: dict[str, Any], key: str) -> dict[str, Any] | None:
    """An object-valued field: a JSON object, or (in forms) JSON text of one; null means absent."""
    value = data.get(key)
    if isinstance(value, str):
        if not value.strip() or value.strip() == "null":
            return None
        value = parse_json(value, f"field {key!r}")
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidRequest(f"field {key!r} must be an object, got {type(value).__name__}")
    return value
