"""Power cuts (``--nemesis lose-unfsynced``): every write a node had not fsynced is lost, and it crashes.

At setup each node's data directory (``HasDataFiles.directory``) is remounted on the volatile file system
(control/volatile_fs.py: FUSE, in memory, durable only what was fsynced), the target restarted on it, so
this costs only the runs that ask for it. A fault kills the node's process and tells its file system to
cut the power: what was not durable is discarded and the file system remounted, the node staying down
until the fault's end (``stop-lose-unfsynced`` starts it). The completion lists the lost writes, each
``{"node", "file", "offset", "length"}`` (``gone``: a file whose creation was never made durable).

Where the file system runs: for local nodes on this machine, mounted here (the nodes' processes share this
machine's mounts); for Docker nodes also on this machine, the daemon mounting it in the container's mount
namespace over the bind-mounted data directory (control/volatile_fs.py), so the container needs no
/dev/fuse, no FUSE package and no privilege. Any other node (an SSH host) has its files elsewhere: the
daemon runs there (NodeVolatileMount), shipped with mfusepy's single file through the node's Remote,
which needs the host's python3 and libfuse 3 (Debian's ``fuse3``); a host without them is refused in one
line before anything is mounted.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from splitbrain.control import volatile_fs
from splitbrain.control.docker import DockerRemote, container_state
from splitbrain.control.errors import ConfigError, RemoteError
from splitbrain.control.remote import LocalRemote, ProcessHandle, Remote, run_checked
from splitbrain.control.target import HasDataFiles, Killable
from splitbrain.histories.op import Op
from splitbrain.nemesis.base import NemesisContext, completed

START, STOP = "start-lose-unfsynced", "stop-lose-unfsynced"
MOUNT_WAIT_S = 20.0
COMMAND_TIMEOUT_S = 60.0


def _socket_name(*parts: str) -> str:
    """An abstract socket's name (nothing on disk to clean up), unique to this harness and directory."""
    return "splitbrain-vfs-" + hashlib.sha1(":".join((str(os.getpid()), *parts)).encode()).hexdigest()[:16]


class _DaemonMount:
    """What both mounts share: a daemon answering ``command(...)``, ``where`` it runs (for errors)."""

    directory: str
    where: str

    def command(self, command: str) -> dict[str, Any]:
        raise NotImplementedError

    def _await_mount(self, exited: Any, log_hint: str) -> None:
        """Until the daemon answers a ping (mounted); RemoteError when it exits first or takes too long."""
        deadline = time.monotonic() + MOUNT_WAIT_S
        while time.monotonic() < deadline:
            if exited():
                raise RemoteError(self.where, ["volatile_fs", self.directory], f"the FUSE daemon exited ({log_hint})")
            try:
                if self.command("ping").get("ok"):
                    return
            except (OSError, ValueError):
                time.sleep(0.05)
        raise RemoteError(self.where, ["volatile_fs", self.directory], f"not mounted after {MOUNT_WAIT_S:.0f} s")

    def cut(self) -> list[dict[str, Any]]:
        answer = self.command("cut")
        if "error" in answer:
            raise RemoteError(self.where, ["volatile_fs", "cut", self.directory], answer["error"])
        return answer["lost"]


class VolatileMount(_DaemonMount):
    """One node's data directory on the volatile file system: the daemon on this machine and its socket."""

    where = "localhost"

    def __init__(self, directory: str, log: Path | None, namespace_of: int | None = None) -> None:
        self.directory = os.path.abspath(directory)
        self.namespace_of = namespace_of  # mount in this process's mount namespace (a container's init)
        self.socket_name = _socket_name(self.directory)
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
        process = self.process
        self._await_mount(lambda: process.poll() is not None, f"see {self.log}")

    def command(self, command: str) -> dict[str, Any]:
        return volatile_fs.send("@" + self.socket_name, command, COMMAND_TIMEOUT_S)

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


# Prints what the host lacks for a volatile mount, nothing when it has it all.
_PROBE = r"""
command -v python3 > /dev/null || { echo python3; exit 0; }
[ -c /dev/fuse ] || echo /dev/fuse
command -v fusermount3 > /dev/null || echo fusermount3
python3 -c 'import ctypes.util, sys; sys.exit(not ctypes.util.find_library("fuse3"))' || echo "libfuse 3"
"""
# $1 a mount point: a daemon that died leaves its mount behind ("transport endpoint is not connected").
_UNMOUNT_IF_LEFT = r"""
if grep -qs " $1 fuse.splitbrain-volatile " /proc/self/mounts; then fusermount3 -u -z "$1"; fi
"""


class NodeVolatileMount(_DaemonMount):
    """The same on a node that is another machine (an SSH host): the daemon runs there, spawned through
    the node's Remote (so the run's clean-up kills it like the target's processes), and every command goes
    through ``volatile_fs.py --send`` on the node. Its two files are shipped beside the data directory, not
    in it (the mount covers that)."""

    def __init__(self, remote: Remote, directory: str) -> None:
        self.remote = remote
        self.where = remote.node
        self.directory = posixpath.normpath(directory)
        self.tools = self.directory + ".volatile-fs"
        self.script = f"{self.tools}/volatile_fs.py"
        self.socket = "@" + _socket_name(remote.node, self.directory)
        self.process: ProcessHandle | None = None

    def check_host(self) -> None:
        """ConfigError when the host cannot mount it (one line, with what it lacks)."""
        probe = run_checked(self.remote, ["sh", "-c", _PROBE], timeout=COMMAND_TIMEOUT_S)
        missing = [line for line in probe.stdout.splitlines() if line.strip()]
        if missing:
            raise ConfigError(f"lose-unfsynced on {self.remote.node}: the host lacks {', '.join(missing)} "
                              "(Debian: apt-get install python3 fuse3)")

    def mount(self) -> None:
        import mfusepy

        run_checked(self.remote, ["mkdir", "-p", self.directory, self.tools], timeout=COMMAND_TIMEOUT_S)
        self.remote.upload(volatile_fs.__file__, self.script)
        self.remote.upload(mfusepy.__file__, f"{self.tools}/mfusepy.py")
        self.process = self.remote.spawn(["python3", self.script, self.directory, self.socket], log="volatile-fs.log")
        process = self.process
        self._await_mount(lambda: not process.alive(), "see volatile-fs.log in the node's logs")

    def command(self, command: str) -> dict[str, Any]:
        result = self.remote.exec(["python3", self.script, "--send", self.socket, command], timeout=COMMAND_TIMEOUT_S)
        if not result.ok:
            raise OSError(result.stderr.strip() or f"exit code {result.rc}")
        return json.loads(result.stdout)

    def unmount(self) -> None:
        if self.process is None:
            return
        process, self.process = self.process, None
        try:
            self.command("stop")
        except (OSError, RemoteError, ValueError):
            process.kill()
        if process.wait(30) is None:
            process.kill()
            process.wait(10)
        run_checked(self.remote, ["sh", "-c", _UNMOUNT_IF_LEFT, "sh", self.directory], timeout=COMMAND_TIMEOUT_S)


Mount = VolatileMount | NodeVolatileMount


class PowerNemesis:
    """``start-lose-unfsynced`` ``{"nodes": [...]}`` and ``stop-lose-unfsynced`` (see the module's doc)."""

    def __init__(self, ctx: NemesisContext) -> None:
        self.ctx = ctx
        self.mounts: dict[str, Mount] = {}
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
        with self._lock:
            nodes = self.ctx.nodes
            mounts = {node: _mount_for(self.ctx.remotes[node], self.target.data_files(test, node).directory)
                      for node in nodes}
            for mount in mounts.values():  # refused before anything is stopped
                if isinstance(mount, NodeVolatileMount):
                    mount.check_host()
            for node in nodes:  # every process stops first, so no node's files change while being copied
                self.target.kill(test, node)
            for node in nodes:
                self.mounts[node] = mounts[node]
                mounts[node].mount()
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


def _mount_for(remote: Any, directory: str) -> Mount:
    """Local and Docker nodes: the daemon here; any other node: the daemon on it."""
    if isinstance(remote, LocalRemote | DockerRemote):
        return VolatileMount(directory, Path(remote.log_dir) / "volatile-fs.log", _namespace_of(remote))
    return NodeVolatileMount(remote, directory)


def _namespace_of(remote: Any) -> int | None:
    """The process whose mount namespace gets the node's mount: a Docker node's first process; None for a
    local node (this machine's namespace)."""
    if not isinstance(remote, DockerRemote):
        return None
    state = container_state(remote.container)
    if not state or not state.get("Pid"):
        raise RemoteError(remote.node, ["docker", "inspect", remote.container], f"container not running: {state}")
    return int(state["Pid"])
