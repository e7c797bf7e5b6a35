"""The fault vocabulary of histories: which nemesis op starts a fault, which one ends it, and the spans
in which faults were active. One definition, for the nemeses that write these ops, the checkers and the
report that read them, and the console that shows them.

A nemesis op ``f`` starts a fault when it is a key of ``FAULT_ENDS`` or is named ``start-X`` (a plugin's
own fault, ended by ``stop-X``); ``heal`` ends every fault. Each fault has a kind (``partition``, ``kill``,
...), the name people read on the console and in the report.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

from splitbrain.histories.op import Op

HEAL = "heal"

# starting op -> (the op that ends it, the fault's kind)
FAULT_ENDS: dict[str, tuple[str, str]] = {
    "start-partition": ("stop-partition", "partition"),
    "kill": ("start", "kill"),
    "pause": ("resume", "pause"),
    "bump-clock": ("reset-clock", "clock"),
    "strobe-clock": ("reset-clock", "clock"),
    "start-packet": ("stop-packet", "packet"),
    # disk faults (nemesis/disk.py): the start's completion names each damaged file, offset and length
    "start-corrupt": ("stop-corrupt", "corrupt"),
    "start-truncate": ("stop-truncate", "truncate"),
    "start-lose-unfsynced": ("stop-lose-unfsynced", "lose-unfsynced"),
}


def fault_start(f: str) -> tuple[str, str] | None:
    """(ending op, kind) when nemesis op ``f`` starts a fault, else None."""
    known = FAULT_ENDS.get(f)
    if known is not None:
        return known
    if f.startswith("start-") and len(f) > len("start-"):
        kind = f.removeprefix("start-")
        return f"stop-{kind}", kind
    return None


def fault_kind(f: str) -> str | None:
    """The kind of fault nemesis op ``f`` starts or ends (None for other ops, ``heal`` included)."""
    started = fault_start(f)
    if started is not None:
        return started[1]
    for end, kind in FAULT_ENDS.values():
        if f == end:
            return kind
    if f.startswith("stop-") and len(f) > len("stop-"):
        return f.removeprefix("stop-")
    return None


def ends_fault(end_f: str, start_f: str) -> bool:
    started = fault_start(start_f)
    return started is not None and started[0] == end_f


class FaultWindow(NamedTuple):
    """A fault active from ``start`` to ``end`` (ns since the test began): from the invocation of its
    starting op (it may bite before it is confirmed) to the completion of the op that ended it (or the
    end of the history). ``value`` is what the starting op's completion said it did, ``error`` why it could
    not be applied (a fault that failed is still a window: it was attempted). ``start_index`` and
    ``end_index`` are those completions' op indexes (``end_index`` None when the history ends first),
    ``ended_by`` the f that ended it (its stop op, or ``heal``)."""

    kind: str
    f: str
    start: int
    end: int
    value: Any
    error: Any
    start_index: int = -1
    end_index: int | None = None
    ended_by: str | None = None


def fault_windows(history: Iterable[Op]) -> list[FaultWindow]:
    """Every fault of ``history``'s nemesis ops, in the order they began."""
    ops = list(history)
    last_time = max((op.time for op in ops), default=0)
    invoked: dict[str, int] = {}  # f -> time of its latest invocation (the nemesis runs one op at a time)
    open_: list[tuple[str, int, Op]] = []  # (starting f, start, its completion), oldest first
    windows: list[FaultWindow] = []
    for op in ops:
        if op.is_client:
            continue
        if op.type == "invoke":
            invoked[op.f] = op.time
            continue
        if fault_start(op.f) is not None:
            open_.append((op.f, invoked.get(op.f, op.time), op))
            continue
        ended = [o for o in open_ if op.f == HEAL or ends_fault(op.f, o[0])]
        for f, start, began in ended:
            open_.remove((f, start, began))
            windows.append(FaultWindow(fault_start(f)[1], f, start, op.time, began.value, began.error,  # type: ignore[index]
                                       began.index, op.index, op.f))
    windows += [FaultWindow(fault_start(f)[1], f, start, last_time, b.value, b.error, b.index)  # type: ignore[index]
                for f, start, b in open_]
    return sorted(windows, key=lambda w: (w.start, w.start_index))


def active_spans(windows: Iterable[FaultWindow]) -> list[tuple[int, int]]:
    """The spans (start, end) in which at least one fault was active, in order and disjoint."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted((w.start, w.end) for w in windows):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged
