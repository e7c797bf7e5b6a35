"""etcd and ZooKeeper on local nodes under ``corrupt``: what each does with 64 zeroed bytes at offset
300 of one node's log, as the README's table of what splitbrain catches records it. etcd refuses to
start (its WAL records carry CRCs); ZooKeeper takes the damage for a torn tail, drops it and every later
transaction, starts and catches up from the leader. Both stay valid: two intact nodes are a majority."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.integration.disk_checks import history, nemesis_done, node_log
from tests.integration.helpers import run

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240),
              pytest.mark.skipif(os.geteuid() != 0, reason="local nodes need root (network namespaces)")]
needs_etcd = pytest.mark.skipif(shutil.which("etcd") is None, reason="etcd is not installed (.ci/setup)")
needs_zookeeper = pytest.mark.skipif(
    shutil.which("java") is None or not Path("/usr/share/java/zookeeper.jar").exists(),
    reason="needs ZooKeeper and a JRE (apt-get install zookeeper default-jre-headless)")

# node2's log, damaged with its process down and restarted on it; the bytes put back at 6 s.
CORRUPT_NODE2_LOG = [{"at_s": 3.0, "f": "start-corrupt", "value": {"nodes": ["node2"], "mode": "zero", "files": "log",
                                                                    "offset": 300, "length": 64, "seed": 1}},
                     {"at_s": 6.0, "f": "stop-corrupt", "value": None}]


def corrupt_run(tmp_path: Path, target: str):
    from splitbrain.harness.test import TestOptions  # here, so pytest does not collect it

    test = TestOptions(target=target, workload="register", nemesis=("corrupt",), nodes=3, time_limit=8.0, seed=16,
                       store=str(tmp_path / "runs"), schedule=CORRUPT_NODE2_LOG, rate=100, concurrency=8,
                       recovery_s=2.0)
    return run(test, console=False)


def the_fault(outcome) -> dict:
    (started,) = nemesis_done(history(outcome), "start-corrupt")
    assert not started.get("error"), started
    (fault,) = started["value"]["faults"]
    assert fault["node"] == "node2" and fault["offset"] == 300 and fault["length"] == 64
    return fault


@needs_etcd
def test_etcd_refuses_to_start_on_a_corrupted_wal_and_the_cluster_stays_valid(tmp_path):
    outcome = corrupt_run(tmp_path, "etcd")
    assert outcome.valid is True, outcome.results
    assert the_fault(outcome)["file"].endswith(".wal")
    assert "walpb: crc mismatch" in node_log(outcome, "node2"), "etcd started on a corrupted WAL"


@needs_zookeeper
def test_zookeeper_drops_a_corrupted_log_tail_as_partial_and_catches_up(tmp_path):
    outcome = corrupt_run(tmp_path, "zookeeper")
    assert outcome.valid is True, outcome.results
    assert "/version-2/log." in the_fault(outcome)["file"]
    assert "Last transaction was partial" in node_log(outcome, "node2"), "ZooKeeper did not take the damage for a torn tail"
