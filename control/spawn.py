"""Starting target processes on a run's nodes: local nodes or SSH hosts (Docker nodes: harness/docker.py),
skewable when the run has a clock nemesis.

A skewable process is started with the vDSO patch (nemesis/clockpatch.py) at the exec of the real
program and registered with the clock nemesis so its node's offset reaches it. On local nodes this
machine patches it inside the node's network namespace and cgroup; on SSH hosts (and Docker nodes) a
launcher on the node does (harness/skew_launcher.py, run by the node's Python from this project at the
same path) and reports where the patch is; the offset is then written over SSH on each change.
"""

from __future__ import annotations

import itertools
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from splitbrain.control.errors import ConfigError, RemoteError
from splitbrain.control.local import LocalCluster
from splitbrain.control.remote import LocalProcess, ProcessHandle

_names = itertools.count(1)
DEFAULT_LOG = "server.log"


class Spawner(Protocol):
    """How a target starts a program on a node: ``spawn(node, argv, env, log)`` starts ``argv`` (an
    argument list, never a shell string) with ``env`` added to the environment, its output appended to
    ``log`` (a file name under runs/.../nodes/<node>/; default server.log), and returns its handle (kill,
    pause, resume, alive, wait). With a clock nemesis the program is started skewable: argv[0] must be
    the real program, not a wrapper shell that execs it later."""

    def __call__(self, node: str, argv: Sequence[str], env: Mapping[str, str] | None = None,
                 log: str | None = None) -> ProcessHandle: ...


def local_spawner(cluster: LocalCluster, clock: Any | None) -> Spawner:
    """The Spawner of local nodes: each program in the node's namespace and cgroup."""

    def spawn(node: str, argv: Sequence[str], env: Mapping[str, str] | None = None,
              log: str | None = None) -> Any:
        remote = cluster.remote(node)
        if clock is None:
            return remote.spawn(list(argv), env=env or {}, log=log or DEFAULT_LOG)
        return spawn_skewable(node, remote, list(argv), env or {}, log or DEFAULT_LOG, clock)

    return spawn


def ssh_spawner(cluster: Any, clock: Any | None = None) -> Spawner:
    """The Spawner of SSH hosts: each program detached on its host, its output in ``log`` in the node's
    work directory there, downloaded into runs/.../nodes/<node>/ when the cluster goes down. With a clock
    nemesis, each is started skewable (``launch_skewed``) and registered with it."""

    def spawn(node: str, argv: Sequence[str], env: Mapping[str, str] | None = None,
              log: str | None = None) -> Any:
        env = env or {}
        log = log or DEFAULT_LOG
        remote = cluster.remote(node)
        if clock is None:
            return remote.spawn(list(argv), env=env, log=log)
        process, pid, slot = launch_skewed(remote, list(argv), env, log, clock.offset_ns(node))
        clock.register(node, RemoteSkewed(remote, pid, slot))
        return process

    return spawn


SKEW_WAIT_S = 10.0


def node_python(remote: Any) -> tuple[str, dict[str, str]]:
    """The Python that runs splitbrain's own programs on ``remote``'s node, and the environment it needs:
    this machine's interpreter (local nodes, and SSH hosts, which have this installation at the same
    paths), unless the remote names another (Docker nodes: the image's Python and the mounted package)."""
    return getattr(remote, "python", sys.executable), dict(getattr(remote, "python_env", {}))


def launch_skewed(remote: Any, argv: list[str], env: Mapping[str, str], log: str,
                  offset_ns: int) -> tuple[Any, int, int]:
    """Start ``argv`` on a node through control/skew_launcher.py (run by the node's Python, see
    ``node_python``), with its clock ``offset_ns`` off. Returns the launcher's process handle (killing
    or pausing it reaches the program: same group) and the program's pid on the node and patch address.
    ConfigError when the node cannot patch it (the launcher's log says why)."""
    slot_file = f"{remote.work_dir}/.spawn/skew-{secrets.token_hex(4)}"
    python, python_env = node_python(remote)
    launcher = [python, "-m", "splitbrain.control.skew_launcher", "spawn", slot_file, str(offset_ns), "--", *argv]
    process = remote.spawn(launcher, env={**env, **python_env}, log=log)
    deadline = time.monotonic() + SKEW_WAIT_S
    while True:
        answer = remote.exec(["cat", slot_file], timeout=remote.timeout)
        if answer.ok and len(answer.stdout.split()) == 2:
            pid_text, slot_text = answer.stdout.split()
            return process, int(pid_text), int(slot_text)
        if time.monotonic() > deadline or not process.alive():
            process.kill()
            raise ConfigError(f"clock nemesis: cannot skew {argv[0]} on {remote.node}: the launcher did not "
                              f"report a patched process (see the node's {log})")
        time.sleep(0.05)


class RemoteSkewed:
    """A skewed process on an SSH host, as the clock nemesis sees it (``clock.Skewable``): each offset is
    written by the launcher's ``set`` on the host (through /proc/PID/mem there)."""

    mechanism = "vdso"

    def __init__(self, remote: Any, pid: int, slot_address: int) -> None:
        self.remote = remote
        self.pid = pid
        self.slot_address = slot_address

    def set_offset(self, offset_ns: int) -> None:
        from splitbrain.control.clockpatch import ClockPatchError

        python, python_env = node_python(self.remote)
        cmd = ["env", *(f"{k}={v}" for k, v in python_env.items()), python, "-m", "splitbrain.control.skew_launcher",
               "set", str(self.pid), str(self.slot_address), str(offset_ns)]
        result = self.remote.exec(cmd, timeout=self.remote.timeout)
        if result.rc == 1:  # the launcher's answer: the process is gone or exec'd since
            raise ClockPatchError(result.stderr.strip() or f"process {self.pid}: cannot set its offset")
        if not result.ok:
            raise RemoteError(self.remote.node, cmd, result.stderr or f"exit code {result.rc}")


def spawn_skewable(node: str, remote: Any, argv: list[str], env: Mapping[str, str], log: str, clock: Any) -> Any:
    from splitbrain.control.clockpatch import ClockPatchError, spawn_skewed

    cgroup = None
    if remote.cgroup is not None:
        cgroup = remote.cgroup.child(f"skewed-{next(_names)}")
        cgroup.create()
    procs = str(cgroup.join_file()) if cgroup is not None else None

    def join_cgroup() -> None:  # in the child, before it enters the namespace that hides /sys/fs/cgroup
        if procs is not None:
            with open(procs, "w") as fh:
                fh.write(str(os.getpid()))

    log_path = remote.log_dir / log
    log_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(log_path, "ab") as out:
            skewed = spawn_skewed(argv, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT,
                                  process_group=0, preexec_fn=join_cgroup, netns=remote.netns,
                                  offset_ns=clock.offset_ns(node))
    except ClockPatchError as e:
        raise ConfigError(f"clock nemesis: cannot skew {argv[0]} on {node}: {e}") from None
    clock.register(node, skewed)
    return LocalProcess(node, skewed.popen, cgroup, log_path)
