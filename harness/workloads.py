"""Workloads: what the clients do (a generator), what they finish with, and how the history is checked.

A ``Workload`` is target-independent: its ops use the shared vocabularies (DESIGN.md), and each target
names the client that performs them (TargetSpec.clients), unless the workload brings its own client.
A ``WorkloadSpec`` makes one for a test (the register workload's final reads depend on its rate and
time limit); the built-in ones are registered under the entry point group ``splitbrain.workloads``, as a
plugin's are. The generators here are pure values (harness/generator.py); their only randomness is the
run's ``ctx.rng``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from splitbrain.checkers.result import CheckFn, Result, check_all
from splitbrain.control.errors import ConfigError
from splitbrain.control.target import ClientOpener
from splitbrain.harness.generator import Context, Generator, Once, Seq
from splitbrain.histories.history import History
from splitbrain.histories.op import is_fenced_off


@dataclass(frozen=True)
class Workload:
    """``generator``: the ops of the main phase (under faults); ``final``: ops after healing (final reads),
    or None; ``checkers``: name -> History -> Result, each run on its own (one that raises is ``unknown``
    with its error, the others still count); ``client``: the client opener, when the workload brings its
    own (else the target's client for the workload's name)."""

    name: str
    generator: Generator
    final: Generator | None
    checkers: Mapping[str, CheckFn]
    client: ClientOpener | None = None

    def check(self, history: History) -> Result:
        return check_all(self.checkers, history)


@dataclass(frozen=True)
class WorkloadSpec:
    """A workload by name: ``make(test) -> Workload``, and one line for `splitbrain workloads`; its
    ``options`` are set with ``--workload-opt NAME=VALUE`` (``Test.workload_options``)."""

    name: str
    make: Callable[[Any], Workload]
    description: str = ""
    options: Mapping[str, str] = field(default_factory=dict)  # option name -> one line of help
    validate: Callable[[Mapping[str, Any]], None] | None = None  # raises ConfigError for a bad value

    def check_options(self, options: Mapping[str, Any]) -> None:
        """ConfigError in one line for an option this workload does not have, or a bad value."""
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise ConfigError(f"workload {self.name} has no option {', '.join(unknown)} "
                              f"(its options: {', '.join(self.options) or 'none'})")
        if self.validate is not None:
            self.validate(options)


# -- register: independent keys, reads / writes / cas -------------------------------------------------

@dataclass(frozen=True)
class RotatingKeys(Generator):
    """Register ops over a window of ``active`` keys; a key retires after ``per_key`` ops and a fresh one
    takes its place (Jepsen's independent keys): each key's history stays small enough to check."""

    per_key: int = 60
    active: int = 4
    next_key: int = 0
    window: tuple[tuple[int, int], ...] = ()

    def op(self, test: Any, ctx: Context):
        window = list(self.window)
        next_key = self.next_key
        while len(window) < self.active:
            window.append((next_key, self.per_key))
            next_key += 1
        slot = ctx.rng.randrange(len(window))
        key, left = window[slot]
        if left <= 1:
            window[slot] = (next_key, self.per_key)
            next_key += 1
        else:
            window[slot] = (key, left - 1)
        r = ctx.rng.random()
        if r < 0.5:
            value = {"f": "read", "value": None}
        elif r < 0.75:
            value = {"f": "write", "value": ctx.rng.randrange(5)}
        else:
            value = {"f": "cas", "value": [ctx.rng.randrange(5), ctx.rng.randrange(5)]}
        value["key"] = key
        return value, RotatingKeys(self.per_key, self.active, next_key, tuple(window))


def _linearizable_kv(history: History) -> Result:
    from splitbrain.checkers.linearizable import check_linearizable
    from splitbrain.checkers.models import kv

    return check_linearizable(history, kv(None), time_limit=120)


def common_checkers() -> dict[str, CheckFn]:
    from splitbrain.checkers.availability import check_availability
    from splitbrain.checkers.basic import check_stats

    return {"stats": check_stats, "availability": check_availability}


def register_workload(test: Any) -> Workload:
    """Final reads after healing: one per key the run can have used, so a write lost on a key that had
    already retired (a crash that lost acknowledged data) is still seen."""
    keys = RotatingKeys()
    most_keys = int(test.rate * test.time_limit / keys.per_key) + keys.active + 1
    final = Seq(tuple(Once({"f": "read", "value": None, "key": k}) for k in range(most_keys)))
    return Workload("register", keys, final, {"linearizable": _linearizable_kv, **common_checkers()})


# -- lock: acquire / fenced writes / release -----------------------------------------------------------

LOCK_NAME, FENCED_KEY = "l", "fenced"


@dataclass(frozen=True)
class LockOps(Generator):
    """Each client thread acquires the lock, writes to the fenced resource with its token, releases.

    The token of a thread's last ok acquire comes from the completions the generator sees (update), so
    releases and writes carry it in their invocation. ``ttl_ms`` is the lease a grant asks for. A holder
    whose last write did not succeed writes again rather than release: its work is not done (and a
    holder cut off mid-hold coming back with its old token is exactly what fencing is for).
    """

    ttl_ms: int = 1000
    concurrency: int = 1
    tokens: tuple[tuple[int, int], ...] = ()   # (thread, token) of threads that hold a grant
    writes: int = 0
    unfinished: frozenset[int] = frozenset()   # holders whose last write failed or may not have happened

    def _token(self, thread: int) -> int | None:
        return dict(self.tokens).get(thread)

    def op(self, test: Any, ctx: Context):
        free = ctx.free_clients
        if not free:
            return {"f": "acquire", "value": None}, self  # OnThreads turns this into PENDING
        holders = [t for t in free if self._token(t) is not None]
        # Holders act most of the time: otherwise nine threads out of ten just bounce off a held lock.
        thread = ctx.rng.choice(holders if holders and ctx.rng.random() < 0.8 else free)
        owner = f"client-{thread}"
        token = self._token(thread)
        if token is None:
            value = {"f": "acquire", "value": {"lock": LOCK_NAME, "owner": owner, "ttl_ms": self.ttl_ms}}
            return dict(value, thread=thread), self
        # Hold for several writes: a holder cut off mid-hold is what fencing is for.
        if thread in self.unfinished or ctx.rng.random() < 0.85:
            v = {"key": FENCED_KEY, "value": f"{owner}-{self.writes}", "token": token}
            return {"f": "write", "value": v, "thread": thread}, replace(self, writes=self.writes + 1)
        v = {"lock": LOCK_NAME, "owner": owner, "token": token}
        dropped = tuple(t for t in self.tokens if t[0] != thread)
        return {"f": "release", "value": v, "thread": thread}, replace(self, tokens=dropped)

    def update(self, test: Any, ctx: Context, event: Any):
        if not event.is_client or event.type == "invoke":
            return self
        thread = event.process % self.concurrency
        if event.f == "acquire" and event.type == "ok":
            token = event.value.get("token") if isinstance(event.value, dict) else None
            held = tuple(t for t in self.tokens if t[0] != thread)
            return replace(self, tokens=held + ((thread, token),) if token is not None else held)
        if event.f == "write":
            if event.type == "fail" and is_fenced_off(event.error):  # fenced off: no longer a holder
                return replace(self, tokens=tuple(t for t in self.tokens if t[0] != thread),
                               unfinished=self.unfinished - {thread})
            if event.type == "ok":
                return replace(self, unfinished=self.unfinished - {thread})
            return replace(self, unfinished=self.unfinished | {thread})
        if event.f == "release":
            return replace(self, unfinished=self.unfinished - {thread})
        return self


def lock_workload(test: Any) -> Workload:
    from splitbrain.checkers.lock import check_lock

    return Workload("lock", LockOps(concurrency=test.concurrency), None, {"lock": check_lock, **common_checkers()})


# -- set and unique-ids: non-idempotent requests, each sent once (the lb target) -----------------------

@dataclass(frozen=True)
class FreshValues(Generator):
    """``f`` with the values 0, 1, 2, ... (no value is ever sent twice, so a value seen twice in the
    service's state was applied twice), and ``read`` of the whole state with probability ``read_share``."""

    f: str
    read_share: float = 0.1
    next_value: int = 0

    def op(self, test: Any, ctx: Context):
        if ctx.rng.random() < self.read_share:
            return {"f": "read", "value": None}, self
        return {"f": self.f, "value": self.next_value}, replace(self, next_value=self.next_value + 1)


FINAL_READS = 3  # after healing: one that succeeds is enough, a few in case the first meets a hiccup


def _final_reads() -> Generator:
    return Seq(tuple(Once({"f": "read", "value": None}) for _ in range(FINAL_READS)))


def set_workload(test: Any) -> Workload:
    """``add`` v / ``read`` of a grow-only set: each acknowledged add present, each add applied once."""
    from splitbrain.checkers.basic import check_set
    from splitbrain.checkers.exactly_once import check_applied_once

    checkers = {"set": check_set, "applied-once": lambda h: check_applied_once(h, "add"), **common_checkers()}
    return Workload("set", FreshValues("add"), _final_reads(), checkers)


def unique_ids_workload(test: Any) -> Workload:
    """``generate`` r (r a fresh request id; ok value the id) / ``read`` of the log of applied requests."""
    from splitbrain.checkers.basic import check_unique_ids
    from splitbrain.checkers.exactly_once import check_applied_once, check_generated_log

    checkers = {"unique-ids": check_unique_ids, "applied-once": lambda h: check_applied_once(h, "generate"),
                "generated-log": check_generated_log, **common_checkers()}
    return Workload("unique-ids", FreshValues("generate", read_share=0.05), _final_reads(), checkers)


# The built-in workloads, as the entry points of pyproject.toml name them.
register = WorkloadSpec("register", register_workload,
                        "read / write / cas on independent keys, checked for linearizability per key")
lock = WorkloadSpec("lock", lock_workload,
                    "acquire / release with leases and fencing tokens, and fenced writes: mutual exclusion")
set_ = WorkloadSpec("set", set_workload, "add / read of a grow-only set: nothing lost, nothing applied twice")
unique_ids = WorkloadSpec("unique-ids", unique_ids_workload,
                          "generate ids for fresh requests: unique, each request applied once")
