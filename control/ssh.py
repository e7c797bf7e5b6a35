"""SSH nodes: real hosts reached with paramiko, the classic Jepsen set-up, behind the same Remote protocol.

Every command is an argument list joined with ``shlex.join`` into one line for the host's shell, so no
argument is ever interpreted by it. A spawned process is started detached on the host in its own session
(and so its own process group), with its pid in a pid file; kill and pause signal the whole group
(``kill -s SIG -- -PGID``). Unlike local nodes there is no cgroup: a daemon that calls setsid itself leaves
the group and is not reached.

Host keys: a host whose key is not known is refused, unless ``accept_unknown_hosts`` is given, which is
meant for hosts the test created itself (``--ssh-accept-new``). A key that differs from a known one is
always refused.
"""

from __future__ import annotations

import logging
import re
import secrets
import select
import shlex
import signal
import socket
import stat
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import paramiko
from splitbrain.control.errors import ConfigError, HostError, RemoteError
from splitbrain.control.remote import ExecResult, run_checked

log = logging.getLogger("splitbrain.ssh")

# Where a run keeps its files on a host (under --ssh-dir): logs and pid files per node, the target's data.
REMOTE_ROOT = "{base}/splitbrain-{run_id}"
DEFAULT_BASE_DIR = "/tmp"
# How long spawn waits for the started process to write its pid file.
SPAWN_WAIT_S = 5.0
# wait(None) waits in rounds of this many seconds, so no single command runs for ever.
WAIT_ROUND_S = 30.0
POLL_S = 0.02

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]")

# $1 work dir, $2 pid file, $3 exit-code file, $4 log, then the command. The command runs in a new session
# (setsid: pid = pgid), its pid written before it execs; a watcher subshell outside that session records
# its exit code. Everything is redirected, so the SSH channel closes as soon as the pid is known.
_SPAWN = r"""
dir=$1 pidfile=$2 rcfile=$3 log=$4
shift 4
mkdir -p "$dir" "$(dirname "$pidfile")" "$(dirname "$log")" && cd "$dir" || exit 1
( setsid -w sh -c 'echo $$ > "$0"; exec "$@"' "$pidfile" "$@" >> "$log" 2>&1 < /dev/null
  echo $? > "$rcfile" ) > /dev/null 2>&1 < /dev/null &
i=0
while [ ! -s "$pidfile" ]; do
  if [ "$i" -ge {ticks} ]; then echo "the process did not start in {wait_s} s" >&2; exit 1; fi
  sleep {poll}; i=$((i + 1))
done
cat "$pidfile"
""".replace("{ticks}", str(int(SPAWN_WAIT_S / POLL_S))).replace("{wait_s}", f"{SPAWN_WAIT_S:g}").replace(
    "{poll}", f"{POLL_S:g}"
)

# $1 pgid, $2 polls to wait at most, $3 exit-code file. Prints "running", or "exited RC" ("exited ?" when
# no exit code was recorded, e.g. the watcher itself was killed).
_WAIT = r"""
i=0
while kill -s 0 -- "-$1" 2>/dev/null; do
  if [ "$i" -ge "$2" ]; then echo running; exit 0; fi
  sleep {poll}; i=$((i + 1))
done
j=0
while [ ! -s "$3" ] && [ "$j" -lt 50 ]; do sleep {poll}; j=$((j + 1)); done
echo "exited $(cat "$3" 2>/dev/null || echo '?')"
""".replace("{poll}", f"{POLL_S:g}")

# $1 iptables, then (hook chain) pairs: unhook each chain of ours, flush it and delete it.
_REMOVE_CHAINS = r"""
ipt=$1
shift
while [ $# -ge 2 ]; do
  n=0
  while "$ipt" -w -D "$1" -j "$2" 2>/dev/null && [ "$n" -lt 20 ]; do n=$((n + 1)); done
  "$ipt" -w -F "$2" 2>/dev/null && "$ipt" -w -X "$2" 2>/dev/null
  shift 2
done
exit 0
"""


@dataclass(frozen=True, slots=True)
class SSHHost:
    """One ``node=HOST[:PORT]`` of ``--ssh-hosts``."""

    node: str
    host: str
    port: int = 22

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.node}={host}:{self.port}"


def parse_ssh_hosts(spec: str | Sequence[str]) -> list[SSHHost]:
    """``node1=HOST[:PORT],node2=...`` (or the same as a list) -> hosts; ConfigError saying what was expected."""
    items = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec)]
    items = [s for s in items if s]
    if not items:
        raise ConfigError("--ssh-hosts: expected node1=HOST[:PORT],node2=HOST[:PORT],...; got nothing")
    hosts: list[SSHHost] = []
    for item in items:
        node, eq, address = item.partition("=")
        if not eq or not node or not address:
            raise ConfigError(f"--ssh-hosts: expected NODE=HOST[:PORT], got {item!r}")
        host, port = _host_port(address, item)
        hosts.append(SSHHost(node.strip(), host, port))
    nodes = [h.node for h in hosts]
    duplicates = sorted({n for n in nodes if nodes.count(n) > 1})
    if duplicates:
        raise ConfigError(f"--ssh-hosts: node {', '.join(duplicates)} given more than once")
    return hosts


def _host_port(address: str, item: str) -> tuple[str, int]:
    if address.startswith("["):  # [IPv6]:port
        host, _, rest = address[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif address.count(":") == 1:
        host, port_text = address.split(":")
    else:
        host, port_text = address, ""
    if not host or not re.match(r"^[A-Za-z0-9_.:-]+$", host):
        raise ConfigError(f"--ssh-hosts: {item!r}: expected a host name or address before the port")
    if not port_text:
        return host, 22
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ConfigError(f"--ssh-hosts: {item!r}: the port must be a number from 1 to 65535")
    return host, int(port_text)


def _exit_code(text: str) -> int:
    """The shell's status of a process as Popen reports it: 128+N (killed by signal N) becomes -N."""
    rc = int(text)
    if 128 < rc <= 128 + 64:
        return -(rc - 128)
    return rc


class SSHProcess:
    """A process started on a host through SSH; it leads its own process group, which kill and pause reach."""

    def __init__(self, remote: SSHRemote, pid: int, rc_file: str, log: str) -> None:
        self.remote = remote
        self.node = remote.node
        self.pid = pid
        self.pgid = pid  # it called setsid: it leads its session and its group
        self.rc_file = rc_file
        self.log = log

    def kill(self, sig: int = signal.SIGKILL) -> None:
        # No SIGCONT after SIGKILL (local nodes need one to thaw a frozen cgroup): a stopped process dies of it.
        self.remote.signal_group(self.pgid, sig)

    def pause(self) -> None:
        self.remote.signal_group(self.pgid, signal.SIGSTOP)

    def resume(self) -> None:
        self.remote.signal_group(self.pgid, signal.SIGCONT)

    def alive(self) -> bool:
        """Whether any process of the group is left."""
        return self.remote.exec(["kill", "-s", "0", "--", f"-{self.pgid}"], timeout=self.remote.timeout).ok

    def wait(self, timeout: float | None = None) -> int | None:
        """Until no process of the group is left: the main process's exit code (-N when killed by signal
        N, -1 when none was recorded), None when ``timeout`` passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            round_s = WAIT_ROUND_S if deadline is None else max(0.0, min(WAIT_ROUND_S, deadline - time.monotonic()))
            polls = int(round_s / POLL_S)
            out = self.remote.exec(
                ["sh", "-c", _WAIT, "sh", str(self.pgid), str(polls), self.rc_file],
                timeout=2 * round_s + self.remote.timeout,  # the polls overrun their sleeps on a busy host
            )
            words = out.stdout.split()
            if words[:1] == ["exited"]:
                self.remote.forget(self)  # its pgid may be reused: never signal it again at clean-up
                code = words[1] if len(words) > 1 else "?"
                return _exit_code(code) if code.lstrip("-").isdigit() else -1
            if not out.ok or words[:1] != ["running"]:
                raise RemoteError(self.node, ["wait", str(self.pgid)], out.stderr or out.stdout or "no answer")
            if deadline is not None and time.monotonic() >= deadline:
                return None

    def __repr__(self) -> str:
        return f"SSHProcess(node={self.node!r}, pid={self.pid}, host={self.remote.host!r})"


class SSHRemote:
    """One node that is a host reached over SSH. One connection per remote, opened on first use, reopened
    once when it dropped; safe to use from several threads."""

    def __init__(
        self,
        node: str,
        host: str,
        port: int = 22,
        user: str = "root",
        key_file: str | None = None,
        password: str | None = None,
        known_hosts: str | None = None,
        timeout: float = 10,
        *,
        accept_unknown_hosts: bool = False,
        work_dir: str | None = None,
    ) -> None:
        self.node = node
        self.host = host
        self.port = port
        self.user = user
        self.key_file = key_file
        self.password = password
        self.known_hosts = known_hosts
        self.timeout = timeout
        self.accept_unknown_hosts = accept_unknown_hosts
        # Logs (and pid files) of spawned processes; a relative ``log`` is relative to it.
        self.work_dir = work_dir or f"/tmp/splitbrain-ssh/{_UNSAFE_NAME.sub('_', node)}"
        self.spawned: list[SSHProcess] = []
        self._client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self.ever_connected = False
        self._lock = threading.Lock()  # the connection and channel creation
        self._sftp_lock = threading.Lock()  # an SFTP session serves one transfer at a time

    # -- the connection --------------------------------------------------------------------------------

    def connect(self) -> None:
        """Open the connection now (ConfigError on a bad host, key or login), rather than on first use."""
        with self._lock:
            self._transport()

    def _new_client(self) -> paramiko.SSHClient:
        client = paramiko.SSHClient()
        if self.known_hosts is not None:
            try:
                client.load_host_keys(self.known_hosts)
            except (OSError, paramiko.SSHException) as e:
                raise ConfigError(f"{self.node}: cannot read known hosts file {self.known_hosts}: {e}") from None
        else:
            try:
                client.load_system_host_keys()
            except (OSError, paramiko.SSHException) as e:
                raise ConfigError(f"{self.node}: cannot read ~/.ssh/known_hosts: {e}") from None
        # AutoAddPolicy only sees keys of hosts that are not known; a changed key still fails (BadHostKey).
        client.set_missing_host_key_policy(
            paramiko.AutoAddPolicy() if self.accept_unknown_hosts else paramiko.RejectPolicy()
        )
        return client

    def _connect(self) -> paramiko.Transport:
        client = self._new_client()
        where = f"{self.user}@{self.host}:{self.port}"
        explicit = self.key_file is not None or self.password is not None
        try:
            client.connect(
                self.host, port=self.port, username=self.user, key_filename=self.key_file,
                password=self.password, timeout=self.timeout, banner_timeout=self.timeout,
                auth_timeout=self.timeout, allow_agent=not explicit, look_for_keys=not explicit,
            )  # fmt: skip
        except paramiko.BadHostKeyException:
            client.close()
            raise ConfigError(
                f"{self.node}: the host key of {self.host}:{self.port} differs from the known one "
                "(refusing to connect)"
            ) from None
        except paramiko.AuthenticationException as e:
            client.close()
            raise ConfigError(f"{self.node}: SSH login as {where} failed: {e}") from None
        except paramiko.SSHException as e:
            client.close()
            if "not found in known_hosts" in str(e):
                raise ConfigError(
                    f"{self.node}: the host key of {self.host}:{self.port} is not known; add it to known_hosts "
                    "(or --ssh-accept-new, for hosts the test created)"
                ) from None
            raise self._unreachable(f"SSH to {where} failed: {e}") from None
        except (OSError, EOFError) as e:
            client.close()
            raise self._unreachable(f"cannot reach {where}: {e.strerror or e}" if isinstance(e, OSError)
                                    else f"cannot reach {where}: {e}") from None
        self._client = client
        self.ever_connected = True
        transport = client.get_transport()
        assert transport is not None  # connect() succeeded
        return transport

    def _unreachable(self, message: str) -> Exception:
        # A host that does not answer is a run that cannot happen (exit 4), not a bad option: the same
        # options work once the host is back. A wrong key or login stays a ConfigError (above).
        if self.ever_connected:
            return RemoteError(self.node, ["ssh", self.host], message)
        return HostError(f"{self.node}: {message}")

    def _transport(self) -> paramiko.Transport:
        """The live transport, reconnecting when it dropped. Call with ``_lock`` held."""
        transport = self._client.get_transport() if self._client is not None else None
        if transport is not None and transport.is_active():
            return transport
        if self._client is not None:
            log.info("%s: SSH connection to %s dropped; reconnecting", self.node, self.host)
            self._close_client()
        return self._connect()

    def _channel(self) -> paramiko.Channel:
        with self._lock:
            transport = self._transport()
            try:
                return transport.open_session(timeout=self.timeout)
            except (paramiko.SSHException, EOFError, OSError) as e:
                if transport.is_active():
                    raise RemoteError(self.node, ["ssh", self.host], f"cannot open a channel: {e}") from None
            # The transport dropped while we opened the channel: reconnect once.
            log.info("%s: SSH connection to %s dropped; reconnecting", self.node, self.host)
            self._close_client()
            try:
                return self._connect().open_session(timeout=self.timeout)
            except (paramiko.SSHException, EOFError, OSError) as e:
                raise RemoteError(self.node, ["ssh", self.host], f"cannot open a channel: {e}") from None

    def _close_client(self) -> None:
        # Not under _sftp_lock (a transfer holds it while it opens a channel under _lock): closing the
        # client closes the SFTP channel too, and the next transfer opens a new one.
        self._sftp = None
        if self._client is not None:
            self._client.close()
            self._client = None

    def close(self) -> None:
        with self._lock:
            self._close_client()

    # -- Remote ----------------------------------------------------------------------------------------

    def exec(
        self, cmd: Sequence[str], *, stdin: str | bytes | None = None, timeout: float | None = None
    ) -> ExecResult:
        if isinstance(cmd, str):
            raise TypeError("commands are argument lists, not shell strings")
        line = shlex.join(cmd)
        channel = self._channel()
        try:
            return self._run(channel, cmd, line, stdin, timeout)
        except (paramiko.SSHException, EOFError, OSError) as e:
            raise RemoteError(self.node, cmd, f"the SSH channel failed: {e}") from None
        finally:
            channel.close()

    def _run(
        self, channel: paramiko.Channel, cmd: Sequence[str], line: str, stdin: str | bytes | None,
        timeout: float | None,
    ) -> ExecResult:
        deadline = None if timeout is None else time.monotonic() + timeout
        channel.exec_command(line)
        if stdin is not None:
            channel.sendall(stdin.encode() if isinstance(stdin, str) else stdin)
        channel.shutdown_write()
        out, err = bytearray(), bytearray()
        while True:
            while channel.recv_ready():
                out += channel.recv(65536)
            while channel.recv_stderr_ready():
                err += channel.recv_stderr(65536)
            finished = channel.closed or (channel.exit_status_ready() and channel.eof_received)
            if finished and not (channel.recv_ready() or channel.recv_stderr_ready()):
                break
            if deadline is not None and time.monotonic() >= deadline:
                raise RemoteError(self.node, cmd, f"timed out after {timeout}s")
            # The channel's fd wakes us for stdout and for the end; stderr is picked up within a poll.
            select.select([channel], [], [], 0.05)
        return ExecResult(channel.recv_exit_status(), out.decode(errors="replace"), err.decode(errors="replace"))

    def _sftp_client(self) -> paramiko.SFTPClient:
        """Call with ``_sftp_lock`` held."""
        channel = self._sftp.get_channel() if self._sftp is not None else None
        if self._sftp is None or channel is None or channel.closed:
            channel = self._channel()
            try:
                channel.invoke_subsystem("sftp")
            except paramiko.SSHException as e:
                channel.close()
                raise RemoteError(self.node, ["sftp"], f"the host offers no SFTP: {e}") from None
            self._sftp = paramiko.SFTPClient(channel)
        return self._sftp

    def upload(self, local: str | Path, remote: str) -> None:
        """Copy a local file or directory (recursively) to ``remote`` on the host, making its parents."""
        source = Path(local)
        if not source.exists():
            raise RemoteError(self.node, ["upload", str(source)], f"{source} does not exist")
        files = [(source, remote)] if source.is_file() else [
            (p, str(PurePosixPath(remote) / p.relative_to(source).as_posix()))
            for p in sorted(source.rglob("*")) if p.is_file()
        ]
        dirs = sorted({str(PurePosixPath(dst).parent) for _, dst in files} | ({remote} if source.is_dir() else set()))
        if dirs:
            self._checked(["mkdir", "-p", *dirs])
        with self._sftp_lock:
            try:
                sftp = self._sftp_client()
                for src, dst in files:
                    sftp.put(str(src), dst)
                    sftp.chmod(dst, stat.S_IMODE(src.stat().st_mode))
            except (OSError, paramiko.SSHException) as e:
                raise RemoteError(self.node, ["upload", str(source), remote], str(e)) from None

    def download(self, remote: str, local: str | Path) -> None:
        """Copy a file or directory (recursively) from the host to ``local``, making its parents."""
        with self._sftp_lock:
            try:
                sftp = self._sftp_client()
                self._download(sftp, remote, Path(local))
            except FileNotFoundError:
                raise RemoteError(self.node, ["download", remote], f"{remote}: no such file on {self.host}") from None
            except (OSError, paramiko.SSHException) as e:
                raise RemoteError(self.node, ["download", remote], str(e)) from None

    def _download(self, sftp: paramiko.SFTPClient, remote: str, local: Path) -> None:
        mode = sftp.stat(remote).st_mode or 0
        if stat.S_ISDIR(mode):
            local.mkdir(parents=True, exist_ok=True)
            for entry in sftp.listdir_attr(remote):
                self._download(sftp, str(PurePosixPath(remote) / entry.filename), local / entry.filename)
            return
        local.parent.mkdir(parents=True, exist_ok=True)
        sftp.get(remote, str(local))

    def spawn(
        self, cmd: Sequence[str], *, env: Mapping[str, str] | None = None, log: str | None = None
    ) -> SSHProcess:
        """Start ``cmd`` detached on the host in its own session; stdout and stderr are appended to ``log``
        (a file name under ``work_dir``, or an absolute path; default ``<program>.log``)."""
        if isinstance(cmd, str) or not cmd:
            raise TypeError("commands are non-empty argument lists, not shell strings")
        argv = list(cmd)
        if env:
            bad = [k for k in env if not _ENV_NAME.match(k)]
            if bad:
                raise ValueError(f"environment variable names must be letters, digits and '_': {bad}")
            if "=" in argv[0]:
                raise ValueError(f"a program name with '=' cannot follow env assignments: {argv[0]!r}")
            argv = ["env", *(f"{k}={v}" for k, v in env.items()), *argv]
        name = _UNSAFE_NAME.sub("_", PurePosixPath(cmd[0]).name) or "process"
        work = PurePosixPath(self.work_dir)
        log_path = str(PurePosixPath(log)) if log and log.startswith("/") else str(work / (log or f"{name}.log"))
        tag = f"{name}-{secrets.token_hex(4)}"
        pid_file, rc_file = str(work / ".spawn" / f"{tag}.pid"), str(work / ".spawn" / f"{tag}.rc")
        result = self._checked(["sh", "-c", _SPAWN, "sh", self.work_dir, pid_file, rc_file, log_path, *argv],
                               timeout=SPAWN_WAIT_S + self.timeout)
        try:
            pid = int(result.stdout.strip())
        except ValueError:
            raise RemoteError(self.node, cmd, f"no pid from the spawned process: {result.stdout!r}") from None
        process = SSHProcess(self, pid, rc_file, log_path)
        with self._lock:
            self.spawned.append(process)
        return process

    # -- helpers for handles and clean-up --------------------------------------------------------------

    def signal_group(self, pgid: int, sig: int) -> None:
        """``sig`` to every process of group ``pgid``; nothing when the group is gone (nothing to reach)."""
        name = signal.Signals(sig).name.removeprefix("SIG")
        result = self.exec(["kill", "-s", name, "--", f"-{pgid}"], timeout=self.timeout)
        if not result.ok and "No such process" not in result.stderr:
            raise RemoteError(self.node, ["kill", "-s", name, "--", f"-{pgid}"], result.stderr)

    def _checked(self, cmd: Sequence[str], timeout: float | None = None) -> ExecResult:
        result = self.exec(cmd, timeout=self.timeout if timeout is None else timeout)
        if not result.ok:
            raise RemoteError(self.node, cmd, result.stderr or f"exit code {result.rc}")
        return result

    def forget(self, process: SSHProcess) -> None:
        with self._lock:
            if process in self.spawned:
                self.spawned.remove(process)

    def kill_spawned(self) -> None:
        """SIGKILL every process group this remote spawned and has not seen exit (one command for all)."""
        with self._lock:
            groups = [f"-{p.pgid}" for p in self.spawned]
            self.spawned.clear()
        if not groups:
            return
        # kill reports the groups that are gone already and still kills the others.
        result = self.exec(["kill", "-s", "KILL", "--", *groups], timeout=self.timeout)
        if not result.ok and "No such process" not in result.stderr:
            raise RemoteError(self.node, ["kill", "-s", "KILL", "--", *groups], result.stderr)

    def remove_chains(self, hooked: Sequence[tuple[str, str]], iptables: str = "iptables") -> None:
        """Unhook, flush and delete the iptables chains ``(hook, chain)`` the nemeses made on this host."""
        pairs = [part for pair in hooked for part in pair]
        self._checked(["sh", "-c", _REMOVE_CHAINS, "sh", iptables, *pairs])

    def __repr__(self) -> str:
        return f"SSHRemote(node={self.node!r}, host={self.host!r}, port={self.port})"


def resolve_ipv4(host: str, node: str) -> str:
    """The IPv4 address clients and peers use for ``host`` (partitions match source addresses)."""
    try:
        return socket.getaddrinfo(host, None, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
    except (socket.gaierror, IndexError) as e:
        raise ConfigError(f"{node}: cannot resolve {host!r} to an IPv4 address: {e}") from None


class SSHCluster:
    """The nodes of one run on SSH hosts. ``up()`` connects to every host; ``down()`` kills what the run
    spawned, unmounts what it left mounted below its directory, downloads each node's logs into ``log_dir/<node>/``, removes the run's files from the hosts
    and closes the connections (idempotent)."""

    def __init__(
        self, run_id: str, hosts: Sequence[SSHHost], *, log_dir: Path, user: str = "root",
        key_file: str | None = None, password: str | None = None, known_hosts: str | None = None,
        accept_unknown_hosts: bool = False, timeout: float = 10,
        iptables_chains: Sequence[tuple[str, str]] = (), base_dir: str = DEFAULT_BASE_DIR,
    ) -> None:
        self.run_id = run_id
        # (hook, chain) pairs the nemeses may have made on the hosts: removed at down(). On local nodes
        # they vanish with the namespace; a real host keeps them.
        self.iptables_chains = list(iptables_chains)
        self.hosts = {h.node: h for h in hosts}
        self.nodes = sorted(self.hosts)
        self.log_dir = Path(log_dir)
        self.root = REMOTE_ROOT.format(base=base_dir.rstrip("/") or "", run_id=run_id)
        self.remotes = {
            h.node: SSHRemote(h.node, h.host, h.port, user, key_file, password, known_hosts, timeout,
                              accept_unknown_hosts=accept_unknown_hosts, work_dir=f"{self.root}/{h.node}")
            for h in hosts
        }
        self._addresses: dict[str, str] = {}
        self._is_down = False

    @property
    def data_root(self) -> Path:
        """Where the target keeps its data on the hosts (a directory per node below it)."""
        return Path(self.root) / "data"

    @property
    def addresses(self) -> dict[str, str]:
        """node -> the IPv4 address of its host, for clients and for the target's peers."""
        if not self._addresses:
            self._addresses = {n: resolve_ipv4(self.hosts[n].host, n) for n in self.nodes}
        return dict(self._addresses)

    def remote(self, node: str) -> SSHRemote:
        return self.remotes[node]

    def spawner(self, clock: Any | None = None) -> Any:
        from splitbrain.control.spawn import ssh_spawner

        return ssh_spawner(self, clock)

    def up(self) -> SSHCluster:
        _ = self.addresses
        for node in self.nodes:
            self.remotes[node].connect()
        return self

    def down(self) -> None:
        """Each step on each node runs even when an earlier one failed; failures are logged. A host that
        was never reached is skipped (nothing of the run is there, and each try would wait for a timeout)."""
        if self._is_down:
            return
        self._is_down = True
        chains = self.iptables_chains
        reached = [node for node in self.nodes if self.remotes[node].ever_connected]
        for node in reached:
            remote = self.remotes[node]
            steps = [("kill what the run spawned", remote.kill_spawned),
                     ("unmount what the run mounted", lambda r=remote: unmount_under(r, self.root))]
            if chains:
                steps.append(("remove the nemeses' iptables chains", lambda r=remote: r.remove_chains(chains)))
            steps.append(("download the node's logs", lambda n=node: self.collect_logs(n)))
            for what, step in steps:
                _logged(node, what, step)
        for node in reached:
            remote = self.remotes[node]
            _logged(node, f"remove {self.root}",
                    lambda r=remote: run_checked(r, ["rm", "-rf", "--", self.root], timeout=r.timeout))
        for remote in self.remotes.values():
            remote.close()

    def collect_logs(self, node: str) -> None:
        """Every file of the node's work directory on its host (not the pid files) into ``log_dir/<node>/``."""
        remote = self.remotes[node]
        listing = remote.exec(["find", remote.work_dir, "-type", "f", "-not", "-path", "*/.spawn/*"],
                              timeout=remote.timeout)
        if not listing.ok:
            return  # nothing was spawned there
        work = PurePosixPath(remote.work_dir)
        for path in listing.stdout.splitlines():
            relative = PurePosixPath(path).relative_to(work)
            remote.download(path, self.log_dir / node / Path(*relative.parts))


# $1 the run's directory on the host: SIGKILL every process group whose pid file the run left there.
_KILL_RECORDED = r"""
for f in "$1"/*/.spawn/*.pid; do
  [ -s "$f" ] && kill -s KILL -- "-$(cat "$f")" 2>/dev/null
done
exit 0
"""


# $1 the run's directory on the host: lazily unmount every file system mounted below it (a lose-unfsynced
# daemon that was killed leaves a dead FUSE mount there, which rm -rf cannot remove); deepest first.
_UNMOUNT_UNDER = r"""
awk -v root="$1/" 'index($2, root) == 1 { print $2 }' /proc/self/mounts | sort -r | while read -r m; do
  fusermount3 -u -z "$m" 2>/dev/null || umount -l "$m"
done
"""


def unmount_under(remote: SSHRemote, root: str) -> None:
    """What the run left mounted under ``root`` on the host comes off (its processes are gone by now)."""
    run_checked(remote, ["sh", "-c", _UNMOUNT_UNDER, "sh", root], timeout=remote.timeout)


def teardown_run(cluster: SSHCluster) -> list[str]:
    """What a dead run left on its SSH hosts: its processes (by the pid files under the run's directory),
    the mounts below that directory, the nemeses' iptables chains and the directory itself. Hosts that cannot be reached are reported."""
    removed: list[str] = []
    for node in cluster.nodes:
        remote = cluster.remotes[node]
        try:
            remote.connect()
            run_checked(remote, ["sh", "-c", _KILL_RECORDED, "sh", cluster.root], timeout=remote.timeout)
            unmount_under(remote, cluster.root)
            if cluster.iptables_chains:
                remote.remove_chains(cluster.iptables_chains)
            run_checked(remote, ["rm", "-rf", "--", cluster.root], timeout=remote.timeout)
            removed.append(f"{node}: processes, rules and {cluster.root}")
        except (ConfigError, HostError, RemoteError, OSError) as e:
            removed.append(f"{node}: not reached ({e})")
        finally:
            remote.close()
    return removed


def _logged(node: str, what: str, step: Callable[[], object]) -> None:
    try:
        step()
    except Exception as e:  # noqa: BLE001 - clean-up goes on; the run's log says what failed
        log.error("%s: could not %s: %s", node, what, e)
