"""Targets put their config files and data directories on the nodes through NodeFiles, never straight
onto this machine's disk (on SSH hosts the two differ); RemoteFiles writes through a node's commands."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest
from splitbrain.control.errors import RemoteError
from splitbrain.control.remote import ExecResult, LocalFiles, RemoteFiles


class RecordingFiles:
    """NodeFiles that only records what a target asked for, per node."""

    def __init__(self) -> None:
        self.dirs: list[tuple[str, str, int | None]] = []
        self.texts: dict[tuple[str, str], str] = {}

    def make_dirs(self, node: str, *paths: str | Path, mode: int | None = None) -> None:
        self.dirs += [(node, str(p), mode) for p in paths]

    def write_text(self, node: str, path: str | Path, text: str) -> None:
        self.texts[(node, str(path))] = text


class ShellRemote:
    """A Remote whose commands run on this machine (what RemoteFiles sends, executed for real)."""

    node = "node1"
    timeout = 10.0

    def __init__(self) -> None:
        self.commands: list[list[str]] = []

    def exec(self, cmd: Sequence[str], *, stdin: str | bytes | None = None, timeout: float | None = None) -> ExecResult:
        self.commands.append(list(cmd))
        data = stdin.encode() if isinstance(stdin, str) else stdin
        done = subprocess.run(list(cmd), input=data, capture_output=True, timeout=timeout)
        return ExecResult(done.returncode, done.stdout.decode(), done.stderr.decode())


def no_spawn(*args: object, **kwargs: object) -> None:
    return None


ADDRESSES = {"node1": "10.9.0.2", "node2": "10.9.0.3", "node3": "10.9.0.4", "node4": "10.9.0.5"}


def test_zookeeper_writes_its_config_on_the_node_not_here(tmp_path: Path) -> None:
    from splitbrain.targets.zookeeper.target import ZooKeeperTarget

    files = RecordingFiles()
    target = ZooKeeperTarget(dict(list(ADDRESSES.items())[:3]), tmp_path / "data", no_spawn, files=files)
    target.write_config("node2")
    written = {path for node, path in files.texts if node == "node2"}
    assert written == {f"{tmp_path}/data/node2/data/myid", f"{tmp_path}/data/node2/conf/zoo.cfg",
                       f"{tmp_path}/data/node2/conf/log4j.properties"}
    assert files.texts[("node2", f"{tmp_path}/data/node2/data/myid")] == "2\n"
    assert "server.3=10.9.0.4:2888:3888" in files.texts[("node2", f"{tmp_path}/data/node2/conf/zoo.cfg")]
    assert not (tmp_path / "data").exists()  # nothing on this machine's disk


@pytest.mark.parametrize("balancer, config_name", [("nginx", "nginx.conf"), ("haproxy", "haproxy.cfg")])
def test_the_balancer_config_goes_to_the_balancer_node(tmp_path: Path, balancer: str, config_name: str) -> None:
    from splitbrain.targets.lb.target import LbTarget

    files = RecordingFiles()
    target = LbTarget(ADDRESSES, tmp_path / "data", no_spawn, balancer=balancer, files=files)
    target.write_lb_config()
    config = f"{tmp_path}/data/node1/{config_name}"
    assert list(files.texts) == [("node1", config)]
    assert "10.9.0.3:9000" in files.texts[("node1", config)]  # a backend
    assert config in target.lb_command()
    if balancer == "nginx":  # its temp directories, on the same node
        assert {(n, p) for n, p, _ in files.dirs} >= {("node1", f"{tmp_path}/data/node1/proxy")}
    assert not (tmp_path / "data").exists()


def test_etcd_and_raft_make_their_data_dirs_on_the_node(tmp_path: Path) -> None:
    from splitbrain.targets.etcd.target import EtcdTarget
    from splitbrain.targets.raft.target import RaftTarget

    files = RecordingFiles()
    nodes = dict(list(ADDRESSES.items())[:3])
    EtcdTarget(nodes, tmp_path / "etcd", no_spawn, files=files).setup(None, "node3")
    RaftTarget(nodes, tmp_path / "raft", no_spawn, files=files).setup(None, "node1")
    assert files.dirs == [("node3", f"{tmp_path}/etcd/node3", 0o700), ("node1", f"{tmp_path}/raft/node1", None)]
    assert not (tmp_path / "etcd").exists() and not (tmp_path / "raft").exists()


def test_remote_files_write_exact_text_to_awkward_paths(tmp_path: Path) -> None:
    remote = ShellRemote()
    files = RemoteFiles(lambda node: remote)
    path = tmp_path / "a dir with 'quotes' and $HOME" / "nested" / "zoo.cfg"
    text = "line one\n\ttabbed $NOT_EXPANDED `nor this`\nünïcödé\n"
    files.write_text("node1", path, text)
    assert path.read_text(encoding="utf-8") == text
    files.make_dirs("node1", tmp_path / "d1" / "x", tmp_path / "d2", mode=0o700)
    assert (tmp_path / "d1" / "x").is_dir() and (tmp_path / "d2").stat().st_mode & 0o777 == 0o700
    assert all(cmd[0] in ("sh", "mkdir", "chmod") for cmd in remote.commands)  # argument lists, no shell strings built


def test_remote_files_raise_a_remote_error_naming_the_node(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    files = RemoteFiles(lambda node: ShellRemote())
    with pytest.raises(RemoteError) as caught:
        files.write_text("node1", tmp_path / "file" / "below-a-file", "x")
    assert "node1" in str(caught.value)


def test_local_files_write_and_make_dirs(tmp_path: Path) -> None:
    files = LocalFiles()
    files.write_text("node1", tmp_path / "a" / "b.txt", "hello\n")
    files.make_dirs("node1", tmp_path / "c", mode=0o700)
    assert (tmp_path / "a" / "b.txt").read_text() == "hello\n"
    assert (tmp_path / "c").stat().st_mode & 0o777 == 0o700
