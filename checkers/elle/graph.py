"""The dependency graph between transactions, and the search for classified cycles in it.

Edges carry a bit mask of kinds (a pair of txns can be related in several ways). The search first splits
the graph into strongly connected components (networkx); only a non-trivial component holds cycles, and
every search below stays inside one component. Per component and per level (data edges only; plus
process order; plus real-time order) it looks for, in this order:

- G0: a cycle of ww edges;
- G1c: a cycle of ww/wr edges with at least one wr;
- G-single: a cycle with exactly one rw edge, the rest ww/wr;
- G-nonadjacent: a closed walk whose rw edges are never adjacent (found as a cycle in a graph of states
  "arrived by rw / not by rw", which is linear, unlike enumerating cycles);
- G2-item: a closed walk with two or more rw edges.

A type is skipped when an anomaly already found in the component implies it (G0 implies G1c, G-single
implies G-nonadjacent and G2-item, a base anomaly implies its -process and -realtime variants). Every
search decides exactly whether its cycle exists (G-single by reachability bit sets over a condensation).
Paths are found by breadth-first searches under a budget; a search that runs out (or a G-single search
too large for bit sets) reports a ``cycle-search-timeout``, so a search that gave up never reads as "no
anomaly".
"""

from __future__ import annotations

import gc
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import networkx as nx
from splitbrain.checkers.elle.consistency import implied_anomalies

WW, WR, RW, PROCESS, REALTIME = 1, 2, 4, 8, 16
KIND_NAMES = {WW: "ww", WR: "wr", RW: "rw", PROCESS: "process", REALTIME: "realtime"}
# When an edge has several kinds, it is read as the least severe one the search allows.
_LABEL_PREFERENCE = (WW, WR, PROCESS, REALTIME, RW)

Step = tuple[int, int, int]  # (from txn, to txn, kind)


@dataclass(frozen=True)
class Cycle:
    """A cycle (or closed walk) of the graph: ``steps[i][1] == steps[i+1][0]``, the last step returns."""

    anomaly: str
    steps: tuple[Step, ...]

    @property
    def txns(self) -> list[int]:
        return [a for a, _, _ in self.steps]


@dataclass
class SearchOutcome:
    cycles: list[Cycle] = field(default_factory=list)
    # components whose search ran out of budget before it could rule an anomaly out: their sizes
    timeouts: list[int] = field(default_factory=list)


class DependencyGraph:
    """Edges between txn ids ``0..n-1``, each with a mask of kinds; self-edges are dropped."""

    __slots__ = ("n", "edges")

    def __init__(self, n: int) -> None:
        self.n = n
        self.edges: dict[int, int] = {}  # a * n + b -> kinds (an int key is much cheaper than a tuple)

    def add(self, a: int, b: int, kind: int) -> None:
        if a != b:
            key = a * self.n + b
            self.edges[key] = self.edges.get(key, 0) | kind

    def add_all(self, pairs: Iterable[tuple[int, int]], kind: int) -> None:
        edges, n = self.edges, self.n
        for a, b in pairs:
            if a != b:
                key = a * n + b
                edges[key] = edges.get(key, 0) | kind

    def kinds(self, a: int, b: int) -> int:
        return self.edges.get(a * self.n + b, 0)

    def pairs(self) -> Iterable[tuple[int, int]]:
        n = self.n
        return (divmod(key, n) for key in self.edges)


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building large graphs.

    The checkers allocate millions of small containers that stay alive until the end; each collection
    would re-scan all of them (about 30% of the run time at 100k txns). Nothing here creates reference
    cycles, so plain reference counting frees everything.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def label(mask: int, allowed: int) -> int:
    """The kind an edge counts as when only ``allowed`` kinds may be used (0 if none)."""
    usable = mask & allowed
    for kind in _LABEL_PREFERENCE:
        if usable & kind:
            return kind
    return 0


def _suffix(steps: Iterable[Step]) -> str:
    kinds = {k for _, _, k in steps}
    if REALTIME in kinds:
        return "-realtime"
    if PROCESS in kinds:
        return "-process"
    return ""


class _Budget:
    def __init__(self, steps: int) -> None:
        self.left = steps
        self.exhausted = False

    def spend(self, n: int = 1) -> bool:
        self.left -= n
        if self.left < 0:
            self.exhausted = True
        return not self.exhausted


Adjacency = dict[int, list[tuple[int, int]]]  # txn -> [(successor, kinds)] inside one component


def _bfs_path(adj: Adjacency, src: int, dst: int, allowed: int, budget: _Budget,
              within: set[int] | None = None) -> list[Step] | None:
    """Shortest path src -> dst using edges that have an allowed kind (steps labelled), or None."""
    parent: dict[int, tuple[int, int]] = {src: (-1, 0)}
    queue = deque([src])
    while queue:
        u = queue.popleft()
        if not budget.spend():
            return None
        for v, mask in adj[u]:
            kind = label(mask, allowed)
            if not kind or v in parent or (within is not None and v not in within):
                continue
            parent[v] = (u, kind)
            if v == dst:
                path: list[Step] = []
                while v != src:
                    p, k = parent[v]
                    path.append((p, v, k))
                    v = p
                path.reverse()
                return path
            queue.append(v)
    return None


def _bfs_tree(adj: Adjacency, src: int, allowed: int, budget: _Budget) -> dict[int, tuple[int, int]] | None:
    """Breadth-first tree from src over allowed edges: node -> (parent, kind); None if over budget."""
    parent: dict[int, tuple[int, int]] = {src: (-1, 0)}
    queue = deque([src])
    while queue:
        u = queue.popleft()
        if not budget.spend():
            return None
        for v, mask in adj[u]:
            kind = label(mask, allowed)
            if kind and v not in parent:
                parent[v] = (u, kind)
                queue.append(v)
    return parent


def _path_to(parent: dict[int, tuple[int, int]], src: int, dst: int) -> list[Step]:
    path: list[Step] = []
    v = dst
    while v != src:
        p, k = parent[v]
        path.append((p, v, k))
        v = p
    path.reverse()
    return path


def _components(nodes: Iterable[int], adj: Adjacency, allowed: int) -> list[set[int]]:
    """Non-trivial strongly connected components of the subgraph of ``allowed`` edges."""
    g = nx.DiGraph()
    g.add_nodes_from(nodes)
    g.add_edges_from((u, v) for u, succ in adj.items() for v, mask in succ if mask & allowed)
    return [c for c in nx.strongly_connected_components(g) if len(c) > 1]


def _closed_walk(adj: Adjacency, start: int, allowed: int, budget: _Budget, within: set[int]) -> list[Step] | None:
    """A shortest cycle through ``start`` using allowed edges inside ``within``."""
    for v, mask in adj[start]:
        kind = label(mask, allowed)
        if kind and v in within:
            back = _bfs_path(adj, v, start, allowed, budget, within)
            if back is not None:
                return [(start, v, kind), *back]
    return None


def _g0(adj: Adjacency, nodes: set[int], extra: int, budget: _Budget) -> list[Step] | None:
    allowed = WW | extra
    for comp in _components(nodes, adj, allowed):
        walk = _closed_walk(adj, next(iter(comp)), allowed, budget, comp)
        if walk:
            return walk
    return None


def _g1c(adj: Adjacency, nodes: set[int], extra: int, budget: _Budget) -> list[Step] | None:
    allowed = WW | WR | extra
    for comp in _components(nodes, adj, allowed):
        for u in comp:
            for v, mask in adj[u]:
                if v in comp and label(mask, allowed) == WR:
                    back = _bfs_path(adj, v, u, allowed, budget, comp)
                    if back is not None:
                        return [(u, v, WR), *back]
    return None


# The exact G-single search keeps one bit set per dependency component; above this many bits in total
# it falls back to breadth-first searches under the budget.
_REACHABILITY_BITS = 2_000_000_000


def _g_single(adj: Adjacency, nodes: set[int], extra: int, budget: _Budget) -> list[Step] | None:
    """One rw edge u -> v closed by a path v -> u of non-rw edges.

    Exact: over the condensation (a DAG) of the non-rw subgraph, each component learns, as a bit set,
    which rw sources it reaches; an rw edge u -> v closes a cycle iff v's component reaches u's.
    """
    dep = WW | WR | extra
    rw_edges = [(u, v) for u in nodes for v, mask in adj[u] if label(mask, dep | RW) == RW]
    if not rw_edges:
        return None
    g = nx.DiGraph()
    g.add_nodes_from(nodes)
    g.add_edges_from((u, v) for u in nodes for v, mask in adj[u] if label(mask, dep))
    dag = nx.condensation(g)
    comp_of: dict[int, int] = dag.graph["mapping"]
    sources = {comp_of[u] for u, _ in rw_edges}
    if len(sources) * dag.number_of_nodes() > _REACHABILITY_BITS:
        return _g_single_by_search(adj, rw_edges, dep, budget)
    bit = {c: 1 << i for i, c in enumerate(sources)}
    reach: dict[int, int] = {}
    for c in reversed(list(nx.topological_sort(dag))):
        r = bit.get(c, 0)
        for d in dag.successors(c):
            r |= reach[d]
        reach[c] = r
    for u, v in rw_edges:
        if reach[comp_of[v]] & bit[comp_of[u]]:
            back = _bfs_path(adj, v, u, dep, _Budget(len(nodes) + 1))  # exists: one BFS finds it
            assert back is not None
            return [(u, v, RW), *back]
    return None


def _g_single_by_search(adj: Adjacency, rw_edges: list[tuple[int, int]], dep: int,
                        budget: _Budget) -> list[Step] | None:
    """One breadth-first tree per distinct rw target answers every rw edge into it (budgeted)."""
    sources_of: dict[int, list[int]] = {}
    for u, v in rw_edges:
        sources_of.setdefault(v, []).append(u)
    for v, us in sources_of.items():
        parent = _bfs_tree(adj, v, dep, budget)
        if parent is None:
            return None
        for u in us:
            if u in parent:
                return [(u, v, RW), *_path_to(parent, v, u)]
    return None


def _g_nonadjacent(adj: Adjacency, nodes: set[int], extra: int, budget: _Budget) -> list[Step] | None:
    """A closed walk with at least one rw edge where no two rw edges follow each other.

    States: 2x = "at x, arrived by a non-rw edge (or start)", 2x+1 = "at x, arrived by rw". Non-rw edges
    go from either state to 2y; an rw edge only from 2x to 2y+1. A cycle through some 2y+1 state is
    exactly such a walk.
    """
    dep = WW | WR | extra
    states: Adjacency = {}
    for u in nodes:
        out0: list[tuple[int, int]] = []
        out1: list[tuple[int, int]] = []
        for v, mask in adj[u]:
            kind = label(mask, dep | RW)
            if kind == RW:
                out0.append((2 * v + 1, RW))
            elif kind:
                out0.append((2 * v, kind))
                out1.append((2 * v, kind))
        states[2 * u] = out0
        states[2 * u + 1] = out1
    every = dep | RW
    for comp in _components(states.keys(), states, every):
        start = next((s for s in comp if s % 2 == 1), None)
        if start is None:
            continue
        walk = _closed_walk(states, start, every, budget, comp)
        if walk is None:
            return None
        return [(a // 2, b // 2, k) for a, b, k in walk]
    return None


def _g2_item(adj: Adjacency, nodes: set[int], extra: int, budget: _Budget) -> list[Step] | None:
    """A closed walk with two or more rw edges: from an rw edge u -> v, walk v -> u passing another rw.

    States: 2x = "at x, no second rw yet", 2x+1 = "at x, passed a second rw".
    """
    every = WW | WR | RW | extra
    for comp in _components(nodes, adj, every):
        rw_edges = [(u, v) for u in comp for v, mask in adj[u] if v in comp and label(mask, every) == RW]
        if len(rw_edges) < 2:
            continue
        states: Adjacency = {}
        for x in comp:
            out0: list[tuple[int, int]] = []
            out1: list[tuple[int, int]] = []
            for y, mask in adj[x]:
                if y not in comp:
                    continue
                kind = label(mask, every)
                if kind == RW:
                    out0.append((2 * y + 1, RW))
                    out1.append((2 * y + 1, RW))
                elif kind:
                    out0.append((2 * y, kind))
                    out1.append((2 * y + 1, kind))
            states[2 * x] = out0
            states[2 * x + 1] = out1
        u, v = rw_edges[0]
        back = _bfs_path(states, 2 * v, 2 * u + 1, every, budget)
        if back is not None:
            return [(u, v, RW), *((a // 2, b // 2, k) for a, b, k in back)]
    return None


_SEARCHES = (("G0", _g0), ("G1c", _g1c), ("G-single", _g_single), ("G-nonadjacent", _g_nonadjacent),
             ("G2-item", _g2_item))


def _levels(graph_kinds: int) -> list[tuple[str, int]]:
    levels = [("", 0)]
    if graph_kinds & PROCESS:
        levels.append(("-process", PROCESS))
    if graph_kinds & REALTIME:
        levels.append(("-realtime", PROCESS | REALTIME))
    return levels


def _search_component(adj: Adjacency, nodes: set[int], levels: list[tuple[str, int]],
                      budget: int) -> tuple[list[Cycle], bool]:
    found: list[Cycle] = []
    implied: set[str] = set()
    gave_up = False
    for suffix, extra in levels:
        for name, search in _SEARCHES:
            if name + suffix in implied:
                continue
            spent = _Budget(budget)
            steps = search(adj, nodes, extra, spent)
            gave_up |= spent.exhausted
            if steps:
                anomaly = name + _suffix(steps)
                found.append(Cycle(anomaly, tuple(steps)))
                implied |= implied_anomalies([anomaly])
    return found, gave_up


def _peel(incoming: list[list[int]], outgoing: list[list[int]], alive: list[bool]) -> None:
    """Mark dead every live node whose live ``incoming`` neighbours all end up dead (Kahn's algorithm)."""
    degree = [len(x) for x in incoming]
    stack = [v for v in range(len(alive)) if alive[v] and degree[v] == 0]
    for v in stack:
        alive[v] = False
    while stack:
        v = stack.pop()
        for w in outgoing[v]:
            if alive[w]:
                degree[w] -= 1
                if degree[w] == 0:
                    alive[w] = False
                    stack.append(w)


def _possibly_cyclic(graph: DependencyGraph) -> tuple[list[int], list[list[int]]]:
    """Nodes that may lie on a cycle, and the successor lists of all nodes.

    Peels off, Kahn-style, every node with no remaining predecessor and then every node with no
    remaining successor: neither can be on a cycle. In an acyclic (valid) history nothing is left, so
    the component search below costs nothing; it is also much cheaper than building a networkx graph of
    the whole history.
    """
    n = graph.n
    succ: list[list[int]] = [[] for _ in range(n)]
    pred: list[list[int]] = [[] for _ in range(n)]
    for key in graph.edges:
        a, b = divmod(key, n)
        succ[a].append(b)
        pred[b].append(a)
    alive = [True] * n
    _peel(pred, succ, alive)  # nodes no cycle can reach
    if not any(alive):
        return [], succ  # acyclic: the usual case for a valid history
    pred = [[a for a in x if alive[a]] if alive[v] else [] for v, x in enumerate(pred)]
    succ = [[b for b in x if alive[b]] if alive[v] else [] for v, x in enumerate(succ)]
    _peel(succ, pred, alive)  # nodes that reach no cycle
    succ = [[b for b in x if alive[b]] if alive[v] else [] for v, x in enumerate(succ)]
    return [v for v in range(n) if alive[v]], succ


def find_cycles(graph: DependencyGraph, *, budget_per_component: int = 1_000_000) -> SearchOutcome:
    """Classified cycles, at most one per anomaly type per strongly connected component."""
    nodes, succ = _possibly_cyclic(graph)
    outcome = SearchOutcome()
    if not nodes:
        return outcome
    g = nx.DiGraph()
    g.add_nodes_from(nodes)
    g.add_edges_from((a, b) for a in nodes for b in succ[a])
    all_kinds = 0
    for mask in graph.edges.values():
        all_kinds |= mask
    levels = _levels(all_kinds)
    for comp in nx.strongly_connected_components(g):
        if len(comp) < 2:
            continue
        adj: Adjacency = {u: [(v, graph.kinds(u, v)) for v in g.successors(u) if v in comp] for u in comp}
        cycles, gave_up = _search_component(adj, comp, levels, budget_per_component)
        outcome.cycles.extend(cycles)
        if gave_up:
            outcome.timeouts.append(len(comp))
    return outcome
