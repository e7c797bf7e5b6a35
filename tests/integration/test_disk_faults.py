"""Disk faults against the internal Raft store on local nodes: what its CRC-framed log does with damage.

Each run is short (3 nodes, a few seconds) and its faults are aimed by a hand-written schedule (offsets
and lengths in the fault's value), so what is damaged does not depend on how far the log has grown.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from tests.integration.helpers import needs_root, run

pytestmark = [pytest.mark.integration, needs_root, pytest.mark.timeout(240)]


def disk_run(tmp_path: Path, nemesis: tuple[str, ...], schedule: list[dict], bugs: tuple[str, ...] = (),
             time_limit: float = 8.0, seed: int = 16):
    from splitbrain.harness.test import TestOptions  # here, so pytest does not collect it

    test = TestOptions(target="raft", workload="register", nemesis=nemesis, nodes=3, time_limit=time_limit,
                       seed=seed, bugs=bugs, store=str(tmp_path / "runs"), schedule=schedule, rate=120,
                       concurrency=6, recovery_s=2.0)
    return run(test, console=False)


def history(outcome) -> list[dict]:
    return [json.loads(line) for line in outcome.run_dir.history_file.read_text().splitlines() if line.strip()]


def node_log(outcome, node: str) -> str:
    return "".join(p.read_text(errors="replace") for p in sorted((outcome.run_dir.path / "nodes" / node).glob("*.log")))


def nemesis_done(ops: list[dict], f: str) -> list[dict]:
    return [op for op in ops if op["process"] == "nemesis" and op["f"] == f and op["type"] == "info"]


def ok_ops_on(ops: list[dict], node: str, after_ns: int) -> int:
    return sum(1 for op in ops if op["type"] == "ok" and op.get("node") == node and op["time"] > after_ns)


def test_corruption_before_the_tail_keeps_the_node_out_and_the_cluster_linearizable(tmp_path):
    schedule = [{"at_s": 3.0, "f": "start-corrupt", "value": {"nodes": ["node2"], "mode": "zero", "offset": 40,
                                                               "length": 16, "seed": 1}},
                {"at_s": 6.0, "f": "stop-corrupt", "value": None}]
    outcome = disk_run(tmp_path, ("corrupt",), schedule)
    assert outcome.valid is True, outcome.results
    ops = history(outcome)
    (started,) = nemesis_done(ops, "start-corrupt")
    (fault,) = started["value"]["faults"]
    assert fault["node"] == "node2" and fault["offset"] == 40 and fault["length"] == 16
    assert fault["file"].endswith("/node2/wal")
    refused = re.search(r"cannot start: damaged log: (\S+): byte offset (\d+): (.*)", node_log(outcome, "node2"))
    assert refused, "node2 started on a damaged log"
    assert refused.group(1) == fault["file"] and int(refused.group(2)) <= 40
    (stopped,) = nemesis_done(ops, "stop-corrupt")
    assert stopped["value"]["restored"] and not stopped["value"]["kept"]
    assert ok_ops_on(ops, "node2", stopped["time"]) > 0, "node2 did not serve again once its log was restored"


def test_torn_tail_is_cut_and_the_node_rejoins(tmp_path):
    schedule = [{"at_s": 3.0, "f": "start-truncate", "value": {"nodes": ["node1"], "length": 3, "seed": 2}},
                {"at_s": 5.0, "f": "stop-truncate", "value": None}]
    outcome = disk_run(tmp_path, ("truncate",), schedule)
    assert outcome.valid is True, outcome.results
    ops = history(outcome)
    (started,) = nemesis_done(ops, "start-truncate")
    (fault,) = started["value"]["faults"]
    assert fault["node"] == "node1" and fault["length"] == 3 and fault["file"].endswith("/node1/wal")
    torn = re.search(r"truncating a torn tail of (\d+) bytes at byte offset (\d+)", node_log(outcome, "node1"))
    assert torn, "node1 did not cut its torn tail"
    assert int(torn.group(2)) < fault["offset"]  # the whole damaged record goes, not just the missing bytes
    assert ok_ops_on(ops, "node1", started["time"]) > 0, "node1 did not rejoin"


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
