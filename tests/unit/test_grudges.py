"""The partition algebra: what each kind of grudge promises about who can talk to whom."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from splitbrain.control.remote import ExecResult
from splitbrain.histories.op import Op
from splitbrain.nemesis.partition import (
    PartitionNemesis,
    bridge,
    complete_grudge,
    grudge_json,
    halves,
    isolate,
    kinds_for,
    majorities_ring,
    majority,
    one,
    visible,
)

node_counts = st.integers(min_value=2, max_value=15)
seeds = st.integers(min_value=0, max_value=2**32)


def names(n: int) -> list[str]:
    return [f"node{i}" for i in range(1, n + 1)]


def is_symmetric(grudge: dict[str, set[str]]) -> bool:
    return all(a in grudge[b] for a, dropped in grudge.items() for b in dropped)


def components(grudge: dict[str, set[str]]) -> list[set[str]]:
    found: list[set[str]] = []
    for node in grudge:
        part = visible(grudge, node)
        if part not in found:
            found.append(part)
    return found


def test_complete_grudge_cuts_exactly_between_components() -> None:
    grudge = complete_grudge([["a", "b"], ["c"], ["d", "e"]])
    assert grudge == {
        "a": {"c", "d", "e"},
        "b": {"c", "d", "e"},
        "c": {"a", "b", "d", "e"},
        "d": {"a", "b", "c"},
        "e": {"a", "b", "c"},
    }


def test_a_single_component_drops_nothing() -> None:
    assert complete_grudge([["a", "b", "c"]]) == {"a": set(), "b": set(), "c": set()}


@settings(max_examples=60, deadline=None)
@given(n=node_counts, seed=seeds)
def test_halves_split_into_two_sides_that_cannot_talk(n: int, seed: int) -> None:
    grudge = halves(names(n), random.Random(seed))
    assert set(grudge) == set(names(n))
    assert is_symmetric(grudge)
    sides = components(grudge)
    assert len(sides) == 2
    assert sorted(len(s) for s in sides) == [n // 2, n - n // 2]
    assert sides[0] | sides[1] == set(names(n)) and not sides[0] & sides[1]


@settings(max_examples=60, deadline=None)
@given(n=st.integers(min_value=3, max_value=15), seed=seeds)
def test_one_isolates_exactly_one_node(n: int, seed: int) -> None:
    grudge = one(names(n), random.Random(seed))
    alone = [node for node in grudge if visible(grudge, node) == {node}]
    assert len(alone) == 1
    rest = set(names(n)) - set(alone)
    assert all(visible(grudge, node) == rest for node in rest)


def test_isolate_names_the_node_and_refuses_strangers() -> None:
    grudge = isolate("node2", names(3))
    assert grudge["node2"] == {"node1", "node3"}
    assert grudge["node1"] == {"node2"}
    with pytest.raises(ValueError, match="node9"):
        isolate("node9", names(3))


@settings(max_examples=80, deadline=None)
@given(n=st.integers(min_value=4, max_value=15), seed=seeds)
def test_majorities_ring_every_node_sees_a_distinct_majority(n: int, seed: int) -> None:
    grudge = majorities_ring(names(n), random.Random(seed))
    assert set(grudge) == set(names(n))
    # Symmetric: what a node sees over TCP is what the grudge says it sees.
    assert is_symmetric(grudge)
    seen = [frozenset(visible(grudge, node)) for node in names(n)]
    for node, view in zip(names(n), seen, strict=True):
        assert node in view
        assert len(view) >= majority(n)
        assert len(view) < n, "a node that sees everyone is not partitioned at all"
    assert len(set(seen)) == n, "two nodes see the same majority"


@pytest.mark.parametrize("n", [1, 2, 3])
def test_majorities_ring_refuses_too_few_nodes(n: int) -> None:
    with pytest.raises(ValueError, match="at least 4"):
        majorities_ring(names(n), random.Random(0))


@settings(max_examples=60, deadline=None)
@given(n=st.integers(min_value=3, max_value=15), seed=seeds)
def test_bridge_node_sees_both_halves_that_cannot_see_each_other(n: int, seed: int) -> None:
    grudge = bridge(names(n), random.Random(seed))
    assert is_symmetric(grudge)
    middles = [node for node in grudge if visible(grudge, node) == set(names(n))]
    assert len(middles) == 1
    middle = middles[0]
    left = visible(grudge, next(node for node in grudge if node != middle)) - {middle}
    right = set(names(n)) - left - {middle}
    assert left and right
    assert all(grudge[a] >= right for a in left) and all(grudge[b] >= left for b in right)


def test_same_seed_same_grudge_whatever_the_node_order() -> None:
    nodes = names(7)
    for kind in (halves, one, bridge, majorities_ring):
        assert kind(nodes, random.Random(42)) == kind(list(reversed(nodes)), random.Random(42))


def test_kinds_for_small_clusters_leave_out_what_cannot_be_built() -> None:
    assert kinds_for(3, with_primaries=False) == ["one", "halves", "bridge"]
    assert "majorities-ring" in kinds_for(5, with_primaries=False)
    assert "primaries" in kinds_for(5, with_primaries=True)


class RecordingRemote:
    """Answers every command with success and remembers what it was asked."""

    def __init__(self, node: str) -> None:
        self.node = node
        self.commands: list[tuple[list[str], str | bytes | None]] = []

    def exec(self, cmd, *, stdin=None, timeout=None) -> ExecResult:  # noqa: ANN001 - test double
        self.commands.append((list(cmd), stdin))
        return ExecResult(0, "", "")


def nemesis_on(n: int, seed: int = 1) -> tuple[PartitionNemesis, dict[str, RecordingRemote]]:
    remotes = {node: RecordingRemote(node) for node in names(n)}
    addresses = {node: f"10.0.0.{i}" for i, node in enumerate(names(n), 1)}
    return PartitionNemesis(remotes, addresses, random.Random(seed)), remotes  # type: ignore[arg-type]


def last_restore(remote: RecordingRemote) -> str:
    restores = [stdin for cmd, stdin in remote.commands if cmd[0] == "iptables-restore"]
    assert isinstance(restores[-1], str)
    return restores[-1]


def test_partition_drops_on_input_from_the_grudge_and_heal_flushes() -> None:
    nemesis, remotes = nemesis_on(3)
    op = Op(
        index=0, type="invoke", process="nemesis", f="start-partition", value={"node1": ["node2", "node3"]}
    )
    done = nemesis.invoke(None, op)
    assert done.type == "info" and done.error is None
    assert done.value["grudge"]["node1"] == ["node2", "node3"]
    assert "-A SB-PARTITION -s 10.0.0.2 -j DROP" in last_restore(remotes["node1"])
    assert "-A SB-PARTITION -s 10.0.0.3 -j DROP" in last_restore(remotes["node1"])
    assert "-j DROP" not in last_restore(remotes["node2"])  # explicit grudge: node2 keeps listening
    # The chain is hooked into INPUT, never OUTPUT.
    hooked = [cmd for cmd, _ in remotes["node1"].commands if "-I" in cmd or "-C" in cmd]
    assert hooked and all("INPUT" in cmd and "OUTPUT" not in cmd for cmd in hooked)

    nemesis.invoke(None, op.with_(f="stop-partition", value=None))
    assert all("-j DROP" not in last_restore(r) for r in remotes.values())


def test_partition_reports_a_bad_request_on_the_op_instead_of_raising() -> None:
    nemesis, _ = nemesis_on(3)
    op = Op(index=0, type="invoke", process="nemesis", f="start-partition", value="majorities-ring")
    done = nemesis.invoke(None, op)
    assert done.type == "info" and "at least 4" in done.error
    strange = nemesis.invoke(None, op.with_(value={"node7": ["node1"]}))
    assert "node7" in strange.error


def test_random_partitions_replay_from_the_seed() -> None:
    op = Op(index=0, type="invoke", process="nemesis", f="start-partition", value=None)
    runs = []
    for _ in range(2):
        nemesis, _ = nemesis_on(5, seed=9)
        runs.append([nemesis.invoke(None, op).value for _ in range(5)])
    assert runs[0] == runs[1]
    assert grudge_json({"b": {"z", "a"}, "a": set()}) == {"a": [], "b": ["a", "z"]}
