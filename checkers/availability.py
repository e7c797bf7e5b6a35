"""Availability: the share of client operations that succeeded while faults were active, and while none
were. Read from the history alone: the nemesis ops' completions say when each fault began and ended.

Not a correctness property, so always valid; the figures go into the run's results.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from splitbrain.checkers.result import Result
from splitbrain.histories.history import History
from splitbrain.histories.op import Op

# The op that ends each kind of fault (nemesis/schedule.py); ``heal`` ends them all. The one definition of
# which nemesis op starts and which ends a fault: the report's fault bands come from here too.
ENDS = {"start-partition": "stop-partition", "kill": "start", "pause": "resume",
        "bump-clock": "reset-clock", "start-packet": "stop-packet"}
HEAL = "heal"


@dataclass(frozen=True)
class FaultSpan:
    """One fault as the history shows it: from its start's invocation to its end's completion (or the
    end of the history), with what the nemesis answered. ``error`` set: the fault failed, or only partly
    applied."""

    kind: str                 # the f that starts it, e.g. "start-partition"
    start: int                # ns: the start op's invocation (a fault may bite before it is confirmed)
    end: int                  # ns: the completion of the op that ended it (its end, or heal)
    start_index: int          # the start op's completion index
    end_index: int | None     # the ending op's completion index; None when the history ends first
    value: Any = None         # the start op's completion value (what it did: a grudge, nodes, offsets)
    error: Any = None         # the start op's completion error
    ended_by: str | None = None


def fault_spans(history: History) -> list[FaultSpan]:
    """Every fault the nemesis started, in order of start, each ended by the first later completion of
    its end op (``ENDS``) or of ``heal``; a fault still active when the history ends lasts until then."""
    active: dict[str, list[tuple[int, Op]]] = {}  # starting f -> (start time, start completion), oldest first
    invoked: dict[str, int] = {}  # f -> time of its latest invocation (the nemesis runs one op at a time)
    spans: list[FaultSpan] = []
    last_time = max((op.time for op in history), default=0)
    for op in history:
        if op.is_client:
            continue
        if op.type == "invoke":
            invoked[op.f] = op.time
        elif op.f in ENDS:
            active.setdefault(op.f, []).append((invoked.get(op.f, op.time), op))
        elif op.f == HEAL or op.f in ENDS.values():
            ended = list(active) if op.f == HEAL else [f for f, end in ENDS.items() if end == op.f]
            for f in ended:
                for start, began in active.pop(f, []):
                    spans.append(FaultSpan(f, start, op.time, began.index, op.index, began.value, began.error, op.f))
    for f, started in active.items():
        spans += [FaultSpan(f, start, last_time, began.index, None, began.value, began.error) for start, began in started]
    return sorted(spans, key=lambda s: (s.start, s.start_index))


def fault_windows(history: History) -> list[tuple[int, int]]:
    """(start, end) times in ns of the spans with at least one fault active, in order and disjoint. A fault
    counts from its invocation (it may bite before it is confirmed) to its end's completion."""
    return _merged([(s.start, s.end) for s in fault_spans(history)])


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
