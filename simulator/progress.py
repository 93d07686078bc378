"""A one-line progress bar on stderr for long twin runs."""

from __future__ import annotations

import sys
from typing import TextIO


class Progress:
    """Shown only when stderr is a terminal (or when forced); redrawn when the percentage moves."""

    def __init__(self, total: int, label: str, enabled: bool, stream: TextIO = sys.stderr) -> None:
        self.total = max(total, 1)
        self.label = label
        self.enabled = enabled
        self.stream = stream
        self._shown = -1

    def update(self, done: int, note: str = "") -> None:
        """Redraw when the percentage changes."""
        if not self.enabled:
            return
        percent = min(100, done * 100 // self.total)
        if percent == self._shown:
            return
        self._shown = percent
        filled = percent * 30 // 100
        bar = "#" * filled + "-" * (30 - filled)
        self.stream.write(f"\r{self.label} [{bar}] {percent:3d}% {note}")
        self.stream.flush()

    def close(self) -> None:
        """End the line."""
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()
