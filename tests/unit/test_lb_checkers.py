"""The checkers of the lb target's workloads: requests applied once, ids that match the applied log,
availability during faults; and the set / unique-ids generators they rely on."""

from __future__ import annotations

import random
from typing import Any

import pytest
from splitbrain.checkers.availability import check_availability
from splitbrain.checkers.exactly_once import check_applied_once, check_generated_log
from splitbrain.harness.generator import Context
from splitbrain.harness.plugins import load_workload
from splitbrain.harness.workloads import FreshValues
from splitbrain.histories.errors import HistoryFormatError
from splitbrain.histories.faults import active_spans, fault_windows
from splitbrain.histories.history import History
from splitbrain.histories.op import Op

S = 1_000_000_000  # ns


def history(events: list[tuple[Any, ...]], source: str | None = None) -> History:
    """Events ``(type, process, f, value)`` or ``(type, process, f, value, time_s)``, indexed by position."""
    ops = []
    for i, event in enumerate(events):
        kind, process, f, value = event[:4]
        time = int(event[4] * S) if len(event) > 4 else i
        ops.append(Op(i, kind, process, f, value, time=time))
    return History(ops, source, list(range(1, len(ops) + 1)) if source else None)


# -- applied once -------------------------------------------------------------------------------------

def test_an_add_sent_once_and_read_twice_is_a_duplicate():
    h = history([("invoke", 0, "add", 1), ("ok", 0, "add", 1),
                 ("invoke", 1, "add", 2), ("ok", 1, "add", 2),
                 ("invoke", 0, "read", None), ("ok", 0, "read", [1, 2, 1])])
    r = check_applied_once(h, "add")
    assert r.valid is False
    assert r.details["duplicated"] == [{"element": 1, "attempts": 1, "copies": 2, "read_index": 5}]
    assert "add 1" in r.explanation


def test_an_indeterminate_add_read_once_is_fine_but_not_twice():
    once = history([("invoke", 0, "add", 7), ("info", 0, "add", 7),
                    ("invoke", 1, "read", None), ("ok", 1, "read", [7])])
    assert check_applied_once(once, "add").valid is True
    twice = history([("invoke", 0, "add", 7), ("info", 0, "add", 7),
                     ("invoke", 1, "read", None), ("ok", 1, "read", [7, 7])])
    assert check_applied_once(twice, "add").valid is False


def test_a_value_sent_twice_may_be_applied_twice_and_a_failed_attempt_does_not_count():
    h = history([("invoke", 0, "add", 3), ("ok", 0, "add", 3),
                 ("invoke", 0, "add", 3), ("ok", 0, "add", 3),
                 ("invoke", 1, "add", 4), ("fail", 1, "add", 4),
                 ("invoke", 1, "add", 4), ("ok", 1, "add", 4),
                 ("invoke", 0, "read", None), ("ok", 0, "read", [3, 4, 3])])
    assert check_applied_once(h, "add").valid is True
    h2 = history([*[(op.type, op.process, op.f, op.value) for op in h][:8],
                  ("invoke", 0, "read", None), ("ok", 0, "read", [3, 4, 4])])
    assert check_applied_once(h2, "add").valid is False


def test_generate_duplicates_count_request_ids():
    h = history([("invoke", 0, "generate", 10), ("ok", 0, "generate", 2),
                 ("invoke", 0, "read", None), ("ok", 0, "read", [10, 10])])
    assert check_applied_once(h, "generate").valid is False


def test_a_read_that_is_not_a_list_is_a_format_error_with_the_line():
    h = history([("invoke", 0, "read", None), ("ok", 0, "read", 5)], source="h.jsonl")
    with pytest.raises(HistoryFormatError) as e:
        check_applied_once(h, "add")
    assert e.value.line == 2


# -- the generated log ----------------------------------------------------------------------------------

def generated(log: list[int], *generates: tuple[str, int, Any]) -> History:
    events: list[tuple[Any, ...]] = []
    for p, (kind, request, value) in enumerate(generates):
        events += [("invoke", p, "generate", request), (kind, p, "generate", value)]
    events += [("invoke", 99, "read", None), ("ok", 99, "read", log)]
    return History([Op(i, e[0], e[1], e[2], e[3]) for i, e in enumerate(events)])


def test_ids_that_are_their_requests_positions_are_valid():
    r = check_generated_log(generated([5, 6, 7], ("ok", 5, 1), ("ok", 6, 2), ("info", 7, None)))
    assert r.valid is True
    assert r.details["recovered_count"] == 1


def test_an_id_that_is_not_its_requests_position_is_invalid():
    r = check_generated_log(generated([5, 6], ("ok", 5, 2), ("ok", 6, 2)))
    assert r.valid is False
    assert r.details["id_mismatch"][0] == {"request": 5, "id": 2, "index": 1, "log_has": 6}


def test_a_lost_or_a_failed_but_applied_generate_is_invalid():
    lost = check_generated_log(generated([5], ("ok", 5, 1), ("ok", 6, 2)))
    assert lost.valid is False and lost.details["lost_count"] == 1
    failed = check_generated_log(generated([5, 6], ("ok", 5, 1), ("fail", 6, None)))
    assert failed.valid is False and failed.details["failed_read_count"] == 1


def test_no_final_read_is_unknown():
    h = history([("invoke", 0, "generate", 1), ("ok", 0, "generate", 1)])
    assert check_generated_log(h).valid == "unknown"


# -- availability ---------------------------------------------------------------------------------------

def test_fault_windows_run_from_a_faults_invocation_to_its_ends_completion():
    h = history([("invoke", "nemesis", "pause", ["node2"], 1.0), ("info", "nemesis", "pause", {}, 1.1),
                 ("invoke", "nemesis", "resume", None, 2.0), ("info", "nemesis", "resume", {}, 2.2),
                 ("invoke", "nemesis", "kill", ["node3"], 3.0), ("info", "nemesis", "kill", {}, 3.1),
                 ("invoke", "nemesis", "start-partition", "one", 3.5), ("info", "nemesis", "start-partition", {}, 3.6),
                 ("invoke", "nemesis", "heal", None, 5.0), ("info", "nemesis", "heal", "healed", 5.5)])
    assert active_spans(fault_windows(h)) == [(1 * S, int(2.2 * S)), (3 * S, int(5.5 * S))]


def test_an_unhealed_fault_lasts_to_the_end_of_the_history():
    h = history([("invoke", "nemesis", "kill", "one", 1.0), ("info", "nemesis", "kill", {}, 1.1),
                 ("invoke", 0, "add", 1, 4.0), ("info", 0, "add", 1, 6.0)])
    assert active_spans(fault_windows(h)) == [(1 * S, 6 * S)]


def test_availability_splits_ops_by_whether_they_began_during_a_fault():
    h = history([("invoke", 0, "add", 1, 0.5), ("ok", 0, "add", 1, 0.6),
                 ("invoke", "nemesis", "pause", ["node2"], 1.0), ("info", "nemesis", "pause", {}, 1.0),
                 ("invoke", 0, "add", 2, 1.2), ("info", 0, "add", 2, 2.7),
                 ("invoke", 1, "add", 3, 1.3), ("ok", 1, "add", 3, 1.4),
                 ("invoke", "nemesis", "resume", None, 2.0), ("info", "nemesis", "resume", {}, 2.0),
                 ("invoke", 1, "read", None, 3.0), ("ok", 1, "read", [1, 2, 3], 3.1)])
    r = check_availability(h)
    assert r.valid is True
    assert r.details["during_faults"] == {"ok_count": 1, "count": 2, "availability": 0.5}
    assert r.details["without_faults"] == {"ok_count": 2, "count": 2, "availability": 1.0}


def test_no_faults_means_no_availability_figure_under_faults():
    h = history([("invoke", 0, "add", 1), ("ok", 0, "add", 1)])
    assert check_availability(h).details["during_faults"]["availability"] is None


# -- the generators -------------------------------------------------------------------------------------

@pytest.mark.parametrize("f", ["add", "generate"])
def test_fresh_values_never_repeat_and_reads_are_mixed_in(f: str):
    gen: Any = FreshValues(f, read_share=0.2)
    ctx = Context(time=0, free=frozenset({0}), workers=(0,), rng=random.Random(3))
    values, reads = [], 0
    for _ in range(500):
        op, gen = gen.op(None, ctx)
        if op["f"] == "read":
            reads += 1
        else:
            assert op["f"] == f
            values.append(op["value"])
    assert len(values) == len(set(values)) and 50 < reads < 150


@pytest.mark.parametrize("name", ["set", "unique-ids"])
def test_the_workloads_end_with_reads_and_check_an_empty_run_as_unknown(name: str):
    w = load_workload(name).make(None)
    assert w.final is not None
    assert w.check(History([])).valid == "unknown"
