"""The replicated state machine: kv semantics, leased locks with fencing tokens, the fenced resource."""

from __future__ import annotations

import pytest
from splitbrain.targets.raft.core import Entry, StateMachine


class Log:
    """Feeds commands as consecutive entries; ``term`` and ``now`` are what the leader would stamp."""

    def __init__(self, bugs: frozenset[str] = frozenset()) -> None:
        self.sm = StateMachine(bugs)
        self.index = 0
        self.term = 1
        self.now = 1000

    def run(self, op: str, **args: object):
        self.index += 1
        return self.sm.apply(Entry(self.term, self.index, {"op": op, "now_ms": self.now, **args}))


def test_put_get_and_missing_keys():
    log = Log()
    assert log.run("get", key="k").value is None
    assert log.run("put", key="k", value=3).ok
    assert log.run("get", key="k").value == 3
    assert log.sm.read("k") == 3 and log.sm.read("other") is None


def test_cas_swaps_only_on_a_match_and_fails_definitely_otherwise():
    log = Log()
    log.run("put", key="k", value=1)
    miss = log.run("cas", key="k", old=2, new=3)
    assert (miss.ok, miss.error) == (False, "cas-mismatch") and log.sm.read("k") == 1
    hit = log.run("cas", key="k", old=1, new=3)
    assert hit.ok and hit.value == [1, 3] and log.sm.read("k") == 3
    assert log.run("cas", key="new", old=None, new=7).ok  # missing behaves as null


def test_append_matches_the_kv_model():
    log = Log()
    log.run("append", key="l", value=1)
    log.run("append", key="l", value=2)
    assert log.sm.read("l") == [1, 2]
    log.run("append", key="s", value="a")
    log.run("append", key="s", value="b")
    assert log.sm.read("s") == "ab"
    log.run("put", key="n", value=5)
    assert log.run("append", key="n", value=1).error == "not-appendable"


def test_reads_do_not_alias_the_stored_value():
    log = Log()
    log.run("put", key="k", value=[1])
    log.sm.read("k").append(99)
    assert log.sm.read("k") == [1]


def test_a_lock_grants_once_and_its_token_is_the_raft_index():
    log = Log()
    a = log.run("acquire", lock="L", owner="a", ttl_ms=100)
    assert a.ok and a.value == {"lock": "L", "owner": "a", "ttl_ms": 100, "token": log.index}
    b = log.run("acquire", lock="L", owner="b", ttl_ms=100)
    assert (b.ok, b.error) == (False, "lock-held")
    again = log.run("acquire", lock="L", owner="a", ttl_ms=100)
    assert not again.ok


def test_release_needs_the_holder_and_its_token():
    log = Log()
    token = log.run("acquire", lock="L", owner="a", ttl_ms=100).value["token"]
    assert log.run("release", lock="L", owner="b", token=token).error == "not-holder"
    assert log.run("release", lock="L", owner="a", token=token + 1).error == "not-holder"
    assert log.run("release", lock="L", owner="a", token=token).ok
    assert log.run("acquire", lock="L", owner="b", ttl_ms=100).ok


def test_tokens_strictly_increase_across_grants():
    log = Log()
    tokens = []
    for owner in "abcab":
        tokens.append(log.run("acquire", lock="L", owner=owner, ttl_ms=10).value["token"])
        log.run("put", key="noise", value=owner)
        log.now += 10  # the lease runs out
    assert tokens == sorted(set(tokens))


def test_a_lease_expires_by_the_time_stamped_in_commands():
    log = Log()
    log.run("acquire", lock="L", owner="a", ttl_ms=100)
    log.now += 99
    assert not log.run("acquire", lock="L", owner="b", ttl_ms=100).ok
    log.now += 1
    assert log.run("acquire", lock="L", owner="b", ttl_ms=100).ok


def test_an_expired_holder_cannot_release_the_next_holders_lock():
    log = Log()
    t1 = log.run("acquire", lock="L", owner="a", ttl_ms=100).value["token"]
    log.now += 200
    assert log.run("release", lock="L", owner="a", token=t1).error == "not-holder"


def test_a_lease_from_an_earlier_term_runs_its_full_ttl_again_in_the_new_term():
    log = Log()
    log.run("acquire", lock="L", owner="a", ttl_ms=100)
    # A new leader whose monotonic clock reads far ahead of the old one's: its stamps are not comparable.
    log.term, log.now = 2, 10**9
    assert not log.run("acquire", lock="L", owner="b", ttl_ms=100).ok
    log.now += 100
    assert log.run("acquire", lock="L", owner="b", ttl_ms=100).ok


def test_a_leader_clock_behind_the_last_one_cannot_extend_a_lease_forever():
    log = Log()
    log.run("acquire", lock="L", owner="a", ttl_ms=100)
    log.term, log.now = 2, 5  # the new leader's clock is way behind
    log.run("put", key="k", value=1)
    log.now = 105
    assert log.run("acquire", lock="L", owner="b", ttl_ms=100).ok


def test_fenced_writes_reject_a_token_older_than_the_newest_accepted():
    log = Log()
    assert log.run("write", key="res", value="x", token=5).ok
    assert log.run("write", key="res", value="y", token=5).ok  # the same holder writes again
    stale = log.run("write", key="res", value="z", token=4)
    assert (stale.ok, stale.error) == (False, "stale-token")
    assert log.run("write", key="other", value="z", token=1).ok  # tokens are per resource key


def test_no_fencing_bug_accepts_stale_tokens():
    log = Log(frozenset({"no-fencing"}))
    log.run("write", key="res", value="x", token=5)
    assert log.run("write", key="res", value="z", token=4).ok


def test_noop_and_unknown_or_malformed_commands_are_deterministic_failures():
    sm = StateMachine()
    assert sm.apply(Entry(1, 1, None)).ok
    assert sm.apply(Entry(1, 2, {"op": "explode"})).error.startswith("unknown-command")
    assert sm.apply(Entry(1, 3, {"op": "put"})).error.startswith("malformed-command")


def test_entries_must_be_applied_in_order():
    sm = StateMachine()
    with pytest.raises(ValueError, match="in order"):
        sm.apply(Entry(1, 2, None))


def test_replicas_applying_the_same_entries_reach_the_same_state():
    entries = [Entry(1, 1, None)]
    commands = [("put", {"key": "k", "value": 1}), ("acquire", {"lock": "L", "owner": "a", "ttl_ms": 50}),
                ("cas", {"key": "k", "old": 1, "new": 2}), ("write", {"key": "r", "value": 1, "token": 3}),
                ("append", {"key": "l", "value": "x"}), ("release", {"lock": "L", "owner": "a", "token": 3})]
    for i, (op, args) in enumerate(commands, start=2):
        entries.append(Entry(1, i, {"op": op, "now_ms": 10 * i, **args}))
    a, b = StateMachine(), StateMachine()
    results_a = [a.apply(e) for e in entries]
    results_b = [b.apply(e) for e in entries]
    assert results_a == results_b and a.snapshot() == b.snapshot()
    assert all(r.ok for r in results_a)
