"""Every request applied at most once, and unique ids that match the log they came from.

For services whose state is a log of applied requests that a read returns whole, in order (the lb
target's set and unique-ids workloads): ``add`` v appends v; ``generate`` r appends the request id r and
answers r's position in the log (from 1); ``read``'s ok value is the whole log. A set checker sees a set
and cannot tell an element applied twice; these checkers count.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from splitbrain.checkers.basic import MAX_LISTED, check_set
from splitbrain.checkers.result import Result
from splitbrain.histories.errors import HistoryFormatError
from splitbrain.histories.history import History, Operation, hashable


def _ok_reads(history: History, read_f: str) -> list[tuple[Operation, list[Any]]]:
    reads = []
    for op in history.operations():
        if op.f != read_f or op.type != "ok":
            continue
        value = op.completion.value  # type: ignore[union-attr]
        if not isinstance(value, list):
            position = next((pos for pos, o in enumerate(history) if o.index == op.ret), None)
            line = history.line_of(position) if position is not None else None
            raise HistoryFormatError(history.source, line, f"an ok {read_f} must return a list, got {value!r}")
        reads.append((op, value))
    return reads


def check_applied_once(history: History, apply_f: str, read_f: str = "read") -> Result:
    """No element may appear in a read more often than it was attempted by ``apply_f`` ops that did not
    fail (ok, info, or never completed): one more copy is a request applied twice."""
    attempts: Counter[Any] = Counter()
    shown: dict[Any, Any] = {}
    for op in history.operations():
        if op.f == apply_f and op.type != "fail":
            element = hashable(op.invoke.value)
            attempts[element] += 1
            shown.setdefault(element, op.invoke.value)
    reads = _ok_reads(history, read_f)
    worst: dict[Any, tuple[int, int]] = {}  # element -> (most copies in one read, the index of that read)
    for op, log in reads:
        for element, copies in Counter(hashable(x) for x in log).items():
            if copies > attempts[element] and copies > worst.get(element, (0, -1))[0]:
                worst[element] = (copies, op.ret)  # type: ignore[assignment]
    duplicated = sorted(worst, key=lambda e: worst[e][1])
    details = {
        "read_count": len(reads),
        "duplicated_count": len(duplicated),
        "duplicated": [{"element": shown.get(e, e), "attempts": attempts[e], "copies": worst[e][0],
                        "read_index": worst[e][1]} for e in duplicated[:MAX_LISTED]],
    }
    if duplicated:
        e = duplicated[0]
        return Result(False, details, f"{len(duplicated)} request(s) applied more often than they were attempted "
                                      f"(fails not counted), e.g. {apply_f} {shown.get(e, e)!r}: {attempts[e]} "
                                      f"attempt(s), {worst[e][0]} copies in the read at index {worst[e][1]}")
    return Result(True, details)


def as_adds(history: History, apply_f: str) -> History:
    """The history with ``apply_f`` ops renamed ``add``, so the set checker judges the applied log."""
    ops = [op.with_(f="add") if op.is_client and op.f == apply_f else op for op in history]
    lines = [history.line_of(pos) for pos in range(len(history))]
    return History(ops, history.source, lines if all(line is not None for line in lines) else None)  # type: ignore[arg-type]


def check_generated_log(history: History) -> Result:
    """unique-ids against the final log of applied requests: every acknowledged ``generate`` is in it
    (else lost), no failed one is, nothing else is, and each ok id is the position of its request there."""
    as_set = check_set(as_adds(history, "generate"))
    last_generate = max((op.ret for op in history.operations() if op.f == "generate" and op.ret is not None),
                        default=-1)
    finals = [log for op, log in _ok_reads(history, "read") if op.call > last_generate]
    mismatched = []
    if finals:
        log = finals[-1]
        for op in history.operations():
            if op.f != "generate" or op.type != "ok":
                continue
            position = op.completion.value  # type: ignore[union-attr]
            at = log[position - 1] if isinstance(position, int) and 1 <= position <= len(log) else None
            if at is None or hashable(at) != hashable(op.invoke.value):
                mismatched.append({"request": op.invoke.value, "id": position, "index": op.ret, "log_has": at})
    details = {**as_set.details, "id_mismatch_count": len(mismatched), "id_mismatch": mismatched[:MAX_LISTED]}
    if mismatched:
        m = mismatched[0]
        explanation = (f"{len(mismatched)} id(s) that are not their request's position in the log, e.g. request "
                       f"{m['request']!r} got id {m['id']!r}, where the log has {m['log_has']!r}")
        return Result(False, details, "; ".join(x for x in (as_set.explanation, explanation) if x))
    return Result(as_set.valid, details, as_set.explanation)
