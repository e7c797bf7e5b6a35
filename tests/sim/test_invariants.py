"""The simulator's Raft invariant checks flag each kind of violation (and accept a healthy cluster)."""

from __future__ import annotations

import random

from splitbrain.targets.raft.core import Entry
from splitbrain.targets.raft.sim.invariants import Invariants
from splitbrain.targets.raft.sim.network import LinkConditions, Network


def e(term: int, index: int, value: object = None) -> Entry:
    return Entry(term, index, None if value is None else {"op": "put", "key": "k", "value": value})


def test_healthy_logs_pass():
    inv = Invariants()
    log = (e(1, 1), e(1, 2, "a"), e(2, 3))
    inv.check_logs(0, {"n1": log, "n2": log[:2], "n3": log}, {"n1": 3, "n2": 2, "n3": 2},
                   {"n1": 2, "n2": 2, "n3": 2}, ["n1"])
    inv.saw_leader(0, "n1", 2)
    inv.saw_leader(5, "n1", 2)
    assert inv.ok, inv.violations


def test_two_leaders_in_one_term():
    inv = Invariants()
    inv.saw_leader(0, "n1", 3)
    inv.saw_leader(1, "n2", 3)
    assert [v.invariant for v in inv.violations] == ["election safety"]


def test_logs_that_agree_on_a_term_but_differ_before_it():
    inv = Invariants()
    a = (e(1, 1, "x"), e(2, 2))
    b = (e(1, 1, "y"), e(2, 2))
    inv.check_logs(0, {"n1": a, "n2": b}, {"n1": 0, "n2": 0}, {"n1": 2, "n2": 2}, [])
    assert "log matching" in [v.invariant for v in inv.violations]


def test_a_committed_entry_that_changes_later():
    inv = Invariants()
    inv.check_logs(0, {"n1": (e(1, 1, "x"),)}, {"n1": 1}, {"n1": 1}, [])
    inv.check_logs(1, {"n1": (e(2, 1, "y"),)}, {"n1": 1}, {"n1": 2}, [])
    assert "committed entry changed" in [v.invariant for v in inv.violations]


def test_a_leader_of_a_later_term_without_a_committed_entry():
    inv = Invariants()
    inv.check_logs(0, {"n1": (e(1, 1, "x"),), "n2": ()}, {"n1": 1, "n2": 0}, {"n1": 1, "n2": 1}, [])
    inv.check_logs(1, {"n1": (e(1, 1, "x"),), "n2": ()}, {"n1": 1, "n2": 0}, {"n1": 1, "n2": 2}, ["n2"])
    assert [v.invariant for v in inv.violations] == ["committed entry lost"]


def test_a_deposed_leader_of_an_older_term_may_lack_newer_commits():
    inv = Invariants()
    log = (e(1, 1, "x"), e(3, 2, "y"))
    inv.check_logs(0, {"n1": log, "n2": log[:1]}, {"n1": 2, "n2": 1}, {"n1": 3, "n2": 1}, ["n2"])
    assert inv.ok, inv.violations


def test_two_nodes_applying_different_entries_at_one_index():
    inv = Invariants()
    inv.saw_applied(0, "n1", e(1, 1, "x"))
    inv.saw_applied(0, "n2", e(1, 1, "x"))
    assert inv.ok
    inv.saw_applied(0, "n3", e(2, 1, "y"))
    assert [v.invariant for v in inv.violations] == ["state machine safety"]


def test_network_partitions_drop_and_duplicate():
    net = Network(["n1", "n2", "n3"], random.Random(1))
    assert len(net.deliveries("n1", "n2")) == 1
    net.partition([["n1"]])
    assert net.deliveries("n1", "n2") == [] and net.deliveries("n2", "n1") == []
    assert len(net.deliveries("n2", "n3")) == 1
    assert net.components() == [["n1"], ["n2", "n3"]]
    net.heal()
    net.conditions = LinkConditions(drop=1.0)
    assert net.deliveries("n1", "n2") == []
    net.conditions = LinkConditions(duplicate=1.0, delay_min_ms=5, delay_max_ms=50)
    delays = net.deliveries("n1", "n2")
    assert len(delays) == 2 and all(5000 <= d <= 50000 for d in delays)


def test_an_uncommitted_suffix_that_contradicts_the_committed_log():
    inv = Invariants()
    inv.check_logs(0, {"n1": (e(1, 1, "x"), e(1, 2, "y"))}, {"n1": 2}, {"n1": 1}, [])
    inv.check_logs(1, {"n1": (e(1, 1, "x"), e(1, 2, "y")), "n2": (e(1, 1, "x"), e(1, 2, "z"))},
                   {"n1": 2, "n2": 1}, {"n1": 1, "n2": 1}, [])
    assert [v.invariant for v in inv.violations] == ["log matching"]
