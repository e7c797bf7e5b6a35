"""The lock-safety checker: mutual exclusion under real-time order, leases, fencing tokens.

Hand-written histories show each indeterminate case (the ones a checker that ignores ``info`` or trusts
the order of ok ops gets wrong); generated histories from a simulated lock service check that correct
executions pass, injected overlaps are found, and the verdict matches the linearizability checker with
the owner-aware mutex model.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from splitbrain.checkers.linearizable import check_linearizable
from splitbrain.checkers.lock import INF, Grant, LockChecker, check_lock, overlapping_pairs
from splitbrain.checkers.models import Mutex
from splitbrain.checkers.result import Checker
from splitbrain.histories.errors import HistoryFormatError
from splitbrain.histories.history import History, Operation
from splitbrain.histories.op import Op

MS = 1_000_000


def lock_history(events: list[tuple], *, lock: str = "l", ttl_ms: float | None = None,
                 times: list[int] | None = None) -> History:
    """Events ``(type, owner, f[, token])``; each owner is one client, whose process changes after info.

    The token goes into an ok acquire's completion and into a release's invocation and completion.
    ``times`` (ns per event) is optional: without it ops carry no time.
    """
    process: dict[str, int] = {}
    ops = []
    for i, (kind, owner, f, *rest) in enumerate(events):
        token = rest[0] if rest else None
        p = process.setdefault(owner, len(process))
        value: dict[str, Any] = {"lock": lock, "owner": owner}
        if f == "acquire" and ttl_ms is not None:
            value["ttl_ms"] = ttl_ms
        if token is not None and (f == "release" or kind == "ok"):
            value["token"] = token
        ops.append(Op(i, kind, p, f, value, time=times[i] if times else -1))
        if kind == "info":
            process[owner] = p + 100
    return History(ops)


def mutual_exclusion(result) -> dict[str, Any]:
    return result.details["mutual_exclusion"]


def overlapping_owners(result) -> list[tuple[Any, Any]]:
    return [(o["first"]["owner"], o["second"]["owner"]) for o in mutual_exclusion(result)["overlaps"]]


# -- mutual exclusion: hand-written cases ----------------------------------------------------------------

def test_sequential_handoff_is_valid():
    h = lock_history([
        ("invoke", "a", "acquire"), ("ok", "a", "acquire", 1),
        ("invoke", "a", "release", 1), ("ok", "a", "release", 1),
        ("invoke", "b", "acquire"), ("ok", "b", "acquire", 2),
        ("invoke", "b", "release", 2), ("ok", "b", "release", 2),
    ])
    r = check_lock(h)
    assert r.valid is True
    assert mutual_exclusion(r)["grants"] == 2
    assert r.explanation == ""


def test_grant_while_the_holder_had_not_started_releasing_is_reported_with_both_grants():
    h = lock_history([
        ("invoke", "a", "acquire"), ("ok", "a", "acquire", 1),
        ("invoke", "b", "acquire"), ("ok", "b", "acquire", 2),
        ("invoke", "a", "release", 1), ("ok", "a", "release", 1),
    ], times=[i * MS for i in range(6)])
    r = check_lock(h)
    assert r.valid is False
    me = mutual_exclusion(r)
    assert me["overlap_count"] == 1
    overlap = me["overlaps"][0]
    assert (overlap["first"]["owner"], overlap["second"]["owner"]) == ("a", "b")
    assert overlap["first"]["acquire"]["completion"]["index"] == 1
    assert overlap["first"]["release"]["invoke"]["index"] == 4
    assert overlap["second"]["acquire"]["completion"] == {"index": 3, "type": "ok", "time": 3 * MS, "process": 1}
    assert overlap["second"]["release"] is None
    assert "'a'" in r.explanation and "'b'" in r.explanation and "index 4" in r.explanation


def test_release_concurrent_with_the_next_acquire_may_have_come_first():
    # a's release completes after b's acquire, but it was invoked before b's acquire completed: the
    # release may have taken effect first. Trusting the order of the ok completions raises a false alarm.
    h = lock_history([
        ("invoke", "a", "acquire"), ("ok", "a", "acquire", 1),
        ("invoke", "a", "release", 1),
        ("invoke", "b", "acquire"), ("ok", "b", "acquire", 2),
        ("ok", "a", "release", 1),
    ])
    assert check_lock(h).valid is True


def test_acquires_that_both_completed_before_either_release_overlap():
    h = lock_history([
        ("invoke", "a", "acquire"), ("invoke", "b", "acquire"),
        ("ok", "b", "acquire", 2), ("ok", "a", "acquire", 1),
        ("invoke", "a", "release", 1), ("ok", "a", "release", 1),
        ("invoke", "b", "release", 2), ("ok", "b", "release", 2),
    ])
    r = check_lock(h)
    assert r.valid is False
    assert overlapping_owners(r) == [("b", "a")]


def test_info_release_may_have_released():
    # a's release timed out; it may have taken effect before b acquired. Ignoring info (a never let go)
    # would be a false alarm.
    h = lock_history([
        ("invoke", "a", "acquire"), ("ok", "a", "acquire", 1),
        ("invoke", "a", "release", 1), ("info", "a", "release", 1),
        ("invoke", "b", "acquire"), ("ok", "b", "acquire", 2),
    ])
    assert check_lock(h).valid is True


def test_info_release_does_not_excuse_a_grant_before_it_was_invoked():
    h = lock_history([
        ("invoke", "a", "acquire"), ("ok", "a", "acquire", 1),
        ("invoke", "b", "acquire"), ("ok", "b", "acquire", 2),
        ("invoke", "a", "release", 1), ("info", "a", "release", 1),
        ("invoke", "b", "release", 2), ("ok", "b", "release", 2),
    ])
    r = check_lock(h)
    assert r.valid is False
    assert overlapping_owners(r) == [("a", "b")]


def test_info_release_means_the_holder_may_still_hold():
    # a's release is indeterminate and b's grant comes after it, so b is fine; but c then acquires while
    # b certainly holds: the info release does not hide that.
    h = lock_history([
        ("invoke", "a", "acquire"), ("ok", "a", "acquire", 1),
        ("invoke", "a", "release", 1), ("info", "a", "release", 1),
        ("invoke", "b", "acquire"), ("ok", "b", "acquire", 2),
        ("invoke", "c", "acquire"), ("ok", "c", "acquire", 3),
    ])
    r = check_lock(h)
    assert r.valid is False
    assert overlapping_owners(r) == [("b", "c")]


def test_release_that_never_completed_is_indeterminate_like_info():
    h = lock_history([
        ("invoke", "a", "acquire"), ("ok", "a", "acquire", 1),
        ("invoke", "a", "release", 1),
        ("invoke", "b", "acquire"), ("ok", "b", "acquire", 2),
    ])
    assert check_lock(h).valid is True


def test_failed_release_did_not_release():
    h = lock_history([
        ("invoke", "a", "acquire"), ("ok", "a", "acquire", 1),
        ("invoke", "a", "release", 1), ("fail", "a", "release", 1),
        ("invoke", "b", "acquire"), ("ok", "b", "acquire", 2),
    ])
    r = check_lock(h)
    assert r.valid is False
    assert "never released" in r.explanation


def test_info_acquire_never_proves_a_violation():
    # a may have got the lock at any time after invoking, or never: "never" explains everything.
    h = lock_history([
        ("invoke", "a", "acquire"), ("info", "a", "acquire"),
        ("invoke", "b", "acquire"), ("ok", "b", "acquire", 2),
        ("invoke", "c", "acquire"), ("info", "c", "acquire"),
        ("invoke", "b", "release", 2), ("ok", "b", "release", 2),
    ])
    assert check_lock(h).valid is True
    assert mutual_exclusion(check_lock(h))["grants"] == 1


def test_failed_acquires_hold_nothing():
    h = lock_history([
        ("invoke", "a", "acquire"), ("ok", "a", "acquire", 1),
        ("invoke", "b", "acquire"), ("fail", "b", "acquire"),
        ("invoke", "a", "release", 1), ("ok", "a", "release", 1),
    ])
    assert check_lock(h).valid is True


def test_release_by_owner_and_token_not_by_process():
    # a's release of token 1 does not end a's later grant of token 3.
    h = lock_history([
        ("invoke", "a", "acquire"), ("ok", "a", "acquire", 1),
        ("invoke", "a", "release", 1), ("ok", "a", "release", 1),
        ("invoke", "a", "acquire"), ("ok", "a", "acquire", 3),
        ("invoke", "b", "acquire"), ("ok", "b", "acquire", 4),
    ])
    r = check_lock(h)
    assert r.valid is False
    assert [(o["first"]["token"], o["second"]["token"]) for o in mutual_exclusion(r)["overlaps"]] == [(3, 4)]


def test_the_same_grant_handed_out_again_is_one_hold():
    h = lock_history([
        ("invoke", "a", "acquire"), ("ok", "a", "acquire", 1),
        ("invoke", "a", "acquire"), ("ok", "a", "acquire", 1),
        ("invoke", "a", "release", 1), ("ok", "a", "release", 1),
        ("invoke", "b", "acquire"), ("ok", "b", "acquire", 2),
    ])
    assert check_lock(h).valid is True


def test_release_without_a_token_ends_the_owners_latest_grant():
    h = lock_history([
        ("invoke", "a", "acquire"), ("ok", "a", "acquire", 1),
        ("invoke", "a", "release"), ("ok", "a", "release"),
        ("invoke", "b", "acquire"), ("ok", "b", "acquire", 2),
    ])
    assert check_lock(h).valid is True


def test_lock_service_without_tokens_is_checked_by_owner():
    # no fencing tokens at all: grants and releases pair up by owner, in order
    h = lock_history([
        ("invoke", "a", "acquire"), ("ok", "a", "acquire"),
        ("invoke", "a", "release"), ("ok", "a", "release"),
        ("invoke", "a", "acquire"), ("ok", "a", "acquire"),
        ("invoke", "b", "acquire"), ("ok", "b", "acquire"),
        ("invoke", "a", "release"), ("ok", "a", "release"),
    ])
    r = check_lock(h)
    assert r.valid is False
    overlap = mutual_exclusion(r)["overlaps"][0]
    assert (overlap["first"]["acquire"]["invoke"]["index"], overlap["second"]["owner"]) == (4, "b")
    assert r.details["fencing"] == {"valid": True, "token_order_violations": 0, "stale_write_violations": 0,
                                    "fenced_writes": 0}


def test_ok_acquire_may_return_the_bare_token():
    v = {"lock": "l", "owner": "a"}
    ops = [Op(0, "invoke", 0, "acquire", v), Op(1, "ok", 0, "acquire", 7),
           Op(2, "invoke", 0, "release", {**v, "token": 7}), Op(3, "ok", 0, "release", {**v, "token": 7}),
           Op(4, "invoke", 1, "acquire", {"lock": "l", "owner": "b"}), Op(5, "ok", 1, "acquire", 8)]
    r = check_lock(History(ops))
    assert r.valid is True
    assert r.details["fencing"]["token_order_violations"] == 0


def test_same_owner_granted_twice_while_holding_is_reported():
    h = lock_history([
        ("invoke", "a", "acquire"), ("ok", "a", "acquire", 1),
        ("invoke", "a", "acquire"), ("ok", "a", "acquire", 2),
    ])
    r = check_lock(h)
    assert r.valid is False
    assert "granted the lock again while it still held it" in r.explanation


def test_locks_are_independent():
    ops = [
        Op(0, "invoke", 0, "acquire", {"lock": "x", "owner": "a"}),
        Op(1, "ok", 0, "acquire", {"lock": "x", "owner": "a", "token": 1}),
        Op(2, "invoke", 1, "acquire", {"lock": "y", "owner": "b"}),
        Op(3, "ok", 1, "acquire", {"lock": "y", "owner": "b", "token": 1}),
        Op(4, "invoke", 2, "acquire", {"lock": "y", "owner": "c"}),
        Op(5, "ok", 2, "acquire", {"lock": "y", "owner": "c", "token": 2}),
    ]
    r = check_lock(History(ops))
    assert r.valid is False
    assert [o["lock"] for o in mutual_exclusion(r)["overlaps"]] == ["y"]
    assert mutual_exclusion(r)["locks"] == 2


def test_every_overlapping_pair_is_counted():
    h = lock_history([("invoke", o, "acquire") for o in "abc"] + [("ok", o, "acquire", t) for t, o in enumerate("abc")])
    r = check_lock(h)
    assert mutual_exclusion(r)["overlap_count"] == 3


# -- leases ----------------------------------------------------------------------------------------------

LEASE_EVENTS = [
    ("invoke", "a", "acquire"), ("ok", "a", "acquire", 1),
    ("invoke", "b", "acquire"), ("ok", "b", "acquire", 2),
]


def test_expired_lease_no_longer_excludes_and_is_listed():
    h = lock_history(LEASE_EVENTS, ttl_ms=100, times=[0, 1 * MS, 150 * MS, 151 * MS])
    r = check_lock(h)
    assert r.valid is True
    me = mutual_exclusion(r)
    assert "lease-aware" in me["lease_assumption"]
    assert me["lease_excused_count_at_least"] == 1
    assert (me["lease_excused"][0]["first"]["owner"], me["lease_excused"][0]["second"]["owner"]) == ("a", "b")


def test_lease_ignored_when_not_lease_aware():
    h = lock_history(LEASE_EVENTS, ttl_ms=100, times=[0, 1 * MS, 150 * MS, 151 * MS])
    r = check_lock(h, lease_aware=False)
    assert r.valid is False
    assert "ignored" in mutual_exclusion(r)["lease_assumption"]


def test_grant_before_the_lease_can_have_run_out_is_a_violation():
    # the lease counts from the acquire's invocation at the earliest: 0 + 100 ms > 60 ms
    h = lock_history(LEASE_EVENTS, ttl_ms=100, times=[0, 50 * MS, 55 * MS, 60 * MS])
    r = check_lock(h)
    assert r.valid is False
    assert "lease (100 ms from its acquire's invocation at index 0 (t=0.000000s)) cannot have run out" in r.explanation


def test_lease_counts_from_the_invocation_not_the_completion():
    # invoked at 0, granted by 90 ms; b's grant at 120 ms may be after a's lease ran out (0 + 100 ms)
    h = lock_history(LEASE_EVENTS, ttl_ms=100, times=[0, 90 * MS, 110 * MS, 120 * MS])
    assert check_lock(h).valid is True


def test_lease_without_times_is_unknown():
    h = lock_history(LEASE_EVENTS, ttl_ms=100)
    r = check_lock(h)
    assert r.valid == "unknown"
    assert "no times" in r.explanation
    assert check_lock(h, lease_aware=False).valid is False


def test_no_lease_without_times_is_still_decided():
    assert check_lock(lock_history(LEASE_EVENTS)).valid is False


# -- fencing ---------------------------------------------------------------------------------------------

def test_token_must_grow_across_grants_in_real_time():
    h = lock_history([
        ("invoke", "a", "acquire"), ("ok", "a", "acquire", 5),
        ("invoke", "a", "release", 5), ("ok", "a", "release", 5),
        ("invoke", "b", "acquire"), ("ok", "b", "acquire", 3),
    ])
    r = check_lock(h)
    assert r.valid is False
    assert mutual_exclusion(r)["valid"] is True
    fencing = r.details["fencing"]
    assert fencing["token_order_violations"] == 1
    assert fencing["token_order"]["earlier_token"] == 5 and fencing["token_order"]["later_token"] == 3
    assert fencing["token_order"]["later"]["index"] == 5


def test_concurrent_grants_may_have_any_token_order():
    h = lock_history([
        ("invoke", "a", "acquire"), ("invoke", "b", "acquire"),
        ("ok", "b", "acquire", 2), ("invoke", "b", "release", 2),
        ("ok", "a", "acquire", 1), ("ok", "b", "release", 2),
    ])
    # b's grant (2) completed before a's acquire returned, but a was invoked first: a's token 1 may be older
    assert check_lock(h).details["fencing"]["token_order_violations"] == 0


def write(index: int, kind: str, process: int, token: int, key: str = "r") -> Op:
    return Op(index, kind, process, "write", {"key": key, "value": index, "token": token})


def test_resource_must_not_accept_an_older_token_after_a_newer_one():
    ops = [write(0, "invoke", 0, 2), write(1, "ok", 0, 2), write(2, "invoke", 1, 1), write(3, "ok", 1, 1),
           write(4, "invoke", 1, 1), write(5, "ok", 1, 1)]
    r = check_lock(History(ops))
    assert r.valid is False
    fencing = r.details["fencing"]
    assert fencing["stale_write_violations"] == 2
    assert fencing["stale_write"]["stale"]["index"] == 3
    assert fencing["stale_write"]["accepted_token"] == 2
    assert "token 1" in r.explanation


def test_resource_may_accept_equal_tokens_concurrent_writes_and_failed_stale_writes():
    ops = [write(0, "invoke", 0, 2), write(1, "invoke", 1, 1), write(2, "ok", 0, 2), write(3, "ok", 1, 1),
           write(4, "invoke", 0, 2), write(5, "ok", 0, 2), write(6, "invoke", 1, 1), write(7, "fail", 1, 1),
           write(8, "invoke", 1, 1, key="other"), write(9, "ok", 1, 1, key="other")]
    r = check_lock(History(ops))
    assert r.valid is True
    assert r.details["fencing"]["fenced_writes"] == 4


# -- bad input and the Checker protocol ------------------------------------------------------------------

def test_acquire_without_owner_is_a_one_line_error_with_file_and_line():
    ops = [Op(0, "invoke", 0, "acquire", {"lock": "l", "owner": "a"}), Op(1, "ok", 0, "acquire", {"token": 1}),
           Op(2, "invoke", 1, "acquire", {"lock": "l"})]
    h = History(ops, source="locks.jsonl", lines=[1, 2, 3])
    with pytest.raises(HistoryFormatError) as e:
        check_lock(h)
    assert str(e.value).startswith("locks.jsonl:3: ")
    assert "owner" in str(e.value) and "\n" not in str(e.value)


def test_non_numeric_token_is_an_error():
    ops = [Op(0, "invoke", 0, "acquire", {"lock": "l", "owner": "a"}),
           Op(1, "ok", 0, "acquire", {"lock": "l", "owner": "a", "token": "seven"})]
    with pytest.raises(HistoryFormatError, match="token"):
        check_lock(History(ops, source="h", lines=[1, 2]))


def test_lock_checker_follows_the_checker_protocol():
    h = lock_history(LEASE_EVENTS, ttl_ms=100, times=[0, 1 * MS, 150 * MS, 151 * MS])
    checker = LockChecker()
    assert isinstance(checker, Checker)
    assert checker.check(None, h, {}).valid is True
    assert checker.check(None, h, {"lease_aware": False}).valid is False
    assert LockChecker(lease_aware=False).check(None, h, {}).valid is False


# -- generated histories ---------------------------------------------------------------------------------

@dataclass
class Client:
    owner: str
    process: int
    phase: str = "idle"  # idle | acquiring | releasing | done
    applied: bool = False  # the current op's effect happened (or was decided) already
    outcome: Any = None  # ("ok", token) | ("fail", None)
    token: int | None = None  # the grant it knows it holds


@dataclass
class LockService:
    """A lock service; ``bug`` is the probability of granting a held lock anyway."""

    bug: float = 0.0
    ttl_ns: int | None = None
    holders: dict[str, tuple[int, int]] = field(default_factory=dict)  # owner -> (token, lease deadline)
    next_token: int = 1

    def live_holders(self, now: int) -> dict[str, tuple[int, int]]:
        return {o: h for o, h in self.holders.items() if self.ttl_ns is None or h[1] > now}

    def acquire(self, owner: str, now: int, rng: random.Random) -> tuple[str, int | None]:
        if owner in self.live_holders(now) or (self.live_holders(now) and rng.random() >= self.bug):
            return "fail", None
        token, self.next_token = self.next_token, self.next_token + 1
        deadline = now + self.ttl_ns if self.ttl_ns is not None else 0
        self.holders = {**self.live_holders(now), owner: (token, deadline)}
        return "ok", token

    def release(self, owner: str, token: int, now: int) -> str:
        held = self.live_holders(now).get(owner)
        if held is None or held[0] != token:
            return "fail"
        del self.holders[owner]
        return "ok"


def simulated_lock_history(rng: random.Random, *, owners: int = 3, steps: int = 24, bug: float = 0.0,
                           ttl_ms: int | None = None, info: float = 0.15) -> History:
    """Clients run acquire/release against ``LockService``; each op takes effect at one moment between its
    invocation and completion (or, when it times out, at a moment after it, or never). One step = 1 ms."""
    service = LockService(bug, ttl_ns=ttl_ms * MS if ttl_ms is not None else None)
    clients = [Client(f"o{i}", i) for i in range(owners)]
    late_effects: list[Any] = []  # effects of timed-out ops still to happen (or not)
    ops: list[Op] = []

    def emit(kind: str, c: Client, f: str, value: dict[str, Any]) -> None:
        ops.append(Op(len(ops), kind, c.process, f, {"lock": "l", "owner": c.owner, **value}, time=len(ops) * MS))

    def extra(f: str) -> dict[str, Any]:
        return {"ttl_ms": ttl_ms} if f == "acquire" and ttl_ms is not None else {}

    for _ in range(steps):
        now = len(ops) * MS
        if late_effects and rng.random() < 0.2:
            late_effects.pop(rng.randrange(len(late_effects)))(now)
            continue
        c = rng.choice(clients)
        if c.phase == "idle":
            if c.token is None:
                c.phase, c.applied = "acquiring", False
                emit("invoke", c, "acquire", extra("acquire"))
            else:
                c.phase, c.applied = "releasing", False
                emit("invoke", c, "release", {"token": c.token})
        elif c.phase in ("acquiring", "releasing") and not c.applied and rng.random() < 0.5:
            if c.phase == "acquiring":
                c.outcome = service.acquire(c.owner, now, rng)
            else:
                c.outcome = (service.release(c.owner, c.token, now), c.token)  # type: ignore[arg-type]
            c.applied = True
        elif c.phase in ("acquiring", "releasing"):
            f = "acquire" if c.phase == "acquiring" else "release"
            if rng.random() < info:
                if not c.applied and rng.random() < 0.5:
                    owner, token = c.owner, c.token
                    late_effects.append(
                        (lambda t, o=owner: service.acquire(o, t, rng)) if f == "acquire"
                        else (lambda t, o=owner, k=token: service.release(o, k, t)))
                emit("info", c, f, {"token": c.token} if f == "release" else extra(f))
                c.process += owners * 10  # a new process for the same client
                c.phase = "idle"
                if f == "release":
                    c.token = None  # it gives up on that grant; its effect is unknown
                continue
            if not c.applied:
                c.outcome = (service.acquire(c.owner, now, rng) if f == "acquire"
                             else (service.release(c.owner, c.token, now), c.token))  # type: ignore[arg-type]
            kind, token = c.outcome
            if f == "acquire":
                emit(kind, c, f, {"token": token, **extra(f)} if kind == "ok" else extra(f))
                c.token = token if kind == "ok" else None
            else:
                emit(kind, c, f, {"token": token})
                c.token = None
            c.phase = "idle"
    return History(ops)


def with_intruder(history: History, after_index: int) -> History:
    """Insert an acquire by a new owner, granted right after op ``after_index``."""
    ops = list(history)
    at = next(i for i, op in enumerate(ops) if op.index == after_index) + 1
    value = {"lock": "l", "owner": "intruder"}
    ops[at:at] = [Op(0, "invoke", 999, "acquire", value), Op(0, "ok", 999, "acquire", {**value, "token": 10**6})]
    return History(op.with_(index=i, time=i * MS) for i, op in enumerate(ops))


@settings(max_examples=100, deadline=None, derandomize=True)
@given(st.randoms(use_true_random=False), st.sampled_from([None, 3, 8]))
def test_correct_lock_service_histories_are_valid(rng, ttl_ms):
    h = simulated_lock_history(rng, ttl_ms=ttl_ms)
    r = check_lock(h)
    assert r.valid is True, r.explanation


@settings(max_examples=100, deadline=None, derandomize=True)
@given(st.randoms(use_true_random=False))
def test_injected_overlap_is_found(rng):
    h = simulated_lock_history(rng, steps=30)
    held = [o for o in h.operations() if o.f == "acquire" and o.type == "ok"]
    if not held:
        return
    grant = rng.choice(held)
    r = check_lock(with_intruder(h, grant.completion.index))
    assert r.valid is False
    assert any(o["second"]["owner"] == "intruder" or o["first"]["owner"] == "intruder"
               for o in mutual_exclusion(r)["overlaps"])


@settings(max_examples=150, deadline=None, derandomize=True)
@given(st.randoms(use_true_random=False), st.sampled_from([0.0, 0.3, 0.7]))
def test_verdict_matches_linearizability_with_the_owner_mutex_model(rng, bug):
    # Without leases, mutual exclusion under real time is linearizability of an owner-aware mutex (for
    # clients that run one op at a time and release with their own token). With leases it is not: a
    # mutex model has no clock, so lease expiry is left out of this comparison.
    h = simulated_lock_history(rng, owners=3, steps=22, bug=bug)
    mine = check_lock(h, lease_aware=False).details["mutual_exclusion"]["valid"]
    theirs = check_linearizable(h, Mutex(), time_limit=10).valid
    assert mine == theirs, h.operations()


def test_leases_are_where_mutual_exclusion_and_mutex_linearizability_part():
    # b got the lock after a's lease ran out while a never released: safe for a lease lock, but a mutex
    # model has no clock, so it cannot be linearized (and lease_aware=False agrees with the model).
    h = lock_history(LEASE_EVENTS, ttl_ms=100, times=[0, 1 * MS, 150 * MS, 151 * MS])
    assert check_lock(h).valid is True
    assert check_lock(h, lease_aware=False).valid is False
    assert check_linearizable(h, Mutex()).valid is False


def fenced_resource_history(rng: random.Random, clients: int = 3, steps: int = 30) -> History:
    """Clients write with random tokens; a correct fenced resource accepts a write (ok) at one moment
    between its invocation and completion iff its token is not below the highest accepted so far."""
    highest = 0
    ops: list[Op] = []
    pending: dict[int, list[Any]] = {}  # process -> [token, outcome or None]
    for _ in range(steps):
        p = rng.randrange(clients)
        if p not in pending:
            token = rng.randint(1, 6)
            pending[p] = [token, None]
            ops.append(write(len(ops), "invoke", p, token))
        elif pending[p][1] is None and rng.random() < 0.5:
            token = pending[p][0]
            pending[p][1] = "ok" if token >= highest else "fail"
            highest = max(highest, token) if pending[p][1] == "ok" else highest
        else:
            token, outcome = pending.pop(p)
            if outcome is None:
                outcome = "ok" if token >= highest else "fail"
                highest = max(highest, token) if outcome == "ok" else highest
            ops.append(write(len(ops), outcome, p, token))
    return History(ops)


@settings(max_examples=100, deadline=None, derandomize=True)
@given(st.randoms(use_true_random=False))
def test_correct_fenced_resource_is_valid_and_an_injected_stale_write_is_found(rng):
    h = fenced_resource_history(rng)
    r = check_lock(h)
    assert r.valid is True, r.explanation
    accepted = [op.invoke.value["token"] for op in h.operations() if op.type == "ok"]
    if not accepted or max(accepted) == 1:
        return
    n = len(h)
    stale = max(accepted) - 1
    broken = History([*h, write(n, "invoke", 99, stale), write(n + 1, "ok", 99, stale)])
    r = check_lock(broken)
    assert r.valid is False
    assert r.details["fencing"]["stale_write"]["stale"]["index"] == n + 1


# -- exactness of the pairwise test on arbitrary windows (incl. holds with no certain part) --------------

def abstract_grant(n: int, acquire: tuple[int, int], release: tuple[int, int | None] | None) -> Grant:
    value = {"lock": "l", "owner": n}
    acq = Operation(Op(acquire[0], "invoke", n, "acquire", value), Op(acquire[1], "ok", n, "acquire", value))
    rel = None
    if release is not None:
        done = Op(release[1], "ok", n, "release", value) if release[1] is not None else None
        rel = Operation(Op(release[0], "invoke", n, "release", value), done)
    return Grant("l", n, n, acq, rel, rel if rel is not None and rel.completion is not None else None, None)


def placeable_without_overlap(grants: list[Grant]) -> bool:
    """Brute force: some order of the grants in which each hold, placed as early as possible, fits."""
    for order in itertools.permutations(grants):
        t = -INF
        for g in order:
            start = max(t, g.acquire.call)
            if start >= g.acquire.ret:
                break
            if g.first_release is None:  # holds to the end: only the last grant can
                if g is not order[-1]:
                    break
                continue
            end = max(start, g.first_release.call)
            if g.ok_release is not None and end >= g.ok_release.ret:
                break
            t = end
        else:
            return True
    return False


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.randoms(use_true_random=False), st.integers(2, 4))
def test_pairwise_test_is_exact_for_any_windows(rng, n):
    positions = rng.sample(range(4 * n), 4 * n)
    grants = []
    for g in range(n):
        mine = positions[4 * g: 4 * g + 4]
        call, rest = min(mine), [p for p in mine if p != min(mine)]
        ret = rest.pop(rng.randrange(3))
        kind = rng.choice(["ok", "ok", "info", "none"])
        release = None if kind == "none" else (min(rest), max(rest) if kind == "ok" else None)
        grants.append(abstract_grant(g, (call, ret), release))
    _, count = overlapping_pairs(grants, [g.earliest_end for g in grants])
    assert (count == 0) == placeable_without_overlap(grants)
