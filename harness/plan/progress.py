"""A plan's progress on the console: done/left, what runs now, the time left. Line by line (CI logs are
not terminals: nothing is rewritten in place). Pure: numbers in, text out."""

from __future__ import annotations

from collections.abc import Sequence
from statistics import mean

DEFAULT_OVERHEAD_S = 5.0  # nodes up, target set up, tear down, check: before any run has been measured


def overhead_s(finished: Sequence[tuple[float, float]]) -> float:
    """What a run takes beyond its planned seconds (time limit + recovery), from (planned, took) pairs of
    the runs done so far."""
    if not finished:
        return DEFAULT_OVERHEAD_S
    return max(0.0, mean(took - planned for planned, took in finished))


def eta_s(pending: Sequence[float], running: Sequence[tuple[float, float]], finished: Sequence[tuple[float, float]],
          parallel: int) -> float:
    """Seconds until the plan is done: the planned seconds of each run not started yet and the rest of
    each running one ((planned, elapsed)), each with the measured overhead, shared by ``parallel`` slots."""
    extra = overhead_s(finished)
    work = sum(p + extra for p in pending) + sum(max(p + extra - elapsed, 0.0) for p, elapsed in running)
    return work / max(1, parallel)


def duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def counter(done: int, total: int) -> str:
    width = len(str(total))
    return f"[{done:>{width}}/{total}]"


def tail(done: int, total: int, eta: float) -> str:
    return f"| {total - done} left, ETA {duration(eta)}"
