"""Pure generators of operations, and the combinators a test author composes them with.

A generator is an immutable value. ``op(test, ctx)`` returns None when it is exhausted, ``(PENDING, self)``
when it has nothing to emit right now (no free thread of the kind it needs, or it waits for ops in flight),
or ``(op, next_generator)``; ``update(test, ctx, event)`` returns the generator after an invocation or
completion happened. ``op`` is a dict: ``f``, ``value``, optional ``key``, ``thread`` (the worker that must
run it; the routing combinators set it) and ``time`` (ns since the test started: not before then).

Randomness comes only from ``ctx.rng``, seeded from the run's seed and the number of client ops handed out
so far (the interpreter's ``_OpRandom``: asking again draws the same numbers); generators keep no random
state of their own, so the seed of a run decides every choice they make, whatever the timing.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from splitbrain.histories.op import NEMESIS

NEMESIS_THREAD = NEMESIS  # the nemesis worker is the history's nemesis process


class _Pending:
    def __repr__(self) -> str:
        return "PENDING"


PENDING: Any = _Pending()

OpDict = dict[str, Any]


class Context(NamedTuple):
    """What a generator may look at: the time, which workers are free, the run's random source.
    (A named tuple: the interpreter makes one per event.) ``prefer``: the free worker asking, which
    ``free_clients`` lists first, so that a worker whose op just completed runs the next one itself."""

    time: int
    free: frozenset[Any]
    workers: tuple[Any, ...]
    rng: random.Random
    prefer: Any = None

    @property
    def free_clients(self) -> list[Any]:
        clients = sorted(t for t in self.free if t != NEMESIS_THREAD)
        prefer = self.prefer
        if prefer is not None and prefer != NEMESIS_THREAD and prefer in self.free and clients[0] != prefer:
            clients.remove(prefer)
            clients.insert(0, prefer)
        return clients

    @property
    def all_idle(self) -> bool:
        return len(self.free) == len(self.workers)


class Generator:
    def op(self, test: Any, ctx: Context) -> tuple[Any, Generator] | None:
        raise NotImplementedError

    def update(self, test: Any, ctx: Context, event: Any) -> Generator:
        return self


def lift(g: Any) -> Generator:
    """Plain values as generators: a dict is one op, a list is a sequence, a function an endless source."""
    if isinstance(g, Generator):
        return g
    if isinstance(g, dict):
        return Once(g)
    if isinstance(g, (list, tuple)):
        return Seq(tuple(lift(x) for x in g))
    if callable(g):
        return Fn(g)
    raise TypeError(f"cannot make a generator of {g!r}")


@dataclass(frozen=True)
class Once(Generator):
    """One op, then nothing."""

    value: OpDict

    def op(self, test, ctx):
        return dict(self.value), Seq(())


@dataclass(frozen=True)
class Fn(Generator):
    """An endless source: ``fn(test, ctx)`` makes each op (None ends it)."""

    fn: Callable[[Any, Context], OpDict | None]

    def op(self, test, ctx):
        value = self.fn(test, ctx)
        return None if value is None else (value, self)


@dataclass(frozen=True)
class Seq(Generator):
    """Each generator in turn, the next when the previous is exhausted."""

    gens: tuple[Generator, ...]

    def op(self, test, ctx):
        gens = self.gens
        while gens:
            res = gens[0].op(test, ctx)
            if res is not None:
                value, nxt = res
                return value, Seq((nxt,) + gens[1:])
            gens = gens[1:]
        return None

    def update(self, test, ctx, event):
        return Seq((self.gens[0].update(test, ctx, event),) + self.gens[1:]) if self.gens else self


@dataclass(frozen=True)
class Limit(Generator):
    """At most ``n`` ops."""

    n: int
    gen: Generator

    def op(self, test, ctx):
        if self.n <= 0:
            return None
        res = self.gen.op(test, ctx)
        if res is None:
            return None
        value, nxt = res
        return (value, Limit(self.n, nxt)) if value is PENDING else (value, Limit(self.n - 1, nxt))

    def update(self, test, ctx, event):
        return Limit(self.n, self.gen.update(test, ctx, event))


@dataclass(frozen=True)
class TimeLimit(Generator):
    """Ops for ``seconds`` from the first time it is asked; none scheduled past that."""

    seconds: float
    gen: Generator
    deadline: int | None = None

    def op(self, test, ctx):
        deadline = self.deadline if self.deadline is not None else ctx.time + int(self.seconds * 1e9)
        if ctx.time >= deadline:
            return None
        res = self.gen.op(test, ctx)
        if res is None:
            return None
        value, nxt = res
        if value is not PENDING and value.get("time", ctx.time) >= deadline:
            return None
        return value, TimeLimit(self.seconds, nxt, deadline)

    def update(self, test, ctx, event):
        return TimeLimit(self.seconds, self.gen.update(test, ctx, event), self.deadline)


@dataclass(frozen=True)
class Stagger(Generator):
    """Spaces ops by a random delay, uniform in [0, 2 * seconds): on average one per ``seconds``."""

    seconds: float
    gen: Generator
    next_time: int | None = None

    def op(self, test, ctx):
        res = self.gen.op(test, ctx)
        if res is None:
            return None
        value, nxt = res
        if value is PENDING:
            return value, Stagger(self.seconds, nxt, self.next_time)
        at = max(ctx.time, self.next_time if self.next_time is not None else ctx.time, value.get("time", 0))
        value = dict(value, time=at)
        delay = int(ctx.rng.uniform(0, 2 * self.seconds) * 1e9)
        return value, Stagger(self.seconds, nxt, at + delay)

    def update(self, test, ctx, event):
        return Stagger(self.seconds, self.gen.update(test, ctx, event), self.next_time)


@dataclass(frozen=True)
class Mix(Generator):
    """A random choice among generators for each op (exhausted ones drop out)."""

    gens: tuple[Generator, ...]

    def op(self, test, ctx):
        gens = list(self.gens)
        while gens:
            i = ctx.rng.randrange(len(gens))
            res = gens[i].op(test, ctx)
            if res is None:
                del gens[i]
                continue
            value, nxt = res
            gens[i] = nxt
            return value, Mix(tuple(gens))
        return None

    def update(self, test, ctx, event):
        return Mix(tuple(g.update(test, ctx, event) for g in self.gens))


@dataclass(frozen=True)
class Sleep(Generator):
    """Emits nothing for ``seconds``, then is exhausted (a pause between phases)."""

    seconds: float
    until: int | None = None

    def op(self, test, ctx):
        until = self.until if self.until is not None else ctx.time + int(self.seconds * 1e9)
        if ctx.time >= until:
            return None
        return {"f": "sleep", "time": until, "sleep": True}, Sleep(self.seconds, until)


@dataclass(frozen=True)
class OnThreads(Generator):
    """Routes ops to a kind of worker: clients (any free client thread) or the nemesis thread."""

    gen: Generator
    nemesis: bool = False

    def op(self, test, ctx):
        if self.nemesis:
            free = [NEMESIS_THREAD] if NEMESIS_THREAD in ctx.free else []
        else:
            free = ctx.free_clients
        res = self.gen.op(test, ctx)
        if res is None:
            return None
        value, nxt = res
        if value is PENDING or value.get("sleep"):
            return value, OnThreads(nxt, self.nemesis)
        if not free:
            return PENDING, self
        return dict(value, thread=value.get("thread", free[0])), OnThreads(nxt, self.nemesis)

    def update(self, test, ctx, event):
        return OnThreads(self.gen.update(test, ctx, event), self.nemesis)


def clients(gen: Any) -> Generator:
    return OnThreads(lift(gen), nemesis=False)


def nemesis(gen: Any) -> Generator:
    return OnThreads(lift(gen), nemesis=True)


@dataclass(frozen=True)
class Any_(Generator):
    """Several generators at once (clients and nemesis side by side): the op due soonest goes first."""

    gens: tuple[Generator, ...]

    def op(self, test, ctx):
        best = None
        pending = False
        gens = list(self.gens)
        alive = []
        for i, g in enumerate(gens):
            res = g.op(test, ctx)
            if res is None:
                continue
            alive.append(i)
            value, nxt = res
            if value is PENDING:
                pending = True
                continue
            t = value.get("time", ctx.time)
            if best is None or t < best[0]:
                best = (t, i, value, nxt)
        if not alive:
            return None
        if best is None:
            return (PENDING, Any_(tuple(gens[i] for i in alive))) if pending else None
        _, i, value, nxt = best
        gens[i] = nxt
        return value, Any_(tuple(gens[j] for j in range(len(gens)) if j in alive))

    def update(self, test, ctx, event):
        return Any_(tuple(g.update(test, ctx, event) for g in self.gens))


def any_(*gens: Any) -> Generator:
    return Any_(tuple(lift(g) for g in gens))


@dataclass(frozen=True)
class Synchronize(Generator):
    """Waits until every worker is idle (no op in flight), then behaves as ``gen``."""

    gen: Generator
    started: bool = False

    def op(self, test, ctx):
        if not self.started and not ctx.all_idle:
            return PENDING, self
        res = self.gen.op(test, ctx)
        if res is None:
            return None
        value, nxt = res
        return value, Synchronize(nxt, True)

    def update(self, test, ctx, event):
        return Synchronize(self.gen.update(test, ctx, event), self.started)


def phases(*gens: Any) -> Generator:
    """Each generator in turn, each starting only once every op of the previous one has completed."""
    return Seq(tuple(Synchronize(lift(g)) for g in gens))


@dataclass(frozen=True)
class Timed(Generator):
    """Ops at fixed times (ns since the test started), in order: a fault schedule."""

    steps: tuple[tuple[int, OpDict], ...]

    def op(self, test, ctx):
        if not self.steps:
            return None
        at, value = self.steps[0]
        return dict(value, time=at), Timed(self.steps[1:])


@dataclass(frozen=True)
class Until(Generator):
    """``gen`` until ``stopped()`` says so (a run told to stop early), then exhausted."""

    stopped: Callable[[], bool]
    gen: Generator

    def op(self, test, ctx):
        if self.stopped():
            return None
        res = self.gen.op(test, ctx)
        if res is None:
            return None
        value, nxt = res
        return value, Until(self.stopped, nxt)

    def update(self, test, ctx, event):
        return Until(self.stopped, self.gen.update(test, ctx, event))
