"""Progress on stderr: a redrawn bar on a terminal, plain lines otherwise (logs, CI, pipes)."""

from __future__ import annotations

import sys
from typing import Any, TextIO

PLAIN_STEP = 0.1  # plain mode: a line each time progress passes another tenth (or the label changes)


class ProgressBar:
    """``bar(fraction)`` shows progress in [0, 1] under ``bar.label``; ``close()`` ends it.

    On a terminal one line is redrawn in place (``\\r``). When ``stream`` is
    not a terminal every update that shows something new is a line of its
    own, ``<label> <percent>``: no carriage returns in a log file.
    """

    def __init__(self, label: str, stream: TextIO | Any = None, width: int = 30) -> None:
        self.label, self.width = label, width
        self.stream = sys.stderr if stream is None else stream
        self.interactive = bool(getattr(self.stream, "isatty", lambda: False)())
        self._drawn = False
        self._last_plain: tuple[str, int] | None = None

    def __call__(self, fraction: float) -> None:
        fraction = min(1.0, max(0.0, fraction))
        if self.interactive:
            filled = round(fraction * self.width)
            bar = "#" * filled + "-" * (self.width - filled)
            self.stream.write(f"\r{self.label} [{bar}] {fraction:6.1%}")
            self._drawn = True
        else:
            shown = (self.label, int(fraction / PLAIN_STEP + 1e-9))
            if shown == self._last_plain:
                return
            self._last_plain = shown
            self.stream.write(f"{self.label.rstrip()} {fraction:.0%}\n")
        self.stream.flush()

    def close(self) -> None:
        """End the redrawn line (nothing to do in plain mode)."""
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
