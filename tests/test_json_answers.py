"""``handlers.context.json_object_response``: a stored JSON object answered with keys added, its bytes sent as
they are (the curves route's 650 kB at 80 classes is never parsed again), or cleaned where JSON cannot carry
what was stored (NaN, infinities)."""

from __future__ import annotations

import json

from handlers.context import json_object_response


def _answer(stored: bytes, **extra: int) -> tuple[bytes, object]:
    response = json_object_response(stored, **extra)
    assert response.content_type == "application/json"
    assert isinstance(response.body, bytes)
    return response.body, json.loads(response.body)


def test_stored_bytes_are_sent_as_they_are_with_the_keys_added_last() -> None:
    stored = json.dumps({"pr": {"red": [0.5, 0.25]}, "classes": ["red"], "operating": None}).encode()
    body, value = _answer(stored + b"\n", eval_id=7)
    assert body.startswith(stored[:-1])  # not re-encoded: the stored text is the answer's first part
    assert value == {"pr": {"red": [0.5, 0.25]}, "classes": ["red"], "operating": None, "eval_id": 7}
    assert _answer(b"{}", eval_id=3)[1] == {"eval_id": 3}
    assert _answer(b'{"eval_id": 1, "x": 2}', eval_id=9)[1] == {"eval_id": 9, "x": 2}  # as an assignment would


def test_what_json_cannot_carry_is_cleaned_to_null() -> None:
    stored = json.dumps({"ap": float("nan"), "curve": [1.0, float("inf"), float("-inf")]}).encode()
    body, value = _answer(stored, eval_id=4)
    assert b"NaN" not in body and b"Infinity" not in body
    assert value == {"ap": None, "curve": [1.0, None, None], "eval_id": 4}
