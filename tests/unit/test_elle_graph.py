"""The cycle search and classification against brute force on small random graphs."""

from __future__ import annotations

import networkx as nx
from hypothesis import given, settings
from hypothesis import strategies as st
from splitbrain.checkers.elle.consistency import implied_anomalies
from splitbrain.checkers.elle.graph import PROCESS, REALTIME, RW, WR, WW, DependencyGraph, find_cycles, label

DATA = WW | WR | RW
MASKS = [WW, WR, RW, WW | RW, WR | RW, WW | WR]


@st.composite
def graphs(draw, masks=MASKS):
    n = draw(st.integers(2, 6))
    graph = DependencyGraph(n)
    for a, b in draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=14)):
        graph.add(a, b, draw(st.sampled_from(masks)))
    return graph


def _labels(graph: DependencyGraph, allowed: int) -> dict[tuple[int, int], int]:
    return {(a, b): label(graph.kinds(a, b), allowed) for a, b in graph.pairs() if label(graph.kinds(a, b), allowed)}


def _brute_force(graph: DependencyGraph) -> set[str]:
    """Anomalies by enumerating simple cycles (G0, G1c, G-single, G2-item) and, for G-nonadjacent, a
    cycle in the composed relation D ; rw? (Cerone and Gotsman's characterisation of SI)."""
    labels = _labels(graph, DATA)
    g = nx.DiGraph(list(labels))
    found: set[str] = set()
    for cycle in nx.simple_cycles(g):
        kinds = [labels[(cycle[i], cycle[(i + 1) % len(cycle)])] for i in range(len(cycle))]
        rws = kinds.count(RW)
        if rws == 0:
            found.add("G0" if set(kinds) == {WW} else "G1c")
        elif rws == 1:
            found.add("G-single")
        else:
            found.add("G2-item")
    # x R y iff x -D-> y, or x -D-> z -rw-> y; a cycle using a composed step is a nonadjacent rw walk.
    composed = nx.DiGraph()
    dep = [(a, b) for (a, b), k in labels.items() if k != RW]
    for a, b in dep:
        composed.add_edge(a, b, composed_step=False)
        for (c, d), k in labels.items():
            if k == RW and c == b:
                composed.add_edge(a, d, composed_step=True)
    for comp in nx.strongly_connected_components(composed):
        if any(composed.edges[u, v].get("composed_step") for u in comp for v in composed.successors(u) if v in comp):
            found.add("G-nonadjacent")
    return found


@settings(max_examples=400, deadline=None)
@given(graph=graphs())
def test_classification_matches_brute_force(graph):
    found = {c.anomaly for c in find_cycles(graph).cycles}
    assert implied_anomalies(found) == implied_anomalies(_brute_force(graph))


@settings(max_examples=200, deadline=None)
@given(graph=graphs())
def test_every_reported_cycle_is_a_real_closed_walk_of_its_type(graph):
    for cycle in find_cycles(graph).cycles:
        steps = cycle.steps
        assert all(steps[i][1] == steps[(i + 1) % len(steps)][0] for i in range(len(steps)))
        assert all(graph.kinds(a, b) & k for a, b, k in steps)
        rws = [k for _, _, k in steps].count(RW)
        expected_rw = {"G0": 0, "G1c": 0, "G-single": 1}.get(cycle.anomaly)
        if expected_rw is not None:
            assert rws == expected_rw
        else:
            assert rws >= 2
        if cycle.anomaly == "G0":
            assert {k for _, _, k in steps} == {WW}


@settings(max_examples=200, deadline=None)
@given(graph=graphs(masks=[WW, WR, RW, PROCESS, REALTIME, RW | REALTIME]))
def test_order_edges_only_add_process_and_realtime_variants(graph):
    cycles = find_cycles(graph).cycles
    for cycle in cycles:
        kinds = {k for _, _, k in cycle.steps}
        if cycle.anomaly.endswith("-realtime"):
            assert REALTIME in kinds
        elif cycle.anomaly.endswith("-process"):
            assert PROCESS in kinds and REALTIME not in kinds
        else:
            assert not kinds & {PROCESS, REALTIME}
    # without the order edges, exactly the base anomalies remain
    data_only = DependencyGraph(graph.n)
    for a, b in graph.pairs():
        if graph.kinds(a, b) & DATA:
            data_only.add(a, b, graph.kinds(a, b) & DATA)
    base = {c.anomaly for c in cycles if not c.anomaly.endswith(("-process", "-realtime"))}
    assert implied_anomalies(base) == implied_anomalies({c.anomaly for c in find_cycles(data_only).cycles})
