"""One image's rows of a predictions artifact, read without parsing the whole file.

A predictions artifact (``evaluation.evaluate.write_predictions``,
``evaluation.classification.write_predictions``) is ``json.dumps`` of a list
of rows, each an object whose first key is ``file_name``, written image after
image in the evaluation's image order. At 10,000 images it may hold millions
of rows (every prediction down to the validator's confidence floor): too many
to parse per request. ``image_rows`` binary-searches the byte offsets for the
image's first row instead (a row starts where the bytes ``{"file_name": "``
stand: inside a JSON string a quote is always escaped, so they cannot stand
anywhere else), then decodes that image's rows only: about 25 short reads of
the file, whatever its size.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

ROW_START = b'{"file_name": '
_START = ROW_START.decode()
_CHUNK = 1 << 14
_DECODER = json.JSONDecoder()


def _read_value(f: BinaryIO, pos: int) -> Any:
    """The JSON value that starts at byte ``pos`` (the file is ASCII: ``json.dumps`` escapes the rest)."""
    text = ""
    while True:
        f.seek(pos + len(text))
        more = f.read(_CHUNK)
        text += more.decode("ascii")
        try:
            return _DECODER.raw_decode(text)[0]
        except json.JSONDecodeError:
            if not more:
                raise


def _next_row(f: BinaryIO, pos: int, size: int) -> tuple[int, str] | None:
    """(offset, file name) of the first row starting at or after ``pos``; None past the last row."""
    while pos < size:
        f.seek(pos)
        chunk = f.read(_CHUNK + len(ROW_START))  # a row start across the chunk's end is found in this read
        at = chunk.find(ROW_START)
        if at >= 0:
            return pos + at, str(_read_value(f, pos + at + len(ROW_START)))
        pos += _CHUNK
    return None


def _first_row_at_or_after(f: BinaryIO, size: int, target: int, order: Mapping[str, int]) -> int | None:
    """The offset of the first row whose image comes at or after position ``target`` in ``order``: the
    smallest byte position whose next row is such a row (monotone in the position), by bisection."""
    lo, hi = 0, size
    while lo < hi:
        mid = (lo + hi) // 2
        found = _next_row(f, mid, size)
        if found is None or order.get(found[1], -1) >= target:
            hi = mid
        else:
            lo = found[0] + 1  # every position up to this row's start finds this row
    found = _next_row(f, lo, size)
    return None if found is None else found[0]


def _rows_from(f: BinaryIO, start: int) -> Any:
    """The rows from byte ``start`` on, one at a time, up to the list's end."""
    f.seek(start)
    text, pos, eof = "", 0, False
    while True:
        if len(text) - pos < _CHUNK and not eof:
            more = f.read(_CHUNK * 4)
            eof = not more
            text, pos = text[pos:] + more.decode("ascii"), 0
        if not text.startswith(_START, pos):
            return  # the list's end
        try:
            row, end = _DECODER.raw_decode(text, pos)
        except json.JSONDecodeError:
            if eof:
                raise
            more = f.read(_CHUNK * 64)  # a row longer than the text read so far (a large mask)
            eof = not more
            text, pos = text[pos:] + more.decode("ascii"), 0
            continue
        yield row
        pos = end
        while pos < len(text) and text[pos] in ", ":
            pos += 1


def image_rows(path: Path, name: str, order: Mapping[str, int]) -> list[dict[str, Any]]:
    """The rows of image ``name`` in the predictions artifact at ``path``, in the file's order; ``order``
    maps every image name of the evaluation to its position (the order the artifact was written in)."""
    target = order[name]
    rows: list[dict[str, Any]] = []
    with open(path, "rb") as f:
        size = f.seek(0, 2)
        start = _first_row_at_or_after(f, size, target, order)
        if start is None:
            return rows
        for row in _rows_from(f, start):
            if row.get("file_name") != name:
                break
            rows.append(row)
    return rows
