"""N Raft cores in one thread: each with a simulated disk, a skewable wall clock, and the shell logic
that turns client requests into proposals and ReadIndex reads (the same contract the asyncio server has).

Persistence: a Ready's hard state and entries reach the node's disk before its messages are sent. With
bug ``no-fsync`` they land in a volatile page cache flushed every ``flush_ms``; a crash loses the cache.
With bug ``fsync-lies`` they land in the operating system's page cache, which a crash of the process
keeps and a power cut (``power_cut``) loses; it reaches the disk every ``writeback_ms``.

Damage (``corrupt``): entries of a stopped node's disk marked unreadable, as a CRC mismatch shows them.
The store refuses to start on a damaged disk until it is repaired; with bug ``no-crc`` it cannot tell
damage from a torn tail and cuts its log at the first damaged entry, as server/storage.py does.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from splitbrain.targets.raft.core import (
    LEADER,
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
from splitbrain.targets.raft.sim.events import EventLoop
from splitbrain.targets.raft.sim.invariants import Invariants
from splitbrain.targets.raft.sim.network import Network

# What a node answers a client: ("ok" | "fail" | "info", value, error)
Reply = tuple[str, Any, Any]
ReplyFn = Callable[[Reply], None]


@dataclass(frozen=True)
class Timing:
    tick_ms: int = 10
    election_ticks: int = 10
    heartbeat_ticks: int = 2
    flush_ms: int = 40  # bug no-fsync: how often the page cache reaches the disk
    writeback_ms: int = 1000  # bug fsync-lies: how often the operating system writes its cache back


@dataclass
class Disk:
    hard_state: HardState = field(default_factory=HardState)
    entries: list[Entry] = field(default_factory=list)
    damaged: set[int] = field(default_factory=set)  # indexes of entries whose records fail their CRC

    def write(self, hard_state: HardState | None, entries: tuple[Entry, ...]) -> None:
        if hard_state is not None:
            self.hard_state = hard_state
        if entries:
            del self.entries[entries[0].index - 1:]  # a conflicting suffix is replaced
            self.entries.extend(entries)

    def copy(self) -> Disk:
        return Disk(self.hard_state, list(self.entries), set(self.damaged))

    def cut_at_damage(self) -> None:
        """The no-crc reading of a damaged log: everything from the first damaged entry on is gone."""
        if self.damaged:
            del self.entries[min(self.damaged) - 1:]
            self.damaged.clear()
            hs = self.hard_state
            self.hard_state = HardState(hs.term, hs.vote, min(hs.commit, len(self.entries)))


@dataclass
class _Proposal:
    term: int
    reply: ReplyFn
    acked: bool = False


class SimNode:
    def __init__(self, cluster: SimCluster, config: Config, rng: random.Random) -> None:
        self.cluster = cluster
        self.id = config.id
        self.config = config
        self.rng = rng
        # The wall clock: it read ``_wall_at_set`` at simulated ms ``_set_at`` and runs at ``rate``.
        self._wall_at_set = 0.0
        self._set_at = 0.0
        self.rate = 1.0
        self.disk = Disk()          # durable
        self.cache: Disk | None = None  # no-fsync: what was written but not yet flushed
        self.page: Disk | None = None   # fsync-lies: the kernel's copy, ahead of the disk until writeback
        self.refused = False            # the last start found a damaged log and did not start
        self.up = False
        self.core: RaftNode
        self.sm: StateMachine
        self._proposals: dict[int, list[_Proposal]] = {}  # index -> proposals made at it (various terms)
        self._reads: dict[str, tuple[str, ReplyFn]] = {}        # ctx -> (key, reply)
        self._reads_to_serve: list[tuple[int, str]] = []        # (read index, ctx) once confirmed
        self._ctx_seq = 0
        self.start()

    def wall_clock_ms(self) -> int:
        now = self.cluster.loop.now_us / 1000
        return int(self._wall_at_set + self.rate * (now - self._set_at))

    @property
    def skew_ms(self) -> int:
        """How far the wall clock is from true (simulated) time now."""
        return self.wall_clock_ms() - self.cluster.loop.now_ms

    def set_clock(self, offset_ms: int | None = None, rate: float | None = None) -> None:
        """Jump the wall clock to true time + ``offset_ms`` and/or make it run at ``rate`` from now on."""
        now = self.cluster.loop.now_us / 1000
        self._wall_at_set = now + offset_ms if offset_ms is not None else float(self.wall_clock_ms())
        self._set_at = now
        if rate is not None:
            self.rate = rate

    def monotonic_ms(self) -> int:
        return self.cluster.loop.now_ms  # skew moves wall clocks only, as a real clock fault does

    # -- lifecycle ------------------------------------------------------------------------------------
    def stored(self) -> Disk:
        """What a start would read: the kernel's cache where it is ahead of the disk (fsync-lies)."""
        return self.page if self.page is not None else self.disk

    def start(self) -> None:
        if self.stored().damaged:
            if "no-crc" not in self.config.bugs:
                self.refused = True  # the store's "cannot start: damaged log"
                return
            self.stored().cut_at_damage()
        self.refused = False
        if "fsync-lies" in self.config.bugs and self.page is None:
            self.page = self.disk.copy()
        stored = self.stored()
        persisted = PersistedState(stored.hard_state, tuple(stored.entries))
        self.core = RaftNode(self.config, self.rng, self.wall_clock_ms, persisted, self.monotonic_ms)
        self.sm = StateMachine(self.config.bugs)
        self.cache = self.disk.copy() if "no-fsync" in self.config.bugs else None
        self.up = True
        self._proposals, self._reads, self._reads_to_serve = {}, {}, []
        self.drain()

    def crash(self) -> None:
        """Stop at once: the page cache is gone; clients waiting on this node see a broken connection."""
        self.up = False
        self.cache = None
        for at_index in self._proposals.values():
            for p in at_index:
                if not p.acked:
                    p.reply(("info", None, "connection-lost"))
        for _, reply in self._reads.values():
            reply(("fail", None, "connection-lost"))  # a read has no effect: a lost read is a failed read
        self._proposals, self._reads, self._reads_to_serve = {}, {}, []

    def power_cut(self) -> None:
        """Crash, and lose what the operating system had not yet written to the disk."""
        self.crash()
        self.page = None

    def corrupt(self, position: float) -> int | None:
        """Damage the stored entry at ``position`` (0..1 of the log); the index, None for an empty log."""
        stored = self.stored()
        if not stored.entries:
            return None
        index = 1 + min(len(stored.entries) - 1, int(position * len(stored.entries)))
        stored.damaged.add(index)
        return index

    def repair(self) -> None:
        self.stored().damaged.clear()
        self.disk.damaged.clear()

    def flush(self) -> None:
        if self.up and self.cache is not None:
            self.disk = self.cache.copy()

    def write_back(self) -> None:
        if self.page is not None:
            self.disk = self.page.copy()

    # -- client requests ------------------------------------------------------------------------------
    def request_read(self, key: str, reply: ReplyFn) -> None:
        self._ctx_seq += 1
        ctx = f"{self.id}:{self._ctx_seq}"
        try:
            self.core.read_index(ctx)
        except NotLeader as e:
            reply(("fail", None, {"not-leader": e.leader}))
            return
        self._reads[ctx] = (key, reply)
        self.drain()

    def request_write(self, command: dict[str, Any], reply: ReplyFn) -> None:
        try:
            term, index = self.core.propose(command)
        except NotLeader as e:
            reply(("fail", None, {"not-leader": e.leader}))
            return
        # An older proposal at this index may still commit (another leader may hold it): keep both;
        # the entry that commits at the index decides which one happened.
        self._proposals.setdefault(index, []).append(_Proposal(term, reply))
        self.drain()

    # -- the shell loop -------------------------------------------------------------------------------
    def step(self, msg: Message) -> None:
        if self.up:
            self.core.step(msg)
            self.drain()

    def tick(self) -> None:
        if self.up:
            self.core.tick()
            self.drain()

    def drain(self) -> None:
        core = self.core
        while core.has_ready():
            rd = core.ready()
            self._persist(rd)
            for m in rd.messages:
                self.cluster.send(m)
            for e in rd.early_acks:
                for p in self._proposals.get(e.index, ()):
                    if p.term == e.term and not p.acked:
                        p.acked = True
                        p.reply(("ok", e.command.get("value") if e.command else None, None))
            for e in rd.committed_entries:
                self._apply(e)
            for rs in rd.read_states:
                self._reads_to_serve.append((rs.index, rs.context))
            for ctx in rd.dropped_reads:
                if ctx in self._reads:
                    self._reads.pop(ctx)[1](("fail", None, "leadership-lost"))
            self._serve_reads()
            core.advance(rd)
        if core.role == LEADER:
            self.cluster.invariants.saw_leader(self.cluster.loop.now_ms, self.id, core.term)

    def _persist(self, rd: Ready) -> None:
        if rd.hard_state is None and not rd.entries:
            return
        target = self.cache if self.cache is not None else self.page if self.page is not None else self.disk
        target.write(rd.hard_state, rd.entries)

    def _apply(self, e: Entry) -> None:
        result = self.sm.apply(e)
        self.cluster.invariants.saw_applied(self.cluster.loop.now_ms, self.id, e)
        for p in self._proposals.pop(e.index, ()):
            if p.acked:
                continue
            if p.term != e.term:
                p.reply(("fail", None, "overwritten"))  # another entry committed at this index: ours never will
            elif result.ok:
                p.reply(("ok", result.value, None))
            else:
                p.reply(("fail", None, result.error))

    def _serve_reads(self) -> None:
        if not self._reads_to_serve:
            return
        waiting = []
        for index, ctx in self._reads_to_serve:
            if index > self.sm.applied_index:
                waiting.append((index, ctx))
            elif ctx in self._reads:
                key, reply = self._reads.pop(ctx)
                reply(("ok", self.sm.read(key), None))
        self._reads_to_serve = waiting


class SimCluster:
    def __init__(self, node_ids: list[str], loop: EventLoop, rng: random.Random, bugs: frozenset[str],
                 timing: Timing | None = None) -> None:
        timing = timing or Timing()
        self.loop = loop
        self.timing = timing
        self.network = Network(node_ids, random.Random(rng.getrandbits(64)))
        self.invariants = Invariants()
        self.nodes: dict[str, SimNode] = {}
        for nid in node_ids:
            cfg = Config(id=nid, peers=tuple(node_ids), election_ticks=timing.election_ticks,
                         heartbeat_ticks=timing.heartbeat_ticks, tick_ms=timing.tick_ms, bugs=bugs)
            self.nodes[nid] = SimNode(self, cfg, random.Random(rng.getrandbits(64)))
        tick_us = timing.tick_ms * 1000
        for node in self.nodes.values():
            # Each node's ticks start at its own phase, so nodes are not in lock step.
            loop.after(rng.randrange(tick_us), self._tick, node)
        if "no-fsync" in bugs:
            loop.after(timing.flush_ms * 1000, self._flush_all)
        if "fsync-lies" in bugs:
            loop.after(timing.writeback_ms * 1000, self._write_back_all)

    def _tick(self, node: SimNode) -> None:
        node.tick()
        self.loop.after(self.timing.tick_ms * 1000, self._tick, node)

    def _write_back_all(self) -> None:
        for node in self.nodes.values():
            node.write_back()
        self.loop.after(self.timing.writeback_ms * 1000, self._write_back_all)

    def _flush_all(self) -> None:
        for node in self.nodes.values():
            node.flush()
        self.loop.after(self.timing.flush_ms * 1000, self._flush_all)

    def send(self, msg: Message) -> None:
        for delay in self.network.deliveries(msg.frm, msg.to):
            self.loop.after(delay, self._deliver, msg)

    def _deliver(self, msg: Message) -> None:
        # A partition that began while the message was in flight also stops it.
        if self.network.connected(msg.frm, msg.to):
            self.nodes[msg.to].step(msg)

    # -- faults ---------------------------------------------------------------------------------------
    def crash(self, nid: str) -> None:
        if self.nodes[nid].up:
            self.nodes[nid].crash()

    def restart(self, nid: str) -> None:
        if not self.nodes[nid].up:
            self.nodes[nid].start()

    def leader(self) -> str | None:
        """The up node that believes it leads in the highest term (None when there is none)."""
        best: tuple[int, str] | None = None
        for n in self.nodes.values():
            if n.up and n.core.role == LEADER and (best is None or n.core.term > best[0]):
                best = (n.core.term, n.id)
        return best[1] if best else None

    def check_invariants(self) -> None:
        logs, commits, terms, leaders = {}, {}, {}, []
        for n in self.nodes.values():
            if n.up:
                logs[n.id] = n.core.log_entries()
                commits[n.id] = n.core.commit_index
                terms[n.id] = n.core.term
                if n.core.role == LEADER:
                    leaders.append(n.id)
            else:
                stored = n.stored()
                logs[n.id] = tuple(stored.entries)
                commits[n.id] = stored.hard_state.commit
                terms[n.id] = stored.hard_state.term
        self.invariants.check_logs(self.loop.now_ms, logs, commits, terms, leaders)
