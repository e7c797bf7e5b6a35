"""Hand-made histories with known answers: the semantics a user relies on."""

from __future__ import annotations

from typing import Any

from splitbrain.checkers.linearizable import check_linearizable
from splitbrain.checkers.models import cas_register, kv, mutex, queue, register, set_model
from splitbrain.histories.history import History
from splitbrain.histories.op import Op


def history(*events: tuple) -> History:
    """events: (type, process, f, value[, key])."""
    return History(Op(index=i, type=e[0], process=e[1], f=e[2], value=e[3], key=e[4] if len(e) > 4 else None)
                   for i, e in enumerate(events))


def valid(h: History, model: Any) -> Any:
    return check_linearizable(h, model).valid


def test_sequential_register() -> None:
    h = history(("invoke", 0, "write", 1), ("ok", 0, "write", 1), ("invoke", 0, "read", None), ("ok", 0, "read", 1))
    assert valid(h, register()) is True


def test_stale_read_after_completed_write_is_invalid() -> None:
    h = history(("invoke", 0, "write", 1), ("ok", 0, "write", 1), ("invoke", 1, "read", None), ("ok", 1, "read", None))
    assert valid(h, register()) is False


def test_concurrent_read_may_see_either_value() -> None:
    for seen in (None, 1):
        h = history(("invoke", 0, "write", 1), ("invoke", 1, "read", None), ("ok", 1, "read", seen),
                    ("ok", 0, "write", 1))
        assert valid(h, register()) is True


def test_reads_cannot_go_back_in_time() -> None:
    # write 1 overlaps two sequential reads: the first sees 1, the second the older nil
    h = history(("invoke", 0, "write", 1), ("invoke", 1, "read", None), ("ok", 1, "read", 1),
                ("invoke", 1, "read", None), ("ok", 1, "read", None), ("ok", 0, "write", 1))
    assert valid(h, register()) is False


def test_info_write_may_take_effect_late() -> None:
    h = history(("invoke", 0, "write", 1), ("info", 0, "write", 1),
                ("invoke", 1, "read", None), ("ok", 1, "read", None),
                ("invoke", 1, "read", None), ("ok", 1, "read", 1))
    assert valid(h, register()) is True


def test_info_write_takes_effect_at_most_once() -> None:
    h = history(("invoke", 0, "write", 1), ("info", 0, "write", 1),
                ("invoke", 1, "write", 2), ("ok", 1, "write", 2),
                ("invoke", 1, "read", None), ("ok", 1, "read", 1),
                ("invoke", 1, "read", None), ("ok", 1, "read", 2))
    assert valid(h, register()) is False


def test_failed_write_never_happened() -> None:
    h = history(("invoke", 0, "write", 1), ("fail", 0, "write", 1), ("invoke", 1, "read", None), ("ok", 1, "read", 1))
    assert valid(h, register()) is False


def test_never_completed_op_is_indeterminate() -> None:
    h = history(("invoke", 0, "write", 1), ("invoke", 1, "read", None), ("ok", 1, "read", 1))
    assert valid(h, register()) is True


def test_nemesis_ops_are_ignored() -> None:
    h = history(("info", "nemesis", "start", None), ("invoke", 0, "write", 1), ("ok", 0, "write", 1),
                ("info", "nemesis", "stop", None), ("invoke", 0, "read", None), ("ok", 0, "read", 1))
    assert valid(h, register()) is True


def test_cas_register() -> None:
    ok = history(("invoke", 0, "cas", [0, 1]), ("ok", 0, "cas", [0, 1]), ("invoke", 0, "read", None), ("ok", 0, "read", 1))
    bad = history(("invoke", 0, "cas", [5, 1]), ("ok", 0, "cas", [5, 1]))
    assert valid(ok, cas_register(0)) is True
    assert valid(bad, cas_register(0)) is False


def test_nil_read_is_unknown_only_with_a_non_nil_initial_value() -> None:
    h = history(("invoke", 0, "write", 3), ("ok", 0, "write", 3), ("invoke", 0, "read", None), ("ok", 0, "read", None))
    assert valid(h, cas_register(0)) is True     # Knossos's convention
    assert valid(h, cas_register(None)) is False  # nil means "never written"


def test_kv_is_checked_per_key_and_names_the_key() -> None:
    h = history(("invoke", 0, "put", "a", "x"), ("ok", 0, "put", "a", "x"),
                ("invoke", 0, "put", "b", "y"), ("ok", 0, "put", "b", "y"),
                ("invoke", 1, "get", None, "x"), ("ok", 1, "get", "a", "x"),
                ("invoke", 1, "get", None, "y"), ("ok", 1, "get", "", "y"))
    r = check_linearizable(h, kv(""))
    assert r.valid is False
    assert r.details["partitions"] == 2 and r.details["failure"]["key"] == "y"
    assert r.explanation.startswith("key 'y'")


def test_mutex_grants_cannot_overlap() -> None:
    a = {"lock": "l", "owner": "a"}
    b = {"lock": "l", "owner": "b"}
    h = history(("invoke", 0, "acquire", a), ("ok", 0, "acquire", a),
                ("invoke", 1, "acquire", b), ("ok", 1, "acquire", b))
    assert valid(h, mutex()) is False
    h2 = history(("invoke", 0, "acquire", a), ("ok", 0, "acquire", a), ("invoke", 0, "release", a),
                 ("ok", 0, "release", a), ("invoke", 1, "acquire", b), ("ok", 1, "acquire", b))
    assert valid(h2, mutex()) is True


def test_set_and_queue() -> None:
    s = history(("invoke", 0, "add", 1), ("ok", 0, "add", 1), ("invoke", 1, "read", None), ("ok", 1, "read", []))
    assert valid(s, set_model()) is False
    q = history(("invoke", 0, "enqueue", 1), ("ok", 0, "enqueue", 1), ("invoke", 0, "enqueue", 2),
                ("ok", 0, "enqueue", 2), ("invoke", 1, "dequeue", None), ("ok", 1, "dequeue", 2))
    assert valid(q, queue()) is False


def _hard_history(n: int = 14) -> History:
    """n concurrent writes, then a read of a value nobody wrote: invalid only after trying every order."""
    events: list[tuple] = [("invoke", p, "write", p) for p in range(n)]
    events += [("ok", p, "write", p) for p in range(n)]
    events += [("invoke", n, "read", None), ("ok", n, "read", 999)]
    return history(*events)


def test_time_limit_gives_unknown_with_its_cause() -> None:
    r = check_linearizable(_hard_history(18), register(), time_limit=0.05)
    assert r.valid == "unknown"
    assert "time limit" in r.details["cause"]


def test_memory_bound_gives_unknown_with_its_cause() -> None:
    r = check_linearizable(_hard_history(), register(), max_configs=100)
    assert r.valid == "unknown"
    assert "memory bound" in r.details["cause"]


def test_hard_history_is_decided_without_limits() -> None:
    assert check_linearizable(_hard_history(10), register()).valid is False


def test_explanation_names_the_op_and_what_was_possible() -> None:
    h = history(("invoke", 0, "write", 1), ("ok", 0, "write", 1), ("invoke", 1, "write", 2), ("ok", 1, "write", 2),
                ("invoke", 2, "read", None), ("ok", 2, "read", 1))
    r = check_linearizable(h, register())
    assert r.valid is False
    f = r.details["failure"]
    assert (f["op"]["process"], f["op"]["f"], f["op"]["value"]) == (2, "read", 1)
    assert f["final_states"] == ["2"]
    assert "process 2 read -> ok 1" in r.explanation


def test_unknown_f_is_a_clear_error() -> None:
    import pytest

    h = history(("invoke", 0, "frobnicate", 1), ("ok", 0, "frobnicate", 1))
    with pytest.raises(ValueError, match="does not know f='frobnicate'"):
        check_linearizable(h, register())
