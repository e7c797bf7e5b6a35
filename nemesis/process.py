"""Crashes and pauses: kill/start and pause/resume of the target's processes on chosen nodes.

The nemesis asks the target (``Killable``: kill/start, ``Pausable``: pause/resume, as in DESIGN.md); a
target that lacks one simply does not get those ops, and ``fs()`` says so. ``OneProcessPerNode``
(control/target.py) is the usual way for a target to implement both: its processes are killed with SIGKILL
and paused by freezing their cgroup, so a daemon that called setsid is reached too.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Sequence
from typing import Any

from splitbrain.control.errors import ConfigError, RemoteError
from splitbrain.control.target import HasPrimaries, Killable, Pausable
from splitbrain.histories.op import Op
from splitbrain.nemesis.base import NemesisContext, completed

KILL, START, PAUSE, RESUME = "kill", "start", "pause", "resume"
# Node choices an op may name (value), besides an explicit list of nodes.
TARGETS = ("one", "minority", "majority", "all", "primaries")
KILL_WAIT_S = 10.0


# The target's optional capabilities live with the Target contract (targets/base.py).
__all__ = ["HasPrimaries", "Killable", "Pausable", "ProcessNemesis", "pick_nodes"]


def pick_nodes(
    spec: Any, nodes: Sequence[str], rng: random.Random, primaries: Sequence[str] | None = None
) -> list[str]:
    """The nodes an op's value names: a list of nodes, or one of TARGETS (None: a random one of them)."""
    ordered = sorted(nodes)
    if isinstance(spec, list | tuple):
        unknown = set(spec) - set(ordered)
        if unknown:
            raise ValueError(f"unknown nodes {sorted(unknown)}; nodes are {ordered}")
        return sorted(set(spec))
    if spec is None:
        choices = [t for t in TARGETS if t != "primaries" or primaries is not None]
        spec = rng.choice(choices)
    n = len(ordered)
    if spec == "one":
        return [rng.choice(ordered)]
    if spec == "minority":
        return sorted(rng.sample(ordered, max(1, (n - 1) // 2)))
    if spec == "majority":
        return sorted(rng.sample(ordered, n // 2 + 1))
    if spec == "all":
        return ordered
    if spec == "primaries":
        if primaries is None:
            raise ValueError("this target cannot name its primaries")
        if not primaries:
            raise ValueError("the target named no primary (no leader right now?)")
        return sorted(primaries)
    raise ValueError(f"unknown node choice {spec!r}; expected a list of nodes or one of {list(TARGETS)}")


class ProcessNemesis:
    """``kill``/``start`` and ``pause``/``resume`` of the target on nodes the op names (see pick_nodes).
    ``start`` without a value restarts every node it killed; ``resume`` without a value resumes every node
    it paused. ``heal`` resumes everything paused and starts everything killed."""

    def __init__(self, target: Any, nodes: Sequence[str], rng: random.Random) -> None:
        self._target = target  # the target, or the run's NemesisContext (whose target is set later)
        self.nodes = sorted(nodes)
        self.rng = rng
        self.killed: set[str] = set()
        self.paused: set[str] = set()
        # heal (e.g. on Ctrl-C, from another thread) waits for a kill or pause in flight.
        self._lock = threading.RLock()

    @property
    def target(self) -> Any:
        return self._target.target if isinstance(self._target, NemesisContext) else self._target

    def fs(self) -> set[str]:
        fs: set[str] = set()
        if isinstance(self.target, Killable):
            fs |= {KILL, START}
        if isinstance(self.target, Pausable):
            fs |= {PAUSE, RESUME}
        return fs

    def setup(self, test: Any) -> None:
        if not self.fs():
            raise ConfigError(
                f"target {type(self.target).__name__} can be neither killed nor paused "
                "(it implements neither kill/start nor pause/resume)"
            )

    def invoke(self, test: Any, op: Op) -> Op:
        with self._lock:
            return self._invoke(test, op)

    def _invoke(self, test: Any, op: Op) -> Op:
        if op.f not in self.fs():
            why = "kill/start" if op.f in (KILL, START) else "pause/resume"
            return completed(op, op.value, error=f"target {type(self.target).__name__} has no {why}")
        try:
            chosen = self._chosen(test, op)
        except ValueError as e:
            return completed(op, op.value, error=str(e))
        done, errors = self._act(test, op.f, chosen)
        return completed(op, {op.f: done}, error="; ".join(errors) or None)

    def _chosen(self, test: Any, op: Op) -> list[str]:
        if op.value is None and op.f == START:
            return sorted(self.killed)
        if op.value is None and op.f == RESUME:
            return sorted(self.paused)
        primaries = list(self.target.primaries(test)) if isinstance(self.target, HasPrimaries) else None
        return pick_nodes(op.value, self.nodes, self.rng, primaries)

    def _act(self, test: Any, f: str, nodes: Sequence[str]) -> tuple[list[str], list[str]]:
        done: list[str] = []
        errors: list[str] = []
        for node in nodes:
            try:
                self._act_on(test, f, node)
            except (RemoteError, OSError) as e:
                errors.append(f"{node}: {e}")
            else:
                done.append(node)
        return done, errors

    def _act_on(self, test: Any, f: str, node: str) -> None:
        if f == KILL:
            if node in self.paused:  # a frozen process dies only once thawed; forget the pause
                self.target.resume(test, node)
                self.paused.discard(node)
            self.target.kill(test, node)
            self.killed.add(node)
        elif f == START:
            self.target.start(test, node)
            self.killed.discard(node)
        elif f == PAUSE:
            if node in self.killed:
                return  # nothing runs there to pause
            self.target.pause(test, node)
            self.paused.add(node)
        elif f == RESUME:
            self.target.resume(test, node)
            self.paused.discard(node)

    def heal(self, test: Any) -> None:
        errors: list[str] = []
        with self._lock:
            if PAUSE in self.fs():
                errors += self._act(test, RESUME, sorted(self.paused))[1]
            if KILL in self.fs():
                errors += self._act(test, START, sorted(self.killed))[1]
        if errors:
            raise RemoteError("nemesis", ["heal", "process"], "; ".join(errors))
