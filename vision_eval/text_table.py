"""Aligned text tables for the terminal, measured in display cells.

A wide (East Asian full-width or wide) character takes two cells, a combining
mark none; a cell longer than the column cap is cut to it with an ellipsis,
so one long name or path cannot push every other column off the screen.
Control characters (a newline inside a name) are shown as spaces. Numeric
columns are right-aligned.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from typing import Any

MAX_COLUMN_WIDTH = 40
ELLIPSIS = "…"


def fmt(value: Any, digits: int = 4) -> str:
    """A table cell: '-' for null, fixed decimals for floats."""
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


def clip(text: str, width: int) -> str:
    """``text`` cut to at most ``width`` cells, ending in an ellipsis when cut."""
    if display_width(text) <= width:
        return text
    out, used = [], 0
    for ch in text:
        w = char_width(ch)
        if used + w > width - 1:
            break
        out.append(ch)
        used += w
    return "".join(out) + ELLIPSIS


def _clean(text: str) -> str:
    return "".join(" " if unicodedata.category(ch) == "Cc" else ch for ch in text)


def _pad(text: str, width: int, right: bool) -> str:
    fill = " " * (width - display_width(text))
    return fill + text if right else text + fill


def _numeric(cell: str) -> bool:
    try:
        float(cell.rstrip("%"))
        return True
    except ValueError:
        return False


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], empty: str = "(none)",
          max_width: int = MAX_COLUMN_WIDTH) -> str:
    """Aligned columns of at most ``max_width`` cells each; numeric columns right-aligned."""
    if not rows:
        return empty
    cells = [[clip(_clean(c if isinstance(c, str) else fmt(c)), max_width) for c in row] for row in rows]
    widths = [max(display_width(h), *(display_width(r[i]) for r in cells)) for i, h in enumerate(headers)]
    right = [all(_numeric(r[i]) or r[i] == "-" for r in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(_pad(c, w, rt) for c, w, rt in zip(row, widths, right)).rstrip()

    return "\n".join([line(headers), *(line(r) for r in cells)])
