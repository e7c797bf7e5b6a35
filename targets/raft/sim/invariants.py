"""Raft's safety properties, checked against the live simulated cluster.

- election safety: at most one leader per term;
- log matching: two logs with an entry of the same index and term agree on every entry up to it;
- durability of commits (leader completeness): an entry once committed is never lost or changed —
  every node's committed prefix equals the recorded one, and every leader holds all of it;
- state machine safety: no two nodes apply different entries at the same index.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from targets.raft.core.types import Entry


@dataclass
class Violation:
    time_ms: int
    invariant: str
    message: str

    def __str__(self) -> str:
        return f"[{self.time_ms} ms] {self.invariant}: {self.message}"


@dataclass
class Invariants:
    violations: list[Violation] = field(default_factory=list)
    leader_of_term: dict[int, str] = field(default_factory=dict)
    committed: list[Entry] = field(default_factory=list)  # committed[i-1] = the committed entry at index i
    # commit_term[i-1]: a term by which entry i was surely committed (the observer's term; the committing
    # leader's term is at most that). Raft promises the entry to every leader of a later term.
    commit_term: list[int] = field(default_factory=list)
    applied: dict[int, Entry] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.violations

    def _fail(self, now_ms: int, invariant: str, message: str) -> None:
        # One report per distinct problem keeps a broken run's output readable.
        if all(v.message != message for v in self.violations):
            self.violations.append(Violation(now_ms, invariant, message))

    def saw_leader(self, now_ms: int, node: str, term: int) -> None:
        first = self.leader_of_term.setdefault(term, node)
        if first != node:
            self._fail(now_ms, "election safety", f"two leaders in term {term}: {first} and {node}")

    def saw_applied(self, now_ms: int, node: str, entry: Entry) -> None:
        first = self.applied.setdefault(entry.index, entry)
        if first != entry:
            self._fail(now_ms, "state machine safety",
                       f"{node} applied {_show(entry)} at index {entry.index}, another node applied {_show(first)}")

    def check_logs(self, now_ms: int, logs: dict[str, tuple[Entry, ...]], commits: dict[str, int],
                   terms: dict[str, int], leaders: Iterable[str]) -> None:
        """Log matching, and committed entries never lost or changed. ``logs`` are current (in-memory)
        logs, ``terms`` each node's current term, ``leaders`` the nodes that believe they lead."""
        # (index, term) -> (entry, previous term): agreement on this for every log is log matching by induction.
        seen: dict[tuple[int, int], tuple[Entry, int, str]] = {}
        for node, log in logs.items():
            prev_term = 0
            for e in log:
                first = seen.setdefault((e.index, e.term), (e, prev_term, node))
                if first[0] != e or first[1] != prev_term:
                    self._fail(now_ms, "log matching",
                               f"{node} and {first[2]} both have term {e.term} at index {e.index} but differ up to it")
                    break
                prev_term = e.term
        for node, log in logs.items():
            commit = min(commits[node], len(log))
            for i in range(len(self.committed), commit):
                self.committed.append(log[i])
                self.commit_term.append(terms[node])
            for i in range(commit):
                self.commit_term[i] = min(self.commit_term[i], terms[node])
                if log[i] != self.committed[i]:
                    self._fail(now_ms, "committed entry changed",
                               f"{node} has {_show(log[i])} at committed index {i + 1}; it was {_show(self.committed[i])}")
                    break
        for node in leaders:
            log, term = logs[node], terms[node]
            for i, c in enumerate(self.committed):
                if self.commit_term[i] < term and (i >= len(log) or log[i] != c):
                    self._fail(now_ms, "committed entry lost",
                               f"leader {node} of term {term} lacks {_show(c)}, committed by term {self.commit_term[i]}")
                    break


def _show(e: Entry) -> str:
    cmd = "no-op" if e.command is None else e.command.get("op")
    return f"entry {e.index}/term {e.term} ({cmd})"
