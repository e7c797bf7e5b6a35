"""Lock safety: mutual exclusion under real-time order, and fencing tokens.

Vocabulary: ``acquire`` ``{"lock": name, "owner": id, "ttl_ms": n}`` whose ok value adds ``"token": n``;
``release`` ``{"lock": name, "owner": id, "token": n}``; fenced writes ``{"key": k, "value": v, "token": n}``.

Mutual exclusion
----------------
A *grant* is an ok acquire. It held the lock over an interval [start, end] whose start is the acquire's
linearization point (somewhere between its invocation and completion) and whose end is the linearization
point of the first release of the same owner and token that took effect. A release that is ok took
effect; an ``info`` (or never completed) release may have taken effect at any point after its
invocation, or never. So for each grant:

* ``latest_start``  = the acquire's completion (or the release's completion, if that is earlier);
* ``earliest_end``  = the invocation of its first non-failed release (never released: no end);
* ``latest_end``    = the completion of its first ok release (only info releases: no end).

Grant A can be placed entirely before grant B iff ``A.earliest_end < B.latest_start``. Two grants
overlap in *every* placement iff neither can precede the other; only those pairs are reported, so no
alarm is false. The pairwise test is also complete: the certain part of each hold,
[latest_start, earliest_end] (empty when latest_start > earliest_end), is a closed interval with ends at
distinct events, and a family of such holds has a non-overlapping placement iff it has one pairwise (a
hold with no certain part must fit into a gap between the certain parts, and an open interval cannot be
covered by several disjoint closed ones). So, without leases, the verdict is exactly that of a
linearizability check against an owner-aware mutex model (``checkers.models.Mutex``) for histories in
which each owner runs its ops one at a time, releases with the token it was granted, and gets ok for a
release only when it held the lock (the model refuses other releases; this checker lets them pass, see
below) — checked on generated histories by ``tests/unit/test_lock_checker.py``. With leases the two
differ by design: the model has no clock, so a grant after a lease ran out is not linearizable.

Indeterminate acquires (``info``, never completed) may have held the lock from their invocation on, or
never; they never prove a violation (the owner does not know a token to release with, and "never" is
always possible). A release proves nothing either: services commonly answer ok to releasing a lock that
is not held.

Leases (``lease_aware=True``): a grant with ``ttl_ms`` stops excluding others once its lease may have run
out. The lease cannot have started before the acquire was invoked, so it runs out no earlier than
``acquire invoke time + ttl_ms`` on the harness's monotonic clock (no allowance for a server clock that
runs fast: that is exactly the bug a lease test looks for). Grant B's hold is certain by the time its
acquire's completion was recorded, so A can precede B when ``A.invoke.time + ttl <= time(B's ok)``.
Without op times, whether a lease ran out is unknown: overlaps that only that could excuse make the
verdict "unknown". Overlaps excused by expiry are listed (``lease_excused``): a stale holder that still
writes is what fencing tokens are for.

Fencing
-------
Tokens of grants of one lock strictly increase in real-time order (a grant that completed before another
was invoked has a smaller token), and the fenced resource never accepts (ok write) a token older than one
whose write had already been accepted (completed before this write was invoked). The first violation of
each kind is reported, with counts.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from splitbrain.checkers.result import Result, merge_validity
from splitbrain.histories.errors import HistoryFormatError
from splitbrain.histories.history import History, Operation, hashable

INF = math.inf
MAX_REPORTED = 20
MAX_COUNTED = 100_000


@dataclass(frozen=True)
class Grant:
    """One ok acquire and what is known about the end of its hold."""

    lock: Any
    owner: Any
    token: Any
    acquire: Operation
    first_release: Operation | None  # first non-failed release attempt (ok, info or never completed)
    ok_release: Operation | None  # first ok release
    ttl_ms: float | None

    @property
    def latest_start(self) -> float:
        end = self.ok_release.ret if self.ok_release is not None else INF
        return min(self.acquire.ret, end)  # type: ignore[type-var]

    @property
    def earliest_end(self) -> float:
        """By release alone (leases are applied separately)."""
        if self.first_release is None:
            return INF
        return max(self.acquire.call, self.first_release.call)


class _Positions:
    """Maps lease deadlines (ns) onto the index axis of the history."""

    def __init__(self, history: History):
        self.indexes: list[int] = []
        self.times: list[int] = []  # running max of known times: a lower bound of each event's real time
        latest = -1
        for op in history:
            if op.time >= 0:
                latest = max(latest, op.time)
            self.indexes.append(op.index)
            self.times.append(latest)

    def first_index_at_or_after(self, t: float) -> float:
        """A point just before the first event recorded at time >= t (INF if none)."""
        i = bisect.bisect_left(self.times, t)
        return self.indexes[i] - 0.5 if i < len(self.indexes) else INF


# -- parsing --------------------------------------------------------------------------------------------

class _Reader:
    """Validates lock values; errors name the file and line of the offending op."""

    def __init__(self, history: History):
        self.history = history

    def error(self, op: Any, message: str) -> HistoryFormatError:
        position = next((pos for pos, o in enumerate(self.history) if o.index == op.index), None)
        line = self.history.line_of(position) if position is not None else None
        return HistoryFormatError(self.history.source, line, message)

    def lock_value(self, op: Operation) -> dict[str, Any]:
        v = op.invoke.value
        if not isinstance(v, dict):
            raise self.error(op.invoke, f"{op.f} expects a value like {{\"lock\": name, \"owner\": id}}, got {v!r}")
        if "owner" not in v:
            raise self.error(op.invoke, f"{op.f} value has no \"owner\" (the client's stable identity): {v!r}")
        return v

    def token(self, op: Any, value: Any) -> Any:
        """The fencing token in a value: its "token" field (or the value itself when it is a number)."""
        token = value.get("token") if isinstance(value, dict) else value if _is_number(value) else None
        if token is not None and (isinstance(token, bool) or not isinstance(token, (int, float))):
            raise self.error(op, f"\"token\" must be a number, got {token!r}")
        return token

    def ttl(self, op: Operation, value: dict[str, Any]) -> float | None:
        ttl = value.get("ttl_ms")
        if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or ttl < 0):
            raise self.error(op.invoke, f"\"ttl_ms\" must be a non-negative number, got {ttl!r}")
        return ttl


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def lock_name(op: Operation) -> Any:
    v = op.invoke.value
    return hashable(v.get("lock", op.key)) if isinstance(v, dict) else hashable(op.key)


def grants_of(history: History) -> list[Grant]:
    """Every ok acquire as a Grant, with the releases that belong to it.

    A release belongs to the latest grant of the same lock and owner invoked before it whose token matches
    (a release without a token, or a grant without one, matches by lock and owner alone). A second ok
    acquire with the same (non-null) token is the same grant handed out again and is merged.
    """
    reader = _Reader(history)
    holds: dict[tuple[Any, Any], list[tuple[Operation, Any, float | None]]] = {}  # (lock, owner) -> grants
    by_token: dict[tuple[Any, Any, Any], int] = {}  # (lock, owner, token) -> position in holds[...]
    releases: list[tuple[tuple[Any, Any], Any, Operation]] = []
    for op in history.operations():
        if op.f == "acquire":
            value = reader.lock_value(op)
            ttl = reader.ttl(op, value)
            if op.type != "ok":
                continue
            token = reader.token(op.completion, op.completion.value)  # type: ignore[union-attr]
            holder = (lock_name(op), hashable(value["owner"]))
            mine = holds.setdefault(holder, [])
            if token is not None:
                if (*holder, token) in by_token:
                    continue  # the same token again: one grant
                by_token[(*holder, token)] = len(mine)
            mine.append((op, token, ttl))
        elif op.f == "release":
            value = reader.lock_value(op)
            if op.type != "fail":
                releases.append(((lock_name(op), hashable(value["owner"])), reader.token(op.invoke, value), op))

    calls = {h: [g.call for g, _, _ in gs] for h, gs in holds.items()}
    tokenless_calls = {h: [(g.call, n) for n, (g, t, _) in enumerate(gs) if t is None] for h, gs in holds.items()}
    released: dict[tuple[tuple[Any, Any], int], list[Operation]] = {}
    for holder, token, rel in releases:
        mine = holds.get(holder, [])
        candidates = []
        if token is None:
            n = bisect.bisect_left(calls.get(holder, []), rel.call) - 1
            candidates.append(n)
        else:
            exact = by_token.get((*holder, token))
            if exact is not None and mine[exact][0].call < rel.call:
                candidates.append(exact)
            tokenless = tokenless_calls.get(holder, [])
            k = bisect.bisect_left(tokenless, (rel.call, -1)) - 1
            if k >= 0:
                candidates.append(tokenless[k][1])
        best = max((n for n in candidates if n >= 0), key=lambda n: mine[n][0].call, default=None)
        if best is not None:
            released.setdefault((holder, best), []).append(rel)

    grants = []
    for holder, mine in holds.items():
        for n, (acq, token, ttl) in enumerate(mine):
            rels = released.get((holder, n), [])
            first = min(rels, key=lambda r: r.call, default=None)
            first_ok = min((r for r in rels if r.type == "ok"), key=lambda r: r.ret, default=None)  # type: ignore[arg-type,return-value]
            grants.append(Grant(holder[0], holder[1], token, acq, first, first_ok, ttl))
    grants.sort(key=lambda g: g.acquire.call)
    return grants


# -- mutual exclusion -----------------------------------------------------------------------------------

def _lease_end(grant: Grant, positions: _Positions, *, unknown_time_expires: bool) -> float:
    """The earliest point (index axis) at which the grant's lease may have run out."""
    if grant.ttl_ms is None:
        return INF
    t = grant.acquire.invoke.time
    if t < 0:
        return grant.acquire.call + 0.5 if unknown_time_expires else INF
    return positions.first_index_at_or_after(t + grant.ttl_ms * 1_000_000)


def overlapping_pairs(grants: list[Grant], ends: list[float], excused_by: list[float] | None = None,
                      max_count: int = MAX_COUNTED, max_visits: float = INF) -> tuple[list[tuple[int, int]], int]:
    """Pairs (i, j) of grants of one lock where neither can precede the other when each grant's hold may
    end at ``ends`` (and, with ``excused_by``, one of them can precede the other with those ends instead).

    Returns (the first MAX_REPORTED pairs, their count); the scan stops at ``max_count`` pairs or after
    ``max_visits`` candidate pairs.
    """
    found: list[tuple[int, int]] = []
    count = 0
    by_lock: dict[Any, list[int]] = {}
    for i, g in enumerate(grants):
        by_lock.setdefault(g.lock, []).append(i)
    starts = [g.latest_start for g in grants]
    visits = 0

    def overlap(i: int, j: int, end: list[float]) -> bool:
        return starts[j] <= end[i] and starts[i] <= end[j]

    for members in by_lock.values():
        members.sort(key=starts.__getitem__)
        for pos, i in enumerate(members):
            for k in range(pos + 1, len(members)):
                j = members[k]
                if starts[j] > ends[i]:
                    break  # sorted: no later grant can overlap i from here on
                visits += 1
                if visits > max_visits:
                    return found, count
                if overlap(i, j, ends) and (excused_by is None or not overlap(i, j, excused_by)):
                    count += 1
                    if len(found) < MAX_REPORTED:
                        found.append((i, j))
                    if count >= max_count:
                        return found, count
    found.sort(key=lambda p: max(starts[p[0]], starts[p[1]]))
    return found, count


def _when(op: Any) -> str:
    return f"index {op.index}" + (f" (t={op.time / 1e9:.6f}s)" if op.time >= 0 else "")


def _op_record(op: Any) -> dict[str, Any] | None:
    if op is None:
        return None
    return {"index": op.index, "type": op.type, "time": op.time if op.time >= 0 else None, "process": op.process}


def grant_record(g: Grant) -> dict[str, Any]:
    def operation(o: Operation | None) -> dict[str, Any] | None:
        if o is None:
            return None
        return {"type": o.type, "invoke": _op_record(o.invoke), "completion": _op_record(o.completion)}

    return {"owner": g.owner, "token": g.token, "ttl_ms": g.ttl_ms, "acquire": operation(g.acquire),
            "release": operation(g.ok_release or g.first_release)}


def _name(g: Grant) -> str:
    return f"owner {g.owner!r} (token {g.token!r})" if g.token is not None else f"owner {g.owner!r}"


def _until(g: Grant, lease_end: float) -> str:
    """Where the grant's certain hold ends, in words."""
    if lease_end < g.earliest_end:
        return f"its lease could run out ({g.ttl_ms:g} ms after the acquire was invoked at {_when(g.acquire.invoke)})"
    if g.first_release is None:
        return "the end of the history (it was never released)"
    if g.ok_release is None:
        return (f"{_when(g.first_release.invoke)}, when its release was invoked (that release is indeterminate, "
                "so it may never have let go at all)")
    return f"{_when(g.first_release.invoke)}, when its release was invoked"


def _lease_text(g: Grant, other: Grant) -> str:
    return (f" {_name(g)}'s lease ({g.ttl_ms:g} ms from its acquire's invocation at {_when(g.acquire.invoke)}) "
            f"cannot have run out before {_name(other)}'s acquire completed.")


def overlap_record(a: Grant, b: Grant, lease_end_a: float, lease_end_b: float,
                   leases_considered: bool = False) -> dict[str, Any]:
    text = (
        f"lock {a.lock!r}: {_name(a)} and {_name(b)} held it at the same time. "
        f"{_name(a)} had it by {_when(a.acquire.completion)} and cannot have let go before {_until(a, lease_end_a)}; "
        f"{_name(b)} had it by {_when(b.acquire.completion)} and cannot have let go before {_until(b, lease_end_b)}. "
        "Each acquire completed before the other holder could have let go."
    )
    if a.owner == b.owner:
        text += f" Both grants went to owner {a.owner!r}: it was granted the lock again while it still held it."
    if leases_considered:
        text += "".join(_lease_text(g, other) for g, other in ((a, b), (b, a)) if g.ttl_ms is not None)
    return {"lock": a.lock, "first": grant_record(a), "second": grant_record(b), "explanation": text}


def _mutual_exclusion(history: History, grants: list[Grant], lease_aware: bool) -> tuple[Any, dict[str, Any], str]:
    positions = _Positions(history)
    release_end = [g.earliest_end for g in grants]
    if lease_aware:
        strict = [_lease_end(g, positions, unknown_time_expires=False) for g in grants]
        lenient = [_lease_end(g, positions, unknown_time_expires=True) for g in grants]
    else:
        strict = lenient = [INF] * len(grants)

    lenient_end = [min(r, x) for r, x in zip(release_end, lenient, strict=True)]
    strict_end = [min(r, x) for r, x in zip(release_end, strict, strict=True)]
    proven, proven_count = overlapping_pairs(grants, lenient_end)
    details: dict[str, Any] = {"grants": len(grants), "locks": len({g.lock for g in grants})}
    details["lease_assumption"] = _lease_assumption(grants, lease_aware)
    details["overlap_count"] = proven_count
    if proven_count >= MAX_COUNTED:
        details["overlap_count_is_lower_bound"] = True
    details["overlaps"] = [overlap_record(grants[i], grants[j], lenient[i], lenient[j], lease_aware)
                           for i, j in proven]

    untimed_count = 0
    if lease_aware:
        untimed, untimed_count = overlapping_pairs(grants, strict_end, excused_by=lenient_end)
        if untimed_count:
            details["undecided_overlap_count"] = untimed_count
            details["undecided_overlaps"] = [overlap_record(grants[i], grants[j], INF, INF) for i, j in untimed]
        # informational, and quadratic when many grants are never released: bounded
        excused, excused_count = overlapping_pairs(grants, release_end, excused_by=strict_end,
                                                   max_count=MAX_REPORTED, max_visits=1_000_000)
        if excused_count:
            details["lease_excused_count_at_least"] = excused_count
            details["lease_excused"] = [overlap_record(grants[i], grants[j], INF, INF) for i, j in excused]

    if proven_count:
        more = f" (and {proven_count - len(proven)} more)" if proven_count > len(proven) else ""
        text = "\n".join(o["explanation"] for o in details["overlaps"]) + more
        return False, details, text
    if untimed_count:
        return "unknown", details, (
            f"{untimed_count} overlap(s) of grants are excused only if a lease ran out, and the ops carry no "
            "times to tell; e.g. " + details["undecided_overlaps"][0]["explanation"])
    return True, details, ""


def _lease_assumption(grants: list[Grant], lease_aware: bool) -> str:
    if not any(g.ttl_ms is not None for g in grants):
        return "no leases (no ttl_ms): a grant holds until released"
    if not lease_aware:
        return "leases ignored (lease_aware=False): a grant holds until released, whatever its ttl_ms"
    return ("lease-aware: a grant stops excluding others once acquire-invoke time + ttl_ms has passed on the "
            "harness's monotonic clock (no clock-drift allowance)")


# -- fencing --------------------------------------------------------------------------------------------

def _first_stale(items: list[tuple[Operation, Any]], strictly_greater: bool) -> tuple[tuple[Any, Any] | None, int]:
    """Items (op, token): the first op (by invocation) whose token is not above (strictly_greater) / is
    below every token of items completed before it was invoked; returns ((earlier, later), count)."""
    by_ret = sorted(items, key=lambda it: it[0].ret)  # type: ignore[arg-type,return-value]
    best: tuple[Operation, Any] | None = None
    k = 0
    first = None
    count = 0
    for op, token in sorted(items, key=lambda it: it[0].call):
        while k < len(by_ret) and by_ret[k][0].ret < op.call:  # type: ignore[operator]
            if best is None or by_ret[k][1] > best[1]:
                best = by_ret[k]
            k += 1
        if best is None:
            continue
        stale = token <= best[1] if strictly_greater else token < best[1]
        if stale:
            count += 1
            if first is None:
                first = (best, (op, token))
    return first, count


def _fencing(history: History, grants: list[Grant]) -> tuple[Any, dict[str, Any], str]:
    reader = _Reader(history)
    details: dict[str, Any] = {}
    texts = []
    by_lock: dict[Any, list[tuple[Operation, Any]]] = {}
    for g in grants:
        if g.token is not None:
            by_lock.setdefault(g.lock, []).append((g.acquire, g.token))
    token_violations = 0
    for lock, items in by_lock.items():
        first, count = _first_stale(items, strictly_greater=True)
        token_violations += count
        if first is not None and "token_order" not in details:
            (a, ta), (b, tb) = first
            text = (f"lock {lock!r}: the grant at {_when(b.completion)} got token {tb!r}, not above token {ta!r} "
                    f"of the grant that completed at {_when(a.completion)} before it was invoked at {_when(b.invoke)}")
            details["token_order"] = {"lock": lock, "earlier": _op_record(a.completion), "earlier_token": ta,
                                      "later": _op_record(b.completion), "later_token": tb, "explanation": text}
            texts.append(text)
    details["token_order_violations"] = token_violations

    writes: dict[Any, list[tuple[Operation, Any]]] = {}
    for op in history.operations():
        if op.f != "write" or op.type != "ok" or not isinstance(op.invoke.value, dict):
            continue
        token = reader.token(op.invoke, op.invoke.value)
        if token is not None:
            writes.setdefault(hashable(op.invoke.value.get("key", op.key)), []).append((op, token))
    write_violations = 0
    for key, items in writes.items():
        first, count = _first_stale(items, strictly_greater=False)
        write_violations += count
        if first is not None and "stale_write" not in details:
            (a, ta), (b, tb) = first
            text = (f"resource {key!r}: accepted a write with token {tb!r} at {_when(b.completion)} after it had "
                    f"accepted token {ta!r} at {_when(a.completion)}, before the stale write was invoked at {_when(b.invoke)}")
            details["stale_write"] = {"key": key, "accepted": _op_record(a.completion), "accepted_token": ta,
                                      "stale": _op_record(b.completion), "stale_token": tb, "explanation": text}
            texts.append(text)
    details["stale_write_violations"] = write_violations
    details["fenced_writes"] = sum(len(v) for v in writes.values())
    valid = not (token_violations or write_violations)
    return valid, details, "\n".join(texts)


# -- entry points ---------------------------------------------------------------------------------------

def check_lock(history: History, *, lease_aware: bool = True) -> Result:
    """Mutual exclusion and fencing for a lock workload's history (see the module docstring)."""
    grants = grants_of(history)
    me_valid, me_details, me_text = _mutual_exclusion(history, grants, lease_aware)
    fe_valid, fe_details, fe_text = _fencing(history, grants)
    valid = merge_validity([me_valid, fe_valid])
    text = "\n".join(t for t in (me_text, fe_text) if t)
    return Result(valid, {"mutual_exclusion": {"valid": me_valid, **me_details},
                          "fencing": {"valid": fe_valid, **fe_details}}, text)


class LockChecker:
    """Checker protocol wrapper; ``opts["lease_aware"]`` overrides the constructor's setting."""

    def __init__(self, lease_aware: bool = True):
        self.lease_aware = lease_aware

    def check(self, test: Any, history: History, opts: Mapping[str, Any]) -> Result:
        return check_lock(history, lease_aware=bool(opts.get("lease_aware", self.lease_aware)))
