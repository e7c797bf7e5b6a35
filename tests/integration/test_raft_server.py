"""The Raft store's real server: three processes on loopback, crashes, restarts, damaged logs, bad options."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from splitbrain.checkers.linearizable import check_linearizable
from splitbrain.checkers.models import kv
from splitbrain.histories.history import History
from splitbrain.histories.op import Op
from splitbrain.targets.raft.client import RaftClient
from splitbrain.targets.raft.server.local_cluster import LocalCluster, free_port
from splitbrain.targets.raft.server.storage import WAL_FILE

pytestmark = pytest.mark.integration


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    cluster = LocalCluster(tmp_path / "cluster", 3)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()  # kills every process it started, also when the test failed


def followers_of(cluster: LocalCluster, leader: str) -> list[str]:
    return [n for n in cluster.ids if n != leader]


@pytest.mark.timeout(90)
def test_acknowledged_writes_survive_a_leader_crash_and_the_node_catches_up(cluster: LocalCluster) -> None:
    leader = cluster.wait_for_leader()
    follower = followers_of(cluster, leader)[0]
    with cluster.client(leader) as at_leader, cluster.client(follower) as at_follower:
        assert at_leader.put("x", 1).status == "ok"
        assert at_follower.put("y", "a").status == "ok"  # forwarded to the leader
        assert at_follower.append("y", "b").status == "ok"
        assert at_follower.get("x").value == 1
        mismatch = at_leader.cas("x", 5, 6)
        assert (mismatch.status, mismatch.error) == ("fail", "cas-mismatch")
        assert at_leader.cas("x", 1, 2).status == "ok"

    cluster.kill_node(leader)
    survivors = followers_of(cluster, leader)
    new_leader = cluster.wait_for_leader(among=survivors)
    assert new_leader != leader
    with cluster.client(survivors[0]) as c:
        assert c.get("x").value == 2
        assert c.get("y").value == "ab"
        assert c.put("z", [1, 2]).status == "ok"
    commit = cluster.statuses([new_leader])[new_leader]["commit"]

    cluster.start_node(leader)
    status = cluster.wait_until(leader, lambda s: s["applied"] >= commit and s["leader"] == new_leader)
    assert status["role"] == "follower"
    with cluster.client(leader) as c:
        assert c.get("z").value == [1, 2]  # served through the leader: linearizable


@pytest.mark.timeout(90)
def test_acknowledged_writes_survive_killing_every_node_at_once(cluster: LocalCluster) -> None:
    leader = cluster.wait_for_leader()
    with cluster.client(leader) as c:
        acked = [i for i in range(20) if c.append("log", i).status == "ok"]
    assert acked == list(range(20))
    for node in cluster.ids:
        cluster.kill_node(node)  # SIGKILL: only what was fsync'd survives
    for node in cluster.ids:
        cluster.start_node(node)
    leader = cluster.wait_for_leader()
    with cluster.client(leader) as c:
        assert c.get("log").value == acked


@pytest.mark.timeout(90)
@pytest.mark.parametrize("bugs", [(), ("stale-read",)])
def test_a_node_cut_off_from_the_leader_serves_stale_reads_only_with_the_bug(
        tmp_path: Path, bugs: tuple[str, ...]) -> None:
    with LocalCluster(tmp_path / "cluster", 3, bugs=bugs) as cluster:
        leader = cluster.wait_for_leader()
        lagging, other = followers_of(cluster, leader)
        with cluster.client(leader) as c:
            assert c.put("x", "old").status == "ok"
        cluster.wait_until(lagging, lambda s: s["applied"] >= cluster.statuses([leader])[leader]["commit"])
        cluster.kill_node(lagging)
        with cluster.client(leader) as c:
            assert c.put("x", "new").status == "ok"
        cluster.kill_node(leader)
        cluster.kill_node(other)
        cluster.start_node(lagging)  # alone, and it never saw "new"
        cluster.wait_until(lagging, lambda s: s["role"] != "leader")
        with cluster.client(lagging) as c:
            read = c.get("x")
    if bugs:
        assert (read.status, read.value) == ("ok", "old")  # the anomaly the harness must catch
    else:
        assert read.status == "fail"


def record_clients_under_crashes(cluster: LocalCluster, *, threads: int, seconds: float, seed: int) -> History:
    """Clients on every node doing reads, writes and cas on a few keys while a nemesis crashes nodes."""
    started = time.monotonic_ns()
    lock = threading.Lock()
    ops: list[Op] = []
    stop = threading.Event()

    def record(op: Op) -> None:
        with lock:
            ops.append(op.with_(index=len(ops), time=time.monotonic_ns() - started))

    def worker(thread: int) -> None:
        rng = random.Random(seed * 100 + thread)
        process = thread
        node = cluster.ids[thread % len(cluster.ids)]
        client = cluster.client(node, timeout=3)
        while not stop.is_set():
            key, f = f"k{rng.randrange(3)}", rng.choice(["read", "write", "cas"])
            value = None if f == "read" else rng.randrange(5) if f == "write" else [rng.randrange(5), rng.randrange(5)]
            record(Op(0, "invoke", process, f, value, key, node=node))
            if f == "read":
                outcome = client.get(key)
            elif f == "write":
                outcome = client.put(key, value)
            else:
                outcome = client.cas(key, *value)
            done = outcome.value if f == "read" and outcome.status == "ok" else value
            record(Op(0, outcome.status, process, f, done, key, node=node, error=outcome.error))
            if outcome.status == "info":
                process += threads  # an indeterminate op leaves its process hanging forever
                client.close()
                client = cluster.client(node, timeout=3)
            if outcome.status != "ok":
                stop.wait(0.02)  # its node may be down: do not spin
        client.close()

    def nemesis() -> None:
        rng = random.Random(seed)
        while not stop.wait(0.7):
            victim = rng.choice(cluster.ids)
            cluster.kill_node(victim)
            stop.wait(0.5)
            cluster.start_node(victim)

    workers = [threading.Thread(target=worker, args=(t,)) for t in range(threads)] + [threading.Thread(target=nemesis)]
    for w in workers:
        w.start()
    time.sleep(seconds)
    stop.set()
    for w in workers:
        w.join(timeout=30)
    return History(sorted(ops, key=lambda o: o.index))


@pytest.mark.timeout(120)
def test_concurrent_clients_under_crashes_see_a_linearizable_store(cluster: LocalCluster) -> None:
    cluster.wait_for_leader()
    history = record_clients_under_crashes(cluster, threads=6, seconds=8, seed=7)
    completed = {t: sum(1 for o in history if o.type == t) for t in ("ok", "fail", "info")}
    assert completed["ok"] > 50, completed  # the store kept serving through the crashes
    result = check_linearizable(history, kv(), time_limit=60)
    assert result.valid is True, result.explanation


@pytest.mark.timeout(60)
def test_locks_and_the_fenced_resource(cluster: LocalCluster) -> None:
    leader = cluster.wait_for_leader()
    with cluster.client(leader) as c:
        first = c.acquire("L", "alice", 60_000)
        assert first.status == "ok"
        token = first.value["token"]
        held = c.acquire("L", "bob", 60_000)
        assert (held.status, held.error) == ("fail", "lock-held")
        assert c.write("R", "v1", token).status == "ok"
        assert c.release("L", "alice", token).status == "ok"
        second = c.acquire("L", "bob", 60_000)
        assert second.status == "ok" and second.value["token"] > token
        assert c.write("R", "v2", second.value["token"]).status == "ok"
        stale = c.write("R", "late", token)
        assert (stale.status, stale.error) == ("fail", "stale-token")

        short = c.acquire("M", "carol", 200)
        assert short.status == "ok"
        time.sleep(0.4)  # the lease runs out on the leader's clock
        taken_over = c.acquire("M", "dave", 60_000)
        assert taken_over.status == "ok" and taken_over.value["token"] > short.value["token"]
        late_release = c.release("M", "carol", short.value["token"])
        assert (late_release.status, late_release.error) == ("fail", "not-holder")


@pytest.mark.timeout(60)
def test_without_a_quorum_writes_fail_definitely_and_nothing_is_acknowledged(tmp_path: Path) -> None:
    with LocalCluster(tmp_path / "cluster", 3) as cluster:
        cluster.kill_node("n2")
        cluster.kill_node("n3")
        cluster.wait_until("n1", lambda s: s["role"] != "leader" and s["leader"] is None)
        with cluster.client("n1", timeout=10) as c:
            outcome = c.put("k", 1)
        # n1 never leads alone: the put is refused before anything is proposed.
        assert outcome.status == "fail"
        assert outcome.error == "no leader"


@pytest.mark.timeout(60)
def test_a_write_accepted_by_a_leader_that_then_loses_its_quorum_is_indeterminate(tmp_path: Path) -> None:
    # A long election timeout keeps the isolated leader leading past the request timeout.
    args = ["--election-ticks", "60", "--request-timeout", "1"]
    with LocalCluster(tmp_path / "cluster", 3, extra_args=args) as cluster:
        leader = cluster.wait_for_leader(timeout_s=40)
        for follower in followers_of(cluster, leader):
            cluster.kill_node(follower)
        with cluster.client(leader, timeout=10) as c:
            write = c.put("k", 1)
            read = c.get("k")
    assert (write.status, write.error) == ("info", "no verdict within 1 s")  # it may yet commit
    assert read.status == "fail"  # a read that was not confirmed changed nothing


@pytest.mark.timeout(60)
def test_sigterm_stops_every_node_cleanly_even_with_clients_connected(cluster: LocalCluster) -> None:
    leader = cluster.wait_for_leader()
    clients = [cluster.client(node) for node in cluster.ids]
    try:
        for c in clients:
            assert c.put("k", "v").status == "ok"  # each keeps its connection open
        for node in [*followers_of(cluster, leader), leader]:
            process = cluster.processes[node]
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=20) == 0
    finally:
        for c in clients:
            c.close()


@pytest.mark.timeout(60)
def test_a_kept_alive_client_of_a_crashed_node_records_fail_then_recovers(cluster: LocalCluster) -> None:
    leader = cluster.wait_for_leader()
    follower = followers_of(cluster, leader)[0]
    with cluster.client(follower) as c:
        assert c.put("k", 1).status == "ok"  # the connection stays open
        cluster.kill_node(follower)
        # The node closed the idle connection when it died: the request is not sent into it (that would
        # be info), a fresh connect is refused, so the write certainly did not happen.
        assert c.put("k", 2).status == "fail"
        cluster.start_node(follower)
        cluster.wait_until(follower, lambda s: s["leader"] is not None)
        assert c.put("k", 3).status == "ok"


@pytest.mark.timeout(30)
def test_a_client_of_a_dead_node_records_fail_not_ok(tmp_path: Path) -> None:
    with RaftClient(f"http://127.0.0.1:{free_port()}", timeout=2) as c:
        assert c.put("k", 1).status == "fail"  # connection refused: nothing was sent
        assert c.get("k").status == "fail"


def run_server(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "splitbrain.targets.raft.server", *args], capture_output=True, text=True,
                          timeout=30)


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("args", "message"), [
    (["--id", "n1"], "the following arguments are required"),
    (["--id", "n9", "--listen", "127.0.0.1:1", "--peers", "n1=127.0.0.1:1", "--data-dir", "d"], "--id n9 is not one of"),
    (["--id", "n1", "--listen", "nowhere", "--peers", "n1=127.0.0.1:1", "--data-dir", "d"], "expected HOST:PORT"),
    (["--id", "n1", "--listen", "127.0.0.1:1", "--peers", "n1", "--data-dir", "d"], "expected ID=HOST:PORT"),
    (["--id", "n1", "--listen", "127.0.0.1:1", "--peers", "n1=127.0.0.1:1", "--data-dir", "d", "--bug", "typo"],
     "--bug: unknown typo"),
])
def test_bad_options_give_one_line_and_exit_3(args: list[str], message: str) -> None:
    result = run_server(args)
    assert result.returncode == 3
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.timeout(60)
def test_a_damaged_log_stops_the_node_with_file_and_offset(tmp_path: Path) -> None:
    with LocalCluster(tmp_path / "cluster", 3) as cluster:
        leader = cluster.wait_for_leader()
        with cluster.client(leader) as c:
            for i in range(5):
                assert c.put("k", i).status == "ok"
        cluster.kill_node("n1")
    wal = cluster.data_dir("n1") / WAL_FILE
    data = bytearray(wal.read_bytes())
    data[20] ^= 0xFF  # inside the first record's payload, with records after it
    wal.write_bytes(bytes(data))

    port = free_port()
    result = run_server(["--id", "n1", "--listen", f"127.0.0.1:{port}", "--peers", f"n1=127.0.0.1:{port}",
                         "--client-listen", f"127.0.0.1:{free_port()}", "--data-dir", str(cluster.data_dir("n1"))])
    assert result.returncode == 4
    assert f"{wal}: byte offset 0: record checksum mismatch" in result.stderr
    assert "Traceback" not in result.stderr
