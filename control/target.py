"""The Target contract (DESIGN.md): what the harness needs from a system under test.

Optional capabilities are separate protocols: a target that cannot be paused simply does not implement
Pausable, and the nemesis says so in plain words instead of failing mid-run.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Target(Protocol):
    def setup(self, test: Any, node: str) -> None: ...

    def teardown(self, test: Any, node: str) -> None: ...


@runtime_checkable
class Killable(Protocol):
    def kill(self, test: Any, node: str) -> None: ...

    def start(self, test: Any, node: str) -> None: ...


@runtime_checkable
class Pausable(Protocol):
    def pause(self, test: Any, node: str) -> None: ...

    def resume(self, test: Any, node: str) -> None: ...


@runtime_checkable
class HasPrimaries(Protocol):
    def primaries(self, test: Any) -> Sequence[str]: ...


@runtime_checkable
class HasLogs(Protocol):
    def log_files(self, test: Any, node: str) -> Sequence[str]: ...


@runtime_checkable
class WaitsReady(Protocol):
    """A target that can tell when the whole cluster serves requests (before the clients start)."""

    def wait_ready(self, test: Any, timeout_s: float) -> None: ...


class OneProcessPerNode:
    """Killable and Pausable for a target that runs one process per node through its spawn callback.

    The target calls ``_init_nodes(addresses, data_root, spawn, files)`` in its constructor and implements
    ``launch(node) -> (argv, env, log_name or None)``; teardown calls ``stop_process``.
    """

    def _init_nodes(self, addresses: Mapping[str, str], data_root: str | Path, spawn: Any,
                    files: Any | None) -> None:
        """The nodes (name -> address), where their data lives, how to start a process on one (spawn) and
        how to put files there (NodeFiles; this machine's disk when None: local nodes)."""
        from splitbrain.control.remote import LocalFiles

        self.addresses = dict(addresses)
        self.data_root = Path(data_root)
        self.spawn = spawn
        self.files = files if files is not None else LocalFiles()
        self.handles: dict[str, Any] = {}
        self._lock = threading.Lock()

    @property
    def nodes(self) -> list[str]:
        return sorted(self.addresses)

    def launch(self, node: str) -> tuple[list[str], dict[str, str], str | None]:
        raise NotImplementedError

    def _handle(self, node: str) -> Any:
        with self._lock:
            return self.handles.get(node)

    def start(self, test: Any, node: str) -> None:
        with self._lock:
            running = self.handles.get(node)
            if running is not None and running.alive():
                return
            argv, env, log = self.launch(node)
            self.handles[node] = self.spawn(node, argv, env, log) if log else self.spawn(node, argv, env)

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
