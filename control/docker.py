"""Docker nodes: one container per node, from the project's node image (harness/images.py), on an
``--internal`` network of the run whose subnet overlaps no route of this machine.

Layout for run R with n nodes (names and the label ``splitbrain.run=R`` find exactly this run's things):

    network    sb-R           --internal, a free /24 (control.local.free_subnet); the host reaches the
                              containers at their addresses through the network's bridge
    containers sb-R-n1 ..     `sleep infinity` under docker-init (--init, so orphans are reaped), NET_ADMIN
                              only (never SYS_TIME: a container's clock is the host's; never --privileged)

Mounted: this installation of splitbrain, read-only at NODE_IMPORT_ROOT/splitbrain (the node image's
Python runs the project's programs from it), and, at the same paths as on the host, per node, its log
directory and its data directory (read-write, so logs and data land in the run directory
with no copying). Target processes are started with `docker exec` (never as PID 1, so a crash kills the
process, not the container), each in its own session; kill and pause signal its process group.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import secrets
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any

from splitbrain.control.errors import ConfigError, RemoteError
from splitbrain.control.images import NODE_RECIPE, image_exists, require_container_start, require_docker
from splitbrain.control.local import (
    _current_routes,
    _subnet_lock,
    free_subnet,
    node_names,
    validate_run_id,
)
from splitbrain.control.remote import ExecResult
from splitbrain.control.spawn import DEFAULT_LOG, Spawner
from splitbrain.control.ssh import _SPAWN, SPAWN_WAIT_S, SSHProcess

log = logging.getLogger("splitbrain.docker")

RUN_LABEL = "splitbrain.run"
# This installation of splitbrain (the repository root in a source checkout), mounted read-only in every
# node as NODE_IMPORT_ROOT/splitbrain, so the node image's Python imports it (the Raft store, the lb
# backends, the clock launcher and the packet-delay listener run from it).
PACKAGE_DIR = Path(__file__).resolve().parents[1]
NODE_IMPORT_ROOT = "/opt/splitbrain"
# Inside a node: where spawned processes start and keep their pid and exit-code files.
WORK_DIR = "/var/lib/splitbrain"
COMMAND_TIMEOUT_S = 20.0
# The Python that runs the project inside a node (the image's; the host's may live elsewhere).
NODE_PYTHON = "/usr/bin/python3"


# The shell's kill (procps's /usr/bin/kill, what a bare `docker exec kill` finds, parses "--" differently):
# $1 a signal name (or 0: is any process of the group left), $2 the process group.
_SIGNAL_GROUP = 'kill -s "$1" -- "-$2"'


def require_node_image(image: str = NODE_RECIPE.tag) -> None:
    """ConfigError in one line unless the Docker daemon answers and has ``image``; HostError when it cannot
    start a container at all."""
    require_docker()
    if not image_exists(image):
        raise ConfigError(f"the node image {image} is not built; run `splitbrain images build`")
    require_container_start()


def network_name(run_id: str) -> str:
    return f"sb-{run_id}"


def container_name(run_id: str, index: int) -> str:
    return f"sb-{run_id}-n{index}"


def _docker(args: Sequence[str], *, timeout: float = COMMAND_TIMEOUT_S, check: bool = True) -> ExecResult:
    try:
        done = subprocess.run(["docker", *args], capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise ConfigError("Docker nodes need the docker CLI (apt-get install docker.io)") from None
    except subprocess.TimeoutExpired:
        raise RemoteError("docker", ["docker", *args[:3]], f"timed out after {timeout:.0f} s") from None
    result = ExecResult(done.returncode, done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace"))
    if check and not result.ok:
        raise RemoteError("docker", ["docker", *args[:3]], result.stderr or f"exit code {result.rc}")
    return result


class DockerProcess(SSHProcess):
    """A process started in a container by `docker exec`; it leads its own session and process group,
    which kill (``kill -s SIG -- -PGID`` in the container), pause/resume (SIGSTOP/SIGCONT) and alive/wait
    (``kill -0``) reach. The shell protocol is the SSH remote's: the same script, run through docker."""

    def alive(self) -> bool:
        """Whether any process of the group is left (docker-init reaps the dead, so no zombie counts)."""
        return self.remote.exec(["sh", "-c", _SIGNAL_GROUP, "sh", "0", str(self.pgid)], timeout=self.remote.timeout).ok

    def __repr__(self) -> str:
        return f"DockerProcess(node={self.node!r}, pid={self.pid}, container={self.remote.container!r})"


class DockerRemote:
    """One Docker node: commands through `docker exec` in container ``container``."""

    def __init__(self, node: str, container: str, log_dir: Path, timeout: float = COMMAND_TIMEOUT_S) -> None:
        self.node = node
        self.container = container
        self.log_dir = log_dir
        self.timeout = timeout
        self.work_dir = WORK_DIR
        # The Python that runs splitbrain's own programs on this node, and the environment it needs.
        self.python = NODE_PYTHON
        self.python_env = {"PYTHONPATH": NODE_IMPORT_ROOT}
        self.spawned: list[DockerProcess] = []
        self._lock = threading.Lock()

    def exec(
        self, cmd: Sequence[str], *, stdin: str | bytes | None = None, timeout: float | None = None
    ) -> ExecResult:
        if isinstance(cmd, str) or not cmd:
            raise TypeError("commands are non-empty argument lists, not shell strings")
        data = stdin.encode() if isinstance(stdin, str) else stdin
        argv = ["docker", "exec", *(["-i"] if data is not None else []), self.container, *cmd]
        try:
            done = subprocess.run(argv, input=data, stdin=None if data is not None else subprocess.DEVNULL,
                                  capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            raise RemoteError(self.node, cmd, f"timed out after {timeout}s") from e
        return ExecResult(done.returncode, done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace"))

    def upload(self, local: str | Path, remote: str) -> None:
        self._checked(["mkdir", "-p", str(Path(remote).parent)])
        _docker(["cp", str(local), f"{self.container}:{remote}"], timeout=120)

    def download(self, remote: str, local: str | Path) -> None:
        Path(local).parent.mkdir(parents=True, exist_ok=True)
        _docker(["cp", f"{self.container}:{remote}", str(local)], timeout=120)

    def spawn(
        self, cmd: Sequence[str], *, env: Mapping[str, str] | None = None, log: str | None = None
    ) -> DockerProcess:
        """Start ``cmd`` detached in the container in its own session; stdout and stderr are appended to
        ``log`` (a file name under this node's log directory, which the container shares with the host,
        or an absolute path inside the container; default ``<program>.log``)."""
        if isinstance(cmd, str) or not cmd:
            raise TypeError("commands are non-empty argument lists, not shell strings")
        argv = list(cmd)
        if env:
            argv = ["env", *(f"{k}={v}" for k, v in env.items()), *argv]
        name = "".join(c if c.isalnum() or c in "_.-" else "_" for c in Path(cmd[0]).name) or "process"
        log_path = log if log and log.startswith("/") else str(self.log_dir / (log or f"{name}.log"))
        tag = f"{name}-{secrets.token_hex(4)}"
        pid_file, rc_file = f"{WORK_DIR}/.spawn/{tag}.pid", f"{WORK_DIR}/.spawn/{tag}.rc"
        result = self._checked(["sh", "-c", _SPAWN, "sh", WORK_DIR, pid_file, rc_file, log_path, *argv],
                               timeout=SPAWN_WAIT_S + self.timeout)
        try:
            pid = int(result.stdout.strip())
        except ValueError:
            raise RemoteError(self.node, cmd, f"no pid from the spawned process: {result.stdout!r}") from None
        process = DockerProcess(self, pid, rc_file, log_path)  # type: ignore[arg-type]
        with self._lock:
            self.spawned.append(process)
        return process

    # -- what DockerProcess (SSHProcess) asks of its remote ---------------------------------------------

    def signal_group(self, pgid: int, sig: int) -> None:
        """``sig`` to every process of group ``pgid``; nothing when the group is gone (nothing to reach)."""
        import signal as signals

        name = signals.Signals(sig).name.removeprefix("SIG")
        result = self.exec(["sh", "-c", _SIGNAL_GROUP, "sh", name, str(pgid)], timeout=self.timeout)
        if not result.ok and "No such process" not in result.stderr:
            raise RemoteError(self.node, ["kill", "-s", name, "--", f"-{pgid}"], result.stderr)

    def forget(self, process: Any) -> None:
        with self._lock:
            if process in self.spawned:
                self.spawned.remove(process)

    def _checked(self, cmd: Sequence[str], timeout: float | None = None) -> ExecResult:
        result = self.exec(cmd, timeout=self.timeout if timeout is None else timeout)
        if not result.ok:
            raise RemoteError(self.node, cmd, result.stderr or f"exit code {result.rc}")
        return result

    def __repr__(self) -> str:
        return f"DockerRemote(node={self.node!r}, container={self.container!r})"


class DockerCluster:
    """``n_nodes`` Docker nodes for run ``run_id``. ``up()`` creates the network and containers, ``down()``
    removes every container and the network of the run (idempotent); as a context manager, both."""

    def __init__(self, run_id: str, n_nodes: int, log_dir: Path, *, data_root: Path | None = None,
                 image: str | None = None, package_dir: Path = PACKAGE_DIR) -> None:
        validate_run_id(run_id)
        if not 1 <= n_nodes <= 200:
            raise ConfigError(f"Docker nodes: expected 1 to 200 nodes, got {n_nodes}")
        self.run_id = run_id
        self.nodes = node_names(n_nodes)
        self.log_dir = Path(log_dir).resolve()
        self.data_root = Path(data_root).resolve() if data_root is not None else None
        self.image = image or NODE_RECIPE.tag
        self.package_dir = package_dir.resolve()
        self.network = network_name(run_id)
        self.containers = {node: container_name(run_id, i) for i, node in enumerate(self.nodes, 1)}
        self.subnet: ipaddress.IPv4Network | None = None
        self.remotes: dict[str, DockerRemote] = {}

    @property
    def addresses(self) -> dict[str, str]:
        """node name -> IPv4 address on the run's network (node i gets the subnet's (i+1)-th address; the
        first is the bridge's, the host's own)."""
        if self.subnet is None:
            raise ConfigError("Docker nodes: the cluster is not up")
        hosts = list(self.subnet.hosts())
        return {node: str(hosts[i + 1]) for i, node in enumerate(self.nodes)}

    @property
    def host_address(self) -> str:
        if self.subnet is None:
            raise ConfigError("Docker nodes: the cluster is not up")
        return str(next(self.subnet.hosts()))

    def remote(self, node: str) -> DockerRemote:
        return self.remotes[node]

    def spawner(self, clock: Any | None = None) -> Spawner:
        return docker_spawner(self, clock)

    def up(self) -> DockerCluster:
        require_node_image(self.image)
        if run_resources(self.run_id) != ([], []):
            raise ConfigError(f"run {self.run_id} already has Docker containers or a network; if that run is "
                              f"dead, `splitbrain cleanup` of its run directory removes them")
        try:
            self._create_network()
            self._start_containers()
        except BaseException:
            self.down()
            raise
        return self

    def _create_network(self) -> None:
        with _subnet_lock():  # the route check and the claim together, as for local nodes
            self.subnet = free_subnet(self.run_id, _current_routes())
            _docker(["network", "create", "--internal", "--driver", "bridge", "--subnet", str(self.subnet),
                     "--gateway", self.host_address, "--label", f"{RUN_LABEL}={self.run_id}", self.network])

    def _mounts(self, node: str) -> list[str]:
        mounts = [f"type=bind,source={self.package_dir},target={NODE_IMPORT_ROOT}/splitbrain,readonly"]
        node_dirs = [self.log_dir / node] + ([self.data_root / node] if self.data_root is not None else [])
        for directory in node_dirs:
            if "," in str(directory):  # --mount's fields are comma-separated
                raise ConfigError(f"Docker nodes: a directory with ',' in its path cannot be mounted: {directory}")
            directory.mkdir(parents=True, exist_ok=True)
            mounts.append(f"type=bind,source={directory},target={directory}")
        return mounts

    def _start_containers(self) -> None:
        """All at once: each `docker run` takes ~0.4 s, mostly waiting on the daemon."""
        def start(node: str, address: str) -> None:
            name = self.containers[node]
            argv = ["run", "-d", "--init", "--name", name, "--hostname", node,
                    "--label", f"{RUN_LABEL}={self.run_id}", "--network", self.network, "--ip", address,
                    "--cap-add", "NET_ADMIN"]
            for mount in self._mounts(node):
                argv += ["--mount", mount]
            _docker([*argv, self.image, "sleep", "infinity"], timeout=60)

        with ThreadPoolExecutor(max_workers=len(self.nodes)) as pool:
            started = [pool.submit(start, node, address) for node, address in self.addresses.items()]
        for future in started:
            future.result()  # the first failure, if any (up() then removes whatever did start)
        self.remotes = {node: DockerRemote(node, name, self.log_dir / node) for node, name in self.containers.items()}

    def down(self) -> None:
        """Remove every container and the network of this run (whatever runs in them dies with them)."""
        teardown_run(self.run_id)
        self.remotes.clear()

    def __enter__(self) -> DockerCluster:
        return self.up()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.down()


def run_resources(run_id: str) -> tuple[list[str], list[str]]:
    """The ids of the containers and networks labelled with ``run_id`` (the label, not a name prefix: run
    "a" must not match run "a-n1")."""
    label = f"label={RUN_LABEL}={run_id}"
    containers = _docker(["ps", "-aq", "--filter", label]).stdout.split()
    networks = _docker(["network", "ls", "-q", "--filter", label]).stdout.split()
    return containers, networks


def _daemon_answers() -> bool:
    try:
        return subprocess.run(["docker", "version"], capture_output=True, timeout=COMMAND_TIMEOUT_S).returncode == 0
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return False


def run_leftovers(run_id: str) -> list[str]:
    """Run ``run_id``'s containers and network that still exist, without removing them."""
    validate_run_id(run_id)
    if not _daemon_answers():
        return []
    containers, networks = run_resources(run_id)
    return [f"container {c}" for c in containers] + [f"network {n}" for n in networks]


def teardown_run(run_id: str) -> list[str]:
    """Remove run ``run_id``'s containers and network. Idempotent; returns what it removed."""
    validate_run_id(run_id)
    if not _daemon_answers():
        return []  # no Docker (or no daemon): nothing of the run can be left in it
    removed: list[str] = []
    containers, networks = run_resources(run_id)
    if containers:
        _docker(["rm", "-f", "-v", *containers], timeout=120)
        removed.append(f"{len(containers)} container(s)")
    for network in networks:
        _docker(["network", "rm", network])
        removed.append(f"network {network_name(run_id)}")
    return removed


def docker_spawner(cluster: DockerCluster, clock: Any | None = None) -> Spawner:
    """The Spawner of Docker nodes. A command that runs this machine's Python runs the node image's Python
    instead (same version line, splitbrain mounted in the node). With a clock nemesis, each process is
    started skewable and registered with it (see ``spawn_skewable``)."""

    def spawn(node: str, argv: Sequence[str], env: Mapping[str, str] | None = None,
              log: str | None = None) -> Any:
        env = env or {}
        log = log or DEFAULT_LOG
        command = list(argv)
        if command and command[0] == sys.executable:
            remote = cluster.remote(node)
            command[0] = remote.python
            env = {**env, **remote.python_env}
        if clock is None:
            return cluster.remote(node).spawn(command, env=env, log=log)
        return spawn_skewable(cluster, node, command, env, log, clock)

    return spawn


def container_state(name: str) -> dict[str, Any] | None:
    """`docker inspect`'s State of a container, None when there is no such container."""
    result = _docker(["inspect", "--format", "{{json .State}}", name], check=False)
    return json.loads(result.stdout) if result.ok else None


# -- the clock nemesis on Docker nodes ------------------------------------------------------------------
# The vDSO patch (nemesis/clockpatch.py) is made inside the node, at the exec of the real program, by a
# launcher that the node's Python runs from the mounted project: it must be the program's parent, and a
# parent on the host would start the program outside the container. The launcher writes the program's
# pid and the patched slot's address to a file; the host then finds that process's host pid and changes
# its offset with an 8-byte write to /proc/PID/mem, as for local nodes (no SYS_TIME, no ptrace from the
# host: the host's root may write any process's memory).


class ContainerSkewed:
    """A skewed process in a container, as the clock nemesis sees it (``clock.Skewable``)."""

    mechanism = "vdso"

    def __init__(self, host_pid: int, slot_address: int) -> None:
        self.pid = host_pid
        self.slot_address = slot_address

    def set_offset(self, offset_ns: int) -> None:
        from splitbrain.control.clockpatch import set_offset

        set_offset(self.pid, self.slot_address, offset_ns)


def host_pid(container_init_pid: int, pid_in_container: int, proc: Path = Path("/proc")) -> int | None:
    """The host's pid of the process that is ``pid_in_container`` in the pid namespace of the container
    whose first process is ``container_init_pid`` (on the host), or None when there is none."""
    try:
        namespace = os.readlink(proc / str(container_init_pid) / "ns" / "pid")
    except OSError:
        return None
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.readlink(entry / "ns" / "pid") != namespace:
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("NSpid:") and int(line.split()[-1]) == pid_in_container:
                    return int(entry.name)
        except (OSError, ValueError):
            continue  # gone while we looked
    return None


def spawn_skewable(cluster: DockerCluster, node: str, argv: list[str], env: Mapping[str, str], log: str,
                   clock: Any) -> Any:
    """Started by the launcher in the container; the offset is then written from this machine, which
    shares the kernel (and so /proc) with every container."""
    from splitbrain.control.spawn import launch_skewed

    remote = cluster.remote(node)
    process, pid_in_node, slot = launch_skewed(remote, argv, env, log,
                                               clock.offset_ns(node))
    state = container_state(remote.container) or {}
    found = host_pid(int(state.get("Pid", 0)), pid_in_node)
    if found is None:
        process.kill()
        raise ConfigError(f"clock nemesis: cannot skew {argv[0]} on {node}: its process is gone")
    clock.register(node, ContainerSkewed(found, slot))
    return process
