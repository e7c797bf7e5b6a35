"""Failure signatures (checker, anomaly, f, target) read from the results the real checkers write, and
sightings grouped: one group per bug, the simplest sighting first."""

from __future__ import annotations

from typing import Any

from splitbrain.checkers.basic import check_set, check_unique_ids
from splitbrain.checkers.elle import check_list_append
from splitbrain.checkers.linearizable import check_linearizable
from splitbrain.checkers.lock import check_lock
from splitbrain.checkers.models import kv
from splitbrain.checkers.result import check_all
from splitbrain.harness.plan.signature import Sighting, Signature, grouped, signatures
from splitbrain.histories.history import History
from splitbrain.histories.op import Op


def history(events: list[tuple[Any, ...]]) -> History:
    """(type, process, f, value[, key]) events, indexed by position, 1 ms apart."""
    return History([Op(i, e[0], e[1], e[2], e[3], e[4] if len(e) > 4 else None, time=i * 1_000_000)
                    for i, e in enumerate(events)])


def results(checkers: dict[str, Any], h: History) -> dict[str, Any]:
    return check_all(checkers, h).to_json()


def f_at(h: History):
    return lambda index: next((op.f for op in h if op.index == index), None)


STALE_READ = history([("invoke", 0, "write", 1, "k"), ("ok", 0, "write", 1, "k"),
                      ("invoke", 1, "read", None, "k"), ("ok", 1, "read", 0, "k")])


def test_a_stale_read_is_nonlinearizable_read() -> None:
    r = results({"linearizable": lambda h: check_linearizable(h, kv(0)), "stats": lambda h: check_all({}, h)},
                STALE_READ)
    assert signatures(r, "raft", f_at(STALE_READ)) == [Signature("linearizable", "nonlinearizable", "read", "raft")]


def test_a_valid_history_has_no_signature() -> None:
    ok = history([("invoke", 0, "write", 1, "k"), ("ok", 0, "write", 1, "k"),
                  ("invoke", 1, "read", None, "k"), ("ok", 1, "read", 1, "k")])
    assert signatures(results({"linearizable": lambda h: check_linearizable(h, kv(0))}, ok), "raft") == []


def test_a_lost_add_and_a_duplicated_id_name_their_anomaly_and_op() -> None:
    lost = history([("invoke", 0, "add", 1), ("ok", 0, "add", 1), ("invoke", 0, "add", 2), ("ok", 0, "add", 2),
                    ("invoke", 1, "read", None), ("ok", 1, "read", [1])])
    assert signatures(results({"set": check_set}, lost), "lb", f_at(lost)) == [Signature("set", "lost", "add", "lb")]
    dup = history([("invoke", 0, "generate", None), ("ok", 0, "generate", 7),
                   ("invoke", 1, "generate", None), ("ok", 1, "generate", 7)])
    assert signatures(results({"unique-ids": check_unique_ids}, dup), "lb", f_at(dup)) == [
        Signature("unique-ids", "duplicated", "generate", "lb")]


def test_a_stale_fenced_write_is_fencing_stale_write() -> None:
    def lock(kind: str, p: int, f: str, owner: str, token: int | None = None) -> tuple[Any, ...]:
        value: dict[str, Any] = {"lock": "l", "owner": owner}
        if token is not None:
            value["token"] = token
        return (kind, p, f, value)

    h = history([lock("invoke", 0, "acquire", "a"), lock("ok", 0, "acquire", "a", 1),
                 lock("invoke", 1, "acquire", "b"), lock("ok", 1, "acquire", "b", 2),
                 ("invoke", 1, "write", {"key": "r", "value": 1, "token": 2}),
                 ("ok", 1, "write", {"key": "r", "value": 1, "token": 2}),
                 ("invoke", 0, "write", {"key": "r", "value": 2, "token": 1}),
                 ("ok", 0, "write", {"key": "r", "value": 2, "token": 1})])
    found = signatures(results({"lock": check_lock}, h), "raft", f_at(h))
    assert Signature("lock", "fencing:stale_write", "write", "raft") in found


def test_an_elle_cycle_is_its_anomaly() -> None:
    h = history([("invoke", 0, "txn", [["append", "x", 1], ["r", "y", None]]),
                 ("invoke", 1, "txn", [["append", "y", 1], ["r", "x", None]]),
                 ("ok", 0, "txn", [["append", "x", 1], ["r", "y", []]]),
                 ("ok", 1, "txn", [["append", "y", 1], ["r", "x", []]])])
    (sig,) = signatures(results({"elle": lambda h: check_list_append(h, consistency_model="serializable")}, h),
                        "raft", f_at(h))
    assert (sig.checker, sig.f) == ("elle", "txn") and "G2" in sig.anomaly


def test_an_unfamiliar_result_still_has_a_signature() -> None:
    r = {"valid": False, "mine": {"valid": False, "explanation": "it broke"}}
    assert signatures(r, "custom") == [Signature("mine", "invalid", "", "custom")]


def sighting(sigs: list[Signature], ops: int, faults: int, run: str, expected: bool = False) -> Sighting:
    return Sighting(sigs, {"run_dir": run}, ops, faults, expected)


STALE = Signature("linearizable", "nonlinearizable", "read", "raft")
DUP = Signature("applied-once", "duplicated", "read", "lb")
FAILED_READ = Signature("set", "failed_read", "", "lb")
LOST = Signature("set", "lost", "add", "lb")


def test_sightings_group_by_signature_simplest_first_unexpected_groups_first() -> None:
    groups = grouped([sighting([STALE], 300, 4, "a", True), sighting([DUP], 200, 2, "b"),
                      sighting([STALE], 120, 6, "c", True), sighting([STALE], 120, 2, "d", True),
                      sighting([DUP], 50, 9, "e")])
    assert [g.signature for g in groups] == [DUP, STALE]  # the unexpected bug first
    assert [s.ref["run_dir"] for s in groups[1].sightings] == ["d", "c", "a"]  # fewest ops, then fewest faults
    assert groups[0].simplest.ref["run_dir"] == "e" and groups[1].expected and not groups[0].expected


def test_signatures_seen_together_in_a_run_are_one_bug() -> None:
    """Unsafe retries show as a duplicated request, and in some runs also as an add said to have failed
    that was applied: one bug, one group, each run counted once; a bug never seen with them stays apart."""
    groups = grouped([sighting([DUP], 100, 2, "a"), sighting([FAILED_READ, DUP], 90, 2, "b"),
                      sighting([DUP], 80, 2, "c"), sighting([FAILED_READ], 70, 2, "d"), sighting([LOST], 60, 2, "e")])
    assert len(groups) == 2
    bug = next(g for g in groups if g.signature == DUP)
    assert bug.signatures == [(DUP, 3), (FAILED_READ, 2)]
    assert [s.ref["run_dir"] for s in bug.sightings] == ["d", "c", "b", "a"]
    assert [g.signature for g in groups if g is not bug] == [LOST]
