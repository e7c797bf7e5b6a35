"""The contracts between the harness and a system under test (DESIGN.md, "The contracts").

A user tests their own system by writing, in their own package, a ``TargetSpec``: how to build the target
on a run's nodes (``build(env) -> Target``) and how to open a client of it for each workload it serves.
Everything here is a ``typing.Protocol``: nothing needs subclassing. Optional capabilities are separate
protocols, checked before a run starts: a target that cannot be paused simply does not implement
``Pausable``, and a run that asks for pauses is refused in one line naming what is missing.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from splitbrain.control.errors import ConfigError
from splitbrain.control.remote import LocalFiles, NodeFiles, ProcessHandle
from splitbrain.control.spawn import Spawner
from splitbrain.histories.op import Op


@runtime_checkable
class Target(Protocol):
    """A system under test on a run's nodes: installs and starts itself on a node, stops and removes
    itself. ``setup`` runs on every node at once (in threads); ``teardown`` must work on a node whatever
    state it is in (killed, paused, half set up)."""

    def setup(self, test: Any, node: str) -> None: ...

    def teardown(self, test: Any, node: str) -> None: ...


@runtime_checkable
class Killable(Protocol):
    """Crashes (``--nemesis kill``): ``kill`` stops the node's processes at once (SIGKILL, no clean-up),
    ``start`` starts them again with the data they left."""

    def kill(self, test: Any, node: str) -> None: ...

    def start(self, test: Any, node: str) -> None: ...


@runtime_checkable
class Pausable(Protocol):
    """Pauses (``--nemesis pause``): freeze every process of the node, and thaw them."""

    def pause(self, test: Any, node: str) -> None: ...

    def resume(self, test: Any, node: str) -> None: ...


@runtime_checkable
class HasPrimaries(Protocol):
    """The nodes that lead right now (a leader, a primary): faults aimed at ``primaries`` use them."""

    def primaries(self, test: Any) -> Sequence[str]: ...


@runtime_checkable
class HasLogs(Protocol):
    """Log files on a node besides the processes' output (which the spawner keeps already): the run
    copies them into runs/.../nodes/<node>/."""

    def log_files(self, test: Any, node: str) -> Sequence[str]: ...


@runtime_checkable
class WaitsReady(Protocol):
    """Knows when the whole cluster serves requests: called once, before any client starts."""

    def wait_ready(self, test: Any, timeout_s: float) -> None: ...


@dataclass(frozen=True)
class DataFiles:
    """Where a node keeps its durable state, for the disk faults (``--nemesis corrupt,truncate,...``).

    ``directory``: the node's data directory (on the node); ``logs``, ``snapshots``, ``other``: glob
    patterns relative to it of its log/WAL files, its snapshots, and its other data files. The newest
    file matching ``logs`` (by modification time, then name) is the one a torn write cuts.
    """

    directory: str
    logs: tuple[str, ...] = ()
    snapshots: tuple[str, ...] = ()
    other: tuple[str, ...] = ()

    def patterns(self, role: str) -> tuple[str, ...]:
        """The patterns of ``role``: log | snapshot | other | any."""
        by_role = {"log": self.logs, "snapshot": self.snapshots, "other": self.other}
        if role == "any":
            return self.logs + self.snapshots + self.other
        if role not in by_role:
            raise ValueError(f"unknown data file role {role!r}; expected log, snapshot, other or any")
        return by_role[role]


@runtime_checkable
class HasDataFiles(Protocol):
    """Names the node's data files and which of them are its log/WAL and snapshots: the disk faults
    corrupt and cut them (while the process is down, through the node's Remote) and, for
    ``lose-unfsynced``, mount ``directory`` on a file system that forgets what was never fsynced."""

    def data_files(self, test: Any, node: str) -> DataFiles: ...


CAPABILITIES: dict[str, type] = {"kill/start": Killable, "pause/resume": Pausable, "primaries": HasPrimaries,
                                 "log_files": HasLogs, "wait_ready": WaitsReady, "data_files": HasDataFiles}


def capabilities_of(target: Any) -> set[str]:
    """The optional capabilities ``target`` (an object or a class) implements, by name."""
    return {name for name, protocol in CAPABILITIES.items()
            if all(callable(getattr(target, method, None)) for method in _methods(protocol))}


def _methods(protocol: type) -> list[str]:
    return [name for name in protocol.__dict__ if not name.startswith("_") and callable(protocol.__dict__[name])]


@runtime_checkable
class Client(Protocol):
    """One connection of one worker to one node, opened by the target's (or workload's) client opener.

    ``invoke`` performs the operation ``op`` (an invocation) exactly once and returns its completion,
    ``op.with_(type=..., value=..., error=...)``:

    - ``ok``   it happened; ``value`` is its result (a read's value);
    - ``fail`` it certainly did not happen (the system refused it; the request never left this process);
    - ``info`` it may or may not have happened (a timeout after the request was sent, a lost connection):
      the checkers then consider both. Getting fail/info right is the heart of a correct test:
      ``fail`` for an operation that may have taken effect makes a checker miss real anomalies or
      report false ones. A read that does not come back ok may be ``fail``: it changed nothing.

    A client never retries an operation whose effect is unknown. An exception raised by ``invoke`` is
    recorded as ``info``. ``close`` releases the connection (called once, at the end of the run).
    """

    def invoke(self, test: Any, op: Op) -> Op: ...

    def close(self, test: Any) -> None: ...


# (test, target, node) -> an open Client of ``target`` that talks to ``node``.
ClientOpener = Callable[[Any, Any, str], Client]


@dataclass(frozen=True)
class TargetEnv:
    """What ``TargetSpec.build`` gets: the run's test, its nodes and how to act on them.

    ``addresses`` maps node name to IPv4 address; ``spawn(node, argv, env=None, log=None)`` starts a
    program on a node (in its own cgroup or process group, skewable by the clock nemesis, output in
    runs/.../nodes/<node>/<log>) and returns its process handle; ``files`` writes config files and makes
    directories on the nodes (on SSH hosts these are not this machine's files); ``data_root/<node>`` is
    where each node keeps its data. ``options`` are the target's options (``--target-opt``), validated.
    """

    test: Any
    addresses: Mapping[str, str]
    spawn: Spawner
    files: NodeFiles
    data_root: Path
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def nodes(self) -> list[str]:
        return sorted(self.addresses)


@dataclass(frozen=True)
class TargetSpec:
    """A system under test, by name: everything the run loop knows about it.

    - ``build(env) -> Target``: the target object (no process starts until ``setup``);
    - ``clients``: workload name -> client opener ``(test, target, node) -> Client``; the workloads this
      target serves;
    - ``options``: option name -> one line of help with its default (``--target-opt NAME=VALUE``);
      ``validate(options, nodes)`` rejects bad values (ConfigError) before anything of a run exists;
    - ``min_nodes``; ``target_type``: the class ``build`` returns, so missing capabilities are reported
      before anything starts (else they are found once the target is built);
    - ``description``: one line for `splitbrain targets`.
    """

    name: str
    build: Callable[[TargetEnv], Target]
    clients: Mapping[str, ClientOpener]
    options: Mapping[str, str] = field(default_factory=dict)
    validate: Callable[[Mapping[str, Any], int], None] | None = None
    min_nodes: int = 1
    target_type: type | None = None
    description: str = ""

    @property
    def workloads(self) -> tuple[str, ...]:
        return tuple(self.clients)

    def check_options(self, options: Mapping[str, Any], nodes: int) -> None:
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            known = ", ".join(self.options) or "none"
            raise ConfigError(f"target {self.name} has no option {', '.join(unknown)} (its options: {known})")
        if nodes < self.min_nodes:
            raise ConfigError(f"target {self.name} needs at least {self.min_nodes} nodes, got {nodes}")
        if self.validate is not None:
            self.validate(options, nodes)


class OneProcessPerNode:
    """Killable and Pausable for a target that runs one process per node through its spawn callback.

    The target calls ``_init_nodes(addresses, data_root, spawn, files)`` (a TargetEnv's fields) in its
    constructor and implements ``launch(node) -> (argv, env, log_name or None)``; its teardown calls
    ``stop_process``.
    """

    def _init_nodes(self, addresses: Mapping[str, str], data_root: str | Path, spawn: Spawner,
                    files: NodeFiles | None = None) -> None:
        self.addresses = dict(addresses)
        self.data_root = Path(data_root)
        self.spawn = spawn
        self.files = files if files is not None else LocalFiles()
        self.handles: dict[str, ProcessHandle] = {}
        self._lock = threading.Lock()

    @property
    def nodes(self) -> list[str]:
        return sorted(self.addresses)

    def launch(self, node: str) -> tuple[list[str], dict[str, str], str | None]:
        raise NotImplementedError

    def _handle(self, node: str) -> ProcessHandle | None:
        with self._lock:
            return self.handles.get(node)

    def start(self, test: Any, node: str) -> None:
        with self._lock:
            running = self.handles.get(node)
            if running is not None and running.alive():
                return
            argv, env, log = self.launch(node)
            self.handles[node] = self.spawn(node, argv, env, log)

    def kill(self, test: Any, node: str) -> None:
        handle = self._handle(node)
        if handle is not None:
            handle.kill(signal.SIGKILL)
            handle.wait(10)

    def pause(self, test: Any, node: str) -> None:
        handle = self._handle(node)
        if handle is not None:
            handle.pause()

    def resume(self, test: Any, node: str) -> None:
        handle = self._handle(node)
        if handle is not None:
            handle.resume()

    def stop_process(self, node: str) -> None:
        """For teardown: thaw (a frozen process dies only once thawed), kill, wait; forget the node."""
        with self._lock:
            handle = self.handles.pop(node, None)
        if handle is not None:
            try:
                handle.resume()
            except Exception:  # noqa: BLE001 - it may be dead already; the kill below is what matters
                pass
            handle.kill(signal.SIGKILL)
            handle.wait(5)
