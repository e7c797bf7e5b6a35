"""A live console line while a history check runs long: what is done (partitions), ops/s, elapsed.
Silent when stderr is not a terminal, and for checks that end within a second."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

from splitbrain.checkers import progress

QUIET_S = 1.0      # checks shorter than this print nothing
EVERY_S = 0.25


class ProgressLine:
    def __init__(self, label: str, stream: IO[str], enabled: bool) -> None:
        self.label = label
        self.stream = stream
        self.enabled = enabled
        self.started = time.monotonic()
        self.last = 0.0
        self.printed = False

    def __call__(self, what: str, done: int, total: int, ops: int) -> None:
        now = time.monotonic()
        elapsed = now - self.started
        if not self.enabled or elapsed < QUIET_S or now - self.last < EVERY_S:
            return
        self.last = now
        line = (f"checking {self.label}: {done:,}/{total:,} {what}, {ops:,} ops ({ops / elapsed:,.0f} ops/s), "
                f"{elapsed:.1f} s")
        print("\r" + line[:150].ljust(150), end="", file=self.stream, flush=True)
        self.printed = True

    def close(self) -> None:
        if self.printed:
            print("\r" + " " * 150 + "\r", end="", file=self.stream, flush=True)


@contextmanager
def check_progress(label: str, stream: IO[str] | None = None) -> Iterator[None]:
    stream = stream or sys.stderr
    line = ProgressLine(label, stream, enabled=stream.isatty())
    with progress.listening(line):
        try:
            yield
        finally:
            line.close()
