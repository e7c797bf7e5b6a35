"""Basic checkers: op statistics, grow-only sets, counters, unique ids.

Each is a pure function ``History -> Result`` plus a small class for the Checker protocol. Only client ops
with the f the checker knows are looked at; other ops are ignored. ``ok`` = happened, ``fail`` = did not,
``info`` or never completed = may have happened (at any time after its invocation) or not.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Mapping
from typing import Any

from splitbrain.checkers.result import Result
from splitbrain.histories.errors import HistoryFormatError
from splitbrain.histories.history import History, Operation, hashable

MAX_LISTED = 100  # elements/ids listed in details; counts are always complete
MAX_COUNTER_ERRORS = 10


def _format_error(history: History, op: Any, message: str) -> HistoryFormatError:
    position = next((pos for pos, o in enumerate(history) if o.index == op.index), None)
    line = history.line_of(position) if position is not None else None
    return HistoryFormatError(history.source, line, message)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# -- stats ----------------------------------------------------------------------------------------------

def check_stats(history: History) -> Result:
    """ok / fail / info counts per f (a never-completed op counts as info).

    Valid "unknown" when some f never succeeded (the test may not have exercised the system at all), or
    when there are no client ops.
    """
    by_f: dict[str, dict[str, int]] = {}
    for op in history.operations():
        counts = by_f.setdefault(op.f, {"count": 0, "ok_count": 0, "fail_count": 0, "info_count": 0})
        counts["count"] += 1
        counts[f"{op.type}_count"] += 1
    totals = {k: sum(c[k] for c in by_f.values()) for k in ("count", "ok_count", "fail_count", "info_count")}
    never_ok = sorted(f for f, c in by_f.items() if c["ok_count"] == 0)
    details = {**totals, "by_f": {f: {**c, "valid": c["ok_count"] > 0} for f, c in sorted(by_f.items())}}
    if not by_f:
        return Result("unknown", details, "the history has no client operations")
    if never_ok:
        return Result("unknown", details, f"no {', '.join(repr(f) for f in never_ok)} operation ever succeeded")
    return Result(True, details)


# -- set ------------------------------------------------------------------------------------------------

def _read_elements(history: History, op: Operation) -> set[Any]:
    value = op.completion.value  # type: ignore[union-attr]
    if not isinstance(value, (list, tuple, set, frozenset)):
        raise _format_error(history, op.completion, f"an ok read of a set must return a list of elements, got {value!r}")
    return {hashable(x) for x in value}


def _listed(items: list[Any]) -> list[Any]:
    return items[:MAX_LISTED]


def check_set(history: History) -> Result:
    """A grow-only set: ``add`` v, and ``read`` whose ok value is the whole set.

    The final reads are the ok reads invoked after every add had completed (adds that never completed
    do not count). An acknowledged add missing from a final read is *lost*; an element read that no add
    attempted is *unexpected*; one whose every add failed is *failed_read* (fail means it did not
    happen). Indeterminate adds that show up are *recovered*; attempted elements no ok read ever saw are
    *never_read*. Valid is False on lost, unexpected or failed_read elements, "unknown" without a final
    read.
    """
    adds = [op for op in history.operations() if op.f == "add"]
    reads = [(op, _read_elements(history, op)) for op in history.operations() if op.f == "read" and op.type == "ok"]

    outcome: dict[Any, str] = {}  # element -> best outcome of its adds: ok > info > fail
    first_add: dict[Any, Operation] = {}
    for op in adds:
        element = hashable(op.invoke.value)
        first_add.setdefault(element, op)
        best = outcome.get(element, "fail")
        outcome[element] = "ok" if "ok" in (best, op.type) else "info" if "info" in (best, op.type) else "fail"

    last_add_completion = max((op.ret for op in adds if op.ret is not None), default=-1)
    final_reads = [(op, seen) for op, seen in reads if op.call > last_add_completion]
    ever_read = set().union(*(seen for _, seen in reads))
    read_value = {hashable(x): x for op, _ in reads for x in op.completion.value}  # type: ignore[union-attr]

    def in_add_order(elements: set[Any]) -> list[Any]:
        return sorted(elements, key=lambda e: first_add[e].call)

    lost: dict[Any, Operation] = {}  # element -> the first final read missing it
    for op, seen in final_reads:
        for element, how in outcome.items():
            if how == "ok" and element not in seen:
                lost.setdefault(element, op)
    unexpected = sorted((e for e in ever_read if e not in outcome), key=repr)
    failed_read = in_add_order({e for e in ever_read if outcome.get(e) == "fail"})
    recovered = in_add_order({e for e in ever_read if outcome.get(e) == "info"})
    never_read = in_add_order({e for e, how in outcome.items() if how != "fail" and e not in ever_read})
    lost_elements = in_add_order(set(lost))

    details: dict[str, Any] = {
        "attempt_count": len(outcome),
        "acknowledged_count": sum(1 for how in outcome.values() if how == "ok"),
        "read_count": len(reads),
        "final_read_count": len(final_reads),
        "lost_count": len(lost_elements),
        "lost": _listed([{"element": first_add[e].invoke.value, "add_index": first_add[e].ret,
                          "missing_from_read_index": lost[e].ret} for e in lost_elements]),
        "unexpected_count": len(unexpected),
        "unexpected": _listed([read_value[e] for e in unexpected]),
        "failed_read_count": len(failed_read),
        "failed_read": _listed([first_add[e].invoke.value for e in failed_read]),
        "recovered_count": len(recovered),
        "recovered": _listed([first_add[e].invoke.value for e in recovered]),
        "never_read_count": len(never_read),
        "never_read": _listed([first_add[e].invoke.value for e in never_read]),
    }
    problems = []
    if lost_elements:
        e = lost_elements[0]
        problems.append(f"{len(lost_elements)} acknowledged add(s) lost, e.g. {first_add[e].invoke.value!r} "
                        f"(add ok at index {first_add[e].ret}, missing from the final read at index {lost[e].ret})")
    if unexpected:
        problems.append(f"{len(unexpected)} element(s) read that no add attempted, e.g. {read_value[unexpected[0]]!r}")
    if failed_read:
        problems.append(f"{len(failed_read)} element(s) read whose adds all failed, e.g. {first_add[failed_read[0]].invoke.value!r}")
    if problems:
        return Result(False, details, "; ".join(problems))
    if not final_reads:
        return Result("unknown", details, "no ok read was invoked after all adds completed, so lost adds cannot be told")
    return Result(True, details)


# -- counter --------------------------------------------------------------------------------------------

def _prefix_sums(values: list[float]) -> list[float]:
    return [0, *itertools.accumulate(values)]


def check_counter(history: History) -> Result:
    """``increment`` n and ``read`` (ok value: the count, starting at 0).

    Each ok read must lie between what surely happened before it and what possibly did: increments that
    completed ok before the read was invoked must be counted; increments that were not refused (ok, info,
    never completed) and were invoked before the read completed may be. Negative increments are handled
    (they lower the minimum instead of raising the maximum).
    """
    increments = []
    for op in history.operations():
        if op.f != "increment" or op.type == "fail":
            continue
        if not _is_number(op.invoke.value):
            raise _format_error(history, op.invoke, f"increment expects a number as its value, got {op.invoke.value!r}")
        increments.append(op)

    # surely applied before a read: ok, completed before the read's invocation
    surely = sorted((op for op in increments if op.type == "ok"), key=lambda op: op.ret)  # type: ignore[arg-type,return-value]
    surely_rets = [op.ret for op in surely]
    surely_pos = _prefix_sums([max(op.invoke.value, 0) for op in surely])
    surely_neg = _prefix_sums([min(op.invoke.value, 0) for op in surely])
    # possibly applied before a read completed: invoked before it
    possibly = sorted(increments, key=lambda op: op.call)
    possibly_calls = [op.call for op in possibly]
    possibly_pos = _prefix_sums([max(op.invoke.value, 0) for op in possibly])
    possibly_neg = _prefix_sums([min(op.invoke.value, 0) for op in possibly])

    errors = []
    error_count = 0
    reads = 0
    for op in history.operations():
        if op.f != "read" or op.type != "ok":
            continue
        value = op.completion.value  # type: ignore[union-attr]
        if not _is_number(value):
            raise _format_error(history, op.completion, f"an ok counter read must return a number, got {value!r}")
        reads += 1
        s = bisect.bisect_left(surely_rets, op.call)
        p = bisect.bisect_left(possibly_calls, op.ret)
        lower = surely_pos[s] + possibly_neg[p]
        upper = surely_neg[s] + possibly_pos[p]
        if not lower <= value <= upper:
            error_count += 1
            if len(errors) < MAX_COUNTER_ERRORS:
                errors.append({"index": op.ret, "invoke_index": op.call, "value": value, "lower": lower, "upper": upper})
    details = {"read_count": reads, "increment_count": len(increments), "error_count": error_count, "errors": errors}
    if errors:
        e = errors[0]
        return Result(False, details, f"{error_count} read(s) out of bounds, e.g. the read at index {e['index']} "
                                      f"returned {e['value']!r}, outside [{e['lower']}, {e['upper']}]")
    return Result(True, details)


# -- unique ids -----------------------------------------------------------------------------------------

def check_unique_ids(history: History) -> Result:
    """``generate`` whose ok value is a fresh id: no id may be handed out twice."""
    indexes: dict[Any, list[int]] = {}
    value_of: dict[Any, Any] = {}
    attempts = 0
    for op in history.operations():
        if op.f != "generate":
            continue
        attempts += 1
        if op.type == "ok":
            key = hashable(op.completion.value)  # type: ignore[union-attr]
            indexes.setdefault(key, []).append(op.ret)  # type: ignore[arg-type]
            value_of.setdefault(key, op.completion.value)  # type: ignore[union-attr]
    duplicated = sorted((k for k, ix in indexes.items() if len(ix) > 1), key=lambda k: indexes[k][1])
    details = {
        "attempt_count": attempts,
        "acknowledged_count": sum(len(ix) for ix in indexes.values()),
        "duplicated_count": len(duplicated),
        "duplicated": _listed([{"id": value_of[k], "indexes": indexes[k]} for k in duplicated]),
    }
    if duplicated:
        k = duplicated[0]
        return Result(False, details, f"{len(duplicated)} id(s) handed out more than once, e.g. {value_of[k]!r} "
                                      f"at indexes {', '.join(map(str, indexes[k]))}")
    return Result(True, details)


# -- Checker protocol -----------------------------------------------------------------------------------

class StatsChecker:
    def check(self, test: Any, history: History, opts: Mapping[str, Any]) -> Result:
        return check_stats(history)


class SetChecker:
    def check(self, test: Any, history: History, opts: Mapping[str, Any]) -> Result:
        return check_set(history)


class CounterChecker:
    def check(self, test: Any, history: History, opts: Mapping[str, Any]) -> Result:
        return check_counter(history)


class UniqueIdsChecker:
    def check(self, test: Any, history: History, opts: Mapping[str, Any]) -> Result:
        return check_unique_ids(history)
