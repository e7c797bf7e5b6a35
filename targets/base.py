"""The Target contract (DESIGN.md): what the harness needs from a system under test.

Optional capabilities are separate protocols: a target that cannot be paused simply does not implement
Pausable, and the nemesis says so in plain words instead of failing mid-run.
"""

from __future__ import annotations

from collections.abc import Sequence
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
