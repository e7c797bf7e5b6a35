"""Local nodes for real: network namespaces, a bridge in a switch namespace, processes in cgroups."""

from __future__ import annotations

import itertools
import os
import signal
import socketserver
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from splitbrain.control import local as cluster_module
from splitbrain.control.errors import ConfigError, RemoteError
from splitbrain.control.local import LocalCluster, cleanup_run, host_ifname, leftover_runs, run_cgroup
from splitbrain.control.remote import LocalRemote, run_checked

from tests.integration.helpers import (
    ECHO_CLIENT,
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
# Forks a daemon that leaves the process group (setsid), writes its pid, and lives on; the parent exits.
DAEMON = """
import os, sys, time
if os.fork() == 0:
    os.setsid()
    with open(sys.argv[1], "w") as f:
        f.write(str(os.getpid()))
    time.sleep(300)
"""

_run_ids = itertools.count(1)


def fresh_run_id() -> str:
    return f"t{os.getpid()}-{next(_run_ids)}"



def interface_exists(name: str) -> bool:
    return subprocess.run(["ip", "link", "show", name], capture_output=True).returncode == 0




def read_pid(path: Path) -> int:
    assert wait_for(lambda: path.exists() and path.read_text().strip() != ""), f"no pid in {path}"
    return int(path.read_text())


def start_echo(remote: LocalRemote, address: str) -> None:
    remote.spawn([sys.executable, "-c", ECHO_SERVER, str(ECHO_PORT)], log="echo.log")
    assert wait_for(lambda: host_reaches(address)), f"echo server on {remote.node} did not come up"




class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(4096):
            self.request.sendall(data)


@contextmanager
def echo_on_host(address: str) -> Iterator[int]:
    server = socketserver.ThreadingTCPServer((address, 0), _Echo)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    run_id = fresh_run_id()
    nodes = LocalCluster(run_id, 3, log_dir=tmp_path / "nodes")
    try:
        yield nodes.up()
    finally:
        nodes.down()
        assert run_namespaces(run_id) == [], "a namespace of the run survived down()"


@needs_root
@pytest.mark.timeout(30)
def test_three_nodes_talk_tcp_to_each_other_and_to_the_host(cluster: LocalCluster) -> None:
    assert cluster.nodes == ["node1", "node2", "node3"]
    assert len(set(cluster.addresses.values())) == 3
    for node, address in cluster.addresses.items():
        start_echo(cluster.remote(node), address)
    for src, dst in itertools.permutations(cluster.nodes, 2):
        assert node_reaches(cluster.remote(src), cluster.addresses[dst]), f"{src} cannot reach {dst}"
    # and every node reaches the harness on the host side
    with echo_on_host(cluster.host_address) as port:
        for node in cluster.nodes:
            client = [sys.executable, "-c", ECHO_CLIENT, cluster.host_address, str(port), "2"]
            assert cluster.remote(node).exec(client, timeout=10).ok, f"{node} cannot reach the host"


@needs_root
@pytest.mark.timeout(30)
def test_commands_are_argument_lists_run_inside_the_node(cluster: LocalCluster) -> None:
    remote = cluster.remote("node2")
    echoed = remote.exec(["echo", "$HOME; rm -rf /nothing"])
    assert echoed.ok and echoed.stdout == "$HOME; rm -rf /nothing\n"  # no shell expanded it
    assert remote.exec(["cat"], stdin="from stdin").stdout == "from stdin"
    links = run_checked(remote, ["ip", "-o", "link"]).stdout
    assert "eth0" in links and "br0" not in links  # the node's own namespace, not the switch's
    with pytest.raises(RemoteError) as failure:
        run_checked(remote, ["ls", "/definitely/not/here"])
    assert failure.value.node == "node2" and "No such file" in str(failure.value)
    with pytest.raises(TypeError):
        remote.exec("echo hi")  # type: ignore[arg-type]


@needs_root
@pytest.mark.timeout(30)
def test_spawned_output_goes_to_the_node_log(cluster: LocalCluster, tmp_path: Path) -> None:
    handle = cluster.remote("node1").spawn(["sh", "-c", "echo to-stdout; echo to-stderr >&2"], log="talk.log")
    assert handle.wait(10) == 0
    log = tmp_path / "nodes" / "node1" / "talk.log"
    assert log.read_text().splitlines() == ["to-stdout", "to-stderr"]


@needs_root
@pytest.mark.timeout(30)
def test_kill_and_pause_reach_a_daemon_that_left_the_process_group(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    pid_file = tmp_path / "daemon.pid"
    handle = cluster.remote("node1").spawn([sys.executable, "-c", DAEMON, str(pid_file)])
    daemon = read_pid(pid_file)
    assert os.getpgid(daemon) != handle.pgid  # it really escaped the group
    assert handle.alive()

    handle.pause()
    assert "frozen 1" in (handle.cgroup.path / "cgroup.events").read_text()  # type: ignore[union-attr]
    handle.resume()

    handle.kill(signal.SIGKILL)
    assert handle.wait(10) is not None
    assert wait_for(lambda: process_gone(daemon))
    assert not handle.alive()
    handle.kill(signal.SIGKILL)  # a dead process: nothing to reach, nothing fails
    handle.pause()
    handle.resume()


@needs_root
@pytest.mark.timeout(30)
def test_down_removes_every_trace_and_is_idempotent(tmp_path: Path) -> None:
    run_id = fresh_run_id()
    nodes = LocalCluster(run_id, 2, log_dir=tmp_path / "nodes")
    with nodes:
        handle = nodes.remote("node1").spawn([sys.executable, "-c", DAEMON, str(tmp_path / "pid")])
        daemon = read_pid(tmp_path / "pid")
        assert len(run_namespaces(run_id)) == 3  # two nodes and the switch
        assert interface_exists(host_ifname(run_id))
    assert run_namespaces(run_id) == []
    assert not interface_exists(host_ifname(run_id))
    handle.kill(signal.SIGKILL)  # after down(): the handle is harmless
    assert wait_for(lambda: process_gone(daemon))
    cgroup = run_cgroup(run_id)
    assert cgroup is None or not cgroup.exists()
    nodes.down()  # again: nothing left, nothing fails


@needs_root
@pytest.mark.timeout(30)
def test_cleanup_run_removes_a_killed_runs_leftovers_and_nothing_of_other_runs(tmp_path: Path) -> None:
    left_behind = LocalCluster(fresh_run_id(), 2, log_dir=tmp_path / "a")
    # A run whose id starts like the other's: cleanup must match names exactly, not by prefix.
    neighbour = LocalCluster(left_behind.run_id + "-n1", 2, log_dir=tmp_path / "b")
    try:
        left_behind.up()
        neighbour.up()
        start_echo(neighbour.remote("node2"), neighbour.addresses["node2"])
        left_behind.remote("node2").spawn([sys.executable, "-c", DAEMON, str(tmp_path / "pid")])
        daemon = read_pid(tmp_path / "pid")

        assert {left_behind.run_id, neighbour.run_id} <= set(leftover_runs())
        removed = cleanup_run(left_behind.run_id)  # as if the harness had been killed with -9

        assert any("namespace" in r for r in removed)
        assert run_namespaces(left_behind.run_id) == []
        assert wait_for(lambda: process_gone(daemon))
        assert len(run_namespaces(neighbour.run_id)) == 3
        assert host_reaches(neighbour.addresses["node2"]), "cleanup of one run broke another"
        assert cleanup_run(left_behind.run_id) == []
        assert left_behind.run_id not in leftover_runs() and neighbour.run_id in leftover_runs()
    finally:
        left_behind.down()
        neighbour.down()
    assert run_namespaces(neighbour.run_id) == []


@needs_root
@pytest.mark.timeout(30)
def test_a_run_id_in_use_is_refused_without_touching_the_other_run(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    start_echo(cluster.remote("node1"), cluster.addresses["node1"])
    twin = LocalCluster(cluster.run_id, 3, log_dir=tmp_path / "twin")
    with pytest.raises(ConfigError, match="already has namespaces"):
        twin.up()
    assert host_reaches(cluster.addresses["node1"])


@needs_root
@pytest.mark.timeout(30)
def test_a_given_subnet_that_overlaps_a_route_is_refused(tmp_path: Path) -> None:
    route = subprocess.run(["ip", "-4", "route", "show", "scope", "link"], capture_output=True, text=True)
    taken = route.stdout.split()[0] if route.stdout.strip() else None
    if taken is None:
        pytest.skip("this machine has no link route to collide with")
    run_id = fresh_run_id()
    nodes = LocalCluster(run_id, 2, subnet=taken, log_dir=tmp_path)
    with pytest.raises(ConfigError, match="overlaps"):
        nodes.up()
    assert run_namespaces(run_id) == []


def test_without_root_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cluster_module.os, "geteuid", lambda: 1000)
    with pytest.raises(ConfigError) as refused:
        LocalCluster("noroot", 3).up()
    assert str(refused.value) == "local nodes need root (network namespaces)"


def test_bad_run_ids_and_sizes_are_refused_before_touching_anything() -> None:
    with pytest.raises(ConfigError, match="run id"):
        LocalCluster("../etc", 3)
    with pytest.raises(ConfigError, match="nodes"):
        LocalCluster("ok", 0)
    with pytest.raises(ConfigError, match="IPv4 network"):
        LocalCluster("ok", 3, subnet="10.1.2.3/33")
