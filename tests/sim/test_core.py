"""Behaviour of the sans-IO Raft core, driven synchronously (tests/sim/raft_driver.py)."""

from __future__ import annotations

import json

import pytest
from splitbrain.targets.raft.core import (
    FOLLOWER,
    LEADER,
    Config,
    Entry,
    HardState,
    Message,
    NotLeader,
    ReadState,
    Ready,
)

from tests.sim.raft_driver import Driver


def put(key: str, value: object) -> dict:
    return {"op": "put", "key": key, "value": value}


def test_one_leader_is_elected_and_the_others_follow_it():
    d = Driver(5, seed=1)
    leader = d.elect()
    term = d.nodes[leader].term
    d.tick(30)
    assert d.leaders() == [leader]
    assert d.nodes[leader].term == term
    for nid in d.ids:
        if nid != leader:
            assert d.nodes[nid].role == FOLLOWER
            assert d.nodes[nid].leader_id == leader


def test_a_new_leader_commits_a_no_op_of_its_term():
    d = Driver(3)
    leader = d.elect()
    d.tick(3)
    first = d.applied[leader][0]
    assert first.command is None and first.term == d.nodes[leader].term


def test_proposals_commit_and_apply_in_the_same_order_everywhere():
    d = Driver(3)
    leader = d.elect()
    for v in range(10):
        d.propose(leader, put("k", v))
    d.tick(3)
    logs = {nid: [e.command for e in d.applied[nid]] for nid in d.ids}
    assert logs["n1"] == logs["n2"] == logs["n3"]
    assert [c["value"] for c in logs[leader] if c] == list(range(10))
    assert all(d.sms[nid].read("k") == 9 for nid in d.ids)


def test_propose_and_read_on_a_follower_raise_not_leader_with_a_hint():
    d = Driver(3)
    leader = d.elect()
    follower = next(i for i in d.ids if i != leader)
    with pytest.raises(NotLeader) as e:
        d.nodes[follower].propose(put("k", 1))
    assert e.value.leader == leader
    with pytest.raises(NotLeader):
        d.nodes[follower].read_index("r1")


def test_leader_stamps_its_monotonic_clock_into_commands():
    d = Driver(3)
    leader = d.elect()
    d.wall_ms = 12345
    term, index = d.propose(leader, put("k", 1))
    entry = d.nodes[leader].log_entries()[index - 1]
    assert entry.term == term and entry.command["now_ms"] == 12345 and entry.command["value"] == 1


def test_commit_needs_a_majority():
    d = Driver(5)
    leader = d.elect()
    d.tick(3)
    others = [i for i in d.ids if i != leader]
    d.cut = set(others[:3])  # leader + 1 follower: a minority
    _, index = d.propose(leader, put("k", 1))
    d.tick(5, only=[leader, others[3]])
    assert d.nodes[leader].commit_index < index
    d.cut = set(others[:2])  # leader + 2 followers: a majority of 5
    d.tick(3, only=[leader] + others[2:])
    assert d.nodes[leader].commit_index >= index


def test_entries_of_an_earlier_term_do_not_commit_by_counting_replicas():
    d = Driver(3, seed=5)
    first = d.elect()
    d.tick(3)
    d.cut = {first}
    leader = d.elect()  # a leader of a later term
    d.cut = set()
    node = d.nodes[leader]
    term = node.term
    assert term >= 2
    # White-box: give it an inherited, uncommitted suffix from an earlier term on a majority (itself + peer).
    old = Entry(term - 1, node.last_index + 1, put("x", 1))
    node._log.append(old)
    node._stable_index = node.last_index
    node.advance(Ready())
    peer = next(i for i in d.ids if i not in (leader, first))
    node.step(Message("append_resp", peer, leader, term, index=old.index))
    assert node._match[peer] == node._match[leader] == old.index
    assert node.commit_index < old.index, "an earlier term's entry committed by counting replicas"
    node.propose(put("y", 2))  # an entry of its own term commits, and the old one with it
    d.pump()
    assert node.commit_index == node.last_index


def test_an_isolated_node_does_not_disrupt_the_cluster_when_it_returns():
    d = Driver(3, seed=2)
    leader = d.elect()
    d.tick(3)
    term = d.nodes[leader].term
    loner = next(i for i in d.ids if i != leader)
    d.cut = {loner}
    for _ in range(100):  # the loner times out again and again, pre-voting into the void
        d.nodes[loner].tick()
        d.pump()
    assert d.nodes[loner].term == term, "pre-vote must not raise the term of an isolated node"
    d.cut = set()
    for _ in range(25):  # back, it campaigns before any heartbeat reaches it: the others must ignore it
        d.nodes[loner].tick()
        d.pump()
    assert d.leaders() == [leader] and d.nodes[leader].term == term
    d.tick(5)
    assert d.nodes[loner].leader_id == leader


def test_divergent_uncommitted_entries_are_replaced_by_the_new_leaders_log():
    d = Driver(3, seed=3)
    old = d.elect()
    d.tick(3)
    d.cut = {old}
    lost = [d.nodes[old].propose(put("k", f"lost{i}")) for i in range(3)]  # cannot commit: isolated
    d.pump()
    new = d.elect()
    assert new != old
    d.propose(new, put("k", "kept"))
    d.tick(3)
    d.cut = set()
    d.tick(30)
    logs = [tuple(d.nodes[i].log_entries()) for i in d.ids]
    assert logs[0] == logs[1] == logs[2]
    applied_values = [e.command["value"] for e in d.applied[old] if e.command]
    assert "kept" in applied_values and not any(str(v).startswith("lost") for v in applied_values)
    assert all(d.nodes[old].term_at(index) != term for term, index in lost)


def test_fast_back_off_repairs_a_long_divergent_follower_log_in_few_round_trips():
    d = Driver(3, seed=4)
    old = d.elect()
    d.tick(3)
    d.cut = {old}
    for i in range(50):
        d.nodes[old].propose(put("k", i))
    d.pump()
    new = d.elect()
    for i in range(50):
        d.propose(new, put("j", i))
    d.cut = set()
    rejections = []
    original_step = d.nodes[new].step

    def spy(msg: Message) -> None:
        if msg.type == "append_resp" and msg.reject:
            rejections.append(msg)
        original_step(msg)

    d.nodes[new].step = spy  # type: ignore[method-assign]
    d.tick(10)
    assert d.nodes[old].log_entries() == d.nodes[new].log_entries()
    assert len(rejections) <= 3, f"{len(rejections)} rejections: back-off is not by term"


def test_read_index_completes_after_a_heartbeat_round_at_the_commit_index():
    d = Driver(3)
    leader = d.elect()
    d.tick(3)
    d.propose(leader, put("k", 1))
    commit = d.nodes[leader].commit_index
    d.nodes[leader].read_index("r1")
    d.pump()
    assert d.read_states[leader] == [ReadState("r1", commit)]


def test_an_isolated_leader_never_confirms_a_read_and_drops_it_when_it_steps_down():
    d = Driver(3)
    leader = d.elect()
    d.tick(3)
    d.cut = {leader}
    d.nodes[leader].read_index("r1")
    for _ in range(40):  # check-quorum: the leader steps down once it misses the majority
        d.nodes[leader].tick()
        d.pump()
    assert d.read_states[leader] == []
    assert d.nodes[leader].role != LEADER
    assert d.dropped_reads[leader] == ["r1"]


def test_a_new_leader_serves_reads_only_after_committing_an_entry_of_its_term():
    d = Driver(3)
    leader = d.elect()
    followers = [i for i in d.ids if i != leader]
    d.tick(3)
    node = d.nodes[leader]
    # Make the leader's no-op uncommittable for now, then ask for a read.
    d.cut = set(followers)
    node._become_follower(node.term, None)
    node._campaign_vote()  # a fresh term with votes pending: not yet leader
    node._become_leader()  # white-box: leader whose no-op is not committed
    node.read_index("r1")
    d.pump()
    assert d.read_states[leader] == []
    d.cut = set()
    d.tick(5)
    assert [rs.context for rs in d.read_states[leader]] == ["r1"]
    assert d.read_states[leader][0].index >= node.last_index - 1


def test_stale_read_bug_answers_on_a_follower_at_once():
    d = Driver(3, bugs=frozenset({"stale-read"}))
    leader = d.elect()
    follower = next(i for i in d.ids if i != leader)
    d.nodes[follower].read_index("r1")
    d.pump()
    assert d.read_states[follower] == [ReadState("r1", d.nodes[follower].applied_index)]


def test_lease_read_bug_answers_on_the_leader_without_a_heartbeat_round():
    d = Driver(3, bugs=frozenset({"lease-read"}))
    leader = d.elect()
    d.tick(3)
    d.cut = set(i for i in d.ids if i != leader)  # no heartbeat round could complete
    d.nodes[leader].read_index("r1")
    d.pump()
    assert [rs.context for rs in d.read_states[leader]] == ["r1"]


def test_early_ack_bug_offers_blind_writes_before_commit():
    d = Driver(3, bugs=frozenset({"early-ack"}))
    leader = d.elect()
    d.tick(3)
    d.cut = set(i for i in d.ids if i != leader)
    term, index = d.propose(leader, put("k", 1))
    d.propose(leader, {"op": "cas", "key": "k", "old": 1, "new": 2})
    assert [(e.term, e.index) for e in d.early_acks[leader]] == [(term, index)]
    assert d.nodes[leader].commit_index < index


def test_a_restarted_node_keeps_term_vote_and_log_and_replays_its_committed_entries():
    d = Driver(3)
    leader = d.elect()
    for v in range(3):
        d.propose(leader, put("k", v))
    d.tick(3)
    victim = next(i for i in d.ids if i != leader)
    before = d.nodes[victim]
    term, vote, log = before.term, before.vote, before.log_entries()
    d.start(victim)
    after = d.nodes[victim]
    assert (after.term, after.vote, after.log_entries()) == (term, vote, log)
    d.tick(3)
    assert d.sms[victim].read("k") == 2


def test_messages_round_trip_through_json():
    m = Message("append", "n1", "n2", 3, log_term=2, index=5, entries=(Entry(3, 6, put("k", [1, "x"])), Entry(3, 7)),
                commit=4, reject=True, reject_hint=2, reject_term=1, context="7")
    assert Message.from_dict(json.loads(json.dumps(m.to_dict()))) == m
    hs = HardState(4, "n2", 9)
    assert HardState.from_dict(json.loads(json.dumps(hs.to_dict()))) == hs


@pytest.mark.parametrize("bad", [{}, {"type": "nope", "from": "a", "to": "b", "term": 1},
                                 {"type": "append", "from": "a", "to": "b", "term": "x"},
                                 {"type": "append", "from": "a", "to": "b", "term": 1, "entries": [1]}])
def test_malformed_messages_are_a_value_error(bad):
    with pytest.raises(ValueError):
        Message.from_dict(bad)


def test_config_rejects_unknown_bugs_and_missing_self():
    with pytest.raises(ValueError, match="unknown bug"):
        Config(id="n1", peers=("n1",), bugs=frozenset({"typo"}))
    with pytest.raises(ValueError, match="must include"):
        Config(id="n9", peers=("n1", "n2"))


def test_a_single_node_cluster_elects_itself_and_commits_alone():
    d = Driver(1)
    leader = d.elect()
    d.propose(leader, put("k", 1))
    d.tick(1)
    assert d.sms[leader].read("k") == 1
    d.nodes[leader].read_index("r")
    d.pump()
    assert [rs.context for rs in d.read_states[leader]] == ["r"]


def test_a_restarted_node_ignores_campaigns_for_one_election_timeout():
    # It may have backed the current leader's lease just before it crashed: it must not help depose it.
    d = Driver(3)
    leader = d.elect()
    d.tick(3)
    voter = next(i for i in d.ids if i != leader)
    candidate = next(i for i in d.ids if i not in (leader, voter))
    d.start(voter)
    term = d.nodes[voter].term
    ask = Message("pre_vote", candidate, voter, term + 1, log_term=d.nodes[voter].last_term,
                  index=d.nodes[voter].last_index)
    d.nodes[voter].step(ask)
    assert not d.nodes[voter].ready().messages, "answered a pre-vote right after restarting"
    for _ in range(10):
        d.nodes[voter].tick()
    d.nodes[voter].ready()  # discard its own campaign traffic
    d.nodes[voter].step(ask)
    replies = [m for m in d.nodes[voter].ready().messages if m.type == "pre_vote_resp"]
    assert replies and not replies[0].reject
