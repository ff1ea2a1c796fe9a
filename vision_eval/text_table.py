"""Text for the terminal, measured in display cells: aligned tables that fit a width, and wrapped lines.

A wide (East Asian full-width or wide) character takes two cells, a combining
mark none; control characters (a newline inside a name) are shown as spaces.

``table`` never loses text. A table wider than ``width`` first wraps its
wrapping column (by default the last: reasons, errors) within the column,
then shortens its path columns from the left (``…/my-detector/v3.pt``, the
last two parts always kept); when it still does not fit, each row becomes a
card, a block of ``HEADER: value`` lines wrapped to the width. ``width=None``
means no limit (output to a pipe or a file: one line per row).
"""

from __future__ import annotations

import os
import shutil
import sys
import unicodedata
from collections.abc import Sequence
from typing import Any

ELLIPSIS = "…"
GAP = 2  # cells between two columns
MIN_WIDTH = 20  # narrower widths are treated as this one
WRAP_MIN = 16  # a wrapping column is not narrowed below this (or its header)
_UNITS = ("ms", "s", "MB", "%")


def terminal_width() -> int | None:
    """``$COLUMNS`` when set, else the width of the terminal stdout writes to; None when stdout is a
    pipe or a file (no limit)."""
    if not os.environ.get("COLUMNS", "").strip().isdigit() and not sys.stdout.isatty():
        return None
    return shutil.get_terminal_size().columns


def fmt(value: Any, digits: int = 4) -> str:
    """A cell: '-' for null, yes/no for booleans, ``digits`` decimals for floats."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def char_width(ch: str) -> int:
    if unicodedata.combining(ch):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def display_width(text: str) -> int:
    """How many terminal cells ``text`` takes."""
    return sum(char_width(ch) for ch in text)


def clean(text: str) -> str:
    """``text`` with control characters (newlines, tabs) shown as spaces."""
    return "".join(" " if unicodedata.category(ch) == "Cc" else ch for ch in text)


def _head(text: str, width: int) -> tuple[str, str]:
    """``text`` split after at most ``width`` cells (at least one character)."""
    used = 0
    for i, ch in enumerate(text):
        used += char_width(ch)
        if used > width and i > 0:
            return text[:i], text[i:]
    return text, ""


def wrap(text: str, width: int) -> list[str]:
    """``text`` in lines of at most ``width`` cells, broken at spaces; a word longer than a line is
    broken inside. Every character but the spaces at the breaks is kept."""
    width = max(1, width)
    lines: list[str] = []
    line = ""
    for word in clean(text).split(" "):
        candidate = f"{line} {word}" if line else word
        if display_width(candidate) <= width:
            line = candidate
            continue
        if line:
            lines.append(line)
        while display_width(word) > width:
            part, word = _head(word, width)
            lines.append(part)
        line = word
    lines.append(line)
    return lines


def shorten_left(text: str, width: int) -> str:
    """A path cut from the left to ``width`` cells, at a ``/`` where one is left: ``…/my-detector/v3.pt``."""
    if display_width(text) <= width:
        return text
    kept, used = "", 1
    for ch in reversed(text):
        used += char_width(ch)
        if used > width:
            break
        kept = ch + kept
    slash = kept.find("/")
    return ELLIPSIS + (kept[slash:] if slash > 0 else kept)


def _tail_floor(text: str) -> int:
    """The width that keeps a path's last two parts: ``…/my-detector/v3.pt``."""
    parts = text.rstrip("/").split("/")
    return display_width(text) if len(parts) <= 3 else display_width(ELLIPSIS + "/" + "/".join(parts[-2:]))


def _pad(text: str, width: int, right: bool) -> str:
    fill = " " * (width - display_width(text))
    return fill + text if right else text + fill


def _numeric(cell: str) -> bool:
    """A number, optionally with a unit (``12.5 ms``, ``40%``)."""
    number, _, unit = cell.partition(" ")
    if unit and unit not in _UNITS:
        return False
    try:
        float(number.rstrip("%"))
        return True
    except ValueError:
        return False


def field(label: str, value: Any, width: int | None, label_width: int = 12) -> str:
    """``label`` then ``value`` on one line, the value wrapped with a hanging indent to fit ``width``."""
    text = clean(value if isinstance(value, str) else fmt(value))
    indent = max(label_width, display_width(label) + 1)
    if width is None:
        return _pad(label, indent, False) + text
    width = max(width, MIN_WIDTH)
    if width - indent < WRAP_MIN:  # no room beside the label: the value goes under it
        return "\n".join([label, *("  " + line for line in wrap(text, width - 2))])
    lines = wrap(text, width - indent)
    return "\n".join([_pad(label, indent, False) + lines[0], *(" " * indent + line for line in lines[1:])])


def paragraph(text: str, width: int | None, indent: int = 2) -> str:
    """``text`` wrapped to ``width``, the lines after the first indented by ``indent``."""
    if width is None:
        return clean(text)
    lines = wrap(text, max(width, MIN_WIDTH) - indent)
    return "\n".join([lines[0], *(" " * indent + line for line in lines[1:])])


def _natural(headers: Sequence[str], cells: list[list[str]]) -> list[int]:
    """Each column's width with nothing wrapped or shortened."""
    return [max(display_width(h), *(display_width(r[i]) for r in cells)) for i, h in enumerate(headers)]


def _fit(headers: Sequence[str], cells: list[list[str]], width: int, wrap_at: int | None,
         paths: Sequence[int]) -> list[int] | None:
    """Column widths that fit ``width``: the wrapping column narrowed, then the path columns; None when
    even that is too wide (the rows become cards)."""
    widths = _natural(headers, cells)
    excess = sum(widths) + GAP * (len(widths) - 1) - width
    floors = {} if wrap_at is None else {wrap_at: max(display_width(headers[wrap_at]), min(widths[wrap_at], WRAP_MIN))}
    for i in paths:
        floors.setdefault(i, max(display_width(headers[i]), *(_tail_floor(r[i]) for r in cells)))
    for i, floor in floors.items():
        if excess <= 0:
            break
        cut = min(excess, max(0, widths[i] - floor))
        widths[i] -= cut
        excess -= cut
    return widths if excess <= 0 else None


def _cards(headers: Sequence[str], cells: list[list[str]], width: int) -> str:
    """Each row as a block of ``HEADER: value`` lines, values wrapped to ``width``; blocks apart by a blank line."""
    keys = [f"{h}:" if h else "" for h in headers]
    key_width = max(map(display_width, keys)) + 1
    return "\n\n".join("\n".join(field(k, c, width, key_width) for k, c in zip(keys, row)) for row in cells)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], empty: str = "(none)", *,
          width: int | None = None, wrap_at: int | None = -1, paths: Sequence[int] = ()) -> str:
    """Aligned columns fitting ``width`` cells (None: no limit); numeric columns right-aligned.

    ``wrap_at``: the column whose long cells wrap within it (default the last; None: none);
    ``paths``: the columns holding paths, shortened from the left when the table must narrow (never wrapped).
    Too wide even then: one card per row (see the module's contract). ``empty`` when no rows.
    """
    if not rows:
        return empty
    n = len(headers)
    cells = [[clean(c if isinstance(c, str) else fmt(c)) for c in row] for row in rows]
    path_cols = [i % n for i in paths]
    wrap_col = None if wrap_at is None or wrap_at % n in path_cols else wrap_at % n
    if width is None:
        widths = _natural(headers, cells)
    else:
        fitted = _fit(headers, cells, max(width, MIN_WIDTH), wrap_col, path_cols)
        if fitted is None:
            return _cards(headers, cells, max(width, MIN_WIDTH))
        widths = fitted
    right = [all(_numeric(r[i]) or r[i] == "-" for r in cells) for i in range(n)]

    def lines(row: Sequence[str]) -> list[str]:
        columns = []
        for i, (cell, w) in enumerate(zip(row, widths)):
            if display_width(cell) <= w:
                columns.append([cell])
            elif i in path_cols:
                columns.append([shorten_left(cell, w)])
            else:
                columns.append(wrap(cell, w))
        height = max(len(c) for c in columns)
        return ["  ".join(_pad(c[k] if k < len(c) else "", w, rt) for c, w, rt in zip(columns, widths, right)).rstrip()
                for k in range(height)]

    return "\n".join([*lines(list(headers)), *(line for row in cells for line in lines(row))])
