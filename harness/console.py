"""What a person sees of a run on the terminal: one live line while it runs, the verdict and a short
summary at the end."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

from splitbrain.harness import interpreter
from splitbrain.histories.faults import HEAL, fault_kind, fault_start
from splitbrain.histories.op import Op

LABELS = {True: "VALID", False: "INVALID", "unknown": "UNKNOWN"}


class FaultTracker:
    """Keeps ``stats.active_faults`` (the kinds of the faults active now) from the nemesis ops as they are
    recorded, and counts faults that could not be applied. Wraps the recorder's sink."""

    def __init__(self, stats: interpreter.Stats, sink: Any) -> None:
        self.stats = stats
        self.sink = sink
        self.active: list[tuple[str, str]] = []  # (starting f, kind), oldest first

    def append(self, op: Op) -> None:
        self.sink(op)
        if op.is_client or op.type == "invoke":
            return
        if op.f == HEAL:
            self.active = []
        elif fault_start(op.f) is not None:
            self.active.append((op.f, fault_start(op.f)[1]))  # type: ignore[index]
            if op.error:
                self.stats.faults_failed += 1
        else:
            kind = fault_kind(op.f)
            self.active = [a for a in self.active if a[1] != kind]
        self.stats.active_faults = list(dict.fromkeys(kind for _, kind in self.active))


class LiveLine:
    """One line on stderr, rewritten twice a second: elapsed, ops/s, ok/fail/info, active fault kinds."""

    def __init__(self, stats: interpreter.Stats, enabled: bool) -> None:
        self.stats = stats
        self.enabled = enabled and sys.stderr.isatty()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="console", daemon=True)

    def start(self) -> None:
        if self.enabled:
            self._thread.start()

    def line(self) -> str:
        s = self.stats
        elapsed = time.monotonic() - s.started
        rate = (s.ok + s.fail + s.info) / elapsed if elapsed > 0 else 0.0
        faults = ", ".join(s.active_faults) or "none"
        return (f"{elapsed:6.1f}s  {rate:7.1f} ops/s  ok {s.ok}  fail {s.fail}  info {s.info}  "
                f"in flight {s.in_flight}  faults: {faults}")

    def _loop(self) -> None:
        while not self._stop.wait(0.5):
            try:
                print("\r" + self.line()[:150].ljust(150), end="", file=sys.stderr, flush=True)
            except (OSError, ValueError):
                return  # the terminal went away (SIGHUP): the run goes on without its line

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
            try:
                print(file=sys.stderr)
            except (OSError, ValueError):
                pass


def _share(part: dict[str, Any] | None) -> str:
    value = (part or {}).get("availability")
    return "-" if value is None else f"{value:.0%}"


def verdict_lines(results: dict[str, Any], seed: Any, path: Any, interrupted: str | None) -> list[str]:
    """The verdict line (with counts, availability and faults) and, when not valid, the explanation."""
    valid = results.get("valid")
    label = LABELS.get(valid, "UNKNOWN")
    note = f" (interrupted by {interrupted})" if interrupted else ""
    if results.get("error"):
        note += " (the run failed)"
    stats = results.get("stats") or {}
    availability = results.get("availability") or {}
    faults = availability.get("faults") or {}
    parts = [f"{label}{note}  seed {seed}  {path}"]
    if stats:
        parts.append(f"ok {stats.get('ok_count', 0)} fail {stats.get('fail_count', 0)} "
                     f"info {stats.get('info_count', 0)}")
    if availability:
        parts.append(f"available {_share(availability.get('during_faults'))} under faults, "
                     f"{_share(availability.get('without_faults'))} without")
    if faults:
        failed = f", {faults['failed']} could not be applied" if faults.get("failed") else ""
        parts.append(f"faults {faults.get('applied', 0)}{failed}")
    lines = ["  ".join(parts[:1]) + ("  |  " + "  |  ".join(parts[1:]) if len(parts) > 1 else "")]
    for failure in (faults.get("failures") or [])[:3]:
        lines.append(f"  fault not applied: {failure.get('kind')} at {failure.get('at_s')} s: {failure.get('error')}")
    if valid is not True and results.get("explanation"):
        lines.append(str(results["explanation"]).strip())
    return lines
