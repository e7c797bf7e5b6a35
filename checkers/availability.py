"""Availability: the share of client operations that succeeded while faults were active, and while none
were. Read from the history alone: the nemesis ops' completions say when each fault began and ended.

Not a correctness property, so always valid; the figures go into the run's results.
"""

from __future__ import annotations

from splitbrain.checkers.result import Result
from splitbrain.histories.history import History

# The op that ends each kind of fault (nemesis/schedule.py); ``heal`` ends them all.
ENDS = {"start-partition": "stop-partition", "kill": "start", "pause": "resume",
        "bump-clock": "reset-clock", "start-packet": "stop-packet"}
HEAL = "heal"


def fault_windows(history: History) -> list[tuple[int, int]]:
    """(start, end) times in ns of the spans with at least one fault active, in order and disjoint. A fault
    counts from its invocation (it may bite before it is confirmed) to its end's completion."""
    active: dict[str, int] = {}  # starting f -> when the oldest still-active fault of that kind began
    invoked: dict[str, int] = {}  # f -> time of its latest invocation (the nemesis runs one op at a time)
    windows: list[tuple[int, int]] = []
    last_time = max((op.time for op in history), default=0)
    for op in history:
        if op.is_client:
            continue
        if op.type == "invoke":
            invoked[op.f] = op.time
        elif op.f in ENDS:
            active.setdefault(op.f, invoked.get(op.f, op.time))
        elif op.f == HEAL or op.f in ENDS.values():
            ended = list(active) if op.f == HEAL else [f for f, end in ENDS.items() if end == op.f]
            for f in ended:
                if f in active:
                    windows.append((active.pop(f), op.time))
    windows += [(start, last_time) for start in active.values()]
    return _merged(windows)


def _merged(windows: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(windows):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _share(ok: int, total: int) -> float | None:
    return round(ok / total, 4) if total else None


def check_availability(history: History) -> Result:
    """ok / all client ops, split by whether an op was invoked inside a fault window."""
    windows = fault_windows(history)
    counts = {"faulty": [0, 0], "calm": [0, 0]}  # [ok, total]
    for op in history.operations():
        if not op.invoke.is_client:
            continue
        t = op.invoke.time
        where = "faulty" if any(start <= t <= end for start, end in windows) else "calm"
        counts[where][1] += 1
        counts[where][0] += op.type == "ok"
    details = {
        "fault_windows_s": [[round(s / 1e9, 3), round(e / 1e9, 3)] for s, e in windows],
        "during_faults": {"ok_count": counts["faulty"][0], "count": counts["faulty"][1],
                          "availability": _share(*counts["faulty"])},
        "without_faults": {"ok_count": counts["calm"][0], "count": counts["calm"][1],
                           "availability": _share(*counts["calm"])},
    }
    return Result(True, details)
