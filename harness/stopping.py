"""How a run stops when it is told to: SIGINT (Ctrl-C), SIGTERM and SIGHUP, the ways CI systems and
terminals stop jobs.

- The first signal ends the operations under faults; the run goes on as at its normal end: every fault
  healed, the recovery pause, the final reads, every process stopped, every namespace, rule, cgroup and
  container removed, the history checked, results.json written with ``"interrupted": true``.
- A second signal skips what is only waiting (the recovery pause, final reads, ops still in flight) but
  never the healing and the removal.
- While the nodes are being set up (nothing to check yet), the first signal aborts the set-up: what
  exists is torn down the same way.

The handlers only set flags (and, during set-up, raise ``Interrupted`` in the main thread): nothing is
ever interrupted half-way through tearing down.
"""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(BaseException):
    """Raised in the main thread when a signal arrives while the run sets up its nodes."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class RunSignals:
    """The run's stop flags, set by signals. ``end_main``: stop the operations under faults (and go on to
    heal, recover, read); ``hurry``: stop every wait now. ``phase`` is "setup", "running" or "teardown"."""

    def __init__(self, out: Any = None) -> None:
        self.end_main = threading.Event()
        self.hurry = threading.Event()
        self.signum: int | None = None
        self.phase = "setup"
        self.out = out or sys.stderr
        self._previous: dict[int, Any] = {}

    @property
    def interrupted(self) -> bool:
        return self.signum is not None

    def install(self) -> RunSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._on_signal)
        return self

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        first = self.signum is None
        if first:
            self.signum = signum
        if self.phase == "setup" and first:
            self._say(f"\n{name}: stopping the set-up; removing what exists")
            raise Interrupted(signum)
        if first and self.phase == "running":
            self.end_main.set()
            self._say(f"\n{name}: ending the operations; healing, recovering, final reads, then clean-up "
                      "(again to skip the waiting; the healing and clean-up always happen)")
            return
        self.end_main.set()
        if not self.hurry.is_set():
            self.hurry.set()
            self._say(f"\n{name}: skipping the waits; healing and removing everything of the run")

    def _say(self, text: str) -> None:
        try:
            print(text, file=self.out, flush=True)
        except (OSError, ValueError):
            pass  # a closed terminal (SIGHUP) must not stop the clean-up

    def exit_code(self, valid: Any) -> int | None:
        """An interrupted run's exit code: 1 when what it recorded is already invalid, else 128 + the
        signal (130 for SIGINT, 143 SIGTERM, 129 SIGHUP): never 0. None when not interrupted."""
        if self.signum is None:
            return None
        return 1 if valid is False else 128 + self.signum
