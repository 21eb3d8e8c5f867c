"""The terminal progress display of `tensorrank feed`: a bar on a terminal, periodic lines elsewhere."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO


class Progress:
    """Feed progress on stderr: a bar redrawn in place on a terminal, else one line every `every` operations."""

    def __init__(self, out: TextIO, total: int | None = None, fraction: Callable[[], float | None] | None = None,
                 every: int = 10_000, tty: bool | None = None) -> None:
        self.out = out
        self.total = total
        self.fraction = fraction
        self.every = max(1, every)
        self.tty = out.isatty() if tty is None else tty
        self.start = time.perf_counter()
        self.done = 0
        self.errors = 0
        self._next_line = self.every
        self._last_draw = 0.0
        self._drawn = False

    def _status(self) -> str:
        elapsed = time.perf_counter() - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        return f"{self.done:,} documents  {rate:,.0f} docs/s  {self.errors:,} errors  {elapsed:.1f} s"

    def _frac(self) -> float | None:
        if self.total:
            return min(1.0, self.done / self.total)
        if self.fraction is not None:
            return self.fraction()
        return None

    def update(self, ok: bool) -> None:
        self.done += 1
        if not ok:
            self.errors += 1
        if self.tty:
            now = time.perf_counter()
            if now - self._last_draw >= 0.1:
                self._last_draw = now
                self.draw()
        elif self.done >= self._next_line:
            self._next_line += self.every
            print(self._status(), file=self.out, flush=True)

    def draw(self) -> None:
        frac = self._frac()
        bar = ""
        if frac is not None:
            width = 30
            full = int(frac * width)
            bar = f"[{'#' * full}{'.' * (width - full)}] {frac * 100:3.0f}%  "
        self.out.write(f"\r{bar}{self._status()}\x1b[K")
        self.out.flush()
        self._drawn = True

    def message(self, text: str) -> None:
        """A line of its own (an error), without breaking the bar."""
        if self.tty and self._drawn:
            self.out.write("\r\x1b[K")
        print(text, file=self.out, flush=True)
        if self.tty and self._drawn:
            self.draw()

    def finish(self) -> None:
        if self.tty:
            self.draw()
            self.out.write("\n")
            self.out.flush()
        elif self.done % self.every:
            print(self._status(), file=self.out, flush=True)
