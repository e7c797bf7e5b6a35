"""Power cuts (``--nemesis lose-unfsynced``): every write a node had not fsynced is lost, and it crashes.

At setup each node's data directory (``HasDataFiles.directory``) is remounted on the volatile file system
(control/volatile_fs.py: FUSE, in memory, durable only what was fsynced), the target restarted on it, so
this costs only the runs that ask for it. A fault kills the node's process and tells its file system to
cut the power: what was not durable is discarded and the file system remounted, the node staying down
until the fault's end (``stop-lose-unfsynced`` starts it). The completion lists the lost writes, each
``{"node", "file", "offset", "length"}`` (``gone``: a file whose creation was never made durable).

Where the file system runs: always on this machine. For local nodes it is mounted here (the nodes'
processes share this machine's mounts); for Docker nodes the daemon mounts it in the container's mount
namespace over the bind-mounted data directory (control/volatile_fs.py), so the container needs no
/dev/fuse, no FUSE package and no privilege. SSH nodes are refused in one line: their files are on
another machine.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from splitbrain.control.docker import DockerRemote, container_state
from splitbrain.control.errors import ConfigError, RemoteError
from splitbrain.control.remote import LocalRemote
from splitbrain.control.target import HasDataFiles, Killable
from splitbrain.histories.op import Op
from splitbrain.nemesis.base import NemesisContext, completed

START, STOP = "start-lose-unfsynced", "stop-lose-unfsynced"
MOUNT_WAIT_S = 20.0
COMMAND_TIMEOUT_S = 60.0


class VolatileMount:
    """One node's data directory on the volatile file system: the daemon on this machine and its socket."""

    def __init__(self, directory: str, log: Path | None, namespace_of: int | None = None) -> None:
        self.directory = os.path.abspath(directory)
        self.namespace_of = namespace_of  # mount in this process's mount namespace (a container's init)
        digest = hashlib.sha1(f"{os.getpid()}:{self.directory}".encode()).hexdigest()[:16]
        self.socket_name = f"splitbrain-vfs-{digest}"  # abstract: nothing on disk to clean up
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def mount(self) -> None:
        os.makedirs(self.directory, exist_ok=True)
        out = open(self.log, "ab") if self.log is not None else subprocess.DEVNULL  # noqa: SIM115 - the child keeps it
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "splitbrain.control.volatile_fs", self.directory, "@" + self.socket_name,
                 str(os.getpid()), *([str(self.namespace_of)] if self.namespace_of is not None else [])], stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True)
        finally:
            if out is not subprocess.DEVNULL:
                out.close()
        deadline = time.monotonic() + MOUNT_WAIT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RemoteError("localhost", ["volatile_fs", self.directory],
                                  f"the FUSE daemon exited with {self.process.returncode} (see {self.log})")
            try:
                if self.command("ping").get("ok"):
                    return
            except OSError:
                time.sleep(0.05)
        raise RemoteError("localhost", ["volatile_fs", self.directory], f"not mounted after {MOUNT_WAIT_S:.0f} s")

    def command(self, command: str) -> dict[str, Any]:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(COMMAND_TIMEOUT_S)
            s.connect("\0" + self.socket_name)
            s.sendall(command.encode() + b"\n")
            with s.makefile("r") as stream:
                line = stream.readline()
        if not line:
            raise OSError(f"the FUSE daemon of {self.directory} closed the connection")
        return json.loads(line)

    def cut(self) -> list[dict[str, Any]]:
        answer = self.command("cut")
        if "error" in answer:
            raise RemoteError("localhost", ["volatile_fs", "cut", self.directory], answer["error"])
        return answer["lost"]

    def unmount(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            try:
                self.command("stop")
            except OSError:
                self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None
        if self.namespace_of is None and os.path.ismount(self.directory):  # a dead daemon's mount: take it off
            subprocess.run(["fusermount3", "-u", "-z", self.directory], capture_output=True, timeout=30)


class PowerNemesis:
    """``start-lose-unfsynced`` ``{"nodes": [...]}`` and ``stop-lose-unfsynced`` (see the module's doc)."""

    def __init__(self, ctx: NemesisContext) -> None:
        self.ctx = ctx
        self.mounts: dict[str, VolatileMount] = {}
        self.down: set[str] = set()
        self._lock = threading.RLock()

    @property
    def target(self) -> Any:
        return self.ctx.target

    def fs(self) -> set[str]:
        return {START, STOP}

    def setup(self, test: Any) -> None:
        missing = [what for what, protocol in (("data_files", HasDataFiles), ("kill/start", Killable))
                   if not isinstance(self.target, protocol)]
        if missing:
            raise ConfigError(f"lose-unfsynced needs a target that implements {' and '.join(missing)}; "
                              f"{type(self.target).__name__} does not")
        remote_kinds = {type(r).__name__ for r in self.ctx.remotes.values()
                        if not isinstance(r, LocalRemote | DockerRemote)}
        if remote_kinds:
            raise ConfigError("lose-unfsynced runs on local and Docker nodes (the FUSE file system runs on "
                              f"this machine, where their data directories are); these nodes are "
                              f"{', '.join(sorted(remote_kinds))}")
        with self._lock:
            nodes = self.ctx.nodes
            for node in nodes:  # every process stops first, so no node's files change while being copied
                self.target.kill(test, node)
            for node in nodes:
                remote = self.ctx.remotes[node]
                log_dir = getattr(remote, "log_dir", None)
                log = Path(log_dir) / "volatile-fs.log" if log_dir is not None else None
                mount = VolatileMount(self.target.data_files(test, node).directory, log, _namespace_of(remote))
                self.mounts[node] = mount
                mount.mount()
            for node in nodes:
                self.target.start(test, node)
            if callable(getattr(self.target, "wait_ready", None)):
                self.target.wait_ready(test, 30.0)

    def invoke(self, test: Any, op: Op) -> Op:
        with self._lock:
            if op.f == STOP:
                started, errors = self._start_down(test)
                return completed(op, {"started": started}, error="; ".join(errors) or None)
            if op.f != START:
                return completed(op, op.value, error=f"the power nemesis does not handle {op.f!r}")
            nodes = (op.value or {}).get("nodes")
            if not isinstance(nodes, list) or not nodes or set(nodes) - set(self.mounts):
                return completed(op, op.value, error=f"expected a non-empty list of nodes of {sorted(self.mounts)}, "
                                                     f"got {nodes!r}")
            lost, errors = [], []
            for node in sorted(set(nodes)):
                self.target.kill(test, node)
                self.down.add(node)
                try:
                    cut = self.mounts[node].cut()
                except (OSError, RemoteError, ValueError) as e:
                    errors.append(f"{node}: {e}")
                    continue
                root = self.mounts[node].directory
                lost += [{"node": node, **w, "file": root + w["file"]} for w in cut]
            return completed(op, {"nodes": sorted(set(nodes)), "lost": lost}, error="; ".join(errors) or None)

    def _start_down(self, test: Any) -> tuple[list[str], list[str]]:
        started, errors = [], []
        for node in sorted(self.down):
            try:
                self.target.start(test, node)
            except (RemoteError, OSError) as e:
                errors.append(f"{node}: {e}")
            else:
                started.append(node)
                self.down.discard(node)
        return started, errors

    def heal(self, test: Any) -> None:
        with self._lock:
            errors = self._start_down(test)[1]
        if errors:
            raise RemoteError("nemesis", ["heal", "lose-unfsynced"], "; ".join(errors))

    def teardown(self, test: Any) -> None:
        """After the target's processes are gone: unmount every volatile file system."""
        with self._lock:
            for mount in self.mounts.values():
                mount.unmount()
            self.mounts.clear()


def _namespace_of(remote: Any) -> int | None:
    """The process whose mount namespace gets the node's mount: a Docker node's first process; None for a
    local node (this machine's namespace)."""
    if not isinstance(remote, DockerRemote):
        return None
    state = container_state(remote.container)
    if not state or not state.get("Pid"):
        raise RemoteError(remote.node, ["docker", "inspect", remote.container], f"container not running: {state}")
    return int(state["Pid"])
