"""ZooKeeper as a target: one QuorumPeerMain JVM per node, started through the node's spawn callback.

The JVM itself is the spawned program (argv[0] is the real ``java``), so kill and pause (the node's
cgroup) and clock skew (the vDSO patch at exec) reach it. Each node gets a private conf dir (zoo.cfg,
log4j.properties logging to stdout, which the spawn callback writes to nodes/<node>/server.log) and a
data dir with its ``myid``, both under ``data_root/<node>``. Every port (client 2181, quorum 2888,
election 3888) is bound to the node's own address inside its network namespace.

A short tickTime keeps a test fast: with tickTime 200 ms and syncLimit 5, a follower cut off from its
leader gives up on it after about a second, and a new leader is elected within a few seconds.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from splitbrain.control.errors import ConfigError, RemoteError
from splitbrain.control.remote import NodeFiles
from splitbrain.control.target import DataFiles, OneProcessPerNode

CLIENT_PORT, QUORUM_PORT, ELECTION_PORT = 2181, 2888, 3888
JARS = ("/usr/share/java/zookeeper.jar", "/usr/share/java/slf4j-log4j12.jar", "/usr/share/java/log4j-1.2.jar")
MAIN_CLASS = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
LOG4J_PROPERTIES = """\
log4j.rootLogger=INFO, CONSOLE
log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender
log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout
log4j.appender.CONSOLE.layout.ConversionPattern=%d{ISO8601} [myid:%X{myid}] %-5p [%t:%C{1}@%L] - %m%n
"""

# spawn(node, argv, env, log=None) -> process handle (kill/pause/resume/alive/wait); see harness/nodes.py
Spawner = Callable[..., Any]


def java_binary() -> str:
    """The real java executable (not the alternatives symlink), so the vDSO patch sees the JVM's exec."""
    found = shutil.which("java")
    if found is None:
        raise ConfigError("target zookeeper needs java (apt-get install default-jre-headless)")
    return os.path.realpath(found)


def zoo_cfg(node: str, addresses: Mapping[str, str], data_dir: Path, tick_ms: int) -> str:
    """zoo.cfg for ``node``: server ids are 1.. in sorted node order (the same in every node's file)."""
    lines = [f"tickTime={tick_ms}", "initLimit=20", "syncLimit=5", f"dataDir={data_dir}",
             f"clientPort={CLIENT_PORT}", f"clientPortAddress={addresses[node]}",
             "admin.enableServer=false", "4lw.commands.whitelist=*", "standaloneEnabled=false",
             "preAllocSize=4096", "autopurge.purgeInterval=0", "maxClientCnxns=0"]
    for server_id, name in enumerate(sorted(addresses), start=1):
        lines.append(f"server.{server_id}={addresses[name]}:{QUORUM_PORT}:{ELECTION_PORT}")
    return "\n".join(lines) + "\n"


def four_letter_word(address: str, word: str, timeout_s: float = 0.5) -> str | None:
    """The answer of a ZooKeeper four-letter command (srvr, mntr, ruok), or None when the node does not
    answer in time (dead, paused, or not listening yet)."""
    try:
        with socket.create_connection((address, CLIENT_PORT), timeout=timeout_s) as s:
            s.sendall(word.encode())
            chunks = []
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                chunks.append(chunk)
            return b"".join(chunks).decode(errors="replace")
    except OSError:
        return None


def server_mode(srvr_answer: str | None) -> str | None:
    """``leader``, ``follower``, ... from a ``srvr`` answer; None when the node is not serving."""
    if not srvr_answer:
        return None
    for line in srvr_answer.splitlines():
        if line.startswith("Mode:"):
            return line.split(":", 1)[1].strip()
    return None


class ZooKeeperTarget(OneProcessPerNode):
    """Killable, Pausable, HasPrimaries, WaitsReady. ``spawn(node, argv, env)`` starts the node's JVM."""

    def __init__(self, addresses: Mapping[str, str], data_root: Path, spawn: Spawner, *, tick_ms: int = 200,
                 read: str = "sync", heap: str = "256m", files: NodeFiles | None = None) -> None:
        if read not in ("sync", "local"):
            raise ConfigError(f"target zookeeper: unknown read mode {read!r}; expected sync or local")
        self._init_nodes(addresses, data_root, spawn, files)
        self.tick_ms = tick_ms
        self.read = read
        self.heap = heap

    def hosts(self, node: str) -> str:
        """The kazoo connect string of one node only: a client never fails over to another server."""
        return f"{self.addresses[node]}:{CLIENT_PORT}"

    def conf_dir(self, node: str) -> Path:
        return self.data_root / node / "conf"

    def command(self, node: str) -> list[str]:
        classpath = os.pathsep.join([str(self.conf_dir(node)), *JARS])
        return [java_binary(), f"-Xmx{self.heap}", "-Xms32m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                "-Djava.net.preferIPv4Stack=true", f"-Dlog4j.configuration=file:{self.conf_dir(node)}/log4j.properties",
                "-Dzookeeper.jmx.log4j.disable=true", "-cp", classpath, MAIN_CLASS,
                str(self.conf_dir(node) / "zoo.cfg")]

    def write_config(self, node: str) -> None:
        """myid, zoo.cfg and log4j.properties, on the node (through ``files``)."""
        data_dir = self.data_root / node / "data"
        conf = self.conf_dir(node)
        self.files.write_text(node, data_dir / "myid", f"{self.nodes.index(node) + 1}\n")
        self.files.write_text(node, conf / "zoo.cfg", zoo_cfg(node, self.addresses, data_dir, self.tick_ms))
        self.files.write_text(node, conf / "log4j.properties", LOG4J_PROPERTIES)

    # -- Target ----------------------------------------------------------------------------------------
    def setup(self, test: Any, node: str) -> None:
        self.write_config(node)
        self.start(test, node)

    def teardown(self, test: Any, node: str) -> None:
        self.stop_process(node)

    def modes(self) -> dict[str, str | None]:
        return {n: server_mode(four_letter_word(self.addresses[n], "srvr")) for n in self.nodes}

    def wait_ready(self, test: Any, timeout_s: float = 30.0) -> None:
        """Until one node leads, every other follows, and a write through every node succeeds."""
        from splitbrain.targets.zookeeper.client import ready_write

        deadline = time.monotonic() + timeout_s
        last = "no answer"
        while time.monotonic() < deadline:
            modes = self.modes()
            leaders = [n for n, m in modes.items() if m == "leader"]
            if len(leaders) == 1 and all(m in ("leader", "follower") for m in modes.values()):
                failed = [n for n in self.nodes if not ready_write(self.hosts(n), timeout_s=5)]
                if not failed:
                    return
                last = f"a leader, but writes through {', '.join(failed)} failed"
            else:
                last = f"modes {modes}"
            time.sleep(0.2)
        raise RemoteError("zookeeper", ["wait_ready"], f"the ensemble did not form in {timeout_s:.0f} s: {last}")

    # -- Killable / Pausable ---------------------------------------------------------------------------
    def launch(self, node: str) -> tuple[list[str], dict[str, str], str | None]:
        """The node's process: argv, environment, log file name (OneProcessPerNode starts, kills, pauses)."""
        return self.command(node), {}, None

    # -- HasPrimaries / HasLogs ------------------------------------------------------------------------
    def primaries(self, test: Any) -> Sequence[str]:
        """The nodes whose ``srvr`` says ``Mode: leader`` (two during a split, until the old one steps down)."""
        return sorted(n for n, mode in self.modes().items() if mode == "leader")

    def log_files(self, test: Any, node: str) -> list[str]:
        return []  # log4j writes to stdout, which the spawn callback already puts in nodes/<node>/

    # -- HasDataFiles -----------------------------------------------------------------------------------
    def data_files(self, test: Any, node: str) -> DataFiles:
        """ZooKeeper's transaction logs (preallocated in 64 MB steps) and snapshots, in dataDir/version-2."""
        return DataFiles(str(self.data_root / node / "data"), logs=("version-2/log.*",),
                         snapshots=("version-2/snapshot.*",))
