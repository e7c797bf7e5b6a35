"""A discrete-event loop over simulated time (integer microseconds): deterministic, single-threaded."""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any


class EventLoop:
    def __init__(self) -> None:
        self.now_us = 0
        self._queue: list[tuple[int, int, Callable[..., None], tuple[Any, ...]]] = []
        self._seq = 0  # ties break by scheduling order, so a run never depends on callback identity

    @property
    def now_ms(self) -> int:
        return self.now_us // 1000

    def at(self, time_us: int, fn: Callable[..., None], *args: Any) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (max(time_us, self.now_us), self._seq, fn, args))

    def after(self, delay_us: int, fn: Callable[..., None], *args: Any) -> None:
        self.at(self.now_us + delay_us, fn, *args)

    def run_until(self, time_us: int, after_event: Callable[[], None] | None = None) -> None:
        """Run every event due up to ``time_us``; the clock then reads ``time_us``."""
        q = self._queue
        while q and q[0][0] <= time_us:
            t, _, fn, args = heapq.heappop(q)
            self.now_us = t
            fn(*args)
            if after_event is not None:
                after_event()
        self.now_us = max(self.now_us, time_us)
