"""Disk faults against the internal Raft store on local nodes: what its CRC-framed log does with damage.

Each run is short (3 nodes, a few seconds) and its faults are aimed by a hand-written schedule (offsets
and lengths in the fault's value), so what is damaged does not depend on how far the log has grown.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.integration.disk_checks import (
    CORRUPT_NODE2,
    TRUNCATE_NODE1,
    assert_corrupt_node2_kept_out_then_back,
    assert_torn_tail_of_node1_cut_and_rejoined,
    history,
    nemesis_done,
    node_log,
)
from tests.integration.helpers import needs_root, run

pytestmark = [pytest.mark.integration, needs_root, pytest.mark.timeout(240)]


def disk_run(tmp_path: Path, nemesis: tuple[str, ...], schedule: list[dict], bugs: tuple[str, ...] = (),
             time_limit: float = 8.0, seed: int = 16):
    from splitbrain.harness.test import TestOptions  # here, so pytest does not collect it

    test = TestOptions(target="raft", workload="register", nemesis=nemesis, nodes=3, time_limit=time_limit,
                       seed=seed, bugs=bugs, store=str(tmp_path / "runs"), schedule=schedule, rate=120,
                       concurrency=6, recovery_s=2.0)
    return run(test, console=False)


def test_corruption_before_the_tail_keeps_the_node_out_and_the_cluster_linearizable(tmp_path):
    assert_corrupt_node2_kept_out_then_back(disk_run(tmp_path, ("corrupt",), CORRUPT_NODE2))


def test_torn_tail_is_cut_and_the_node_rejoins(tmp_path):
    assert_torn_tail_of_node1_cut_and_rejoined(disk_run(tmp_path, ("truncate",), TRUNCATE_NODE1))


def test_corrupting_every_log_leaves_the_store_unavailable_not_wrong(tmp_path):
    schedule = [{"at_s": 3.0, "f": "start-corrupt", "value": {"nodes": ["node1", "node2", "node3"], "mode": "zero",
                                                               "offset": 1500, "length": 64, "seed": 3}},
                {"at_s": 5.0, "f": "stop-corrupt", "value": None}]
    outcome = disk_run(tmp_path, ("corrupt",), schedule)
    assert outcome.valid is True, outcome.results
    for node in ("node1", "node2", "node3"):
        assert "cannot start: damaged log" in node_log(outcome, node)


def test_bug_no_crc_is_caught_acknowledged_writes_lost(tmp_path):
    """The same fault with the log read unchecked: each node cuts its log at the damage, taking it for
    a torn tail, and the writes acknowledged after that point are gone on every node."""
    schedule = [{"at_s": 3.0, "f": "start-corrupt", "value": {"nodes": ["node1", "node2", "node3"], "mode": "zero",
                                                               "offset": 1500, "length": 64, "seed": 3}},
                {"at_s": 5.0, "f": "stop-corrupt", "value": None}]
    outcome = disk_run(tmp_path, ("corrupt",), schedule, bugs=("no-crc",))
    assert outcome.valid is False, outcome.results
    assert outcome.exit_code == 1
    assert "cannot start" not in node_log(outcome, "node1")


POWER_CUT_ALL = [{"at_s": 4.0, "f": "start-lose-unfsynced", "value": {"nodes": ["node1", "node2", "node3"]}},
                 {"at_s": 5.5, "f": "stop-lose-unfsynced", "value": None}]


def test_a_power_cut_of_every_node_loses_nothing_acknowledged_and_the_mounts_go(tmp_path):
    outcome = disk_run(tmp_path, ("lose-unfsynced",), POWER_CUT_ALL)
    assert outcome.valid is True, outcome.results
    (cut,) = nemesis_done(history(outcome), "start-lose-unfsynced")
    assert cut["value"]["nodes"] == ["node1", "node2", "node3"] and not cut.get("error")
    data = outcome.run_dir.path / "data"
    assert not any(os.path.ismount(p) for p in data.iterdir()), "a volatile file system was left mounted"


def test_bug_fsync_lies_is_caught_by_a_power_cut(tmp_path):
    outcome = disk_run(tmp_path, ("lose-unfsynced",), POWER_CUT_ALL, bugs=("fsync-lies",))
    assert outcome.valid is False, outcome.results
    (cut,) = nemesis_done(history(outcome), "start-lose-unfsynced")
    lost = cut["value"]["lost"]
    assert lost and all({"node", "file", "offset", "length"} <= set(w) for w in lost)
    assert any(w["file"].endswith("/wal") and w["length"] > 0 for w in lost)
