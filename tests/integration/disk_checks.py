"""What a disk-faulted run of the Raft store must show, the same on every remote (local, Docker, SSH
nodes): the hand-aimed schedules and the checks of their runs, shared by the test_disk_faults*.py files."""

from __future__ import annotations

import json
import re

# node2's log zeroed at offset 40 (before the tail) from 3 s, restored at 6 s.
CORRUPT_NODE2 = [{"at_s": 3.0, "f": "start-corrupt", "value": {"nodes": ["node2"], "mode": "zero", "offset": 40,
                                                                "length": 16, "seed": 1}},
                 {"at_s": 6.0, "f": "stop-corrupt", "value": None}]
# 3 bytes cut off node1's log at 3 s (a torn write), node1 started again at 5 s.
TRUNCATE_NODE1 = [{"at_s": 3.0, "f": "start-truncate", "value": {"nodes": ["node1"], "length": 3, "seed": 2}},
                  {"at_s": 5.0, "f": "stop-truncate", "value": None}]


def history(outcome) -> list[dict]:
    return [json.loads(line) for line in outcome.run_dir.history_file.read_text().splitlines() if line.strip()]


def node_log(outcome, node: str) -> str:
    return "".join(p.read_text(errors="replace") for p in sorted((outcome.run_dir.path / "nodes" / node).glob("*.log")))


def nemesis_done(ops: list[dict], f: str) -> list[dict]:
    return [op for op in ops if op["process"] == "nemesis" and op["f"] == f and op["type"] == "info"]


def ok_ops_on(ops: list[dict], node: str, after_ns: int) -> int:
    return sum(1 for op in ops if op["type"] == "ok" and op.get("node") == node and op["time"] > after_ns)


def assert_corrupt_node2_kept_out_then_back(outcome) -> None:
    """CORRUPT_NODE2's run: valid; node2 refused to start naming the file and an offset at or before the
    damage; the bytes were put back and node2 served again."""
    assert outcome.valid is True, outcome.results
    ops = history(outcome)
    (started,) = nemesis_done(ops, "start-corrupt")
    assert not started.get("error"), started
    (fault,) = started["value"]["faults"]
    assert fault["node"] == "node2" and fault["offset"] == 40 and fault["length"] == 16
    assert fault["file"].endswith("/node2/wal")
    refused = re.search(r"cannot start: damaged log: (\S+): byte offset (\d+): (.*)", node_log(outcome, "node2"))
    assert refused, "node2 started on a damaged log"
    assert refused.group(1) == fault["file"] and int(refused.group(2)) <= 40
    (stopped,) = nemesis_done(ops, "stop-corrupt")
    assert stopped["value"]["restored"] and not stopped["value"]["kept"]
    assert ok_ops_on(ops, "node2", stopped["time"]) > 0, "node2 did not serve again once its log was restored"


def assert_torn_tail_of_node1_cut_and_rejoined(outcome) -> None:
    """TRUNCATE_NODE1's run: valid; node1 cut the whole torn record (not just the missing bytes) and
    served again."""
    assert outcome.valid is True, outcome.results
    ops = history(outcome)
    (started,) = nemesis_done(ops, "start-truncate")
    assert not started.get("error"), started
    (fault,) = started["value"]["faults"]
    assert fault["node"] == "node1" and fault["length"] == 3 and fault["file"].endswith("/node1/wal")
    torn = re.search(r"truncating a torn tail of (\d+) bytes at byte offset (\d+)", node_log(outcome, "node1"))
    assert torn, "node1 did not cut its torn tail"
    assert int(torn.group(2)) < fault["offset"]
    assert ok_ops_on(ops, "node1", started["time"]) > 0, "node1 did not rejoin"
