"""Clock faults: bump a node's wall clock, strobe it back and forth, reset it. The host clock is never
touched.

Each node's processes are started skewable (``control.clockpatch.spawn_skewed``: a patched vDSO, or the
libfaketime fallback) and registered here; the nemesis keeps one offset per node and writes it into every
process of that node. A process registered later (a node restarted after a kill) gets the node's current
offset at once, so a restart does not silently undo a bump.

Ops (``f`` and ``value``; the completion is ``info`` with what was done, as in Jepsen):

- ``bump-clock``   ``{node: delta_ms, ...}``: each node's offset moves by ``delta_ms`` (may be negative).
- ``strobe-clock`` ``{node: {"delta_ms": d, "period_ms": p, "duration_ms": t}, ...}``: in a background
  thread, the node's clock flips between its current offset and offset + d every p ms for t ms, then
  returns to the offset it had. A later op on the same node stops the strobe first (a bump then counts
  from the offset the strobe started from, not from wherever the flip left it).
- ``reset-clock``  ``[node, ...]`` or null for all nodes: offset back to 0.

``clock_plan`` / ``clock_fault`` choose these ops from a seeded ``random.Random``: pure and replayable.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from splitbrain.control.clockpatch import ClockPatchError
from splitbrain.control.errors import ConfigError
from splitbrain.histories.op import Op
from splitbrain.nemesis.base import completed

log = logging.getLogger(__name__)

BUMP = "bump-clock"
STROBE = "strobe-clock"
RESET = "reset-clock"
CLOCK_FS = frozenset((BUMP, STROBE, RESET))

NS_PER_MS = 1_000_000
# Far beyond any useful skew, far inside what the vDSO stubs compute without overflow (~230 years).
MAX_OFFSET_NS = 100 * 365 * 24 * 3600 * 1_000_000_000


@runtime_checkable
class Skewable(Protocol):
    """A process whose wall clock the nemesis can set (``clockpatch.SkewedProcess`` is one)."""

    pid: int
    mechanism: str

    def set_offset(self, offset_ns: int) -> None: ...


# -- The plan: pure and seeded -------------------------------------------------------------------------


@dataclass(frozen=True)
class ClockLimits:
    """Ranges the plan draws from (all in ms). Magnitudes are spread over decades, so a plan holds
    millisecond nudges as well as minute-long jumps; signs are random."""

    min_bump_ms: int = 1
    max_bump_ms: int = 5 * 60 * 1000
    min_strobe_delta_ms: int = 1
    max_strobe_delta_ms: int = 60 * 1000
    min_period_ms: int = 10
    max_period_ms: int = 1000
    min_duration_ms: int = 1000
    max_duration_ms: int = 10_000
    bump_weight: int = 2
    strobe_weight: int = 1
    reset_weight: int = 1

    def __post_init__(self) -> None:
        for low, high in (
            ("min_bump_ms", "max_bump_ms"),
            ("min_strobe_delta_ms", "max_strobe_delta_ms"),
            ("min_period_ms", "max_period_ms"),
            ("min_duration_ms", "max_duration_ms"),
        ):
            lo, hi = getattr(self, low), getattr(self, high)
            if not 1 <= lo <= hi:
                raise ConfigError(f"clock limits: need 1 <= {low} ({lo}) <= {high} ({hi})")
        weights = (self.bump_weight, self.strobe_weight, self.reset_weight)
        if min(weights) < 0 or sum(weights) == 0:
            raise ConfigError(f"clock limits: op weights must be >= 0 and not all 0, got {weights}")


@dataclass(frozen=True)
class ClockFault:
    """One nemesis op of the plan: ``f`` and its JSON ``value`` (see the module docstring)."""

    f: str
    value: Any


def magnitude_ms(rng: random.Random, low: int, high: int) -> int:
    """An integer in [low, high], its decade chosen uniformly first (1-9, 10-99, ...), so small and large
    values are both common. Integer-only, so a seed replays identically on every machine."""
    first, last = len(str(low)) - 1, len(str(high)) - 1
    decade = rng.randint(first, last)
    return rng.randint(max(low, 10**decade), min(high, 10 ** (decade + 1) - 1))


def _some_nodes(rng: random.Random, nodes: Sequence[str]) -> list[str]:
    """A random non-empty subset, in the order of ``nodes``."""
    chosen = set(rng.sample(list(nodes), rng.randint(1, len(nodes))))
    return [n for n in nodes if n in chosen]


def clock_fault(rng: random.Random, nodes: Sequence[str], limits: ClockLimits = ClockLimits()) -> ClockFault:
    """One random clock op over ``nodes``, drawn from ``rng`` only."""
    if not nodes:
        raise ConfigError("the clock nemesis needs at least one node")
    kind = rng.choices(
        (BUMP, STROBE, RESET), weights=(limits.bump_weight, limits.strobe_weight, limits.reset_weight)
    )[0]
    targets = _some_nodes(rng, nodes)
    if kind == RESET:
        return ClockFault(RESET, targets)
    if kind == BUMP:
        return ClockFault(
            BUMP,
            {
                n: rng.choice((-1, 1)) * magnitude_ms(rng, limits.min_bump_ms, limits.max_bump_ms)
                for n in targets
            },
        )
    value = {
        n: {
            "delta_ms": rng.choice((-1, 1))
            * magnitude_ms(rng, limits.min_strobe_delta_ms, limits.max_strobe_delta_ms),
            "period_ms": rng.randint(limits.min_period_ms, limits.max_period_ms),
            "duration_ms": rng.randint(limits.min_duration_ms, limits.max_duration_ms),
        }
        for n in targets
    }
    return ClockFault(STROBE, value)


def clock_plan(
    rng: random.Random, nodes: Sequence[str], count: int, limits: ClockLimits = ClockLimits()
) -> list[ClockFault]:
    """``count`` clock ops, drawn in order from ``rng``: the same seed gives the same plan."""
    if count < 0:
        raise ConfigError(f"a clock plan needs count >= 0, got {count}")
    return [clock_fault(rng, nodes, limits) for _ in range(count)]


# -- Validating op values ------------------------------------------------------------------------------


def _int_field(where: str, value: Any, *, positive: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{where}: expected an integer number of ms, got {value!r}")
    if positive and value <= 0:
        raise ValueError(f"{where}: expected a positive number of ms, got {value}")
    return value


def parse_bump(value: Any) -> dict[str, int]:
    if not isinstance(value, Mapping) or not value:
        raise ValueError(f"{BUMP}: expected {{node: delta_ms}}, got {value!r}")
    return {str(node): _int_field(f"{BUMP} {node}", delta) for node, delta in value.items()}


@dataclass(frozen=True)
class Strobe:
    delta_ms: int
    period_ms: int
    duration_ms: int


def parse_strobe(value: Any) -> dict[str, Strobe]:
    if not isinstance(value, Mapping) or not value:
        raise ValueError(f"{STROBE}: expected {{node: {{delta_ms, period_ms, duration_ms}}}}, got {value!r}")
    strobes = {}
    for node, spec in value.items():
        if not isinstance(spec, Mapping) or set(spec) != {"delta_ms", "period_ms", "duration_ms"}:
            raise ValueError(f"{STROBE} {node}: expected keys delta_ms, period_ms, duration_ms, got {spec!r}")
        strobes[str(node)] = Strobe(
            _int_field(f"{STROBE} {node} delta_ms", spec["delta_ms"]),
            _int_field(f"{STROBE} {node} period_ms", spec["period_ms"], positive=True),
            _int_field(f"{STROBE} {node} duration_ms", spec["duration_ms"], positive=True),
        )
    return strobes


def parse_reset(value: Any, all_nodes: Iterable[str]) -> list[str]:
    if value is None:
        return list(all_nodes)
    if not isinstance(value, list) or not all(isinstance(n, str) for n in value):
        raise ValueError(f"{RESET}: expected a list of node names or null, got {value!r}")
    return list(value)


def strobe_offsets(base_ns: int, strobe: Strobe) -> list[int]:
    """The offsets a strobe sets, one per period, ending with the base: pure, so it can be tested."""
    flips = max(1, strobe.duration_ms // strobe.period_ms)
    skewed = base_ns + strobe.delta_ms * NS_PER_MS
    return [skewed if i % 2 == 0 else base_ns for i in range(flips)] + [base_ns]


def _check_offset(node: str, offset_ns: int) -> None:
    if abs(offset_ns) > MAX_OFFSET_NS:
        raise ValueError(f"{node}: a clock offset of {offset_ns // NS_PER_MS} ms is beyond 100 years")


# -- The nemesis ---------------------------------------------------------------------------------------


@dataclass
class _StrobeRun:
    """One running strobe: its thread writes only while it is the node's current strobe."""

    base_ns: int
    offsets: list[int]
    period_s: float
    stop: threading.Event
    thread: threading.Thread | None = None


class ClockNemesis:
    """Skews the wall clocks of registered processes, per node. Thread-safe; ``heal`` is idempotent.

    ``processes`` maps node -> skewable processes; the run loop adds more with ``register``.
    """

    def __init__(self, processes: Mapping[str, Iterable[Skewable]] | None = None) -> None:
        self._lock = threading.RLock()
        self._processes: dict[str, list[Skewable]] = {n: list(ps) for n, ps in (processes or {}).items()}
        self._offsets: dict[str, int] = dict.fromkeys(self._processes, 0)
        self._strobes: dict[str, _StrobeRun] = {}
        self._stopped: list[_StrobeRun] = []  # stopped strobes whose threads heal() waits for
        # What went wrong since the last op (an ordered set), reported in that op's completion.
        self._notes: dict[str, None] = {}

    # The Nemesis protocol.

    def fs(self) -> set[str]:
        return set(CLOCK_FS)

    def setup(self, test: Any) -> None:
        for node, mechanisms in sorted(self.mechanisms().items()):
            log.info("clock skew on %s via %s", node, ", ".join(sorted(mechanisms)) or "no process yet")

    def invoke(self, test: Any, op: Op) -> Op:
        try:
            if op.f == BUMP:
                return completed(op, self.bump(parse_bump(op.value)), self._take_notes())
            if op.f == STROBE:
                return completed(op, self.strobe(parse_strobe(op.value)), self._take_notes())
            if op.f == RESET:
                return completed(op, self.reset(parse_reset(op.value, self.nodes())), self._take_notes())
        except ValueError as e:
            return completed(op, None, error=str(e))
        return completed(op, None, error=f"the clock nemesis does not handle {op.f!r}")

    def heal(self, test: Any = None) -> None:
        """Stop every strobe and put every node's clock back to offset 0; no strobe thread is left."""
        self.reset(self.nodes())
        self._join_stopped()

    # Registration and state.

    def register(self, node: str, process: Skewable) -> None:
        """Add a process to ``node``; it takes the node's current offset right away."""
        with self._lock:
            self._processes.setdefault(node, []).append(process)
            offset = self._offsets.setdefault(node, 0)
            self._write(node, process, offset)

    def unregister(self, node: str, pid: int) -> None:
        with self._lock:
            self._processes[node] = [p for p in self._processes.get(node, []) if p.pid != pid]

    def nodes(self) -> list[str]:
        with self._lock:
            return sorted(self._offsets)

    def offset_ns(self, node: str) -> int:
        """The node's current offset (what a process started on it now should get)."""
        with self._lock:
            return self._offsets.get(node, 0)

    def mechanisms(self) -> dict[str, set[str]]:
        """Which mechanism skews each node's processes ("vdso", "faketime")."""
        with self._lock:
            return {n: {p.mechanism for p in ps} for n, ps in self._processes.items()}

    # The faults, callable directly too.

    def bump(self, deltas_ms: Mapping[str, int]) -> dict[str, int]:
        """Move each node's offset by its delta; returns the new offsets in ms."""
        with self._lock:
            for node, delta in deltas_ms.items():
                _check_offset(node, self._base_offset(node) + delta * NS_PER_MS)
            for node, delta in deltas_ms.items():
                self._stop_strobe(node)
                self._set_node(node, self._offsets.get(node, 0) + delta * NS_PER_MS)
            return {node: self._offsets[node] // NS_PER_MS for node in deltas_ms}

    def strobe(self, strobes: Mapping[str, Strobe]) -> dict[str, dict[str, int]]:
        """Start a background strobe per node; returns each node's base and skewed offsets in ms."""
        started = {}
        with self._lock:
            for node, spec in strobes.items():
                _check_offset(node, self._base_offset(node) + spec.delta_ms * NS_PER_MS)
            for node, spec in strobes.items():
                self._stop_strobe(node)
                base = self._offsets.setdefault(node, 0)
                run = _StrobeRun(base, strobe_offsets(base, spec), spec.period_ms / 1000, threading.Event())
                run.thread = threading.Thread(
                    target=self._run_strobe, args=(node, run), name=f"clock-strobe-{node}", daemon=True
                )
                self._strobes[node] = run
                run.thread.start()
                started[node] = {"base_ms": base // NS_PER_MS, "strobe_ms": base // NS_PER_MS + spec.delta_ms}
        return started

    def reset(self, nodes: Iterable[str]) -> dict[str, int]:
        with self._lock:
            nodes = list(nodes)
            for node in nodes:
                self._stop_strobe(node)
                self._set_node(node, 0)
            return dict.fromkeys(nodes, 0)

    def wait_strobes(self) -> None:
        """Block until every running strobe has finished (tests, and a final phase that lets them run)."""
        with self._lock:
            runs = list(self._strobes.values())
        for run in runs:
            if run.thread is not None:
                run.thread.join()

    # Internals. Everything that reads or writes offsets holds the lock.

    def _base_offset(self, node: str) -> int:
        """The node's offset not counting a running strobe's excursion."""
        run = self._strobes.get(node)
        return run.base_ns if run is not None else self._offsets.get(node, 0)

    def _run_strobe(self, node: str, run: _StrobeRun) -> None:
        for i, offset in enumerate(run.offsets):
            if i and run.stop.wait(run.period_s):
                return
            with self._lock:
                if self._strobes.get(node) is not run:
                    return  # a newer op on this node took over; it has written its own offset
                self._set_node(node, offset)
        with self._lock:
            if self._strobes.get(node) is run:
                del self._strobes[node]

    def _stop_strobe(self, node: str) -> None:
        """Stop the node's strobe (it never writes again) and take its base as the node's offset; the
        caller writes the offset it wants next."""
        run = self._strobes.pop(node, None)
        if run is not None:
            run.stop.set()
            self._offsets[node] = run.base_ns
            self._stopped.append(run)

    def _set_node(self, node: str, offset_ns: int) -> None:
        self._offsets[node] = offset_ns
        processes = list(self._processes.get(node, []))
        if not processes and offset_ns != 0:
            # Not an error (the node may be down and get the offset when it restarts), but say so.
            self._notes[f"{node}: no process to skew yet"] = None
        for process in processes:
            self._write(node, process, offset_ns)

    def _write(self, node: str, process: Skewable, offset_ns: int) -> None:
        try:
            process.set_offset(offset_ns)
        except ClockPatchError as e:
            # A killed process is expected under a kill nemesis: forget it (the run loop registers the
            # restarted one) and keep skewing the others; the op's completion says which were dropped.
            log.info("clock skew on %s: dropping process %s: %s", node, process.pid, e)
            self._processes[node] = [p for p in self._processes.get(node, []) if p is not process]
            self._notes[f"{node}: dropped pid {process.pid}: {e}"] = None

    def _take_notes(self) -> str | None:
        with self._lock:
            notes, self._notes = self._notes, {}
        return "; ".join(notes) if notes else None

    def _join_stopped(self) -> None:
        with self._lock:
            stopped, self._stopped = self._stopped, []
        for run in stopped:
            if run.thread is not None and run.thread is not threading.current_thread():
                run.thread.join()
