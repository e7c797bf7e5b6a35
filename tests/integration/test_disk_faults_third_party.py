"""etcd and ZooKeeper on local nodes under ``corrupt``, ``truncate`` and ``lose-unfsynced``: what each
does, as the README's table of what splitbrain catches records it.

corrupt (64 zeroed bytes at offset 300 of one node's log): etcd refuses to start (its WAL records carry
CRCs); ZooKeeper takes the damage for a torn tail, drops it and every later transaction, starts and
catches up from the leader. Both stay valid: two intact nodes are a majority. truncate (the last 512
bytes of one node's newest log torn: both preallocate their logs, so the bytes become zeros again): etcd
refuses to start on a CRC mismatch, or repairs the tail and then, as a follower, panics when the leader
commits the entries it lost; ZooKeeper drops the partial transaction and catches up. lose-unfsynced (a power cut of all three): etcd fsyncs what it must and
loses nothing; ZooKeeper never fsyncs the directory of the files it creates, so under the strict POSIX
model its new transaction log and epoch files vanish with the cut and the ensemble rolls back."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from tests.integration.disk_checks import history, nemesis_done, node_log, ok_ops_on
from tests.integration.helpers import run
from tests.integration.test_txn_postgres import store  # noqa: F401 - the fixture

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


# 512 bytes cut off node1's newest log at 3 s; node1 started again at 5 s.
TRUNCATE_NODE1_LOG = [{"at_s": 3.0, "f": "start-truncate", "value": {"nodes": ["node1"], "length": 512, "seed": 2}},
                      {"at_s": 5.0, "f": "stop-truncate", "value": None}]
POWER_CUT_ALL = [{"at_s": 4.0, "f": "start-lose-unfsynced", "value": {"nodes": ["node1", "node2", "node3"]}},
                 {"at_s": 5.5, "f": "stop-lose-unfsynced", "value": None}]


def disk_run(tmp_path: Path, target: str, nemesis: str = "corrupt", schedule: list[dict] = CORRUPT_NODE2_LOG,
             seed: int = 16):
    from splitbrain.harness.test import TestOptions  # here, so pytest does not collect it

    test = TestOptions(target=target, workload="register", nemesis=(nemesis,), nodes=3, time_limit=8.0, seed=seed,
                       store=str(tmp_path / "runs"), schedule=schedule, rate=100, concurrency=8, recovery_s=2.0)
    return run(test, console=False)


def the_fault(outcome) -> dict:
    (started,) = nemesis_done(history(outcome), "start-corrupt")
    assert not started.get("error"), started
    (fault,) = started["value"]["faults"]
    assert fault["node"] == "node2" and fault["offset"] == 300 and fault["length"] == 64
    return fault


@needs_etcd
def test_etcd_refuses_to_start_on_a_corrupted_wal_and_the_cluster_stays_valid(tmp_path):
    outcome = disk_run(tmp_path, "etcd")
    assert outcome.valid is True, outcome.results
    assert the_fault(outcome)["file"].endswith(".wal")
    assert "walpb: crc mismatch" in node_log(outcome, "node2"), "etcd started on a corrupted WAL"


@needs_zookeeper
def test_zookeeper_drops_a_corrupted_log_tail_as_partial_and_catches_up(tmp_path):
    outcome = disk_run(tmp_path, "zookeeper")
    assert outcome.valid is True, outcome.results
    assert "/version-2/log." in the_fault(outcome)["file"]
    assert "Last transaction was partial" in node_log(outcome, "node2"), "ZooKeeper did not take the damage for a torn tail"


def the_truncation(outcome) -> tuple[dict, list[dict]]:
    ops = history(outcome)
    (started,) = nemesis_done(ops, "start-truncate")
    assert not started.get("error"), started
    (fault,) = started["value"]["faults"]
    assert fault["node"] == "node1" and fault["length"] == 512
    return fault, ops


@needs_etcd
def test_etcd_under_a_torn_wal_tail_refuses_or_panics_or_catches_up_and_stays_valid(tmp_path):
    """What etcd does depends on where the zeros fall and on who leads, each shown in its log: a record
    left whole-looking but wrong: it refuses to start (`discovery failed`: `walpb: crc mismatch`, or
    `proto: Record: illegal tag 0` when the zeros reached a record's framing); records cut short or
    zeroed away: it reads up to them (`repaired WAL` when one was cut mid-way) and then, as a follower the
    leader knows had persisted more, panics at the next heartbeat (`tocommit(N) is out of range
    [lastIndex(M)]`) and stays out; otherwise (it had led, its successor knows nothing of its log) it
    catches up and serves. Valid every time: two intact members are a majority."""
    outcome = disk_run(tmp_path, "etcd", "truncate", TRUNCATE_NODE1_LOG)
    assert outcome.valid is True, outcome.results
    fault, ops = the_truncation(outcome)
    assert fault["file"].endswith(".wal") and fault["offset"] < 1 << 20  # in the data, not the preallocated zeros
    log = node_log(outcome, "node1")
    refused = re.search(r'"msg":"discovery failed","error":"([^"]+)"', log) is not None
    lost = re.search(r"tocommit\((\d+)\) is out of range \[lastIndex\((\d+)\)\]", log)
    (stopped,) = nemesis_done(ops, "stop-truncate")
    served = ok_ops_on(ops, "node1", stopped["time"]) > 0
    assert [refused, lost is not None, served].count(True) == 1, (refused, lost, served)
    if lost:
        assert int(lost.group(1)) > int(lost.group(2))


@needs_zookeeper
def test_zookeeper_drops_a_torn_log_tail_as_partial_and_catches_up(tmp_path):
    outcome = disk_run(tmp_path, "zookeeper", "truncate", TRUNCATE_NODE1_LOG)
    assert outcome.valid is True, outcome.results
    fault, ops = the_truncation(outcome)
    assert "/version-2/log." in fault["file"] and fault["offset"] < 1 << 20
    assert "Last transaction was partial" in node_log(outcome, "node1")
    (stopped,) = nemesis_done(ops, "stop-truncate")
    assert ok_ops_on(ops, "node1", stopped["time"]) > 0, "node1 did not serve again after its log was torn"


def the_power_cut(outcome) -> dict:
    (cut,) = nemesis_done(history(outcome), "start-lose-unfsynced")
    assert cut["value"]["nodes"] == ["node1", "node2", "node3"] and not cut.get("error"), cut
    return cut["value"]


@needs_etcd
def test_etcd_loses_nothing_in_a_power_cut_of_every_member(tmp_path):
    outcome = disk_run(tmp_path, "etcd", "lose-unfsynced", POWER_CUT_ALL)
    assert outcome.valid is True, outcome.results
    assert the_power_cut(outcome)["lost"] == []


@needs_zookeeper
def test_zookeeper_rolls_back_in_a_power_cut_of_every_server_and_its_clients_are_refused(tmp_path):
    """Every server loses its new transaction log (created and fsynced, its directory never): the ensemble
    comes back at the last zxid of the previous epoch, and says so to each client that had seen later ones,
    refusing it. So the loss shows as unavailability to the run's clients, not as a wrong read."""
    outcome = disk_run(tmp_path, "zookeeper", "lose-unfsynced", POWER_CUT_ALL)
    gone = {(w["node"], w["file"].rsplit("/", 1)[1]) for w in the_power_cut(outcome)["lost"] if w.get("gone")}
    assert {node for node, name in gone if name.startswith("log.")} == {"node1", "node2", "node3"}, gone
    refusals = re.findall(r"as it has seen zxid (0x[0-9a-f]+) our last zxid is (0x[0-9a-f]+)",
                          "".join(node_log(outcome, n) for n in ("node1", "node2", "node3")))
    assert any(int(seen, 16) > int(last, 16) for seen, last in refusals), "no server came back behind its clients"
    ops = history(outcome)
    (stopped,) = nemesis_done(ops, "stop-lose-unfsynced")
    served_after = sum(ok_ops_on(ops, n, stopped["time"]) for n in ("node1", "node2", "node3"))
    assert outcome.valid is False or served_after == 0, (outcome.results, served_after)


# -- PostgreSQL 15 (primary node1, two asynchronous replicas; serializable, reads on the primary) ---------

needs_postgres = pytest.mark.skipif(not os.path.exists("/usr/lib/postgresql/15/bin/postgres"),
                                    reason="PostgreSQL 15 is not installed (.ci/setup)")


def pg_disk_run(runs: Path, nemesis: str, schedule: list[dict], seed: int = 16):
    from tests.integration.test_txn_postgres import pg_run

    return pg_run(runs, "list-append", seed, isolation="serializable", nodes=3, nemesis=(nemesis,),
                  schedule=schedule, time_limit=8.0, rate=200)


@needs_postgres
def test_postgres_ends_recovery_at_a_torn_wal_record_and_loses_acknowledged_commits(store):  # noqa: F811
    """A damaged record at the end of the WAL looks like a torn write, so recovery stops there (`redo done`
    after `incorrect resource manager data checksum in record at 0/...` or `invalid record length at
    0/...`) and every commit after it is gone: fsynced and acknowledged, but only on the primary (the replicas are asynchronous). Seen on the
    first seed (3 of 3 tried); up to 3 allowed."""
    from tests.integration.test_txn_postgres import seeds_until

    def attempt(seed: int):
        outcome = pg_disk_run(store.with_name(f"runs-{seed}"), "truncate", TRUNCATE_NODE1_LOG, seed)
        fault, _ = the_truncation(outcome)
        assert "/pg_wal/" in fault["file"]
        return outcome if outcome.valid is False else None

    outcome = seeds_until(attempt, range(1, 4), "acknowledged commits lost to a torn WAL record")
    assert outcome.exit_code == 1
    fault, _ = the_truncation(outcome)
    torn_from, torn_to = wal_position(fault["file"], fault["offset"]), wal_position(fault["file"], fault["offset"] + 512)
    # Where each recovery stopped reading: the line before `redo done` names the record (invalid record
    # length, incorrect checksum, ...) at a WAL position. One recovery stopped at the torn bytes (a record
    # may begin a little before them).
    stops = [int(high, 16) << 32 | int(low, 16) for high, low in
             re.findall(r"LOG:  [^\n]* at ([0-9A-F]+)/([0-9A-F]+)[^\n]*\n[^\n]*LOG:  redo done at", node_log(outcome, "node1"))]
    assert any(torn_from - 65536 <= stop <= torn_to for stop in stops), (hex(torn_from), [hex(s) for s in stops])


def wal_position(segment_file: str, offset: int) -> int:
    """The WAL position (LSN) of byte ``offset`` of a 16 MB segment named TTTTTTTTLLLLLLLLSSSSSSSS."""
    name = segment_file.rsplit("/", 1)[1]
    return (int(name[8:16], 16) << 32) + int(name[16:24], 16) * (16 << 20) + offset


@needs_postgres
def test_postgres_loses_nothing_acknowledged_in_a_power_cut_of_every_server(store):  # noqa: F811
    """PostgreSQL fdatasyncs its WAL at each commit and fsyncs the directories it renames in: the cut takes
    only table and catalog pages the checkpointer had not synced yet, and recovery replays them."""
    outcome = pg_disk_run(store, "lose-unfsynced", POWER_CUT_ALL)
    assert outcome.valid is True, outcome.results
    lost = the_power_cut(outcome)["lost"]
    assert lost and not [w for w in lost if "/pg_wal/" in w["file"]], lost
    assert "database system was not properly shut down; automatic recovery in progress" in node_log(outcome, "node1")
    assert "redo done at" in node_log(outcome, "node1")
