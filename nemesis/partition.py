"""Network partitions: a pure algebra of grudges, and a nemesis that applies one with iptables.

A grudge maps every node to the set of nodes it drops traffic from. The functions below return a total
grudge (every node is a key, possibly with an empty set) so that applying it also clears old rules on
nodes that are no longer cut off.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from splitbrain.control.clusters import PARTITION_CHAIN
from splitbrain.control.errors import RemoteError
from splitbrain.control.remote import Remote, run_checked
from splitbrain.histories.op import Op
from splitbrain.nemesis.base import completed

Grudge = dict[str, set[str]]

CHAIN = PARTITION_CHAIN
# A node that does not answer an iptables command in this time is reported, not waited for forever.
COMMAND_TIMEOUT_S = 30.0
START, STOP = "start-partition", "stop-partition"


def majority(n: int) -> int:
    return n // 2 + 1


def complete_grudge(components: Iterable[Iterable[str]]) -> Grudge:
    """Each node drops traffic from every node outside its own component."""
    parts = [set(c) for c in components]
    everyone = set().union(*parts) if parts else set()
    return {node: everyone - part for part in parts for node in part}


def bisect(nodes: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split in two: the first half is the smaller one when the count is odd."""
    middle = len(nodes) // 2
    return list(nodes[:middle]), list(nodes[middle:])


def _shuffled(nodes: Sequence[str], rng: random.Random) -> list[str]:
    order = sorted(nodes)  # the same seed gives the same grudge, whatever order the caller passed
    rng.shuffle(order)
    return order


def halves(nodes: Sequence[str], rng: random.Random) -> Grudge:
    """Random halves that cannot talk to each other."""
    return complete_grudge(bisect(_shuffled(nodes, rng)))


def isolate(node: str, nodes: Sequence[str]) -> Grudge:
    """``node`` alone on one side, all others on the other side."""
    if node not in nodes:
        raise ValueError(f"cannot isolate {node!r}: not one of {sorted(nodes)}")
    return complete_grudge([[node], [n for n in nodes if n != node]])


def one(nodes: Sequence[str], rng: random.Random) -> Grudge:
    """One random node isolated from all others."""
    return isolate(rng.choice(sorted(nodes)), nodes)


def bridge(nodes: Sequence[str], rng: random.Random) -> Grudge:
    """Two halves that cannot talk to each other, except through one node that sees both (Jepsen's
    bridge). Needs at least 3 nodes."""
    if len(nodes) < 3:
        raise ValueError(f"a bridge needs at least 3 nodes, got {len(nodes)}")
    left, right = bisect(_shuffled(nodes, rng))
    middle = right[0]
    grudge = complete_grudge([left, right])
    return {node: dropped - {middle} if node != middle else set() for node, dropped in grudge.items()}


def majorities_ring(nodes: Sequence[str], rng: random.Random) -> Grudge:
    """Every node sees a majority (itself included), and no two nodes see the same majority.

    The nodes sit on a ring in random order and each sees its neighbours up to distance d. Links stay
    symmetric, which matters: a one-way drop also breaks TCP in the other direction, so Jepsen's one-way
    ring would leave a node seeing less than a majority over TCP. Symmetric and distinct majorities are
    impossible with 3 nodes, hence at least 4.
    """
    n = len(nodes)
    if n < 4:
        raise ValueError(f"a majorities ring needs at least 4 nodes, got {n}")
    ring = _shuffled(nodes, rng)
    reach = majority(n) // 2  # 2*reach + 1 >= majority, and < n for n >= 4
    grudge: Grudge = {}
    for i, node in enumerate(ring):
        seen = {ring[(i + d) % n] for d in range(-reach, reach + 1)}
        grudge[node] = set(ring) - seen
    return grudge


def visible(grudge: Mapping[str, set[str]], node: str) -> set[str]:
    """The nodes ``node`` exchanges traffic with in both directions, itself included."""
    return {other for other in grudge if other not in grudge[node] and node not in grudge[other]}


def grudge_json(grudge: Mapping[str, set[str]]) -> dict[str, list[str]]:
    return {node: sorted(dropped) for node, dropped in sorted(grudge.items())}


# Partition kinds a generator may ask for by name, with the least node count each needs.
KINDS: dict[str, int] = {"one": 2, "halves": 2, "bridge": 3, "majorities-ring": 4, "primaries": 2}


def kinds_for(n_nodes: int, *, with_primaries: bool) -> list[str]:
    return [k for k, least in KINDS.items() if n_nodes >= least and (with_primaries or k != "primaries")]


Primaries = Callable[[Any], Sequence[str]]


class PartitionNemesis:
    """Applies grudges with iptables DROP rules on INPUT inside each node, in a chain of our own
    (``SB-PARTITION``) so that heal flushes just that chain.

    Only INPUT: the receiver drops what its grudge says. A DROP on OUTPUT would make the sender's own
    send fail at once with EPERM, which a real partition never does, and would turn one-way grudges into
    two-way ones.

    Ops: ``start-partition`` with value None (a random kind), a kind name (see KINDS), or an explicit
    grudge ``{node: [nodes it drops]}``; ``stop-partition`` heals. ``primaries(test)`` names the nodes a
    "primaries" partition isolates (e.g. the leader), when the target can tell.
    """

    def __init__(
        self,
        remotes: Mapping[str, Remote],
        addresses: Mapping[str, str],
        rng: random.Random,
        *,
        primaries: Primaries | None = None,
        iptables: str = "iptables",
    ) -> None:
        missing = set(remotes) - set(addresses)
        if missing:
            raise ValueError(f"no address for nodes {sorted(missing)}")
        self.remotes = dict(remotes)
        self.addresses = dict(addresses)
        self.rng = rng
        self.primaries = primaries
        self.iptables = iptables
        self._ready: set[str] = set()
        # heal (e.g. on Ctrl-C, from another thread) waits for an apply in flight, so no rule outlives it.
        self._lock = threading.RLock()

    @property
    def nodes(self) -> list[str]:
        return sorted(self.remotes)

    def fs(self) -> set[str]:
        return {START, STOP}

    def setup(self, test: Any) -> None:
        for node in self.nodes:
            self._ensure_chain(node)
        self.heal(test)

    def invoke(self, test: Any, op: Op) -> Op:
        with self._lock:
            return self._invoke(test, op)

    def _invoke(self, test: Any, op: Op) -> Op:
        if op.f == STOP:
            self.heal(test)
            return completed(op, "network healed")
        if op.f != START:
            return completed(op, None, error=f"partition nemesis does not handle {op.f!r}")
        try:
            kind, grudge = self.grudge_for(test, op.value)
        except ValueError as e:
            return completed(op, op.value, error=str(e))
        try:
            self.apply(grudge)
        except RemoteError as e:
            return completed(op, {"kind": kind, "grudge": grudge_json(grudge)}, error=str(e))
        return completed(op, {"kind": kind, "grudge": grudge_json(grudge)})

    def grudge_for(self, test: Any, spec: Any) -> tuple[str, Grudge]:
        """The grudge an op's value asks for: None (random kind), a kind name, or an explicit grudge."""
        nodes = self.nodes
        if isinstance(spec, Mapping):
            unknown = (set(spec) | {n for v in spec.values() for n in v}) - set(nodes)
            if unknown:
                raise ValueError(f"grudge names unknown nodes {sorted(unknown)}; nodes are {nodes}")
            explicit = {node: set(spec.get(node, ())) for node in nodes}
            return "explicit", explicit
        kind = spec
        if kind is None:
            kind = self.rng.choice(kinds_for(len(nodes), with_primaries=self.primaries is not None))
        if kind == "one":
            return kind, one(nodes, self.rng)
        if kind == "halves":
            return kind, halves(nodes, self.rng)
        if kind == "bridge":
            return kind, bridge(nodes, self.rng)
        if kind == "majorities-ring":
            return kind, majorities_ring(nodes, self.rng)
        if kind == "primaries":
            if self.primaries is None:
                raise ValueError("this target cannot name its primaries, so it has no primaries partition")
            chosen = set(self.primaries(test))
            if not chosen:
                raise ValueError("the target named no primary (no leader right now?)")
            return kind, complete_grudge([chosen, set(nodes) - chosen])
        raise ValueError(f"unknown partition kind {kind!r}; expected one of {sorted(KINDS)} or a grudge")

    def apply(self, grudge: Mapping[str, set[str]]) -> None:
        """Replace the rules on every node at once (one iptables-restore per node, atomic per node; the
        nodes in parallel, so a partition starts on all of them within one command's time)."""
        def replace(node: str) -> None:
            self._ensure_chain(node)
            self._replace_chain(node, [self.addresses[peer] for peer in sorted(grudge.get(node, ()))])

        with self._lock:
            self._on_every_node(replace)

    def heal(self, test: Any) -> None:
        # Flush on every node, even when one fails, so one unreachable node cannot keep others cut off.
        with self._lock:
            self._on_every_node(lambda node: self._replace_chain(node, []))

    def _on_every_node(self, step: Callable[[str], None]) -> None:
        """``step`` on every node in parallel; each runs even when another fails; the first error raised."""
        with ThreadPoolExecutor(max_workers=len(self.nodes) or 1) as pool:
            futures = [pool.submit(step, node) for node in self.nodes]
        errors = [f.exception() for f in futures if f.exception() is not None]
        if errors:
            raise errors[0]

    def _ensure_chain(self, node: str) -> None:
        if node in self._ready:
            return
        remote = self.remotes[node]
        self._replace_chain(node, [])
        if not remote.exec([self.iptables, "-w", "-C", "INPUT", "-j", CHAIN], timeout=COMMAND_TIMEOUT_S).ok:
            run_checked(
                remote, [self.iptables, "-w", "-I", "INPUT", "1", "-j", CHAIN], timeout=COMMAND_TIMEOUT_S
            )
        self._ready.add(node)

    def _replace_chain(self, node: str, drop_sources: Sequence[str]) -> None:
        rules = "".join(f"-A {CHAIN} -s {address} -j DROP\n" for address in drop_sources)
        restore = f"*filter\n:{CHAIN} - [0:0]\n{rules}COMMIT\n"
        restore_cmd = [f"{self.iptables}-restore", "-w", "--noflush"]
        run_checked(self.remotes[node], restore_cmd, stdin=restore, timeout=COMMAND_TIMEOUT_S)
