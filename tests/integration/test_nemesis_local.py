"""The nemeses on real local nodes: partitions cut traffic and heal restores it, kill and pause reach
daemons that left their process group, packet loss and delay take effect and heal."""

from __future__ import annotations

import itertools
import os
import random
import socket
import struct
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from splitbrain.control.local import LocalCluster
from splitbrain.control.remote import ExecResult
from splitbrain.control.target import OneProcessPerNode
from splitbrain.histories.op import Op
from splitbrain.nemesis.base import ComposedNemesis
from splitbrain.nemesis.packet import (
    PacketFault,
    PacketNemesis,
    delay_rules,
    loss_rules,
    nfq_message,
    nl_attr,
    parse_messages,
    verdict_message,
)
from splitbrain.nemesis.partition import PartitionNemesis
from splitbrain.nemesis.process import ProcessNemesis

from tests.integration.helpers import (
    ECHO_PORT,
    ECHO_SERVER,
    host_reaches,
    needs_root,
    node_reaches,
    process_gone,
    run_namespaces,
    wait_for,
)

pytestmark = pytest.mark.integration
# A daemon that leaves its process group (setsid) and ticks a counter into a file; the parent exits.
TICKER = """
import os, sys, time
if os.fork() == 0:
    os.setsid()
    with open(sys.argv[1], "w") as f:
        f.write(str(os.getpid()))
    ticks = 0
    while True:
        ticks += 1
        with open(sys.argv[2] + ".tmp", "w") as f:
            f.write(str(ticks))
        os.replace(sys.argv[2] + ".tmp", sys.argv[2])
        time.sleep(0.01)
"""

_run_ids = itertools.count(1)






def nemesis_op(f: str, value: object = None) -> Op:
    return Op(index=0, type="invoke", process="nemesis", f=f, value=value)



def read_int(path: Path) -> int:
    value = -1

    def parsed() -> bool:
        nonlocal value
        try:
            value = int(path.read_text())
        except (OSError, ValueError):
            return False
        return True

    assert wait_for(parsed), f"no number in {path}"
    return value


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    """Three nodes, each running a TCP echo server."""
    run_id = f"nm{os.getpid()}-{next(_run_ids)}"
    nodes = LocalCluster(run_id, 3, log_dir=tmp_path / "nodes")
    try:
        nodes.up()
        for node, address in nodes.addresses.items():
            nodes.remote(node).spawn([sys.executable, "-c", ECHO_SERVER, str(ECHO_PORT)], log="echo.log")
            assert wait_for(lambda a=address: host_reaches(a)), f"echo server on {node} did not come up"
        yield nodes
    finally:
        nodes.down()
        assert run_namespaces(run_id) == [], "a namespace of the run survived down()"


@needs_root
@pytest.mark.timeout(60)
def test_isolating_one_node_cuts_it_off_and_heal_restores(cluster: LocalCluster) -> None:
    nemesis = PartitionNemesis(cluster.remotes, cluster.addresses, random.Random(3))
    nemesis.setup(None)
    r, a = cluster.remote, cluster.addresses
    done = nemesis.invoke(None, nemesis_op("start-partition", {"node3": ["node1", "node2"]}))
    assert done.error is None
    # A one-way grudge (node3 drops from the others) already breaks TCP both ways.
    assert not node_reaches(r("node1"), a["node3"])
    assert not node_reaches(r("node3"), a["node2"])
    assert node_reaches(r("node1"), a["node2"]) and node_reaches(r("node2"), a["node1"])
    assert host_reaches(a["node3"]), "the harness must still reach an isolated node"

    healed = nemesis.invoke(None, nemesis_op("stop-partition"))
    assert healed.error is None
    assert node_reaches(r("node1"), a["node3"]) and node_reaches(r("node3"), a["node2"])
    nemesis.heal(None)  # idempotent


# Keeps one TCP connection open and reports each round trip on it: "ok" or "lost" (no answer in time).
PINGER = """
import socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2)
s.settimeout(0.3)
with open(sys.argv[3], "a", buffering=1) as out:
    while True:
        try:
            s.sendall(b"p")
            while not s.recv(1):
                pass
            out.write("ok\\n")
        except socket.timeout:
            out.write("lost\\n")
        time.sleep(0.05)
"""


@needs_root
@pytest.mark.timeout(60)
def test_a_partition_cuts_an_established_connection_and_heal_revives_it(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    report = tmp_path / "pinger.out"
    pinger = [sys.executable, "-c", PINGER, cluster.addresses["node3"], str(ECHO_PORT), str(report)]
    cluster.remote("node1").spawn(pinger, log="pinger.log")

    def lines() -> list[str]:
        return report.read_text().split() if report.exists() else []

    assert wait_for(lambda: "ok" in lines()), "no round trip before the partition"
    nemesis = PartitionNemesis(cluster.remotes, cluster.addresses, random.Random(4))
    try:
        nemesis.invoke(None, nemesis_op("start-partition", {"node3": ["node1", "node2"]}))
        seen = len(lines())
        assert wait_for(lambda: "lost" in lines()[seen:]), (
            "the open connection kept working across the partition"
        )
    finally:
        nemesis.heal(None)
    healed_at = len(lines())
    # The same connection (TCP retransmits) answers again once healed.
    assert wait_for(lambda: "ok" in lines()[healed_at:], timeout=10)


@needs_root
@pytest.mark.timeout(60)
def test_random_partition_matches_its_reported_grudge(cluster: LocalCluster) -> None:
    nemesis = PartitionNemesis(cluster.remotes, cluster.addresses, random.Random(11))
    try:
        done = nemesis.invoke(None, nemesis_op("start-partition", "one"))
        grudge = done.value["grudge"]
        (isolated,) = [node for node, dropped in grudge.items() if len(dropped) == 2]
        others = [node for node in cluster.nodes if node != isolated]
        assert not node_reaches(cluster.remote(others[0]), cluster.addresses[isolated])
        assert node_reaches(cluster.remote(others[0]), cluster.addresses[others[1]])
    finally:
        nemesis.heal(None)
    assert node_reaches(cluster.remote(others[0]), cluster.addresses[isolated])


class Tickers(OneProcessPerNode):
    """A ticker daemon (it setsid's) on every node, started by the local nodes' spawner: a target that is
    Killable and Pausable the way the built-in ones are."""

    def __init__(self, cluster: LocalCluster, tmp_path: Path, log: str | None = None) -> None:
        self._init_nodes(cluster.addresses, tmp_path, cluster.spawner(None))
        self.tmp_path = tmp_path
        self.log = log

    def launch(self, node: str) -> tuple[list[str], dict[str, str], str | None]:
        argv = [sys.executable, "-c", TICKER, str(self.tmp_path / f"{node}.pid"), str(self.tmp_path / f"{node}.ticks")]
        return argv, {}, self.log

    def stop_all(self) -> None:
        for node in self.nodes:
            self.stop_process(node)


@pytest.fixture
def tickers(cluster: LocalCluster, tmp_path: Path) -> Iterator[tuple[Tickers, Path]]:
    processes = Tickers(cluster, tmp_path, log="ticker.log")
    try:
        yield processes, tmp_path
    finally:
        processes.stop_all()


@needs_root
@pytest.mark.timeout(60)
def test_kill_reaches_a_setsid_daemon_and_start_brings_it_back(
    tickers: tuple[Tickers, Path],
) -> None:
    processes, files = tickers
    processes.start(None, "node1")
    first = read_int(files / "node1.pid")
    assert os.getpgid(first) != processes.handles["node1"].pgid  # it left the process group
    nemesis = ProcessNemesis(processes, ["node1", "node2", "node3"], random.Random(5))
    nemesis.setup(None)
    assert nemesis.fs() == {"kill", "start", "pause", "resume"}

    killed = nemesis.invoke(None, nemesis_op("kill", ["node1"]))
    assert killed.error is None and killed.value == {"kill": ["node1"]}
    assert wait_for(lambda: process_gone(first))

    (files / "node1.pid").unlink()
    started = nemesis.invoke(None, nemesis_op("start"))  # no value: every node it killed
    assert started.value == {"start": ["node1"]}
    second = read_int(files / "node1.pid")
    assert second != first and not process_gone(second)


@needs_root
@pytest.mark.timeout(60)
def test_pause_freezes_a_setsid_daemon_and_heal_resumes_it(tickers: tuple[Tickers, Path]) -> None:
    processes, files = tickers
    processes.start(None, "node2")
    ticks = files / "node2.ticks"
    read_int(ticks)
    nemesis = ProcessNemesis(processes, ["node1", "node2", "node3"], random.Random(5))

    paused = nemesis.invoke(None, nemesis_op("pause", ["node2"]))
    assert paused.error is None
    frozen_at = read_int(ticks)
    time.sleep(0.3)
    assert read_int(ticks) == frozen_at, "a paused daemon kept running"

    nemesis.heal(None)
    assert wait_for(lambda: read_int(ticks) > frozen_at), "heal did not resume the paused daemon"
    assert nemesis.paused == set()


def test_a_target_without_pause_says_so() -> None:
    class OnlyKillable:
        def kill(self, test: object, node: str) -> None: ...

        def start(self, test: object, node: str) -> None: ...

    nemesis = ProcessNemesis(OnlyKillable(), ["node1", "node2", "node3"], random.Random(1))
    assert nemesis.fs() == {"kill", "start"}
    refused = nemesis.invoke(None, nemesis_op("pause", ["node1"]))
    assert refused.error == "target OnlyKillable has no pause/resume"


@needs_root
@pytest.mark.timeout(60)
def test_packet_loss_of_one_blocks_and_zero_heals(cluster: LocalCluster) -> None:
    nemesis = PacketNemesis(cluster.remotes, random.Random(2))
    r, a = cluster.remote, cluster.addresses
    try:
        lossy = nemesis.invoke(None, nemesis_op("start-packet", {"nodes": ["node2"], "loss": 1.0}))
        assert lossy.error is None
        assert not node_reaches(r("node1"), a["node2"])
        assert node_reaches(r("node1"), a["node3"])

        cleared = nemesis.invoke(None, nemesis_op("start-packet", {"nodes": ["node2"], "loss": 0}))
        assert cleared.error is None
        assert node_reaches(r("node1"), a["node2"])
    finally:
        nemesis.heal(None)


@needs_root
@pytest.mark.timeout(60)
def test_packet_delay_holds_packets_and_heal_removes_it(cluster: LocalCluster) -> None:
    nemesis = PacketNemesis(cluster.remotes, random.Random(2))
    address = cluster.addresses["node3"]
    try:
        delayed = nemesis.invoke(None, nemesis_op("start-packet", {"nodes": ["node3"], "delay_ms": 150}))
        assert delayed.error is None
        with socket.create_connection((address, ECHO_PORT), timeout=5) as s:
            s.settimeout(5)
            began = time.monotonic()
            s.sendall(b"ping")
            assert s.recv(4) == b"ping"
            # A lower bound only: a slow machine makes it longer, never shorter.
            assert time.monotonic() - began >= 0.15
        # The packets still arrive: nothing lost, only late.
        assert host_reaches(address, timeout=3)
    finally:
        nemesis.heal(None)
    rules = cluster.remote("node3").exec(["iptables", "-S"]).stdout
    assert "NFQUEUE" not in rules
    assert nemesis.delayers == {}
    assert host_reaches(address)


@needs_root
@pytest.mark.timeout(60)
def test_one_heal_undoes_every_kind_of_fault(cluster: LocalCluster, tmp_path: Path) -> None:
    processes = Tickers(cluster, tmp_path)
    try:
        for node in cluster.nodes:
            processes.start(None, node)
        rng = random.Random(7)
        nemesis = ComposedNemesis(
            [
                PartitionNemesis(cluster.remotes, cluster.addresses, rng),
                PacketNemesis(cluster.remotes, rng),
                ProcessNemesis(processes, cluster.nodes, rng),
            ]
        )
        nemesis.setup(None)
        for op in (
            nemesis_op("start-partition", "halves"),
            nemesis_op("start-packet", {"nodes": "all", "loss": 1.0}),
            nemesis_op("pause", ["node1"]),
            nemesis_op("kill", ["node2"]),
        ):
            assert nemesis.invoke(None, op).error is None
        assert not host_reaches(cluster.addresses["node3"])

        nemesis.heal(None)

        for src, dst in itertools.permutations(cluster.nodes, 2):
            assert node_reaches(cluster.remote(src), cluster.addresses[dst]), f"{src} still cut off from {dst}"
        for node in cluster.nodes:
            ticks = tmp_path / f"{node}.ticks"
            seen = read_int(ticks)
            assert wait_for(lambda t=ticks, s=seen: read_int(t) > s), f"{node} is not running after heal"
    finally:
        processes.stop_all()


# -- without root: the parts that need no kernel ------------------------------------------------------


class ScriptedRemote:
    """A node whose commands succeed; ``answers`` gives the stdout of commands that start with a key."""

    def __init__(self, node: str, answers: dict[tuple[str, ...], str]) -> None:
        self.node = node
        self.answers = answers
        self.commands: list[list[str]] = []

    def exec(self, cmd, *, stdin=None, timeout=None) -> ExecResult:  # noqa: ANN001 - test double
        self.commands.append(list(cmd))
        for prefix, stdout in self.answers.items():
            if tuple(cmd[: len(prefix)]) == prefix:
                return ExecResult(0, stdout, "")
        return ExecResult(0, "", "")


def test_with_netem_faults_go_to_the_nodes_interface_and_heal_removes_only_netem() -> None:
    route = "10.9.0.0/24 dev eth7 proto kernel scope link src 10.9.0.1\n"
    remote = ScriptedRemote("node1", {("ip", "-o", "-4", "route"): route})
    nemesis = PacketNemesis({"node1": remote}, random.Random(0), use_netem=True)
    op = nemesis_op("start-packet", {"nodes": ["node1"], "delay_ms": 50, "jitter_ms": 10, "loss": 0.2})
    done = nemesis.invoke(None, op)
    assert done.error is None and done.value["mechanism"] == {"node1": "netem"}
    assert [
        "tc",
        "qdisc",
        "replace",
        "dev",
        "eth7",
        "root",
        "netem",
        "delay",
        "50ms",
        "10ms",
        "loss",
        "20%",
    ] in (remote.commands)
    # a root qdisc that is not netem is someone else's: heal leaves it alone
    remote.answers[("tc", "qdisc", "show")] = "qdisc fq_codel 0: root refcnt 2\n"
    nemesis.heal(None)
    assert not any(cmd[:3] == ["tc", "qdisc", "del"] for cmd in remote.commands)
    remote.answers[("tc", "qdisc", "show")] = "qdisc netem 8001: root refcnt 2 limit 1000 delay 50ms\n"
    nemesis.heal(None)
    assert ["tc", "qdisc", "del", "dev", "eth7", "root"] in remote.commands


@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        ({"loss": 1.5}, "probability"),
        ({"delay_ms": -1}, "negative"),
        ({"loss": "lots"}, "numbers"),
        ({"los": 0.1}, "unknown packet fault fields"),
        ({"loss": 0.1, "nodes": ["node9"]}, "node9"),
        ("lossy", "expected a packet fault"),
    ],
)
def test_bad_packet_faults_are_refused_on_the_op(value: object, complaint: str) -> None:
    nemesis = PacketNemesis({"node1": ScriptedRemote("node1", {})}, random.Random(0), use_netem=False)
    done = nemesis.invoke(None, nemesis_op("start-packet", value))
    assert done.type == "info" and complaint in done.error


def test_iptables_rules_leave_loopback_alone_and_loss_one_drops_everything() -> None:
    assert loss_rules(PacketFault(loss=1.0))[-1] == "-A SB-PACKET-IN -j DROP"
    assert "--probability 0.250000" in loss_rules(PacketFault(loss=0.25))[-1]
    assert loss_rules(PacketFault())[0] == "-A SB-PACKET-IN -i lo -j RETURN"
    assert delay_rules(PacketFault(), 7) == ["-A SB-PACKET-OUT -o lo -j RETURN"]
    assert "--queue-bypass" in delay_rules(PacketFault(delay_ms=5), 7)[-1]


def test_the_delay_listener_reads_packet_ids_and_acks_from_netlink() -> None:
    packet_hdr = nl_attr(1, struct.pack("!IHB", 4242, 0x0800, 1))
    packet = nfq_message(0, 5, packet_hdr)  # what the kernel sends: NFQNL_MSG_PACKET on queue 5
    ack = struct.pack("=IHHII", 36, 2, 0, 1, 0) + struct.pack("=i", 0) + b"\0" * 16
    refusal = struct.pack("=IHHII", 36, 2, 0, 2, 0) + struct.pack("=i", -16) + b"\0" * 16
    ids, errors = parse_messages(packet + ack + packet + refusal)
    assert ids == [4242, 4242]
    assert errors == [0, 16]
    verdict = verdict_message(5, 4242)
    assert struct.unpack_from("!II", verdict, len(verdict) - 8) == (1, 4242)  # NF_ACCEPT for that id
