"""How the harness reaches a node: the Remote protocol, and LocalRemote for a node that is a Linux network
namespace on this machine.

Commands are argument lists, never shell strings. A spawned process gets its own process group and, where
cgroup v2 is mounted, its own cgroup, so that kill and pause reach every process it started, even a daemon
that called setsid and left the group. DockerRemote and SSHRemote implement the same protocol elsewhere.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import Protocol, runtime_checkable

from splitbrain.control.errors import ConfigError, RemoteError

# How long pause() waits for the kernel to report a cgroup frozen before it gives up waiting.
FREEZE_WAIT_S = 2.0


@dataclass(frozen=True, slots=True)
class ExecResult:
    rc: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.rc == 0


@runtime_checkable
class ProcessHandle(Protocol):
    """A process started on a node, together with everything it started."""

    node: str
    pid: int
    pgid: int

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to every process of this handle (a setsid'd child included, where possible)."""
        ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait until no process of this handle is left; the main process's exit code, None on timeout."""
        ...

    def alive(self) -> bool: ...


@runtime_checkable
class Remote(Protocol):
    """One node, as the harness sees it. Every implementation runs commands as root on the node."""

    node: str

    def exec(
        self, cmd: Sequence[str], *, stdin: str | bytes | None = None, timeout: float | None = None
    ) -> ExecResult: ...

    def upload(self, local: str | Path, remote: str) -> None: ...

    def download(self, remote: str, local: str | Path) -> None: ...

    def spawn(
        self, cmd: Sequence[str], *, env: Mapping[str, str] | None = None, log: str | None = None
    ) -> ProcessHandle: ...


def run_checked(
    remote: Remote, cmd: Sequence[str], *, stdin: str | bytes | None = None, timeout: float | None = None
) -> ExecResult:
    """``remote.exec`` that raises RemoteError (node, command, stderr) when the command fails."""
    result = remote.exec(cmd, stdin=stdin, timeout=timeout)
    if not result.ok:
        raise RemoteError(remote.node, cmd, result.stderr or f"exit code {result.rc}")
    return result


class NodeFiles(Protocol):
    """Where a target puts the files its programs read (config files, data directories): on the node, as
    the node's processes see its file system."""

    def make_dirs(self, node: str, *paths: str | Path, mode: int | None = None) -> None:
        """``mkdir -p`` each path (and chmod it to ``mode`` when given)."""
        ...

    def write_text(self, node: str, path: str | Path, text: str) -> None:
        """Write ``text`` to ``path`` (UTF-8), making its parent directories."""
        ...


class LocalFiles:
    """NodeFiles for nodes that see this machine's files at the same paths: local nodes (namespaces share
    the mount namespace) and Docker nodes (each node's data directory is bind-mounted at its own path)."""

    def make_dirs(self, node: str, *paths: str | Path, mode: int | None = None) -> None:
        for path in paths:
            Path(path).mkdir(parents=True, exist_ok=True)
            if mode is not None:
                Path(path).chmod(mode)

    def write_text(self, node: str, path: str | Path, text: str) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text, encoding="utf-8")


# Reads the file's text on stdin: one round trip per file, and no temp file on this machine.
_WRITE_STDIN = 'mkdir -p -- "$(dirname -- "$1")" && cat > "$1"'


class RemoteFiles:
    """NodeFiles through each node's Remote (SSH hosts: their files are their own, not this machine's)."""

    def __init__(self, remote_of: Callable[[str], Remote]) -> None:
        self.remote_of = remote_of

    def make_dirs(self, node: str, *paths: str | Path, mode: int | None = None) -> None:
        if not paths:
            return
        remote = self.remote_of(node)
        run_checked(remote, ["mkdir", "-p", "--", *map(str, paths)], timeout=getattr(remote, "timeout", None))
        if mode is not None:
            run_checked(remote, ["chmod", format(mode, "o"), "--", *map(str, paths)],
                        timeout=getattr(remote, "timeout", None))

    def write_text(self, node: str, path: str | Path, text: str) -> None:
        remote = self.remote_of(node)
        run_checked(remote, ["sh", "-c", _WRITE_STDIN, "sh", str(path)], stdin=text.encode("utf-8"),
                    timeout=getattr(remote, "timeout", None))


def cgroup2_mount(mounts_file: str = "/proc/self/mounts") -> Path | None:
    """Where the cgroup v2 hierarchy is mounted (``/sys/fs/cgroup`` or, on hybrid hosts,
    ``/sys/fs/cgroup/unified``), or None when there is none."""
    return _mount_of(lambda fields: fields[2] == "cgroup2", mounts_file)


def freezer_mount(mounts_file: str = "/proc/self/mounts") -> Path | None:
    """Where the cgroup v1 freezer hierarchy is mounted (cgroup v1 and hybrid hosts), or None."""
    return _mount_of(lambda fields: fields[2] == "cgroup" and "freezer" in fields[3].split(","), mounts_file)


def _mount_of(match: Callable[[list[str]], bool], mounts_file: str) -> Path | None:
    try:
        with open(mounts_file) as f:
            for line in f:
                fields = line.split()
                if len(fields) >= 4 and match(fields):
                    return Path(fields[1])
    except OSError:
        return None
    return None


class Cgroup:
    """A cgroup v2 directory: the set of processes that kill and pause act on, whatever their group."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def child(self, name: str) -> Cgroup:
        return type(self)(self.path / name)

    def create(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)

    def exists(self) -> bool:
        return self.path.is_dir()

    def join_file(self) -> Path:
        """The file a process writes its pid to, to join this cgroup (v1 and v2 alike)."""
        return self.path / "cgroup.procs"

    def pids(self) -> list[int]:
        """Every process in this cgroup and the ones below it."""
        pids: list[int] = []
        for procs in self.path.rglob("cgroup.procs"):
            try:
                pids.extend(int(p) for p in procs.read_text().split())
            except (OSError, ValueError):
                continue  # removed while we read it
        return pids

    def populated(self) -> bool:
        try:
            return "populated 1" in (self.path / "cgroup.events").read_text()
        except OSError:
            return False

    def signal(self, sig: int) -> None:
        """Send ``sig`` to every process in the cgroup; nothing when the cgroup is gone (nothing to reach)."""
        if sig == signal.SIGKILL and (self.path / "cgroup.kill").exists():
            # Atomic: also catches a process that forks while we kill.
            (self.path / "cgroup.kill").write_text("1")
            return
        self._signal_each(sig)

    def _signal_each(self, sig: int) -> None:
        for _ in range(10):  # re-read: a process may fork between listing and signalling
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            if sig != signal.SIGKILL:
                return
            time.sleep(0.01)

    def freeze(self, frozen: bool) -> None:
        """Freeze (or thaw) every process in the cgroup; nothing when the cgroup is gone."""
        try:
            (self.path / "cgroup.freeze").write_text("1" if frozen else "0")
        except FileNotFoundError:
            return
        deadline = time.monotonic() + FREEZE_WAIT_S
        while frozen and time.monotonic() < deadline:
            try:
                if "frozen 1" in (self.path / "cgroup.events").read_text():
                    return
            except FileNotFoundError:
                return
            time.sleep(0.005)

    def remove(self) -> None:
        """Remove this cgroup and its children, deepest first; a cgroup that still holds processes stays."""
        if not self.path.is_dir():
            return
        for sub in sorted((p for p in self.path.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            try:
                sub.rmdir()
            except OSError:
                pass
        try:
            self.path.rmdir()
        except OSError:
            pass


class FreezerCgroup(Cgroup):
    """A cgroup v1 freezer directory (hosts without cgroup v2): the same set of processes, frozen through
    ``freezer.state``. v1 has no cgroup.kill: a kill freezes the cgroup first, so nothing in it can fork
    while it is signalled, then thaws it (a frozen process dies only once thawed)."""

    def populated(self) -> bool:
        return bool(self.pids())

    def signal(self, sig: int) -> None:
        if sig != signal.SIGKILL:
            self._signal_each(sig)
            return
        self.freeze(True)
        self._signal_each(sig)
        self.freeze(False)

    def freeze(self, frozen: bool) -> None:
        state = self.path / "freezer.state"
        try:
            state.write_text("FROZEN" if frozen else "THAWED")
        except FileNotFoundError:
            return
        deadline = time.monotonic() + FREEZE_WAIT_S
        while frozen and time.monotonic() < deadline:
            try:
                if state.read_text().strip() == "FROZEN":
                    return
            except FileNotFoundError:
                return
            time.sleep(0.005)


# Which mechanism kill and pause use on this machine; SPLITBRAIN_CGROUP=v2|v1|none forces one (a host
# where one misbehaves, and the tests of each on a hybrid host).
CGROUP_ENV = "SPLITBRAIN_CGROUP"
NO_CGROUP_WARNING = ("kill and pause act on process groups here (no writable cgroup v2 and no cgroup v1 "
                     "freezer): a daemon that leaves its process group is not reached")


def cgroup_base(forced: str | None = None) -> Cgroup | None:
    """The cgroup under which runs put their processes (``<hierarchy>/splitbrain``): cgroup v2 where it is
    mounted and writable, else the v1 freezer, else None (read-only cgroups, as inside containers)."""
    choice = forced if forced is not None else os.environ.get(CGROUP_ENV, "")
    candidates: list[Cgroup] = []
    if choice in ("", "v2") and (mount := cgroup2_mount()) is not None:
        candidates.append(Cgroup(mount / "splitbrain"))
    if choice in ("", "v1") and (mount := freezer_mount()) is not None:
        candidates.append(FreezerCgroup(mount / "splitbrain"))
    for base in candidates:
        try:
            base.create()
        except OSError:
            continue
        probe = "cgroup.freeze" if type(base) is Cgroup else "freezer.state"
        if (base.path / probe).exists() or _child_has(base, probe):
            return base
    return None


def _child_has(base: Cgroup, name: str) -> bool:
    """The root of a v2 hierarchy has no cgroup.freeze, its children do: look at a child."""
    probe = base.child(f"probe-{os.getpid()}")
    try:
        probe.create()
        return (probe.path / name).exists()
    except OSError:
        return False
    finally:
        try:
            probe.path.rmdir()
        except OSError:
            pass


class LocalProcess:
    """A process spawned in a local node; it and its descendants live in ``cgroup`` when there is one."""

    def __init__(self, node: str, popen: subprocess.Popen[bytes], cgroup: Cgroup | None, log: Path) -> None:
        self.node = node
        self.popen = popen
        self.pid = popen.pid
        self.pgid = popen.pid  # spawned with process_group=0: it leads its own group
        self.cgroup = cgroup
        self.log = log

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.cgroup is not None:
            self.cgroup.signal(sig)
            if sig == signal.SIGKILL:
                # A frozen process only dies once thawed.
                self.cgroup.freeze(False)
            return
        try:
            os.killpg(self.pgid, sig)
        except ProcessLookupError:
            pass
        if sig == signal.SIGKILL:
            try:
                os.killpg(self.pgid, signal.SIGCONT)
            except ProcessLookupError:
                pass

    def pause(self) -> None:
        if self.cgroup is not None:
            self.cgroup.freeze(True)
        else:
            self.kill(signal.SIGSTOP)

    def resume(self) -> None:
        if self.cgroup is not None:
            self.cgroup.freeze(False)
        else:
            self.kill(signal.SIGCONT)

    def alive(self) -> bool:
        main_running = self.popen.poll() is None
        if self.cgroup is not None:
            return main_running or self.cgroup.populated()
        if main_running:
            return True
        try:
            os.killpg(self.pgid, 0)
        except ProcessLookupError:
            return False
        return True

    def wait(self, timeout: float | None = None) -> int | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.002
        while self.alive():
            if deadline is not None and time.monotonic() >= deadline:
                return None
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        return self.popen.returncode

    def __repr__(self) -> str:
        return f"LocalProcess(node={self.node!r}, pid={self.pid}, cgroup={self.cgroup and self.cgroup.path})"


_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]")

# Joins the cgroup named by $0, then execs the rest. The paths arrive as arguments, never as shell text:
# the process must join its cgroup before `ip netns exec` hides /sys/fs/cgroup.
_JOIN_CGROUP = 'echo $$ > "$0" && exec "$@"'


class LocalRemote:
    """A node that is the network namespace ``netns`` on this machine (files are shared with the host)."""

    def __init__(self, node: str, netns: str, log_dir: Path, cgroup: Cgroup | None = None) -> None:
        self.node = node
        self.netns = netns
        self.log_dir = log_dir
        self.cgroup = cgroup  # the node's cgroup; each spawned program gets one below it
        self._spawned = count(1)

    def _in_netns(self, cmd: Sequence[str]) -> list[str]:
        if isinstance(cmd, str):
            raise TypeError("commands are argument lists, not shell strings")
        return ["ip", "netns", "exec", self.netns, *cmd]

    def exec(
        self, cmd: Sequence[str], *, stdin: str | bytes | None = None, timeout: float | None = None
    ) -> ExecResult:
        data = stdin.encode() if isinstance(stdin, str) else stdin
        try:
            done = subprocess.run(
                self._in_netns(cmd),
                input=data,
                stdin=None if data is not None else subprocess.DEVNULL,
                capture_output=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired as e:
            raise RemoteError(self.node, cmd, f"timed out after {timeout}s") from e
        except FileNotFoundError as e:
            raise ConfigError("local nodes need the `ip` command (iproute2)") from e
        return ExecResult(
            done.returncode,
            done.stdout.decode(errors="replace"),
            done.stderr.decode(errors="replace"),
        )

    def upload(self, local: str | Path, remote: str) -> None:
        _copy(Path(local), Path(remote))

    def download(self, remote: str, local: str | Path) -> None:
        _copy(Path(remote), Path(local))

    def spawn(
        self,
        cmd: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        log: str | None = None,
    ) -> LocalProcess:
        """Start ``cmd`` in the node, in its own process group and cgroup; stdout and stderr go to ``log``
        (a file name under this node's log directory, or an absolute path; default ``<program>.log``)."""
        argv = self._in_netns(cmd)
        name = _UNSAFE_NAME.sub("_", Path(cmd[0]).name) or "process"
        log_path = Path(log) if log and os.path.isabs(log) else self.log_dir / (log or f"{name}.log")
        log_path.parent.mkdir(parents=True, exist_ok=True)
        cgroup = None
        if self.cgroup is not None:
            cgroup = self.cgroup.child(f"{name}-{next(self._spawned)}")
            cgroup.create()
            argv = ["sh", "-c", _JOIN_CGROUP, str(cgroup.join_file()), *argv]
        with open(log_path, "ab") as log_file:
            popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env={**os.environ, **env} if env else None,
                process_group=0,
                close_fds=True,
            )
        return LocalProcess(self.node, popen, cgroup, log_path)

    def __repr__(self) -> str:
        return f"LocalRemote(node={self.node!r}, netns={self.netns!r})"


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        shutil.copytree(src, dst, dirs_exist_ok=True)
    else:
        shutil.copy2(src, dst)
