"""The asyncio shell around the sans-IO Raft core: clock, disk, network and clients.

One event loop owns everything; the core is only touched from it. Inputs (ticks, peer messages, client
proposals and reads) are fed to the core and wake the Ready task, which follows the core's contract:
persist hard state and entries (write + fsync, in a worker thread) -> send messages (replication
messages of the batch combined, see coalesce.py) -> apply committed entries and answer the clients
waiting on them -> serve confirmed reads -> advance. While one fsync runs, the loop keeps taking
requests and messages; they all go into the next Ready and share its fsync (group commit).

How a client's answer is decided (the ``definite`` flag of an error):
- no leader known, or the leader is not connected, before anything was proposed: definite;
- proposed, and the committed entry at that index has another term: definite (it was overwritten);
- proposed, and no verdict before the timeout (leader lost, partition, slow disk): indefinite;
- forwarded to the leader and no reply before the timeout: indefinite.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from splitbrain.targets.raft.core import (
    Config,
    Entry,
    HardState,
    Message,
    NotLeader,
    PersistedState,
    RaftNode,
    Ready,
    StateMachine,
)
from splitbrain.targets.raft.server.coalesce import coalesce_messages
from splitbrain.targets.raft.server.http_api import OPERATIONS, HttpApi, Reply, is_read_only
from splitbrain.targets.raft.server.storage import DurableLog
from splitbrain.targets.raft.server.transport import PeerTransport, cancel_and_wait

log = logging.getLogger(__name__)

# An operation that reaches the leader through a follower: the follower's own wait is a bit longer, so
# a verdict the leader reaches in time also reaches the client.
FORWARD_GRACE_S = 0.5
UNSYNCED_FLUSH_INTERVAL_S = 2.0


class NodeFailure(Exception):
    """The node stopped itself because its durable state can no longer be trusted (a failed fsync)."""


@dataclass(frozen=True)
class ServerConfig:
    id: str
    listen: tuple[str, int]
    client_listen: tuple[str, int]
    peers: dict[str, tuple[str, int]]  # every voter, this node included
    data_dir: Path
    bugs: frozenset[str] = frozenset()
    tick_ms: int = 50
    election_ticks: int = 10
    heartbeat_ticks: int = 2
    request_timeout_s: float = 2.0
    seed: int | None = None


def command_of(operation: str, args: dict[str, Any]) -> dict[str, Any]:
    """The state machine command for a client operation (see targets/raft/core/API.md)."""
    return {"op": operation, **args}


@dataclass
class _Proposal:
    term: int
    future: asyncio.Future[Reply]


@dataclass
class _Read:
    key: Any
    future: asyncio.Future[Reply]
    index: int | None = None  # set once the leader confirmed it (ReadState)
    mops: list[Any] | None = None  # a read-only txn's micro-ops (else a get of ``key``)


@dataclass
class _Pending:
    """Clients waiting for the core, keyed the way the core reports back."""

    proposals: dict[int, _Proposal] = field(default_factory=dict)  # by log index
    reads: dict[str, _Read] = field(default_factory=dict)  # by read context
    forwards: dict[int, asyncio.Future[Reply]] = field(default_factory=dict)  # by forward id


def wall_clock_ms() -> int:
    """What a clock-skew nemesis moves (only the lease-read bug trusts it)."""
    return time.time_ns() // 1_000_000


def monotonic_clock_ms() -> int:
    """Lock leases are measured on this: it never jumps."""
    return time.monotonic_ns() // 1_000_000


class RaftServer:
    """One node of the store. ``await server.run()`` serves until ``stop()``."""

    def __init__(self, config: ServerConfig, clock_ms: Callable[[], int] = wall_clock_ms) -> None:
        self.config = config
        self._clock_ms = clock_ms
        self._wal, recovered = DurableLog.open(config.data_dir, sync="no-fsync" not in config.bugs,
                                               check_crc="no-crc" not in config.bugs,
                                               fsync_lies="fsync-lies" in config.bugs)
        persisted = None
        if recovered.hard_state is not None or recovered.entries:
            hard_state = HardState.from_dict(recovered.hard_state) if recovered.hard_state else HardState()
            persisted = PersistedState(hard_state, tuple(Entry.from_dict(e) for e in recovered.entries))
        log.info("%s: recovered %d entries, hard state %s", config.id, len(recovered.entries),
                 recovered.hard_state)
        seed = f"{config.seed}:{config.id}" if config.seed is not None else None
        self.core = RaftNode(
            Config(id=config.id, peers=tuple(sorted(config.peers)), election_ticks=config.election_ticks,
                   heartbeat_ticks=config.heartbeat_ticks, tick_ms=config.tick_ms, bugs=config.bugs),
            random.Random(seed), clock_ms, persisted, monotonic_ms=monotonic_clock_ms)
        self.state_machine = StateMachine(config.bugs)
        self._saved_hard_state = persisted.hard_state if persisted is not None else HardState()
        self._pending = _Pending()
        self._ids = itertools.count(1)
        self._ready_wakeup = asyncio.Event()
        self._forwarded_tasks: set[asyncio.Task[None]] = set()
        self._disk = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wal")
        self._stopped = asyncio.Event()
        self._failure: NodeFailure | None = None
        self._last_role = ""
        self.transport = PeerTransport(config.id, config.listen, config.peers, self._on_frame)
        self.http = HttpApi(config.client_listen, self.handle_operation, self.status)

    # --- lifecycle ---------------------------------------------------------------------------------

    async def run(self) -> None:
        await self.transport.start()
        await self.http.start()
        log.info("%s: peers on %s:%d, clients on %s:%d, bugs: %s", self.config.id, *self.config.listen,
                 *self.config.client_listen, ",".join(sorted(self.config.bugs)) or "none")
        tasks = [asyncio.create_task(self._tick_forever(), name="ticker"),
                 asyncio.create_task(self._ready_forever(), name="ready")]
        if not self._wal.sync:
            tasks.append(asyncio.create_task(self._flush_unsynced_forever(), name="unsynced-flush"))
        for task in tasks:
            task.add_done_callback(self._stop_if_failed)
        try:
            await self._stopped.wait()
        finally:
            await cancel_and_wait(tasks)
            await self.http.stop()
            await self.transport.stop()
            self._disk.shutdown(wait=True)  # a write in flight finishes before the file closes
            self._wal.close()
        if self._failure is not None:
            raise self._failure

    def stop(self) -> None:
        self._stopped.set()

    def _stop_if_failed(self, task: asyncio.Task[None]) -> None:
        """A background task that dies (a bug in the core, a failed flush) stops the node loudly."""
        if task.cancelled() or task.exception() is None:
            return
        error = task.exception()
        log.critical("%s: stopping: task %s failed: %r", self.config.id, task.get_name(), error, exc_info=error)
        if self._failure is None:
            self._failure = error if isinstance(error, NodeFailure) else NodeFailure(
                f"{task.get_name()}: {type(error).__name__}: {error}")
        self._stopped.set()

    async def _tick_forever(self) -> None:
        interval = self.config.tick_ms / 1000
        loop = asyncio.get_running_loop()
        deadline = loop.time()
        while True:
            deadline += interval
            await asyncio.sleep(max(0.0, deadline - loop.time()))
            # After a pause (SIGSTOP, a slow disk) tick once, not once per missed interval: a burst of
            # ticks would fire an election the moment the process resumes.
            deadline = max(deadline, loop.time())
            self.core.tick()
            self._schedule_ready()

    async def _flush_unsynced_forever(self) -> None:
        """Bug no-fsync: the log reaches the file only now and then; a crash in between loses it."""
        while True:
            await asyncio.sleep(UNSYNCED_FLUSH_INTERVAL_S)
            await asyncio.get_running_loop().run_in_executor(self._disk, self._wal.flush_volatile)

    # --- the core's Ready ----------------------------------------------------------------------------

    def _schedule_ready(self) -> None:
        self._ready_wakeup.set()

    async def _ready_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._ready_wakeup.wait()
            self._ready_wakeup.clear()
            try:
                while self.core.has_ready():
                    ready = self.core.ready()
                    if ready.entries or self._changes_term_or_vote(ready.hard_state):
                        # The fsync runs off the loop: requests and peer messages keep arriving and
                        # pile up for the next Ready, which is what makes commits grouped.
                        await loop.run_in_executor(self._disk, self._persist, ready, True)
                    elif ready.hard_state is not None:
                        self._persist(ready, False)  # only the commit index moved (as etcd's MustSync)
                    self._handle_durable(ready)
            except Exception as e:
                # A failed write or fsync leaves the durable state unknown; carrying on could acknowledge
                # what is not on disk. Crash-stop, as Raft assumes: no Ready is handled after this one.
                raise NodeFailure(f"{type(e).__name__}: {e}") from e
            self._log_role_change()

    def _handle_durable(self, ready: Ready) -> None:
        """Everything of a Ready that may happen once its hard state and entries are on disk."""
        for message in coalesce_messages(ready.messages):
            self._send_message(message)
        for entry in ready.early_acks:
            self._ack_early(entry)
        for entry in ready.committed_entries:
            self._apply(entry)
        for read_state in ready.read_states:
            read = self._pending.reads.get(read_state.context)
            if read is not None:
                read.index = read_state.index
        for context in ready.dropped_reads:
            read = self._pending.reads.pop(context, None)
            if read is not None:
                _resolve(read.future, Reply.error(503, "leadership lost before the read was confirmed",
                                                  definite=True))
        self.core.advance(ready)
        self._serve_confirmed_reads()

    def _changes_term_or_vote(self, hard_state: HardState | None) -> bool:
        """Term and vote must be on disk before any message that depends on them; commit need not:
        a restarted node with an older commit index learns the newer one from its leader."""
        saved = self._saved_hard_state
        return hard_state is not None and (hard_state.term != saved.term or hard_state.vote != saved.vote)

    def _persist(self, ready: Ready, fsync: bool) -> None:
        self._wal.save(ready.hard_state.to_dict() if ready.hard_state is not None else None,
                       [entry.to_dict() for entry in ready.entries], fsync=fsync)
        if ready.hard_state is not None:
            self._saved_hard_state = ready.hard_state

    def _send_message(self, message: Message) -> None:
        if message.to == self.config.id:
            self.core.step(message)
            self._schedule_ready()
        else:
            self.transport.send(message.to, {"k": "raft", "m": message.to_dict()})

    def _ack_early(self, entry: Entry) -> None:
        """Bug early-ack: answer ok before the entry commits (its later apply result is ignored)."""
        proposal = self._pending.proposals.pop(entry.index, None)
        if proposal is not None and proposal.term == entry.term and entry.command is not None:
            _resolve(proposal.future, Reply.ok(entry.command.get("value")))

    def _apply(self, entry: Entry) -> None:
        result = self.state_machine.apply(entry)
        proposal = self._pending.proposals.pop(entry.index, None)
        if proposal is None:
            return
        if proposal.term != entry.term:
            # Another leader's entry committed at our index: ours can never commit.
            _resolve(proposal.future, Reply.error(503, "proposal overwritten by a new leader", definite=True))
        elif result.ok:
            _resolve(proposal.future, Reply.ok(result.value))
        else:
            _resolve(proposal.future, Reply.error(409, result.error or "rejected", definite=True,
                                                  value=result.value))

    def _serve_confirmed_reads(self) -> None:
        applied = self.state_machine.applied_index
        served = [ctx for ctx, read in self._pending.reads.items()
                  if read.index is not None and read.index <= applied]
        for ctx in served:
            read = self._pending.reads.pop(ctx)
            value = self.state_machine.read_txn(read.mops) if read.mops is not None else self.state_machine.read(read.key)
            _resolve(read.future, Reply.ok(value))

    def _log_role_change(self) -> None:
        role = self.core.role
        if role != self._last_role:
            log.info("%s: %s in term %d (leader: %s)", self.config.id, role, self.core.term, self.core.leader_id)
            self._last_role = role

    # --- peers ----------------------------------------------------------------------------------------

    def _on_frame(self, frame: dict[str, Any]) -> None:
        kind = frame.get("k")
        if kind == "raft":
            try:
                message = Message.from_dict(frame["m"])
            except (KeyError, ValueError) as e:
                log.warning("%s: dropping a malformed raft message: %s", self.config.id, e)
                return
            self.core.step(message)
            self._schedule_ready()
        elif kind == "fwd":
            task = asyncio.create_task(self._serve_forwarded(frame))
            self._forwarded_tasks.add(task)  # a running task must stay referenced
            task.add_done_callback(self._forwarded_tasks.discard)
        elif kind == "fwd_reply":
            future = self._pending.forwards.pop(frame.get("id", -1), None)
            if future is not None:
                _resolve(future, Reply(int(frame["status"]), dict(frame["body"])))
        else:
            log.warning("%s: dropping a frame of unknown kind %r", self.config.id, kind)

    async def _serve_forwarded(self, frame: dict[str, Any]) -> None:
        operation, args = frame.get("op"), frame.get("args")
        if operation not in OPERATIONS or not isinstance(args, dict):
            log.warning("%s: dropping a malformed forwarded request from %s", self.config.id, frame.get("from"))
            return
        reply = await self._serve_locally(operation, args, forwarded=True)
        self.transport.send(str(frame["from"]), {"k": "fwd_reply", "id": frame["id"], "status": reply.status,
                                                 "body": reply.body})

    # --- clients ----------------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        return {"id": self.config.id, "term": self.core.term, "role": self.core.role,
                "leader": self.core.leader_id, "commit": self.core.commit_index,
                "applied": self.state_machine.applied_index, "last_index": self.core.last_index,
                "bugs": sorted(self.config.bugs)}

    async def handle_operation(self, operation: str, args: dict[str, Any]) -> Reply:
        return await self._serve_locally(operation, args, forwarded=False)

    async def _serve_locally(self, operation: str, args: dict[str, Any], *, forwarded: bool) -> Reply:
        read_only = is_read_only(operation, args)
        if operation == "txn" and not read_only and "txn-split" in self.config.bugs \
                and any(m[0] == "r" for m in args["mops"]):
            return await self._serve_split_txn(args["mops"], forwarded=forwarded)
        context = f"{self.config.id}-{next(self._ids)}"
        try:
            if operation == "get":
                future = self._start_read(context, args["key"])
            elif read_only:  # a txn of reads: served at one instant of the state, like a get (ReadIndex)
                future = self._start_read(context, None, args["mops"])
            else:
                future = self._start_proposal(command_of(operation, args))
        except NotLeader as e:
            if forwarded:
                return Reply.error(503, "not the leader any more", definite=True, leader=e.leader)
            return await self._forward(operation, args, e.leader)
        try:
            reply = await self._await_verdict(future, read_only, self.config.request_timeout_s)
        finally:
            self._pending.reads.pop(context, None)
        reply.body.setdefault("node", self.config.id)
        return reply

    async def _serve_split_txn(self, mops: list[Any], *, forwarded: bool) -> Reply:
        """Bug txn-split: a txn's reads as one read-only txn, then its writes as another command, so
        other txns commit in between (and its reads miss its own writes). Either half refused: the txn
        wrote nothing, or may have (the second half's answer says which)."""
        reads = await self._serve_locally("txn", {"mops": [m for m in mops if m[0] == "r"]}, forwarded=forwarded)
        if reads.status != 200:
            return reads
        writes = await self._serve_locally("txn", {"mops": [m for m in mops if m[0] != "r"]}, forwarded=forwarded)
        if writes.status != 200:
            return writes
        read_values = iter(reads.body["value"])
        return Reply.ok([next(read_values) if m[0] == "r" else m for m in mops], node=self.config.id)

    def _start_read(self, context: str, key: Any, mops: list[Any] | None = None) -> asyncio.Future[Reply]:
        self.core.read_index(context)  # raises NotLeader
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._pending.reads[context] = _Read(key, future, mops=mops)
        self._schedule_ready()
        return future

    def _start_proposal(self, command: dict[str, Any]) -> asyncio.Future[Reply]:
        term, index = self.core.propose(command)  # raises NotLeader
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._pending.proposals[index] = _Proposal(term, future)
        self._schedule_ready()
        return future

    @staticmethod
    async def _await_verdict(future: asyncio.Future[Reply], read_only: bool, timeout_s: float) -> Reply:
        # Reads change nothing, so a read that timed out definitely had no effect.
        timeout = Reply.error(504, f"no verdict within {timeout_s:g} s", definite=read_only)
        timer = asyncio.get_running_loop().call_later(timeout_s, _resolve, future, timeout)
        try:
            return await future
        finally:
            timer.cancel()

    async def _forward(self, operation: str, args: dict[str, Any], leader: str | None) -> Reply:
        if leader is None or leader == self.config.id:
            return Reply.error(503, "no leader", definite=True, leader=None)
        if not self.transport.is_connected(leader):
            return Reply.error(503, f"leader {leader} is not reachable", definite=True, leader=leader)
        forward_id = next(self._ids)
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._pending.forwards[forward_id] = future
        sent = self.transport.send(leader, {"k": "fwd", "id": forward_id, "from": self.config.id,
                                            "op": operation, "args": args})
        if not sent:
            self._pending.forwards.pop(forward_id, None)
            return Reply.error(503, f"leader {leader} is not reachable", definite=True, leader=leader)
        try:
            return await self._await_verdict(future, is_read_only(operation, args),
                                             self.config.request_timeout_s + FORWARD_GRACE_S)
        finally:
            self._pending.forwards.pop(forward_id, None)


def _resolve(future: asyncio.Future[Reply], reply: Reply) -> None:
    if not future.done():
        future.set_result(reply)
