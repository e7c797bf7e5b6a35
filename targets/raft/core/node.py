"""The Raft node: a pure state machine over ticks, messages and proposals (modeled on etcd-io/raft).

No I/O, no clock reads (the wall clock is an injected callback, used only for bug lease-read), no
threads. The shell loop is: feed ``tick``/``step``/``propose``/``read_index``; take ``ready()``; persist
its hard state and entries; then send its messages; apply its committed entries; ``advance(ready)``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from splitbrain.targets.raft.core.types import Entry, HardState, Message, PersistedState, ReadState, Ready

# no-fsync and txn-split are the shell's (the server's): the core behaves normally with them; no-crc and
# fsync-lies are bugs of the shell's log (server/storage.py), simulated in sim/cluster.py.
BUGS = frozenset({"stale-read", "lease-read", "no-fencing", "early-ack", "no-fsync", "txn-split", "no-crc",
                  "fsync-lies"})

FOLLOWER = "follower"
PRE_CANDIDATE = "pre_candidate"
CANDIDATE = "candidate"
LEADER = "leader"

# Commands the early-ack bug acknowledges before commit: blind writes, whose result needs no state.
_BLIND_WRITES = frozenset(("put", "append"))


class NotLeader(Exception):
    """A request that only the leader can serve reached another node; ``leader`` is a hint (or None)."""

    def __init__(self, node: str, leader: str | None) -> None:
        self.leader = leader
        super().__init__(f"node {node} is not the leader (leader hint: {leader})")


@dataclass(frozen=True)
class Config:
    id: str
    peers: tuple[str, ...]
    election_ticks: int = 10
    heartbeat_ticks: int = 2
    tick_ms: int = 100
    max_entries_per_msg: int = 64
    bugs: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if self.id not in self.peers:
            raise ValueError(f"config of {self.id}: peers {self.peers} must include the node itself")
        unknown = set(self.bugs) - BUGS
        if unknown:
            raise ValueError(f"unknown bug(s) {sorted(unknown)}; known: {sorted(BUGS)}")
        if self.heartbeat_ticks >= self.election_ticks:
            raise ValueError("heartbeat_ticks must be smaller than election_ticks")


@dataclass
class _Round:
    """One leader heartbeat round: who acknowledged it and when (leader's wall clock) it was sent."""

    seq: int
    sent_wall_ms: int
    acks: set[str]


class RaftNode:
    def __init__(self, config: Config, rng: random.Random, wall_clock_ms: Callable[[], int],
                 persisted: PersistedState | None = None,
                 monotonic_ms: Callable[[], int] | None = None) -> None:
        self.config = config
        self.id = config.id
        self._rng = rng
        self._wall_clock_ms = wall_clock_ms
        # Lock leases are measured on the leader's monotonic clock (a wall clock can jump); without one,
        # the wall clock stands in, and leases then break under clock skew.
        self._monotonic_ms = monotonic_ms or wall_clock_ms
        self._quorum = len(config.peers) // 2 + 1
        self._others = tuple(p for p in config.peers if p != self.id)
        hs = persisted.hard_state if persisted is not None else HardState()
        self._log: list[Entry] = list(persisted.entries) if persisted is not None else []
        for pos, e in enumerate(self._log, start=1):
            if e.index != pos:
                raise ValueError(f"node {self.id}: persisted log is not contiguous at position {pos} (index {e.index})")
        self.term = hs.term
        self.vote = hs.vote
        self.commit_index = min(hs.commit, len(self._log))
        self.applied_index = 0  # no snapshots: a restarted shell replays the log from index 1
        self._prev_hard_state = hs
        self._stable_index = len(self._log)
        self.role = FOLLOWER
        self.leader_id: str | None = None
        self._election_elapsed = 0
        self._heartbeat_elapsed = 0
        self._randomized_timeout = self._new_timeout()
        # A (re)started node acts as if it had just heard from a leader: it must not help depose a
        # leader whose lease it may have backed before it crashed.
        self._lease_guard = True
        self._votes: dict[str, bool] = {}
        self._next: dict[str, int] = {}
        self._match: dict[str, int] = {}
        self._recent_active: set[str] = set()
        self._msgs: list[Message] = []
        self._read_states: list[ReadState] = []
        self._dropped_reads: list[str] = []
        self._early_acks: list[Entry] = []
        # ReadIndex: reads waiting for a commit in this term, reads waiting for a heartbeat round.
        self._reads_waiting_commit: list[str] = []
        self._reads_waiting_round: list[tuple[str, int, int]] = []  # (ctx, read index, round seq)
        self._rounds: dict[int, _Round] = {}
        self._round_seq = 0
        self._lease_until_ms: int | None = None

    # ---------------------------------------------------------------- views
    @property
    def last_index(self) -> int:
        return len(self._log)

    @property
    def last_term(self) -> int:
        return self._log[-1].term if self._log else 0

    def term_at(self, index: int) -> int:
        """Term of the entry at ``index`` (0 for index 0 or beyond the log)."""
        if 1 <= index <= len(self._log):
            return self._log[index - 1].term
        return 0

    def log_entries(self) -> tuple[Entry, ...]:
        return tuple(self._log)

    def hard_state(self) -> HardState:
        return HardState(self.term, self.vote, self.commit_index)

    # ---------------------------------------------------------------- inputs
    def tick(self) -> None:
        self._election_elapsed += 1
        if self.role == LEADER:
            self._heartbeat_elapsed += 1
            if self._election_elapsed >= self.config.election_ticks:
                self._election_elapsed = 0
                lost_quorum = len(self._recent_active | {self.id}) < self._quorum
                # Bug lease-read: a leader trusts its wall-clock lease over the evidence of its ticks.
                if lost_quorum and not ("lease-read" in self.config.bugs and self._lease_holds()):
                    self._become_follower(self.term, None)  # check-quorum: we lost the majority
                    return
                self._recent_active = set()
            if self._heartbeat_elapsed >= self.config.heartbeat_ticks:
                self._heartbeat_elapsed = 0
                self._broadcast_heartbeat()
            return
        if self._election_elapsed >= self.config.election_ticks:
            self._lease_guard = False
        if self._election_elapsed >= self._randomized_timeout:
            self._campaign_pre_vote()

    def propose(self, command: dict[str, Any]) -> tuple[int, int]:
        if self.role != LEADER:
            raise NotLeader(self.id, self.leader_id)
        stamped = dict(command)
        stamped["now_ms"] = int(self._monotonic_ms())
        entry = self._append_own(stamped)
        if "early-ack" in self.config.bugs and command.get("op") in _BLIND_WRITES:
            self._early_acks.append(entry)
        self._broadcast_append()
        return entry.term, entry.index

    def read_index(self, request_ctx: str) -> None:
        if "stale-read" in self.config.bugs:
            self._read_states.append(ReadState(request_ctx, self.applied_index))
            return
        if self.role != LEADER:
            raise NotLeader(self.id, self.leader_id)
        if not self._committed_in_term():
            self._reads_waiting_commit.append(request_ctx)
            return
        if "lease-read" in self.config.bugs and self._lease_holds():
            self._read_states.append(ReadState(request_ctx, self.commit_index))
            return
        self._start_read_round([request_ctx])

    def step(self, msg: Message) -> None:
        if msg.to != self.id or msg.frm not in self.config.peers or msg.frm == self.id:
            return
        if msg.term > self.term:
            if msg.type in ("pre_vote", "vote") and self._in_lease():
                return  # leader stickiness: ignore campaigns while a leader is known to be alive
            if msg.type == "pre_vote" or (msg.type == "pre_vote_resp" and not msg.reject):
                pass  # pre-vote traffic never changes terms
            elif msg.type in ("append", "heartbeat"):
                self._become_follower(msg.term, msg.frm)
            else:
                self._become_follower(msg.term, None)
        elif msg.term < self.term:
            if msg.type in ("append", "heartbeat"):
                # A stale leader: tell it our term so it steps down (pre-vote can keep terms apart).
                self._send(Message("append_resp", self.id, msg.frm, self.term, index=self.last_index))
            elif msg.type == "pre_vote":
                self._send(Message("pre_vote_resp", self.id, msg.frm, self.term, reject=True))
            return
        handler = _HANDLERS.get(msg.type)
        if handler is not None:
            handler(self, msg)

    # ---------------------------------------------------------------- outputs
    def has_ready(self) -> bool:
        return bool(self._msgs or self._read_states or self._dropped_reads or self._early_acks
                    or self._stable_index < len(self._log) or self.applied_index < self.commit_index
                    or self.hard_state() != self._prev_hard_state)

    def ready(self) -> Ready:
        hs = self.hard_state()
        return Ready(
            hard_state=hs if hs != self._prev_hard_state else None,
            entries=tuple(self._log[self._stable_index:]),
            messages=tuple(self._msgs),
            committed_entries=tuple(self._log[self.applied_index:self.commit_index]),
            read_states=tuple(self._read_states),
            dropped_reads=tuple(self._dropped_reads),
            early_acks=tuple(self._early_acks),
        )

    def advance(self, ready: Ready) -> None:
        if ready.hard_state is not None:
            self._prev_hard_state = ready.hard_state
        if ready.entries:
            last = ready.entries[-1]
            if self.term_at(last.index) == last.term:
                self._stable_index = max(self._stable_index, last.index)
        del self._msgs[:len(ready.messages)]
        del self._read_states[:len(ready.read_states)]
        del self._dropped_reads[:len(ready.dropped_reads)]
        del self._early_acks[:len(ready.early_acks)]
        if ready.committed_entries:
            self.applied_index = max(self.applied_index, ready.committed_entries[-1].index)
        if self.role == LEADER:
            self._match[self.id] = self._stable_index
            self._maybe_commit()

    # ---------------------------------------------------------------- roles
    def _new_timeout(self) -> int:
        e = self.config.election_ticks
        return e + self._rng.randrange(e)

    def _reset_timers(self) -> None:
        self._election_elapsed = 0
        self._heartbeat_elapsed = 0
        self._randomized_timeout = self._new_timeout()

    def _become_follower(self, term: int, leader: str | None) -> None:
        was_leader = self.role == LEADER
        if term != self.term:
            self.term = term
            self.vote = None
        self.role = FOLLOWER
        self.leader_id = leader
        self._reset_timers()
        if was_leader:
            self._abandon_reads()

    def _abandon_reads(self) -> None:
        self._dropped_reads.extend(self._reads_waiting_commit)
        self._dropped_reads.extend(ctx for ctx, _, _ in self._reads_waiting_round)
        self._reads_waiting_commit = []
        self._reads_waiting_round = []
        self._rounds = {}
        self._lease_until_ms = None

    def _campaign_pre_vote(self) -> None:
        self.role = PRE_CANDIDATE
        self.leader_id = None
        self._reset_timers()
        self._votes = {self.id: True}
        if self._tally() >= self._quorum:
            self._campaign_vote()
            return
        for p in self._others:
            self._send(Message("pre_vote", self.id, p, self.term + 1,
                               log_term=self.last_term, index=self.last_index))

    def _campaign_vote(self) -> None:
        self.term += 1
        self.vote = self.id
        self.role = CANDIDATE
        self.leader_id = None
        self._reset_timers()
        self._votes = {self.id: True}
        if self._tally() >= self._quorum:
            self._become_leader()
            return
        for p in self._others:
            self._send(Message("vote", self.id, p, self.term, log_term=self.last_term, index=self.last_index))

    def _tally(self) -> int:
        return sum(1 for granted in self._votes.values() if granted)

    def _become_leader(self) -> None:
        self.role = LEADER
        self.leader_id = self.id
        self._reset_timers()
        self._next = {p: self.last_index + 1 for p in self._others}
        self._match = {p: 0 for p in self._others}
        self._match[self.id] = self._stable_index
        self._recent_active = set()
        self._rounds = {}
        self._lease_until_ms = None
        self._append_own(None)  # a no-op of this term: commits the previous terms' entries
        self._broadcast_append()

    def _in_lease(self) -> bool:
        """Heard from a live leader (or just started) within the minimum election timeout."""
        if self.role == LEADER:
            return True
        return (self.leader_id is not None or self._lease_guard) and \
            self._election_elapsed < self.config.election_ticks

    # ---------------------------------------------------------------- log
    def _append_own(self, command: dict[str, Any] | None) -> Entry:
        entry = Entry(self.term, self.last_index + 1, command)
        self._log.append(entry)
        if len(self.config.peers) == 1:
            self._maybe_commit()
        return entry

    def _log_up_to_date(self, last_term: int, last_index: int) -> bool:
        return last_term > self.last_term or (last_term == self.last_term and last_index >= self.last_index)

    def _committed_in_term(self) -> bool:
        return self.term_at(self.commit_index) == self.term

    def _maybe_commit(self) -> None:
        matches = sorted((self._match.get(p, 0) for p in self.config.peers), reverse=True)
        candidate = matches[self._quorum - 1]
        # Only an entry of the current term commits by counting replicas (Raft §5.4.2).
        if candidate > self.commit_index and self.term_at(candidate) == self.term:
            self.commit_index = candidate
            self._on_commit_advanced()

    def _on_commit_advanced(self) -> None:
        if self.role == LEADER and self._reads_waiting_commit and self._committed_in_term():
            waiting, self._reads_waiting_commit = self._reads_waiting_commit, []
            self._start_read_round(waiting)

    # ---------------------------------------------------------------- leader sending
    def _send(self, msg: Message) -> None:
        self._msgs.append(msg)

    def _send_append(self, peer: str) -> None:
        nxt = max(1, self._next[peer])
        prev = nxt - 1
        entries = tuple(self._log[prev:prev + self.config.max_entries_per_msg])
        self._send(Message("append", self.id, peer, self.term, log_term=self.term_at(prev), index=prev,
                           entries=entries, commit=self.commit_index))
        if entries:
            self._next[peer] = entries[-1].index + 1  # pipeline: the next append continues from here

    def _broadcast_append(self) -> None:
        for p in self._others:
            if self._next[p] <= self.last_index:
                self._send_append(p)

    def _broadcast_heartbeat(self) -> int:
        self._round_seq += 1
        seq = self._round_seq
        self._rounds[seq] = _Round(seq, int(self._wall_clock_ms()), {self.id})
        for p in self._others:
            commit = min(self._match.get(p, 0), self.commit_index)
            self._send(Message("heartbeat", self.id, p, self.term, commit=commit, context=str(seq)))
        self._maybe_confirm_round(seq)
        return seq

    def _start_read_round(self, contexts: list[str]) -> None:
        seq = self._round_seq + 1
        self._reads_waiting_round.extend((ctx, self.commit_index, seq) for ctx in contexts)
        self._broadcast_heartbeat()

    def _maybe_confirm_round(self, seq: int) -> None:
        rnd = self._rounds.get(seq)
        if rnd is None or len(rnd.acks) < self._quorum:
            return
        # A majority still followed us after round ``seq`` began: every read registered before it is safe.
        lease_ms = int((self.config.election_ticks - 1) * self.config.tick_ms * 0.9)
        until = rnd.sent_wall_ms + lease_ms
        self._lease_until_ms = until if self._lease_until_ms is None else max(self._lease_until_ms, until)
        confirmed = [r for r in self._reads_waiting_round if r[2] <= seq]
        self._reads_waiting_round = [r for r in self._reads_waiting_round if r[2] > seq]
        self._read_states.extend(ReadState(ctx, index) for ctx, index, _ in confirmed)
        for s in [s for s in self._rounds if s <= seq]:
            del self._rounds[s]

    def _lease_holds(self) -> bool:
        return self._lease_until_ms is not None and int(self._wall_clock_ms()) < self._lease_until_ms

    # ---------------------------------------------------------------- handlers
    def _handle_vote_request(self, msg: Message) -> None:
        pre = msg.type == "pre_vote"
        resp_type = "pre_vote_resp" if pre else "vote_resp"
        if pre:
            can_vote = msg.term > self.term or self.vote in (None, msg.frm) and self.leader_id is None
        else:
            can_vote = self.vote == msg.frm or (self.vote is None and self.leader_id is None)
        if can_vote and self._log_up_to_date(msg.log_term, msg.index):
            if not pre:
                self.vote = msg.frm
                self._election_elapsed = 0
            self._send(Message(resp_type, self.id, msg.frm, msg.term))
        else:
            self._send(Message(resp_type, self.id, msg.frm, self.term, reject=True))

    def _handle_pre_vote_resp(self, msg: Message) -> None:
        if self.role != PRE_CANDIDATE or (not msg.reject and msg.term != self.term + 1):
            return
        self._votes[msg.frm] = not msg.reject
        if self._tally() >= self._quorum:
            self._campaign_vote()
        elif len(self._votes) - self._tally() >= self._quorum:
            self._become_follower(self.term, None)

    def _handle_vote_resp(self, msg: Message) -> None:
        if self.role != CANDIDATE:
            return
        self._votes[msg.frm] = not msg.reject
        if self._tally() >= self._quorum:
            self._become_leader()
        elif len(self._votes) - self._tally() >= self._quorum:
            self._become_follower(self.term, None)

    def _accept_leader(self, msg: Message) -> None:
        if self.role != FOLLOWER or self.leader_id != msg.frm:
            self._become_follower(self.term, msg.frm)
        self._election_elapsed = 0

    def _handle_append(self, msg: Message) -> None:
        if self.role == LEADER:
            return  # impossible with one leader per term; never act on it
        self._accept_leader(msg)
        if msg.index < self.commit_index:
            self._send(Message("append_resp", self.id, msg.frm, self.term, index=self.commit_index))
            return
        if self.term_at(msg.index) != msg.log_term or msg.index > self.last_index:
            self._send(self._rejection(msg))
            return
        last_new = msg.index + len(msg.entries)
        for e in msg.entries:
            existing = self.term_at(e.index)
            if existing == e.term:
                continue
            if existing != 0:
                if e.index <= self.commit_index:
                    raise AssertionError(f"node {self.id}: leader {msg.frm} would overwrite committed index {e.index}")
                del self._log[e.index - 1:]
                self._stable_index = min(self._stable_index, e.index - 1)
            self._log.append(e)
        new_commit = min(msg.commit, last_new)
        if new_commit > self.commit_index:
            self.commit_index = new_commit
        self._send(Message("append_resp", self.id, msg.frm, self.term, index=last_new))

    def _rejection(self, msg: Message) -> Message:
        """Fast back-off: name the conflicting term and where it starts, or our log's end."""
        if msg.index > self.last_index:
            return Message("append_resp", self.id, msg.frm, self.term, index=msg.index, reject=True,
                           reject_hint=self.last_index + 1)
        conflict_term = self.term_at(msg.index)
        first = msg.index
        while first > 1 and self.term_at(first - 1) == conflict_term:
            first -= 1
        return Message("append_resp", self.id, msg.frm, self.term, index=msg.index, reject=True,
                       reject_hint=first, reject_term=conflict_term)

    def _handle_append_resp(self, msg: Message) -> None:
        if self.role != LEADER:
            return
        p = msg.frm
        self._recent_active.add(p)
        if not msg.reject:
            if msg.index > self._match[p]:
                self._match[p] = msg.index
                self._maybe_commit()
            self._next[p] = max(self._next[p], self._match[p] + 1)
            if self._next[p] <= self.last_index:
                self._send_append(p)
            return
        if msg.index <= self._match[p]:
            return  # a stale rejection (an acknowledged index cannot be missing: that disk lost data)
        target = msg.reject_hint
        if msg.reject_term:
            ours = [e.index for e in self._log if e.term == msg.reject_term]
            if ours:
                target = ours[-1] + 1
        self._next[p] = max(self._match[p] + 1, min(target, msg.index))
        self._send_append(p)

    def _handle_heartbeat(self, msg: Message) -> None:
        if self.role == LEADER:
            return
        self._accept_leader(msg)
        new_commit = min(msg.commit, self.last_index)
        if new_commit > self.commit_index:
            self.commit_index = new_commit
        self._send(Message("heartbeat_resp", self.id, msg.frm, self.term, index=self.last_index,
                           context=msg.context))

    def _handle_heartbeat_resp(self, msg: Message) -> None:
        if self.role != LEADER:
            return
        p = msg.frm
        self._recent_active.add(p)
        if msg.context is not None:
            try:
                seq = int(msg.context)
            except ValueError:
                seq = -1
            rnd = self._rounds.get(seq)
            if rnd is not None:
                rnd.acks.add(p)
                self._maybe_confirm_round(seq)
        if self._match[p] < self.last_index:
            # Appends in flight may have been lost: probe again from the follower's own log end.
            self._next[p] = max(self._match[p] + 1, min(self._next[p], msg.index + 1))
            self._send_append(p)


_HANDLERS: dict[str, Callable[[RaftNode, Message], None]] = {
    "pre_vote": RaftNode._handle_vote_request,
    "vote": RaftNode._handle_vote_request,
    "pre_vote_resp": RaftNode._handle_pre_vote_resp,
    "vote_resp": RaftNode._handle_vote_resp,
    "append": RaftNode._handle_append,
    "append_resp": RaftNode._handle_append_resp,
    "heartbeat": RaftNode._handle_heartbeat,
    "heartbeat_resp": RaftNode._handle_heartbeat_resp,
}
