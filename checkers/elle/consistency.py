"""Anomalies, consistency models, and which models forbid which anomalies.

The relations follow Elle (jepsen-io/elle, ``elle.consistency-model``), cut down to the anomalies this
package can actually detect, so that every claim "the history is not X" is backed by an anomaly we found.
Sources: Adya's thesis ("Weak Consistency"), Adya/Liskov/O'Neil, Cerone/Gotsman ("Analysing Snapshot
Isolation"), Daudjee/Salem, Bailis et al. ("Highly Available Transactions").

Choices, stated so they can be argued with:

- All our anti-dependencies are *item* anti-dependencies (there are no predicate reads), so a G-single
  cycle and a G-nonadjacent cycle are also G2-item cycles in Adya's sense ("a cycle with one or more item
  anti-dependency edges"). We *name* a cycle G2-item only when it has two or more rw edges, as Elle does,
  but the implication G-single -> G2-item makes repeatable-read reject G-single too, as Adya's PL-2.99 must.
- "serializable" means conflict serializability (PL-3): no G1, no G2.
- snapshot-isolation forbids G1, G-single and G-nonadjacent (a cycle whose rw edges are never adjacent),
  which is generalized SI as characterised by Cerone and Gotsman, plus internal inconsistency.
- -process variants use process order (a process is single-threaded), -realtime variants real-time
  order; process order is contained in real-time order, so G-x-process implies G-x-realtime.
- garbage-read (a read of a value nobody ever wrote), duplicate-elements and cyclic-versions are
  forbidden by every model: each of them means the database returned a state no execution produced.
"""

from __future__ import annotations

from collections.abc import Iterable

# anomaly -> anomalies it implies (an edge a -> b: every history with a also has b)
IMPLIED_ANOMALIES: dict[str, tuple[str, ...]] = {
    "G0": ("G1c", "G0-process"),
    "G0-process": ("G1c-process", "G0-realtime"),
    "G0-realtime": ("G1c-realtime",),
    "G1a": ("G1",),
    "G1b": ("G1",),
    "G1c": ("G1", "G1c-process"),
    "G1c-process": ("G1c-realtime", "G1-process"),
    "G1c-realtime": ("G1-realtime",),
    "G1": ("G1-process",),
    "G1-process": ("G1-realtime",),
    "G-single": ("G-nonadjacent", "G-single-process"),
    "G-single-process": ("G-nonadjacent-process", "G-single-realtime"),
    "G-single-realtime": ("G-nonadjacent-realtime",),
    "G-nonadjacent": ("G2-item", "G-nonadjacent-process"),
    "G-nonadjacent-process": ("G2-item-process", "G-nonadjacent-realtime"),
    "G-nonadjacent-realtime": ("G2-item-realtime",),
    "G2-item": ("G2", "G2-item-process"),
    "G2-item-process": ("G2-process", "G2-item-realtime"),
    "G2-item-realtime": ("G2-realtime",),
    "G2": ("G2-process",),
    "G2-process": ("G2-realtime",),
    # two reads that cannot come from one order of appends: someone read a state that never committed
    "incompatible-order": ("G1a",),
    # a txn read its own later write: a trivial wr cycle T -> T
    "future-read": ("G1c",),
}

# model -> the weaker models it implies (a history satisfying the model satisfies these too)
IMPLIED_MODELS: dict[str, tuple[str, ...]] = {
    "strict-serializable": ("strong-session-serializable", "strong-snapshot-isolation"),
    "strong-session-serializable": ("serializable", "strong-session-snapshot-isolation"),
    "strong-snapshot-isolation": ("strong-session-snapshot-isolation",),
    "strong-session-snapshot-isolation": ("snapshot-isolation",),
    "serializable": ("repeatable-read", "snapshot-isolation"),
    "snapshot-isolation": ("consistent-view",),
    "consistent-view": ("read-committed",),
    "repeatable-read": ("read-committed",),
    "read-committed": ("read-uncommitted",),
    "read-uncommitted": (),
}

# model -> anomalies it forbids directly (on top of those its implied weaker models forbid)
DIRECTLY_FORBIDDEN: dict[str, tuple[str, ...]] = {
    "read-uncommitted": ("G0", "duplicate-elements", "cyclic-versions", "garbage-read"),
    "read-committed": ("G1",),
    "repeatable-read": ("G1", "G2-item"),
    "consistent-view": ("G1", "G-single"),
    "snapshot-isolation": ("internal", "G1", "G-single", "G-nonadjacent"),
    "serializable": ("internal", "G1", "G2"),
    "strong-session-snapshot-isolation": ("G1-process", "G-nonadjacent-process"),
    "strong-snapshot-isolation": ("G1-realtime", "G-nonadjacent-realtime"),
    "strong-session-serializable": ("G1-process", "G2-process"),
    "strict-serializable": ("G1-realtime", "G2-realtime"),
}

MODELS: tuple[str, ...] = tuple(IMPLIED_MODELS)
ALIASES = {"strong-serializable": "strict-serializable", "conflict-serializable": "serializable",
           "PL-3": "serializable", "PL-2": "read-committed", "PL-1": "read-uncommitted",
           "PL-2.99": "repeatable-read", "PL-SI": "snapshot-isolation", "PL-SS": "strict-serializable",
           "PL-2+": "consistent-view"}

# Models whose definition involves an order beyond the data dependencies: checking them needs
# process / real-time edges in the graph.
NEEDS_REALTIME = frozenset({"strict-serializable", "strong-snapshot-isolation"})
NEEDS_PROCESS = frozenset({"strong-session-serializable", "strong-session-snapshot-isolation"}) | NEEDS_REALTIME


def canonical_model(name: str) -> str:
    """The model's canonical name, or ValueError naming the known models."""
    name = ALIASES.get(name, name)
    if name not in IMPLIED_MODELS:
        raise ValueError(f"unknown consistency model {name!r}; known: {', '.join(MODELS)}")
    return name


def _closure(start: Iterable[str], edges: dict[str, tuple[str, ...]]) -> set[str]:
    seen: set[str] = set()
    todo = list(start)
    while todo:
        x = todo.pop()
        if x not in seen:
            seen.add(x)
            todo.extend(edges.get(x, ()))
    return seen


def _reversed(edges: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    rev: dict[str, list[str]] = {}
    for a, bs in edges.items():
        for b in bs:
            rev.setdefault(b, []).append(a)
    return {k: tuple(v) for k, v in rev.items()}


_STRONGER_MODELS = _reversed(IMPLIED_MODELS)


def implied_anomalies(anomalies: Iterable[str]) -> set[str]:
    """The anomalies, plus every anomaly they imply."""
    return _closure(anomalies, IMPLIED_ANOMALIES)


def forbidden_anomalies(model: str) -> set[str]:
    """Every anomaly name whose presence means the history does not satisfy ``model``."""
    models = _closure([canonical_model(model)], IMPLIED_MODELS)
    direct = {a for m in models for a in DIRECTLY_FORBIDDEN.get(m, ())}
    # an anomaly is forbidden when it implies a forbidden one
    implying = _reversed(IMPLIED_ANOMALIES)
    return _closure(direct, implying)


def impossible_models(anomalies: Iterable[str]) -> set[str]:
    """Models that cannot hold given the anomalies (closed upwards: stronger models too)."""
    present = implied_anomalies(anomalies)
    direct = {m for m, forbidden in DIRECTLY_FORBIDDEN.items() if present.intersection(forbidden)}
    return _closure(direct, _STRONGER_MODELS)


def weakest_models(models: Iterable[str]) -> list[str]:
    """The members of ``models`` that no other member is weaker than (sorted, for stable output)."""
    ms = set(models)
    return sorted(m for m in ms if not (_closure(IMPLIED_MODELS.get(m, ()), IMPLIED_MODELS) & ms))


def anomaly_order(name: str) -> tuple[int, str]:
    """A sort key that lists the most basic anomalies first (G0 before G1c before G-single ...)."""
    base = ["garbage-read", "duplicate-elements", "cyclic-versions", "incompatible-order", "G0", "G1a",
            "G1b", "future-read", "G1c", "internal", "G-single", "G-nonadjacent", "G2-item"]
    for i, b in enumerate(base):
        if name == b:
            return (i * 3, name)
        if name.startswith(b + "-"):
            return (i * 3 + (1 if name.endswith("-process") else 2), name)
    return (len(base) * 3, name)
