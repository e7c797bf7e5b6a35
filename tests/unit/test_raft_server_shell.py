"""Pure parts of the Raft server's asyncio shell."""

from __future__ import annotations

from targets.raft.core import Entry, Message
from targets.raft.server.node import coalesce_messages


def append(to: str, prev: int, last: int, commit: int = 0) -> Message:
    entries = tuple(Entry(1, i, {"op": "put", "key": "k", "value": i}) for i in range(prev + 1, last + 1))
    return Message("append", "n1", to, 1, log_term=1 if prev else 0, index=prev, entries=entries, commit=commit)


def test_only_the_newest_replication_message_per_peer_and_type_is_sent() -> None:
    heartbeat_2 = Message("heartbeat", "n1", "n2", 1, context="1")
    heartbeat_2_later = Message("heartbeat", "n1", "n2", 1, context="2")
    messages = [append("n2", 4, 5), append("n3", 4, 5), heartbeat_2, append("n2", 4, 6, commit=4),
                append("n3", 4, 6, commit=4), heartbeat_2_later]
    assert coalesce_messages(messages) == [append("n2", 4, 6, commit=4), append("n3", 4, 6, commit=4),
                                           heartbeat_2_later]


def test_election_messages_are_never_dropped() -> None:
    votes = [Message("pre_vote", "n1", "n2", 2, log_term=1, index=3),
             Message("vote", "n1", "n2", 2, log_term=1, index=3),
             Message("vote_resp", "n1", "n3", 2)]
    assert coalesce_messages(votes) == votes


def test_responses_keep_the_latest_per_leader() -> None:
    older = Message("append_resp", "n2", "n1", 1, index=5)
    newer = Message("append_resp", "n2", "n1", 1, index=7)
    assert coalesce_messages([older, newer]) == [newer]
