"""The data the Raft core takes in and hands out: log entries, hard state, messages, Ready.

All plain frozen dataclasses with ``to_dict``/``from_dict`` so a shell can send them as JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MSG_TYPES = ("pre_vote", "pre_vote_resp", "vote", "vote_resp",
             "append", "append_resp", "heartbeat", "heartbeat_resp")


@dataclass(frozen=True, slots=True)
class Entry:
    """One log entry; ``command`` None is the no-op a new leader appends."""

    term: int
    index: int
    command: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"term": self.term, "index": self.index, "command": self.command}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Entry:
        return cls(term=int(d["term"]), index=int(d["index"]), command=d.get("command"))


@dataclass(frozen=True, slots=True)
class HardState:
    """What must be durable before any message that depends on it is sent."""

    term: int = 0
    vote: str | None = None
    commit: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"term": self.term, "vote": self.vote, "commit": self.commit}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HardState:
        return cls(term=int(d["term"]), vote=d.get("vote"), commit=int(d.get("commit", 0)))


@dataclass(frozen=True, slots=True)
class Message:
    type: str
    frm: str
    to: str
    term: int
    log_term: int = 0
    index: int = 0
    entries: tuple[Entry, ...] = ()
    commit: int = 0
    reject: bool = False
    reject_hint: int = 0
    reject_term: int = 0
    context: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": self.type, "from": self.frm, "to": self.to, "term": self.term}
        if self.log_term:
            d["log_term"] = self.log_term
        if self.index:
            d["index"] = self.index
        if self.entries:
            d["entries"] = [e.to_dict() for e in self.entries]
        if self.commit:
            d["commit"] = self.commit
        if self.reject:
            d["reject"] = True
            d["reject_hint"] = self.reject_hint
            d["reject_term"] = self.reject_term
        if self.context is not None:
            d["context"] = self.context
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Message:
        """Raises ValueError on a malformed message (a shell must never crash on a bad peer)."""
        try:
            t = d["type"]
            if t not in MSG_TYPES:
                raise ValueError(f"unknown message type {t!r}")
            return cls(type=t, frm=str(d["from"]), to=str(d["to"]), term=int(d["term"]),
                       log_term=int(d.get("log_term", 0)), index=int(d.get("index", 0)),
                       entries=tuple(Entry.from_dict(e) for e in d.get("entries", ())),
                       commit=int(d.get("commit", 0)), reject=bool(d.get("reject", False)),
                       reject_hint=int(d.get("reject_hint", 0)), reject_term=int(d.get("reject_term", 0)),
                       context=d.get("context"))
        except (KeyError, TypeError, AttributeError) as e:
            raise ValueError(f"malformed raft message: {e!r}") from None


@dataclass(frozen=True, slots=True)
class ReadState:
    """A confirmed linearizable read: serve it once the state machine has applied ``index``."""

    context: str
    index: int

    def to_dict(self) -> dict[str, Any]:
        return {"context": self.context, "index": self.index}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ReadState:
        return cls(context=d["context"], index=int(d["index"]))


@dataclass(frozen=True, slots=True)
class PersistedState:
    """What a restarted node is rebuilt from: its hard state and its whole durable log (1..n)."""

    hard_state: HardState
    entries: tuple[Entry, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"hard_state": self.hard_state.to_dict(), "entries": [e.to_dict() for e in self.entries]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PersistedState:
        return cls(HardState.from_dict(d["hard_state"]), tuple(Entry.from_dict(e) for e in d.get("entries", ())))


@dataclass(frozen=True)
class Ready:
    """One batch of work for the shell: persist, then send, then apply; then call ``advance``."""

    hard_state: HardState | None = None
    entries: tuple[Entry, ...] = ()
    messages: tuple[Message, ...] = ()
    committed_entries: tuple[Entry, ...] = ()
    read_states: tuple[ReadState, ...] = ()
    dropped_reads: tuple[str, ...] = ()
    early_acks: tuple[Entry, ...] = ()

    def is_empty(self) -> bool:
        return not (self.hard_state or self.entries or self.messages or self.committed_entries
                    or self.read_states or self.dropped_reads or self.early_acks)
