"""The timeline's data (Jepsen's timeline.html): a lane per process, each operation a bar from its invocation
to its completion, fault windows as bands. Pure: a history in, a JSON-able dict out; timeline.js draws it.

Bounded: past ``MAX_TIMELINE_OPS`` operations only a window of that many is kept, centred on the op the
evidence points at (or the start), plus the evidence's own ops; the data says how many were left out.
Lanes: processes whose lifetimes do not overlap share a lane (after an ``info`` a worker comes back as a
new process, so a lane is a worker thread), and a lane never holds two processes at once.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from splitbrain.checkers.linearizable import op_text
from splitbrain.harness.report.faults import describe_fault, kind_name
from splitbrain.histories.faults import FaultWindow
from splitbrain.histories.history import History, Operation

MAX_TIMELINE_OPS = 10_000
MAX_HOVER = 300


@dataclass(frozen=True)
class Mark:
    """An interval the evidence draws above the lanes (a lock hold, say): by time (ns) when ops are
    timed, else by history index."""

    start_time: int
    end_time: int | None
    start_index: int
    end_index: int | None
    label: str
    role: str = "evidence"


def is_timed(history: History) -> bool:
    """Do the client ops carry times that tell them apart? (EDN and Jepsen-log histories may have none,
    or all 0.)"""
    times = [op.time for op in history.client_ops()]
    return bool(times) and min(times) >= 0 and (len(times) == 1 or max(times) > min(times))


def hover_text(o: Operation, timed: bool) -> str:
    text = op_text(o)
    if timed and o.completion is not None:
        text += f"  ({(o.completion.time - o.invoke.time) / 1e6:.1f} ms)"
    if o.completion is not None and o.completion.error is not None:
        text += f"  error: {o.completion.error}"
    if o.invoke.node:
        text += f"  node {o.invoke.node}"
    return text if len(text) <= MAX_HOVER else text[: MAX_HOVER - 1] + "…"


def _window(n: int, focus_pos: int | None, limit: int) -> tuple[int, int]:
    if n <= limit:
        return 0, n
    if focus_pos is None:
        return 0, limit
    lo = max(0, min(focus_pos - limit // 2, n - limit))
    return lo, lo + limit


def _lanes(spans: Sequence[tuple[Any, float, float]]) -> tuple[dict[Any, int], list[list[Any]]]:
    """Process -> lane: each process takes the lowest free lane at its first op (interval colouring)."""
    free: list[int] = []
    busy: list[tuple[float, int]] = []  # (end, lane)
    lane_of: dict[Any, int] = {}
    members: list[list[Any]] = []
    for process, start, end in sorted(spans, key=lambda s: (s[1], str(s[0]))):
        while busy and busy[0][0] < start:
            heapq.heappush(free, heapq.heappop(busy)[1])
        lane = heapq.heappop(free) if free else len(members)
        if lane == len(members):
            members.append([])
        members[lane].append(process)
        lane_of[process] = lane
        heapq.heappush(busy, (end, lane))
    return lane_of, members


def _lane_label(processes: list[Any]) -> str:
    shown = ", ".join(map(str, processes[:4]))
    return shown + (f" +{len(processes) - 4}" if len(processes) > 4 else "")


def timeline_data(history: History, spans: Sequence[FaultWindow], *, roles: Mapping[int, str] | None = None,
                  labels: Mapping[int, str] | None = None, focus: int | None = None,
                  marks: Sequence[Mark] = (), limit: int = MAX_TIMELINE_OPS,
                  operations: Sequence[Operation] | None = None) -> dict[str, Any]:
    """The drawing's data. ``roles`` / ``labels``: by an op's invocation index, how the evidence marks it
    ("failing", "concurrent", "evidence", ...) and a short text on its bar; ``focus``: the invocation
    index to centre a bounded window on. ``operations`` draws a subset (an evidence window)."""
    roles = roles or {}
    labels = labels or {}
    timed = is_timed(history)
    ops = list(operations if operations is not None else history.operations())
    calls = [o.call for o in ops]
    focus_pos = None
    if focus is not None:
        p = bisect.bisect_left(calls, focus)
        focus_pos = p if p < len(ops) and calls[p] == focus else None
    lo, hi = _window(len(ops), focus_pos, limit)
    shown = ops[lo:hi]
    extra = [o for i, o in enumerate(ops) if (i < lo or i >= hi) and o.call in roles]
    shown = sorted(shown + extra, key=lambda o: o.call)

    def x_of(time_ns: int, index: int) -> float:
        return round(time_ns / 1e6, 3) if timed else float(index)

    last = history[len(history) - 1] if len(history) else None
    x_end = x_of(max(op.time for op in history), last.index) if last is not None else 0.0
    if operations is not None and shown:
        x_end = max(x_of(o.completion.time, o.ret) if o.completion is not None else x_end for o in shown)

    def bounds(o: Operation) -> tuple[float, float | None]:
        start = x_of(o.invoke.time, o.call)
        end = x_of(o.completion.time, o.completion.index) if o.completion is not None else None
        return start, end

    life: dict[Any, list[float]] = {}
    bar: list[tuple[Operation, float, float | None]] = []
    for o in shown:
        start, end = bounds(o)
        bar.append((o, start, end))
        span = life.setdefault(o.process, [start, start])
        span[1] = max(span[1], end if end is not None else x_end)
    lane_of, members = _lanes([(p, s, e) for p, (s, e) in life.items()])
    fs: dict[str, int] = {}
    records = []
    for o, start, end in bar:
        f = fs.setdefault(o.f, len(fs))
        records.append([lane_of[o.process], start, end, o.type, f, o.call, hover_text(o, timed),
                        roles.get(o.call, ""), labels.get(o.call, "")])
    x_min = min((r[1] for r in records), default=0.0)
    # The drawing spans the ops it shows (a bounded window is not stretched to the whole run); an op that
    # never completed reaches the end of the history.
    x_max = max((r[2] if r[2] is not None else x_end for r in records), default=x_end)
    faults = []
    for s in spans:
        start = x_of(s.start, s.start_index)
        end = x_of(s.end, s.end_index if s.end_index is not None else (last.index if last else 0))
        if end >= x_min and start <= x_max:
            faults.append({"kind": kind_name(s), "start": start, "end": end, "label": describe_fault(s),
                           "failed": bool(s.error), "error": str(s.error) if s.error else "",
                           "open": s.end_index is None})
    drawn_marks = [{"start": x_of(m.start_time, m.start_index),
                    "end": x_of(m.end_time, m.end_index) if m.end_time is not None and m.end_index is not None else x_max,
                    "label": m.label, "role": m.role} for m in marks]
    return {
        "timed": timed, "unit": "ms" if timed else "history index",
        "lanes": [_lane_label(m) for m in members], "fs": list(fs), "ops": records, "faults": faults,
        "marks": drawn_marks, "x_min": x_min, "x_max": x_max, "focus": focus if focus_pos is not None else None,
        "total": len(ops), "shown": len(records), "left_before": lo, "left_after": len(ops) - hi,
        "extra": len(extra),
    }
