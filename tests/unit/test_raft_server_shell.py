"""Pure parts of the Raft server's asyncio shell."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from splitbrain.targets.raft.core import Entry, Message
from splitbrain.targets.raft.server.coalesce import coalesce_messages
from splitbrain.targets.raft.server.http_api import Reply
from splitbrain.targets.raft.server.node import NodeFailure, RaftServer, ServerConfig


def append(to: str, prev: int, last: int, commit: int = 0, term: int = 1) -> Message:
    entries = tuple(Entry(term, i, {"op": "put", "key": "k", "value": i}) for i in range(prev + 1, last + 1))
    return Message("append", "n1", to, term, log_term=term if prev else 0, index=prev, entries=entries,
                   commit=commit)


def test_pipelined_appends_to_a_peer_are_merged_into_one() -> None:
    pipelined = [append("n2", 4, 5), append("n3", 4, 5), append("n2", 5, 7, commit=4), append("n3", 5, 6),
                 append("n2", 7, 7, commit=5)]  # the last one only carries a newer commit
    assert coalesce_messages(pipelined) == [append("n2", 4, 7, commit=5), append("n3", 4, 6)]


def test_overlapping_appends_merge_to_their_union() -> None:
    assert coalesce_messages([append("n2", 4, 8), append("n2", 6, 10, commit=3)]) == [append("n2", 4, 10, commit=3)]
    assert coalesce_messages([append("n2", 4, 8), append("n2", 5, 6, commit=3)]) == [append("n2", 4, 8, commit=3)]


def test_appends_that_cannot_be_one_message_are_all_sent() -> None:
    gap = [append("n2", 4, 5), append("n2", 7, 8)]
    restart = [append("n2", 4, 5), append("n2", 2, 5)]  # after a rejection, from further back
    new_term = [append("n2", 4, 5), append("n2", 5, 6, term=2)]
    for messages in (gap, restart, new_term):
        assert coalesce_messages(messages) == messages


def test_only_the_newest_heartbeat_round_per_peer_is_sent() -> None:
    rounds = [Message("heartbeat", "n1", peer, 1, commit=3, context=str(seq)) for seq in (1, 2) for peer in ("n2", "n3")]
    assert coalesce_messages(rounds) == rounds[2:]


def test_election_messages_are_never_dropped() -> None:
    votes = [Message("pre_vote", "n1", "n2", 2, log_term=1, index=3),
             Message("vote", "n1", "n2", 2, log_term=1, index=3),
             Message("vote_resp", "n1", "n3", 2)]
    assert coalesce_messages(votes) == votes


def test_responses_keep_the_highest_acknowledgement_and_every_rejection() -> None:
    acks = [Message("append_resp", "n2", "n1", 1, index=i) for i in (5, 9, 7)]
    reject = Message("append_resp", "n2", "n1", 1, index=9, reject=True, reject_hint=6)
    assert coalesce_messages([acks[0], reject, acks[1], acks[2]]) == [reject, acks[1]]


def single_node_config(tmp_path: Path, **overrides: Any) -> ServerConfig:
    return ServerConfig(id="n1", listen=("127.0.0.1", 0), client_listen=("127.0.0.1", 0),
                        peers={"n1": ("127.0.0.1", 0)}, data_dir=tmp_path, tick_ms=5, **overrides)


async def until_leader(server: RaftServer) -> None:
    while server.core.role != "leader":
        await asyncio.sleep(0.01)


@pytest.mark.timeout(20)
def test_a_single_node_serves_and_recovers_from_its_log(tmp_path: Path) -> None:
    async def session(puts: list[Any]) -> list[Reply]:
        server = RaftServer(single_node_config(tmp_path))
        running = asyncio.create_task(server.run())
        await until_leader(server)
        replies = [await server.handle_operation("put", {"key": "k", "value": v}) for v in puts]
        replies.append(await server.handle_operation("get", {"key": "k"}))
        server.stop()
        await running
        return replies

    first = asyncio.run(session([1, 2]))
    assert [r.body["value"] for r in first] == [1, 2, 2]
    again = asyncio.run(session([]))  # a restart replays the durable log into the state machine
    assert again[-1].body["value"] == 2


@pytest.mark.timeout(20)
def test_a_failed_fsync_stops_the_node_before_anything_is_acknowledged(tmp_path: Path) -> None:
    acknowledged: list[Reply] = []

    async def session() -> None:
        server = RaftServer(single_node_config(tmp_path))
        running = asyncio.create_task(server.run())
        await until_leader(server)

        def broken_save(*args: Any, **kwargs: Any) -> None:
            raise OSError(28, "No space left on device")

        server._wal.save = broken_save  # type: ignore[method-assign]
        put = asyncio.create_task(server.handle_operation("put", {"key": "k", "value": 1}))
        put.add_done_callback(lambda t: acknowledged.append(t.result()) if not t.cancelled() else None)
        await running

    with pytest.raises(NodeFailure, match="No space left on device"):
        asyncio.run(session())
    assert acknowledged == []
