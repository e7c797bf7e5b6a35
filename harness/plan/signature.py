"""Failures grouped by what they are: ``Signature(checker, anomaly, f, target)``.

Forty invalid repeats of one test are usually one bug seen forty times. A run's signatures are read from
its results.json: for each checker that found the history invalid, the kind of anomaly it reports
(nonlinearizable, lost, duplicated, fencing:stale_write, an Elle anomaly such as G-single, ...) and the
operation ``f`` that shows it (the failing read, the lost add). Runs of one signature are one group (and
signatures seen together in a run are one group), the simplest run first (fewest client ops, then fewest
faults), because that is the one to read.

Pure: results in, signatures out; the one thing read from a run's history (an op's ``f`` by its index)
is passed in as a function.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# Counts a checker reports that are not anomalies (the set checker's recovered and never-read elements,
# the lock checker's overlaps it could not decide or that a lease excuses).
_NOT_ANOMALIES = {"recovered", "never_read", "undecided_overlap", "lease_excused", "attempt", "acknowledged",
                  "read", "final_read", "increment", "ok", "fail", "info"}
_NOT_CHECKERS = {"valid", "explanation", "error", "interrupted", "interrupted_by", "dropped_last_line"}


@dataclass(frozen=True, order=True)
class Signature:
    checker: str
    anomaly: str
    f: str
    target: str

    def __str__(self) -> str:
        return f"{self.checker} / {self.anomaly} / {self.f or '-'} / {self.target}"

    def to_json(self) -> dict[str, str]:
        return {"checker": self.checker, "anomaly": self.anomaly, "f": self.f, "target": self.target}


def _anomalies(details: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """(anomaly kind, its evidence) for one invalid checker result."""
    if isinstance(details.get("anomaly_types"), list) and details["anomaly_types"]:  # Elle
        return [("+".join(map(str, details["anomaly_types"])), details.get("anomalies") or details.get("cycles"))]
    if isinstance(details.get("failure"), Mapping):  # linearizability
        return [("nonlinearizable", details["failure"].get("op", details["failure"]))]
    parts = [(name, part) for name, part in details.items()
             if isinstance(part, Mapping) and part.get("valid") is False]
    if parts:  # a checker of several properties (the lock checker: mutual exclusion, fencing)
        return [(name + ("" if kind == "invalid" else ":" + kind), evidence)
                for name, part in parts for kind, evidence in _anomalies(part)]
    found = []
    for key, count in details.items():
        if isinstance(count, bool) or not isinstance(count, int) or count <= 0:
            continue
        for suffix in ("_count", "_violations"):
            kind = key[: -len(suffix)] if key.endswith(suffix) else None
            if kind and kind not in _NOT_ANOMALIES:
                evidence = next((details[k] for k in (kind, kind + "s") if details.get(k)), None)
                if evidence is not None or suffix == "_violations":
                    found.append((kind, evidence))
    return found or [("invalid", details)]


def _first(evidence: Any, want: Callable[[str, Any], Any]) -> Any:
    """Depth first through the evidence: the first value ``want(key, value)`` accepts."""
    stack = [evidence]
    while stack:
        item = stack.pop(0)
        if isinstance(item, Mapping):
            for key, value in item.items():
                found = want(str(key), value)
                if found is not None:
                    return found
            stack[:0] = [v for v in item.values() if isinstance(v, Mapping | list)]
        elif isinstance(item, list):
            stack[:0] = [v for v in item if isinstance(v, Mapping | list)]
    return None


def _index(key: str, value: Any) -> int | None:
    if key == "index" or key.endswith("_index"):
        return value if isinstance(value, int) and not isinstance(value, bool) else None
    if key == "indexes" and isinstance(value, list) and value and isinstance(value[0], int):
        return value[0]
    return None


def signatures(results: Mapping[str, Any], target: str,
               f_at: Callable[[int], str | None] = lambda index: None) -> list[Signature]:
    """The signatures of a run's results (none when it is not invalid). ``f_at(index)`` is the ``f`` of
    the history's op at that index, for evidence that names ops by index only."""
    if results.get("valid") is not False:
        return []
    found: list[Signature] = []
    for checker, details in results.items():
        if checker in _NOT_CHECKERS or not isinstance(details, Mapping) or details.get("valid") is not False:
            continue
        for anomaly, evidence in _anomalies(details):
            f = _first(evidence, lambda k, v: v if k == "f" and isinstance(v, str) else None)
            if f is None:
                index = _first(evidence, _index)
                f = f_at(index) if index is not None else None
            sig = Signature(checker, anomaly, f or "", target)
            if sig not in found:
                found.append(sig)
    return found


@dataclass
class Sighting:
    """One invalid run: its signatures; ``ref`` names the run (test, seed, repeat, run dir, ...); ``ops``
    and ``faults`` say how big it was; ``expected`` whether its test expected invalid."""

    signatures: Sequence[Signature]
    ref: Mapping[str, Any]
    ops: int
    faults: int
    expected: bool
    reason: str = ""

    @property
    def simplicity(self) -> tuple[int, int, str]:
        return (self.ops, self.faults, str(self.ref.get("run_dir", "")))


@dataclass
class Group:
    """One bug: the signatures seen together (the most seen first, with how many runs showed each) and
    the runs that showed them, the simplest first."""

    signatures: list[tuple[Signature, int]]
    sightings: list[Sighting] = field(default_factory=list)

    @property
    def signature(self) -> Signature:
        return self.signatures[0][0]

    @property
    def simplest(self) -> Sighting:
        return self.sightings[0]

    @property
    def expected(self) -> bool:
        """Every sighting came from a test that was looking for a bug."""
        return all(s.expected for s in self.sightings)


def grouped(sightings: Iterable[Sighting]) -> list[Group]:
    """The runs grouped by signature. Signatures one run showed together are one bug seen several ways
    (unsafe retries show as duplicated requests and, in some runs, as adds said to have failed that were
    applied), so they are one group: the groups are the connected sets of co-occurring signatures. Each
    run counts once; unexpected groups first, then the most seen."""
    runs = [s for s in sightings if s.signatures]
    parent: dict[Signature, Signature] = {}

    def root(sig: Signature) -> Signature:
        while parent.setdefault(sig, sig) != sig:
            parent[sig] = parent[parent[sig]]
            sig = parent[sig]
        return sig

    for s in runs:
        for other in s.signatures[1:]:
            parent[root(other)] = root(s.signatures[0])
    members: dict[Signature, list[Sighting]] = {}
    for s in runs:
        members.setdefault(root(s.signatures[0]), []).append(s)
    groups = []
    for found in members.values():
        counts: dict[Signature, int] = {}
        for s in found:
            for sig in dict.fromkeys(s.signatures):
                counts[sig] = counts.get(sig, 0) + 1
        ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        groups.append(Group(ordered, sorted(found, key=lambda s: s.simplicity)))
    return sorted(groups, key=lambda g: (g.expected, -len(g.sightings), g.signature))


def groups_json(groups: Sequence[Group]) -> list[dict[str, Any]]:
    return [{"signature": g.signature.to_json(), "label": str(g.signature), "sightings": len(g.sightings),
             "also": [{"label": str(sig), "sightings": n} for sig, n in g.signatures[1:]],
             "expected": g.expected,
             "runs": [{**s.ref, "ops": s.ops, "faults": s.faults, "expected": s.expected, "reason": s.reason,
                       "signatures": [str(sig) for sig in s.signatures]}
                      for s in g.sightings]}
            for g in groups]
