"""A tiny synchronous driver for Raft cores in tests: instant delivery, explicit cuts, no randomness
beyond each core's seeded election timeouts."""

from __future__ import annotations

import random
from typing import Any

from splitbrain.targets.raft.core import (
    LEADER,
    Config,
    Entry,
    Message,
    PersistedState,
    RaftNode,
    Ready,
    StateMachine,
)


class Driver:
    def __init__(self, n: int = 3, *, bugs: frozenset[str] = frozenset(), seed: int = 0) -> None:
        self.ids = [f"n{i + 1}" for i in range(n)]
        self.bugs = bugs
        self.seed = seed
        self.wall_ms = 0
        self.cut: set[str] = set()          # nodes that can neither send nor receive
        self.drop: set[tuple[str, str]] = set()
        self.disks: dict[str, tuple[Any, list[Entry]]] = {i: (None, []) for i in self.ids}
        self.nodes: dict[str, RaftNode] = {}
        self.sms: dict[str, StateMachine] = {}
        self.applied: dict[str, list[Entry]] = {}
        self.read_states: dict[str, list[Any]] = {i: [] for i in self.ids}
        self.dropped_reads: dict[str, list[str]] = {i: [] for i in self.ids}
        self.early_acks: dict[str, list[Entry]] = {i: [] for i in self.ids}
        self.inbox: list[Message] = []
        for i in self.ids:
            self.start(i)

    def config(self, nid: str) -> Config:
        return Config(id=nid, peers=tuple(self.ids), election_ticks=10, heartbeat_ticks=2, tick_ms=10,
                      bugs=self.bugs)

    def start(self, nid: str) -> None:
        hs, entries = self.disks[nid]
        persisted = PersistedState(hs, tuple(entries)) if hs is not None else None
        rng = random.Random(f"{self.seed}:{nid}:{len(self.applied.get(nid, []))}")
        self.nodes[nid] = RaftNode(self.config(nid), rng, lambda: self.wall_ms, persisted, lambda: self.wall_ms)
        self.sms[nid] = StateMachine(self.bugs)
        self.applied[nid] = []

    def _process(self, nid: str) -> None:
        node = self.nodes[nid]
        while node.has_ready():
            rd: Ready = node.ready()
            hs, entries = self.disks[nid]
            if rd.entries:
                del entries[rd.entries[0].index - 1:]
                entries.extend(rd.entries)
            self.disks[nid] = (rd.hard_state or hs, entries)
            for m in rd.messages:
                if m.frm not in self.cut and m.to not in self.cut and (m.frm, m.to) not in self.drop:
                    self.inbox.append(m)
            for e in rd.committed_entries:
                self.sms[nid].apply(e)
                self.applied[nid].append(e)
            self.read_states[nid].extend(rd.read_states)
            self.dropped_reads[nid].extend(rd.dropped_reads)
            self.early_acks[nid].extend(rd.early_acks)
            node.advance(rd)

    def pump(self, max_rounds: int = 1000) -> None:
        """Process readies and deliver messages until the cluster is quiet."""
        for _ in range(max_rounds):
            for nid in self.ids:
                self._process(nid)
            if not self.inbox:
                return
            batch, self.inbox = self.inbox, []
            for m in batch:
                if m.to not in self.cut:
                    self.nodes[m.to].step(m)
        raise AssertionError("cluster never went quiet")

    def tick(self, times: int = 1, only: list[str] | None = None) -> None:
        for _ in range(times):
            self.wall_ms += 10
            for nid in only or self.ids:
                self.nodes[nid].tick()
            self.pump()

    def leaders(self) -> list[str]:
        return [i for i in self.ids if self.nodes[i].role == LEADER and i not in self.cut]

    def elect(self, max_ticks: int = 200) -> str:
        for _ in range(max_ticks):
            live = self.leaders()
            if live:
                return live[0]
            self.tick()
        raise AssertionError("no leader elected")

    def propose(self, leader: str, command: dict[str, Any]) -> tuple[int, int]:
        out = self.nodes[leader].propose(command)
        self.pump()
        return out
