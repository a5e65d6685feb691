"""One-line progress reports for long-running processes (`hilrl actor`, `hilrl learner`): a
`ProgressReporter` decides when a line is due and formats rates and an ETA, so every process
reports alike. Lines go to standard output, flushed: an operator watching a terminal (or a log
file, under `hilrl run`) sees the process is alive and what it is doing."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO


def duration(seconds: float) -> str:
    """"42 s", "3 min 10 s", "2 h 05 min"."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


class ProgressReporter:
    """Emits a line every `every_s` seconds (0 disables the periodic lines; `final` still prints).

    Args:
        prefix: e.g. "[actor cell-b]".
        every_s: period of the lines, s.
        out: where lines go (standard output by default).
        clock: monotonic clock, s.
    """

    def __init__(self, prefix: str, every_s: float, out: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.prefix = prefix
        self.every_s = every_s
        self.out = out
        self._clock = clock
        self.started_s = clock()
        self._next_s = self.started_s + every_s
        self._last_count: tuple[float, float] | None = None

    def due(self) -> bool:
        """Whether a periodic line is due now (then the next one is scheduled)."""
        if self.every_s <= 0:
            return False
        now = self._clock()
        if now < self._next_s:
            return False
        self._next_s = now + self.every_s
        return True

    def rate(self, count: float) -> float:
        """Per-second rate of `count` since the previous call (since the start the first time)."""
        now = self._clock()
        then_s, then_count = self._last_count or (self.started_s, 0.0)
        self._last_count = (now, count)
        return (count - then_count) / (now - then_s) if now > then_s else 0.0

    def eta(self, done: float, total: float | None) -> str:
        """" | ETA 3 min 10 s" from the average rate since the start ("" without a total)."""
        if not total or done <= 0:
            return ""
        elapsed = self._clock() - self.started_s
        return f" | ETA {duration(elapsed * (total - done) / done)}" if done < total else " | done"

    def emit(self, line: str) -> None:
        print(f"{self.prefix} {line}", file=self.out or sys.stdout, flush=True)
