"""Fault kinds: what `--nemesis partition,kill,...` names, as objects a test composes.

A ``FaultKind`` says how one fault of its kind is drawn for a schedule (``fault(nodes, rng)``: the start
and stop ops, every choice made from the seed and stored in the ops' values), which nemesis applies it
(``nemesis(ctx)``, built once the run's nodes are up), and which optional capabilities of the target it
needs (``needs``: names of control.target.CAPABILITIES), so a run is refused before anything starts
when the target lacks one. A user's own fault kind is any object of this shape (a plugin may register one
under the entry point group ``splitbrain.nemeses``).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from splitbrain.nemesis.base import Nemesis, NemesisContext
from splitbrain.nemesis.schedule import Step


@runtime_checkable
class FaultKind(Protocol):
    name: str
    needs: tuple[str, ...]

    def fault(self, nodes: Sequence[str], rng: random.Random) -> tuple[Step, Step]: ...

    def nemesis(self, ctx: NemesisContext) -> Nemesis: ...


def _primaries_of(ctx: NemesisContext):
    def primaries(test: Any) -> Sequence[str]:
        return ctx.target.primaries(test)

    return primaries


@dataclass(frozen=True)
class Partition:
    """Network partitions (iptables drops on INPUT inside the nodes), one shape per fault from
    ``shapes``; ``primaries`` (cut the leader off) only when the target can name its primaries."""

    shapes: tuple[str, ...] = ("one", "halves", "majorities-ring", "primaries")
    name: str = field(default="partition", init=False)
    needs: tuple[str, ...] = field(default=(), init=False)

    def for_target(self, capabilities: set[str]) -> Partition:
        if "primaries" in capabilities:
            return self
        return Partition(tuple(s for s in self.shapes if s != "primaries") or ("one",))

    def fault(self, nodes: Sequence[str], rng: random.Random) -> tuple[Step, Step]:
        return Step(0, "start-partition", rng.choice(list(self.shapes))), Step(0, "stop-partition")

    def nemesis(self, ctx: NemesisContext) -> Nemesis:
        from splitbrain.nemesis.partition import PartitionNemesis

        primaries = _primaries_of(ctx) if "primaries" in self.shapes else None
        return PartitionNemesis(ctx.remotes, ctx.addresses, ctx.rng, primaries=primaries)


@dataclass(frozen=True)
class _ProcessFault:
    targets: tuple[str, ...] = ("one", "minority", "primaries")

    def for_target(self, capabilities: set[str]) -> Any:
        if "primaries" in capabilities:
            return self
        return type(self)(tuple(t for t in self.targets if t != "primaries") or ("one",))

    def nemesis(self, ctx: NemesisContext) -> Nemesis:
        from splitbrain.nemesis.process import ProcessNemesis

        return ctx.shared("process", lambda: ProcessNemesis(ctx, ctx.nodes, ctx.rng))


@dataclass(frozen=True)
class Kill(_ProcessFault):
    """Crashes: SIGKILL of the target's processes on the chosen nodes, restarted at the fault's end."""

    name: str = field(default="kill", init=False)
    needs: tuple[str, ...] = field(default=("kill/start",), init=False)

    def fault(self, nodes: Sequence[str], rng: random.Random) -> tuple[Step, Step]:
        return Step(0, "kill", rng.choice(list(self.targets))), Step(0, "start")


@dataclass(frozen=True)
class Pause(_ProcessFault):
    """Pauses: the chosen nodes' processes frozen (cgroup freezer), thawed at the fault's end."""

    name: str = field(default="pause", init=False)
    needs: tuple[str, ...] = field(default=("pause/resume",), init=False)

    def fault(self, nodes: Sequence[str], rng: random.Random) -> tuple[Step, Step]:
        return Step(0, "pause", rng.choice(list(self.targets))), Step(0, "resume")


@dataclass(frozen=True)
class Clock:
    """Clock skew: the wall clock of up to half the nodes bumped by a random amount (the vDSO patch of the
    target's processes; the host clock is never touched), reset at the fault's end."""

    deltas_ms: tuple[int, ...] = (50, 250, 1000, 5000, 30000)
    name: str = field(default="clock", init=False)
    needs: tuple[str, ...] = field(default=(), init=False)

    def fault(self, nodes: Sequence[str], rng: random.Random) -> tuple[Step, Step]:
        chosen = sorted(rng.sample(list(nodes), rng.randint(1, max(1, len(nodes) // 2))))
        deltas = {node: rng.choice([-1, 1]) * rng.choice(list(self.deltas_ms)) for node in chosen}
        return Step(0, "bump-clock", deltas), Step(0, "reset-clock")

    def nemesis(self, ctx: NemesisContext) -> Nemesis:
        from splitbrain.nemesis.clock import ClockNemesis

        return ClockNemesis()


@dataclass(frozen=True)
class Packet:
    """Packet loss on some nodes' traffic (netem where the kernel has it, else iptables statistic)."""

    losses: tuple[float, ...] = (0.05, 0.2, 0.5)
    name: str = field(default="packet", init=False)
    needs: tuple[str, ...] = field(default=(), init=False)

    def fault(self, nodes: Sequence[str], rng: random.Random) -> tuple[Step, Step]:
        value = {"loss": rng.choice(list(self.losses)), "nodes": rng.choice(["one", "minority", "all"])}
        return Step(0, "start-packet", value), Step(0, "stop-packet")

    def nemesis(self, ctx: NemesisContext) -> Nemesis:
        from splitbrain.nemesis.packet import PacketNemesis

        return PacketNemesis(ctx.remotes, ctx.rng)


def _some_nodes(spec: str, nodes: Sequence[str], rng: random.Random) -> list[str]:
    """one | minority | majority | all of ``nodes``, drawn now (the schedule stores the names)."""
    ordered = sorted(nodes)
    count = {"one": 1, "minority": max(1, (len(ordered) - 1) // 2), "majority": len(ordered) // 2 + 1,
             "all": len(ordered)}[spec]
    return sorted(rng.sample(ordered, count))


def _disk_nemesis(ctx: NemesisContext) -> Nemesis:
    from splitbrain.nemesis.disk import DiskNemesis

    return ctx.shared("disk", lambda: DiskNemesis(ctx))


@dataclass(frozen=True)
class Corrupt:
    """Damaged data files: the processes of some nodes (``targets``: one, minority, majority, all)
    killed, one of each node's files (``files``: log | snapshot | other | any) given a flipped bit, a
    zeroed chunk or a chunk copied from elsewhere in the file, the process started on it; at the fault's
    end the bytes are put back and the process restarted.
    ``live``: the files are damaged under the running process instead."""

    modes: tuple[str, ...] = ("bitflip", "zero", "copy")
    files: str = "log"
    live: bool = False
    targets: tuple[str, ...] = ("one", "minority", "majority", "all")
    name: str = field(default="corrupt", init=False)
    needs: tuple[str, ...] = field(default=("kill/start", "data_files"), init=False)

    def fault(self, nodes: Sequence[str], rng: random.Random) -> tuple[Step, Step]:
        value = {"nodes": _some_nodes(rng.choice(list(self.targets)), nodes, rng),
                 "mode": rng.choice(list(self.modes)), "files": self.files, "seed": rng.randrange(2**31)}
        if self.live:
            value["live"] = True
        return Step(0, "start-corrupt", value), Step(0, "stop-corrupt")

    def nemesis(self, ctx: NemesisContext) -> Nemesis:
        return _disk_nemesis(ctx)


@dataclass(frozen=True)
class CorruptLive(Corrupt):
    """``corrupt`` under a running process (what a target that reads its files again then sees)."""

    live: bool = True
    name: str = field(default="corrupt-live", init=False)


@dataclass(frozen=True)
class Truncate:
    """Torn writes: one node's process killed, the tail of its newest log/WAL file cut by 1..512 bytes,
    the process started again (restarted once more at the fault's end)."""

    name: str = field(default="truncate", init=False)
    needs: tuple[str, ...] = field(default=("kill/start", "data_files"), init=False)

    def fault(self, nodes: Sequence[str], rng: random.Random) -> tuple[Step, Step]:
        value = {"nodes": [rng.choice(sorted(nodes))], "seed": rng.randrange(2**31)}
        return Step(0, "start-truncate", value), Step(0, "stop-truncate")

    def nemesis(self, ctx: NemesisContext) -> Nemesis:
        return _disk_nemesis(ctx)


def _power_nemesis(ctx: NemesisContext) -> Nemesis:
    from splitbrain.nemesis.power import PowerNemesis

    return ctx.shared("power", lambda: PowerNemesis(ctx))


@dataclass(frozen=True)
class LoseUnfsynced:
    """Power cuts: the data directories on a FUSE file system that keeps only what was fsynced; a fault
    kills some nodes' processes (``targets``: one, minority, majority, all) and discards what they had not
    made durable; they start again at the fault's end. Off (no FUSE mount) unless this kind is asked for."""

    targets: tuple[str, ...] = ("one", "minority", "majority", "all")
    name: str = field(default="lose-unfsynced", init=False)
    needs: tuple[str, ...] = field(default=("kill/start", "data_files"), init=False)

    def fault(self, nodes: Sequence[str], rng: random.Random) -> tuple[Step, Step]:
        value = {"nodes": _some_nodes(rng.choice(list(self.targets)), nodes, rng)}
        return Step(0, "start-lose-unfsynced", value), Step(0, "stop-lose-unfsynced")

    def nemesis(self, ctx: NemesisContext) -> Nemesis:
        return _power_nemesis(ctx)


@dataclass(frozen=True)
class Disk:
    """``--nemesis disk``: one disk fault at a time, each drawn from ``kinds`` (corrupt, truncate,
    lose-unfsynced)."""

    kinds: tuple[str, ...] = ("corrupt", "truncate", "lose-unfsynced")
    name: str = field(default="disk", init=False)
    needs: tuple[str, ...] = field(default=("kill/start", "data_files"), init=False)

    def fault(self, nodes: Sequence[str], rng: random.Random) -> tuple[Step, Step]:
        return BUILTIN_KINDS[rng.choice(list(self.kinds))]().fault(nodes, rng)

    def nemesis(self, ctx: NemesisContext) -> Nemesis:
        from splitbrain.nemesis.base import ComposedNemesis

        parts = [_disk_nemesis(ctx)] if {"corrupt", "corrupt-live", "truncate"} & set(self.kinds) else []
        if "lose-unfsynced" in self.kinds:
            parts.append(_power_nemesis(ctx))
        return parts[0] if len(parts) == 1 else ComposedNemesis(parts)


BUILTIN_KINDS: dict[str, type] = {"partition": Partition, "kill": Kill, "pause": Pause, "clock": Clock,
                                  "packet": Packet, "corrupt": Corrupt, "corrupt-live": CorruptLive,
                                  "truncate": Truncate, "lose-unfsynced": LoseUnfsynced, "disk": Disk}
# What ``--nemesis all`` means: the faults every target takes (the disk faults need a target that names
# its data files, so they are asked for by name).
FAULT_KINDS = ("partition", "kill", "pause", "clock", "packet")


def parse_kinds(spec: str) -> tuple[str, ...]:
    """``partition,kill`` | ``all`` | ``none`` -> the built-in fault kinds' names; ValueError names the
    valid ones (an empty string is an error, not "none": say none)."""
    spec = spec.strip()
    if spec == "none":
        return ()
    if spec == "all":
        return FAULT_KINDS
    kinds = tuple(k.strip() for k in spec.split(","))
    if not spec or any(not k for k in kinds):
        raise ValueError(f"expected all, none, or a comma list of {', '.join(BUILTIN_KINDS)}, got {spec!r}")
    unknown = [k for k in kinds if k not in BUILTIN_KINDS]
    if unknown:
        raise ValueError(f"unknown nemesis {', '.join(unknown)}; expected all, none, or a comma list of "
                         f"{', '.join(BUILTIN_KINDS)}")
    return tuple(dict.fromkeys(kinds))


def kinds_named(names: Sequence[str], capabilities: set[str] | None = None) -> list[FaultKind]:
    """The built-in fault kinds of ``names``; with the target's ``capabilities``, their choices narrowed to
    what it can do (no ``primaries`` target for a system that cannot name them)."""
    kinds = [BUILTIN_KINDS[n]() for n in names]
    if capabilities is not None:
        kinds = [k.for_target(capabilities) if hasattr(k, "for_target") else k for k in kinds]
    return kinds
