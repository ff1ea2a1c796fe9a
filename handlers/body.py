"""Request bodies: JSON or form data into one dict, and typed field readers with clear errors.

Every POST accepts ``application/json`` (an object), and
``application/x-www-form-urlencoded`` or ``multipart/form-data`` (flat
fields; an object-valued field such as ``weights`` is sent as JSON text).
Anything else is a 415; a body that does not parse is a 400.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from evaluation.errors import InvalidRequest

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class UnsupportedMediaType(InvalidRequest):
    """The request body's Content-Type is not JSON or form data (HTTP 415)."""


async def read_body(request: web.Request) -> tuple[dict[str, Any], bool]:
    """The body as a dict and whether it came from a form (whose values are strings)."""
    ctype = request.content_type
    if ctype == "application/json":
        raw = await request.read()
        if not raw.strip():
            raise InvalidRequest("request body is empty: send a JSON object")
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InvalidRequest(f"request body is not valid JSON: {exc}") from exc
        except RecursionError as exc:  # e.g. "[[[[...]]]]" tens of thousands deep: still the client's
            raise InvalidRequest("request body is not valid JSON: nested too deeply") from exc
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


def get_int(data: dict[str, Any], key: str, *, default: int, lo: int, hi: int) -> int:
    value = data.get(key)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise InvalidRequest(f"field {key!r} must be an integer, got a boolean")
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise InvalidRequest(f"field {key!r} must be an integer, got {value!r}") from None
    elif isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            raise InvalidRequest(f"field {key!r} must be an integer, got {value!r}")
        value = int(value)
    elif not isinstance(value, int):
        raise InvalidRequest(f"field {key!r} must be an integer, got {type(value).__name__}")
    if not lo <= value <= hi:
        raise InvalidRequest(f"field {key!r} must be between {lo} and {hi}, got {value}")
    return value


def get_bool(data: dict[str, Any], key: str, *, default: bool = False) -> bool:
    value = data.get(key)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
        return value.strip().lower() in ("true", "1", "yes", "on")
    raise InvalidRequest(f"field {key!r} must be true or false, got {value!r}")


def get_object(data: dict[str, Any], key: str) -> dict[str, Any] | None:
    """An object-valued field: a JSON object, or (in forms) JSON text of one; null means absent."""
    value = data.get(key)
    if isinstance(value, str):
        if not value.strip() or value.strip() == "null":
            return None
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise InvalidRequest(f"field {key!r} must be a JSON object: {exc}") from exc
        except RecursionError as exc:
            raise InvalidRequest(f"field {key!r} must be a JSON object: nested too deeply") from exc
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidRequest(f"field {key!r} must be an object, got {type(value).__name__}")
    return value
