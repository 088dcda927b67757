"""A small progress bar on stderr (redrawn in place on a terminal, one final line otherwise)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, total: int, label: str, stream: TextIO | None = None, width: int = 28) -> None:
        self.total = max(total, 0)
        self.label = label
        self.stream = stream or sys.stderr
        self.width = width
        self.done = 0
        self.failed = 0
        self.started = time.monotonic()
        self.interactive = bool(getattr(self.stream, "isatty", lambda: False)())

    def advance(self, ok: bool = True, note: str = "") -> None:
        self.done += 1
        self.failed += 0 if ok else 1
        self.show(note)

    def show(self, note: str) -> None:
        """Redraw the line with ``note`` (what is being done now) without counting a file: a
        video is sent, queued and processed before it counts."""
        if self.interactive:
            self.stream.write("\r" + self.line(note)[:160].ljust(100))
            self.stream.flush()

    def line(self, note: str = "") -> str:
        fraction = self.done / self.total if self.total else 1.0
        filled = int(fraction * self.width)
        elapsed = time.monotonic() - self.started
        failed = f", {self.failed} failed" if self.failed else ""
        return (
            f"{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {self.done}/{self.total}{failed} {elapsed:.1f}s {note}"
        ).rstrip()

    def close(self) -> None:
        if self.interactive:
            self.stream.write("\r" + self.line().ljust(100) + "\n")
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()
