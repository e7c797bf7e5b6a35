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

from splitbrain.targets.raft.core.types import Entry


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
        logs, ``terms`` each node's current term, ``leaders`` the nodes that believe they lead.

        Fast paths compare list slices in C (entries are shared objects, so equality is mostly identity);
        the per-entry walks run only on the uncommitted suffixes or when something is wrong.
        """
        committed = self.committed
        verified: dict[str, int] = {}
        # Lowest terms first: an entry's commit_term is the lowest term of a node that saw it committed.
        for node in sorted(logs, key=lambda n: terms[n]):
            log = logs[node]
            commit = min(commits[node], len(log))
            k = min(commit, len(committed))
            if list(log[:k]) != committed[:k]:
                i = next(i for i in range(k) if log[i] != committed[i])
                self._fail(now_ms, "committed entry changed",
                           f"{node} has {_show(log[i])} at committed index {i + 1}; it was {_show(committed[i])}")
                k = i
            elif commit > len(committed):
                committed.extend(log[len(committed):commit])
                self.commit_term.extend([terms[node]] * (commit - len(self.commit_term)))
                k = commit
            verified[node] = k
        # Log matching: entries past each log's verified committed prefix must agree on (index, term) ->
        # (entry, previous term); agreeing on that everywhere is log matching, by induction.
        seen: dict[tuple[int, int], tuple[Entry, int, str]] = {}
        for node, log in logs.items():
            k = verified[node]
            prev_term = log[k - 1].term if k > 0 else 0
            for e in log[k:]:
                if e.index <= len(committed) and committed[e.index - 1].term == e.term:
                    c_prev = committed[e.index - 2].term if e.index > 1 else 0
                    first = (committed[e.index - 1], c_prev, "the committed log")
                else:
                    first = seen.setdefault((e.index, e.term), (e, prev_term, node))
                if first[0] != e or first[1] != prev_term:
                    self._fail(now_ms, "log matching",
                               f"{node} and {first[2]} both have term {e.term} at index {e.index} but differ up to it")
                    break
                prev_term = e.term
        for node in leaders:
            log, term = logs[node], terms[node]
            if list(log[:len(committed)]) == committed:
                continue
            for i, c in enumerate(committed):
                if self.commit_term[i] < term and (i >= len(log) or log[i] != c):
                    self._fail(now_ms, "committed entry lost",
                               f"leader {node} of term {term} lacks {_show(c)}, committed by term {self.commit_term[i]}")
                    break


def _show(e: Entry) -> str:
    cmd = "no-op" if e.command is None else e.command.get("op")
    return f"entry {e.index}/term {e.term} ({cmd})"
