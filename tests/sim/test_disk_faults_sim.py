"""The simulator's disk faults: damaged log entries and power cuts, against the store with and without
the bugs of its log (no-crc, fsync-lies)."""

from __future__ import annotations

import pytest
from splitbrain.targets.raft.sim.check import check_sim
from splitbrain.targets.raft.sim.faults import Step, parse_faults
from splitbrain.targets.raft.sim.simulate import simulate
from splitbrain.targets.raft.sim.workload import Workload

WORKLOAD = Workload(concurrency=3, lock_clients=1)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("faults", [("corrupt",), ("power", "crash")])
def test_the_correct_store_stays_valid_under_damage_and_power_cuts(faults):
    for seed in (0, 1):
        result = simulate(seed, nodes=5, ops=800, faults=faults)
        assert not result.violations, result.violations[:3]
        assert check_sim(result).valid is True
        assert {op.f for op in result.history.nemesis_ops()} & set(faults)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("bug, faults", [("no-crc", ("corrupt",)), ("fsync-lies", ("power",))])
def test_each_bug_of_the_log_is_caught_by_its_disk_fault(bug, faults):
    result = simulate(0, nodes=5, ops=800, faults=faults, bug=bug)
    assert check_sim(result).valid is False


@pytest.mark.timeout(120)
def test_fsync_lies_survives_crashes_only_a_power_cut_shows_it():
    result = simulate(0, nodes=5, ops=800, faults=("crash",), bug="fsync-lies")
    assert not result.violations and check_sim(result).valid is True


CORRUPT_ALL = [Step("wait", (), 300), Step("corrupt", ("all", 0.2), 300), Step("repair", ("all",), 400)]


@pytest.mark.timeout(60)
def test_a_damaged_log_is_refused_until_repaired_and_no_crc_cuts_it():
    clean = simulate(0, nodes=3, ops=10**9, schedule=CORRUPT_ALL, workload=WORKLOAD)
    damaged = next(op for op in clean.history.nemesis_ops() if op.f == "corrupt")
    assert damaged.value["refused"] == ["n1", "n2", "n3"]
    assert not clean.violations and check_sim(clean).valid is True
    broken = simulate(0, nodes=3, ops=10**9, schedule=CORRUPT_ALL, workload=WORKLOAD, bug="no-crc")
    assert next(op for op in broken.history.nemesis_ops() if op.f == "corrupt").value["refused"] == []
    assert broken.violations or check_sim(broken).valid is False


def test_disk_faults_are_named_not_part_of_all():
    assert parse_faults("corrupt,power") == {"corrupt", "power"}
    assert not parse_faults("all") & {"corrupt", "power"}
