"""Basic checkers: stats, set, counter, unique ids — small hand-written histories and generated ones."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from splitbrain.checkers.basic import (
    CounterChecker,
    SetChecker,
    StatsChecker,
    UniqueIdsChecker,
    check_counter,
    check_set,
    check_stats,
    check_unique_ids,
)
from splitbrain.checkers.result import Checker
from splitbrain.histories.errors import HistoryFormatError
from splitbrain.histories.history import History
from splitbrain.histories.op import Op


def history(events: list[tuple[str, int, str, Any]], source: str | None = None) -> History:
    """Events ``(type, process, f, value)``, indexed by position (line = position + 1 when a source is set)."""
    ops = [Op(i, kind, p, f, value) for i, (kind, p, f, value) in enumerate(events)]
    return History(ops, source, list(range(1, len(ops) + 1)) if source else None)


# -- stats ----------------------------------------------------------------------------------------------

def test_stats_counts_per_f_and_is_valid_when_every_f_succeeds():
    h = history([("invoke", 0, "read", None), ("ok", 0, "read", 1),
                 ("invoke", 0, "write", 2), ("info", 0, "write", 2),
                 ("invoke", 1, "write", 3), ("ok", 1, "write", 3),
                 ("invoke", 1, "read", None), ("fail", 1, "read", None),
                 ("invoke", 2, "read", None),
                 ("invoke", "nemesis", "start-partition", None)])
    r = check_stats(h)
    assert r.valid is True
    assert r.details["by_f"]["read"] == {"count": 3, "ok_count": 1, "fail_count": 1, "info_count": 1, "valid": True}
    assert r.details["by_f"]["write"] == {"count": 2, "ok_count": 1, "fail_count": 0, "info_count": 1, "valid": True}
    assert (r.details["count"], r.details["ok_count"]) == (5, 2)


def test_stats_unknown_when_an_f_never_succeeds():
    h = history([("invoke", 0, "read", None), ("ok", 0, "read", 1),
                 ("invoke", 0, "cas", [1, 2]), ("fail", 0, "cas", [1, 2]),
                 ("invoke", 1, "cas", [1, 2]), ("info", 1, "cas", [1, 2])])
    r = check_stats(h)
    assert r.valid == "unknown"
    assert r.details["by_f"]["cas"]["valid"] is False
    assert "'cas'" in r.explanation


def test_stats_of_an_empty_history_is_unknown():
    assert check_stats(History([])).valid == "unknown"


# -- set ------------------------------------------------------------------------------------------------

def test_set_with_every_acknowledged_add_read_is_valid_and_shows_recovered_and_never_read():
    h = history([("invoke", 0, "add", 1), ("ok", 0, "add", 1),
                 ("invoke", 1, "add", 2), ("info", 1, "add", 2),
                 ("invoke", 2, "add", 3), ("info", 2, "add", 3),
                 ("invoke", 0, "add", 4), ("fail", 0, "add", 4),
                 ("invoke", 0, "read", None), ("ok", 0, "read", [1, 2])])
    r = check_set(h)
    assert r.valid is True
    d = r.details
    assert (d["attempt_count"], d["acknowledged_count"], d["final_read_count"]) == (4, 1, 1)
    assert d["recovered"] == [2] and d["never_read"] == [3]
    assert d["lost"] == [] and d["unexpected"] == [] and d["failed_read"] == []


def test_set_reports_lost_acknowledged_add_with_its_indexes():
    h = history([("invoke", 0, "add", "a"), ("ok", 0, "add", "a"),
                 ("invoke", 1, "add", "b"), ("ok", 1, "add", "b"),
                 ("invoke", 0, "read", None), ("ok", 0, "read", ["a"])])
    r = check_set(h)
    assert r.valid is False
    assert r.details["lost"] == [{"element": "b", "add_index": 3, "missing_from_read_index": 5}]
    assert "'b'" in r.explanation and "index 5" in r.explanation


def test_set_checks_every_final_read():
    h = history([("invoke", 0, "add", 1), ("ok", 0, "add", 1),
                 ("invoke", 0, "read", None), ("invoke", 1, "read", None),
                 ("ok", 0, "read", [1]), ("ok", 1, "read", [])])
    r = check_set(h)
    assert r.valid is False
    assert r.details["lost"][0]["missing_from_read_index"] == 5


def test_set_read_concurrent_with_an_add_is_not_final():
    # the read may have happened before the add took effect: not a lost add, but no verdict either
    h = history([("invoke", 0, "add", 1), ("invoke", 1, "read", None),
                 ("ok", 0, "add", 1), ("ok", 1, "read", [])])
    r = check_set(h)
    assert r.valid == "unknown"
    assert r.details["lost"] == []
    assert "after all adds" in r.explanation


def test_set_element_never_attempted_is_unexpected():
    h = history([("invoke", 0, "add", 1), ("ok", 0, "add", 1),
                 ("invoke", 0, "read", None), ("ok", 0, "read", [1, 99])])
    r = check_set(h)
    assert r.valid is False
    assert r.details["unexpected"] == [99]


def test_set_element_whose_add_failed_must_not_be_read():
    h = history([("invoke", 0, "add", 1), ("fail", 0, "add", 1),
                 ("invoke", 0, "read", None), ("ok", 0, "read", [1])])
    r = check_set(h)
    assert r.valid is False
    assert r.details["failed_read"] == [1]


def test_set_unexpected_element_in_an_early_read_counts():
    h = history([("invoke", 0, "read", None), ("ok", 0, "read", [7]),
                 ("invoke", 0, "add", 1), ("ok", 0, "add", 1)])
    assert check_set(h).valid is False


def test_set_read_that_is_not_a_list_is_a_one_line_error():
    h = history([("invoke", 0, "read", None), ("ok", 0, "read", 3)], source="set.jsonl")
    with pytest.raises(HistoryFormatError) as e:
        check_set(h)
    assert str(e.value).startswith("set.jsonl:2: ")
    assert "list" in str(e.value)


# -- counter --------------------------------------------------------------------------------------------

def test_counter_reads_within_bounds_are_valid():
    h = history([("invoke", 0, "increment", 2), ("ok", 0, "increment", 2),
                 ("invoke", 0, "read", None), ("ok", 0, "read", 2),
                 ("invoke", 1, "increment", 5), ("invoke", 0, "read", None),  # concurrent: 2 or 7
                 ("ok", 0, "read", 7), ("info", 1, "increment", 5),
                 ("invoke", 0, "increment", 1), ("fail", 0, "increment", 1),
                 ("invoke", 0, "read", None), ("ok", 0, "read", 2)])  # the info increment may never happen
    r = check_counter(h)
    assert r.valid is True
    assert (r.details["read_count"], r.details["increment_count"]) == (3, 2)


def test_counter_read_missing_a_completed_increment_is_reported_with_bounds():
    h = history([("invoke", 0, "increment", 2), ("ok", 0, "increment", 2),
                 ("invoke", 1, "increment", 3), ("invoke", 0, "read", None),
                 ("ok", 0, "read", 1), ("ok", 1, "increment", 3)])
    r = check_counter(h)
    assert r.valid is False
    assert r.details["errors"] == [{"index": 4, "invoke_index": 3, "value": 1, "lower": 2, "upper": 5}]
    assert "index 4" in r.explanation and "[2, 5]" in r.explanation


def test_counter_read_above_everything_attempted_is_invalid():
    h = history([("invoke", 0, "read", None), ("invoke", 1, "increment", 1),
                 ("ok", 0, "read", 1), ("ok", 1, "increment", 1),   # fine: concurrent
                 ("invoke", 0, "increment", 4), ("fail", 0, "increment", 4),
                 ("invoke", 0, "read", None), ("ok", 0, "read", 5)])  # the failed 4 did not happen
    r = check_counter(h)
    assert r.valid is False
    assert r.details["errors"][0]["upper"] == 1


def test_counter_negative_increments_lower_the_minimum():
    h = history([("invoke", 0, "increment", 5), ("ok", 0, "increment", 5),
                 ("invoke", 1, "increment", -3), ("info", 1, "increment", -3),
                 ("invoke", 0, "read", None), ("ok", 0, "read", 2),
                 ("invoke", 0, "read", None), ("ok", 0, "read", 5),
                 ("invoke", 0, "read", None), ("ok", 0, "read", 1)])
    r = check_counter(h)
    assert r.valid is False
    assert r.details["error_count"] == 1
    assert r.details["errors"][0] == {"index": 9, "invoke_index": 8, "value": 1, "lower": 2, "upper": 5}


def test_counter_reports_only_the_first_few_errors_but_counts_all():
    events: list[tuple[str, int, str, Any]] = [("invoke", 0, "increment", 1), ("ok", 0, "increment", 1)]
    for _ in range(15):
        events += [("invoke", 0, "read", None), ("ok", 0, "read", 0)]
    r = check_counter(history(events))
    assert r.details["error_count"] == 15
    assert len(r.details["errors"]) == 10


def test_counter_non_numeric_increment_is_an_error():
    h = history([("invoke", 0, "increment", "one"), ("ok", 0, "increment", "one")], source="c.jsonl")
    with pytest.raises(HistoryFormatError, match=r"^c.jsonl:1: increment expects a number"):
        check_counter(h)


# -- unique ids -----------------------------------------------------------------------------------------

def test_unique_ids_distinct_are_valid():
    h = history([("invoke", 0, "generate", None), ("ok", 0, "generate", 1),
                 ("invoke", 1, "generate", None), ("info", 1, "generate", None),
                 ("invoke", 0, "generate", None), ("ok", 0, "generate", [1, 2]),
                 ("invoke", 0, "generate", None), ("fail", 0, "generate", None)])
    r = check_unique_ids(h)
    assert r.valid is True
    assert (r.details["attempt_count"], r.details["acknowledged_count"]) == (4, 2)


def test_unique_ids_duplicates_are_reported_with_indexes():
    h = history([("invoke", 0, "generate", None), ("ok", 0, "generate", "x"),
                 ("invoke", 1, "generate", None), ("ok", 1, "generate", "y"),
                 ("invoke", 0, "generate", None), ("ok", 0, "generate", "x"),
                 ("invoke", 0, "generate", None), ("ok", 0, "generate", "x")])
    r = check_unique_ids(h)
    assert r.valid is False
    assert r.details["duplicated"] == [{"id": "x", "indexes": [1, 5, 7]}]
    assert "'x'" in r.explanation and "1, 5, 7" in r.explanation


def test_checker_classes_follow_the_checker_protocol():
    h = history([("invoke", 0, "generate", None), ("ok", 0, "generate", 1)])
    for checker in (StatsChecker(), SetChecker(), CounterChecker(), UniqueIdsChecker()):
        assert isinstance(checker, Checker)
    assert UniqueIdsChecker().check(None, h, {}).valid is True
    assert StatsChecker().check(None, h, {}).valid is True
    assert SetChecker().check(None, h, {}).valid == "unknown"  # never read
    assert CounterChecker().check(None, h, {}).valid is True


# -- generated histories: a serial execution with overlapping intervals ----------------------------------

Apply = Callable[[Any, str, Any], tuple[Any, Any]]  # (state, f, value) -> (new state, result)


def simulate(rng: random.Random, next_op: Callable[[random.Random], tuple[str, Any]], apply: Apply,
             state: Any, *, processes: int = 3, steps: int = 40, final: tuple[str, Any] | None = None,
             info: float = 0.15) -> History:
    """Processes invoke ops; each takes effect at one step between its invocation and completion (then is
    ok), or times out (info) with its effect applied before, later, or never. ``final`` is an op every
    process runs at the end, after everything else completed."""
    ops: list[Op] = []
    open_: dict[int, list[Any]] = {}  # process -> [f, value, result or None, applied]
    late: list[tuple[str, Any]] = []
    pids = list(range(processes))

    def emit(kind: str, p: int, f: str, value: Any) -> None:
        ops.append(Op(len(ops), kind, p, f, value))

    def effect(f: str, value: Any) -> Any:
        nonlocal state
        state, result = apply(state, f, value)
        return result

    for _ in range(steps):
        if late and rng.random() < 0.1:
            effect(*late.pop(rng.randrange(len(late))))
            continue
        slot = rng.randrange(processes)
        p = pids[slot]
        if p not in open_:
            f, value = next_op(rng)
            open_[p] = [f, value, None, False]
            emit("invoke", p, f, value)
        elif not open_[p][3] and rng.random() < 0.5:
            open_[p][2], open_[p][3] = effect(open_[p][0], open_[p][1]), True
        else:
            f, value, result, applied = open_.pop(p)
            if rng.random() < info:
                if not applied and rng.random() < 0.5:
                    late.append((f, value))
                emit("info", p, f, value)
                pids[slot] += processes
            else:
                emit("ok", p, f, result if applied else effect(f, value))
    for p, (f, value, result, applied) in list(open_.items()):  # close the rest, so the final ops come last
        emit("ok", p, f, result if applied else effect(f, value))
    if final is not None:
        for p in pids:
            emit("invoke", p, final[0], final[1])
            emit("ok", p, final[0], effect(*final))
    return History(ops)


def set_apply(state: frozenset, f: str, value: Any) -> tuple[Any, Any]:
    return (state | {value}, value) if f == "add" else (state, sorted(state))


def counter_apply(state: int, f: str, value: Any) -> tuple[Any, Any]:
    return (state + value, value) if f == "increment" else (state, state)


def set_history(rng: random.Random) -> History:
    counter = iter(range(10**6))
    return simulate(rng, lambda r: ("add", next(counter)) if r.random() < 0.7 else ("read", None),
                    set_apply, frozenset(), final=("read", None))


def counter_history(rng: random.Random) -> History:
    return simulate(rng, lambda r: ("increment", r.choice([1, 2, 5, -1])) if r.random() < 0.6 else ("read", None),
                    counter_apply, 0)


def replaced_completion(h: History, index: int, value: Any) -> History:
    return History(op.with_(value=value) if op.index == index else op for op in h)


@settings(max_examples=100, deadline=None, derandomize=True)
@given(st.randoms(use_true_random=False))
def test_generated_set_histories_are_valid_and_a_dropped_element_is_lost(rng):
    h = set_history(rng)
    r = check_set(h)
    assert r.valid is True, r.explanation
    acked = [op for op in h.operations() if op.f == "add" and op.type == "ok"]
    if not acked:
        return
    victim = rng.choice(acked).invoke.value
    final_read = h[-1]
    broken = replaced_completion(h, final_read.index, [x for x in final_read.value if x != victim])
    r = check_set(broken)
    assert r.valid is False
    assert [e["element"] for e in r.details["lost"]] == [victim]


@settings(max_examples=100, deadline=None, derandomize=True)
@given(st.randoms(use_true_random=False))
def test_generated_set_history_with_a_foreign_element_is_invalid(rng):
    h = set_history(rng)
    final_read = h[-1]
    r = check_set(replaced_completion(h, final_read.index, [*final_read.value, "never added"]))
    assert r.valid is False
    assert r.details["unexpected"] == ["never added"]


@settings(max_examples=100, deadline=None, derandomize=True)
@given(st.randoms(use_true_random=False))
def test_generated_counter_histories_are_valid_and_an_off_by_one_read_is_found(rng):
    h = counter_history(rng)
    r = check_counter(h)
    assert r.valid is True, r.explanation
    reads = [op for op in h.operations() if op.f == "read" and op.type == "ok"]
    if not reads:
        return
    read = rng.choice(reads)
    # one above the largest value it could have seen: every possible positive increment, no negative one
    possible = [op.invoke.value for op in h.operations()
                if op.f == "increment" and op.type != "fail" and op.call < read.ret]
    definite = [op.invoke.value for op in h.operations()
                if op.f == "increment" and op.type == "ok" and op.ret < read.call]
    too_high = sum(v for v in possible if v > 0) + sum(v for v in definite if v < 0) + 1
    r = check_counter(replaced_completion(h, read.ret, too_high))
    assert r.valid is False
    assert r.details["errors"][0]["index"] == read.ret


@settings(max_examples=100, deadline=None, derandomize=True)
@given(st.lists(st.integers(0, 10**6), max_size=30, unique=True), st.randoms(use_true_random=False))
def test_unique_ids_distinct_valid_and_any_repeat_found(ids, rng):
    events: list[tuple[str, int, str, Any]] = []
    for n, i in enumerate(ids):
        events += [("invoke", n % 3, "generate", None), ("ok", n % 3, "generate", i)]
    assert check_unique_ids(history(events)).valid is True
    if not ids:
        return
    repeated = rng.choice(ids)
    r = check_unique_ids(history(events + [("invoke", 0, "generate", None), ("ok", 0, "generate", repeated)]))
    assert r.valid is False
    assert [d["id"] for d in r.details["duplicated"]] == [repeated]
