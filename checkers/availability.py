"""Availability: the share of client operations that succeeded while faults were active, and while none
were. Read from the history alone: the nemesis ops say when each fault began and ended
(histories/faults.py).

Not a correctness property, so always valid; the figures go into the run's results.
"""

from __future__ import annotations

from splitbrain.checkers.result import Result
from splitbrain.histories.faults import active_spans, fault_windows
from splitbrain.histories.history import History


def _share(ok: int, total: int) -> float | None:
    return round(ok / total, 4) if total else None


def check_availability(history: History) -> Result:
    """ok / all client ops, split by whether an op was invoked while a fault was active."""
    windows = fault_windows(history)
    spans = active_spans(windows)
    counts = {"faulty": [0, 0], "calm": [0, 0]}  # [ok, total]
    for op in history.operations():
        if not op.invoke.is_client:
            continue
        t = op.invoke.time
        where = "faulty" if any(start <= t <= end for start, end in spans) else "calm"
        counts[where][1] += 1
        counts[where][0] += op.type == "ok"
    failed = [w for w in windows if w.error]
    details = {
        "fault_windows_s": [[round(s / 1e9, 3), round(e / 1e9, 3)] for s, e in spans],
        "during_faults": {"ok_count": counts["faulty"][0], "count": counts["faulty"][1],
                          "availability": _share(*counts["faulty"])},
        "without_faults": {"ok_count": counts["calm"][0], "count": counts["calm"][1],
                           "availability": _share(*counts["calm"])},
        "faults": {"applied": len(windows) - len(failed), "failed": len(failed),
                   "failures": [{"kind": w.kind, "at_s": round(w.start / 1e9, 3), "error": w.error}
                                for w in failed]},
    }
    return Result(True, details)
