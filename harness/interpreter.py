"""Runs a generator against real clients and a nemesis, recording every invocation and completion.

Every worker thread takes the scheduler's part in turn (see _Run): it records completions, asks the
generator for ops, records the invocations and hands them out, one worker at a time, so the recorder
needs no lock of its own and the history is in the order things happened; a worker only ever runs the op
it was given.

Durability: every invocation is flushed to the history file before any client runs it (an op can only
take effect after its invocation is on disk), and every completion is flushed with the next invocation of
any worker, or at the end. Writes are batched between those points: one flush covers every op recorded
since the last. With a fast client one thread records op after op with no hand-off to another thread,
which is what lets the recorder pass 50,000 ops per second. An op whose client raises is
``info`` (it may have happened); after an ``info`` the worker continues as a new process
(process + number of client workers), as in Jepsen.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from splitbrain.control.target import Client
from splitbrain.harness.generator import NEMESIS_THREAD, PENDING, Context, Generator
from splitbrain.histories.op import Op

log = logging.getLogger("splitbrain.interpreter")

# Logged (into harness.log) when the history's clock starts: op times are ns after this wall-clock instant,
# which is how the report finds the node log lines around a fault.
TIME_ZERO_LOG = "history time 0 is %s"


class Recorder(Protocol):
    """``append`` records an op; ``flush`` makes everything appended so far durable (on disk)."""

    def append(self, op: Op) -> None: ...

    def flush(self) -> None: ...


@dataclass
class ListRecorder:
    """Keeps the history in memory and forwards each op to ``sink`` (the JSON Lines writer), flushed by
    ``flush_sink``."""

    sink: Callable[[Op], None] | None = None
    flush_sink: Callable[[], None] | None = None
    ops: list[Op] = field(default_factory=list)

    def append(self, op: Op) -> None:
        self.ops.append(op)
        if self.sink is not None:
            self.sink(op)

    def flush(self) -> None:
        if self.flush_sink is not None:
            self.flush_sink()


@dataclass
class Stats:
    """Live figures for the console line."""

    started: float = field(default_factory=time.monotonic)
    invoked: int = 0
    ok: int = 0
    fail: int = 0
    info: int = 0
    in_flight: int = 0
    active_faults: list[str] = field(default_factory=list)
    faults_failed: int = 0


def _invoke(client: Client, test: Any, op: Op) -> Op:
    return client.invoke(test, op)


def _completion_of(invocation: Op, returned: Op, index: int, time_ns: int) -> Op:
    """The worker's answer as the history's next op: the invocation's process, f, key and node, the
    answer's type, value and error (a type that is no completion makes it info)."""
    if returned.type not in ("ok", "fail", "info"):
        return Op(index, "info", invocation.process, invocation.f, invocation.value, invocation.key, time_ns,
                  invocation.node, f"client returned type {returned.type!r}")
    return Op(index, returned.type, invocation.process, invocation.f, returned.value, invocation.key, time_ns,
              invocation.node, returned.error)


_MASK64 = (1 << 64) - 1


class _OpRandom(random.Random):
    """The Random of one client op: SplitMix64 (Steele et al.), whose seeding is free, where seeding the
    Mersenne Twister costs microseconds, and a generator is asked several times per op. Every draw of
    ``random.Random`` goes through ``random`` or ``getrandbits``; statistical quality is ample for
    choosing keys and values."""

    def __init__(self, seed: int) -> None:  # no super().__init__(): that would seed the Twister
        self._x = seed & _MASK64
        self.gauss_next = None

    def _next64(self) -> int:
        self._x = x = (self._x + 0x9E3779B97F4A7C15) & _MASK64
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
        return x ^ (x >> 31)

    def random(self) -> float:
        return (self._next64() >> 11) * (1.0 / (1 << 53))

    def _randbelow(self, n: int) -> int:  # what randrange and choice use: one draw, no rejection loop
        if n <= 1 << 32:  # Lemire's multiply-shift: a bias of at most n / 2**64
            return (self._next64() * n) >> 64
        return super()._randbelow(n)

    def getrandbits(self, k: int) -> int:
        bits, have = 0, 0
        while have < k:
            bits, have = (bits << 64) | self._next64(), have + 64
        return bits >> (have - k)

    def randbytes(self, n: int) -> bytes:
        return self.getrandbits(n * 8).to_bytes(n, "little")

    def seed(self, a: Any = None, version: int = 2) -> None:
        self._x = hash(a) & _MASK64
        self.gauss_next = None

    def getstate(self) -> Any:
        return self._x, self.gauss_next

    def setstate(self, state: Any) -> None:
        self._x, self.gauss_next = state


def run(test: Any, gen: Generator, *, clients: Mapping[int, Client], nemesis: Any | None, recorder: Recorder,
        rng: random.Random, nodes_of: Mapping[Any, str] | None = None, stop: threading.Event | None = None,
        stats: Stats | None = None, drain_timeout: float = 10.0, hurry: threading.Event | None = None) -> None:
    """Drive ``gen`` until it is exhausted (or ``stop`` is set), then wait for ops in flight.

    ``clients`` maps client worker number (0..n-1) to its client; the nemesis worker is ``"nemesis"``.
    Ops still in flight ``drain_timeout`` seconds after the end (or once ``hurry`` is set) stay without
    completion: indeterminate.
    """
    stop = stop or threading.Event()
    hurry = hurry or threading.Event()
    log.info(TIME_ZERO_LOG, dt.datetime.now(dt.UTC).isoformat(timespec="microseconds"))
    runs: dict[Any, Callable[[Op], Op]] = {t: functools.partial(_invoke, c, test) for t, c in clients.items()}
    if nemesis is not None:
        runs[NEMESIS_THREAD] = lambda op: nemesis.invoke(test, op)
    state = _Run(test, gen, runs, len(clients), recorder, rng, nodes_of or {}, stop, stats or Stats())
    workers = [threading.Thread(target=state.work, args=(t,), name=f"worker-{t}", daemon=True) for t in runs]
    for w in workers:
        w.start()
    try:
        state.wait_until_generated(hurry)
        deadline = time.monotonic() + drain_timeout
        while not state.drained.is_set() and time.monotonic() < deadline and not hurry.is_set():
            state.drained.wait(max(0.0, min(0.2, deadline - time.monotonic())))
    finally:
        left = state.close()
    if left:
        log.warning("%d op(s) still in flight after %.0f s; they stay without completion (indeterminate)",
                    left, drain_timeout)
    if state.error is not None:
        raise state.error


class _Run:
    """The shared state of a run, and the loop every worker thread runs.

    There is no scheduler thread. A worker whose op completed puts the completion on a queue and, if no
    other worker is doing so, takes the scheduler's part for a moment (a lock only ever tried, never
    waited for, so workers never queue up behind it): it records every completion on the queue, asks the
    generator for ops while workers are free, records those invocations, flushes the history file, hands
    the other workers their ops, and runs its own. With fast clients one thread does op after op without
    handing anything to another (Context.prefer: the generator gives a free asker its own next op); a
    worker that finds no op waits on its inbox until one is handed to it or an op falls due.

    Durability is as before: every invocation is on disk before any client runs it, and a completion is on
    disk before the next invocation of any worker is, or before the run ends.
    """

    def __init__(self, test: Any, gen: Generator, runs: dict[Any, Callable[[Op], Op]], n_clients: int,
                 recorder: Recorder, rng: random.Random, nodes_of: Mapping[Any, str], stop: threading.Event,
                 stats: Stats) -> None:
        self.test = test
        self.gen = gen
        self.runs = runs
        self.n_clients = n_clients
        self.recorder = recorder
        # The generator is asked again after every completion and draws each time it is asked, so one
        # shared Random would advance with the timing. Each client op gets a Random of its own instead,
        # seeded from the run's and the number of client ops before it: a repro of the same seed draws the
        # same op stream (keys, values, order), whatever the timing.
        self.rng_base = rng.getrandbits(64)
        self.client_ops = 0
        self.op_rng = _OpRandom(0)  # one object, re-seeded per ask (no generator keeps ctx.rng beyond one)
        self.nodes_of = nodes_of
        self.stop = stop
        self.stats = stats
        self.t0 = time.monotonic_ns()
        self.index = 0
        self.all_workers = tuple(runs)
        self.free: set[Any] = set(runs)
        self.in_flight: dict[Any, Op] = {}
        self.process_of: dict[Any, Any] = {t: t for t in runs}
        self.inbox: dict[Any, queue.SimpleQueue[Op | None]] = {t: queue.SimpleQueue() for t in runs}
        self.done: queue.SimpleQueue[tuple[Any, Op]] = queue.SimpleQueue()  # C-implemented: the hot path
        self.lock = threading.Lock()
        # The generator's next op and the generator after it, while the op is not due yet: asked again only
        # after a completion (a worker freed, the generator updated), so that an op's due time is fixed
        # once offered (Sleep counts from when it is first asked) and a later fault never keeps a freed
        # client idle.
        self.held: tuple[dict[str, Any], Generator] | None = None
        self.pending = False  # the generator said PENDING: ask again after a completion or a moment
        self.generated = threading.Event()  # the generator is exhausted, or the run stopped
        self.drained = threading.Event()  # ... and no op is in flight
        self.closed = False
        self.error: BaseException | None = None

    def now(self) -> int:
        return time.monotonic_ns() - self.t0

    # -- a worker ----------------------------------------------------------------------------------------
    def work(self, me: Any) -> None:
        run_op = self.runs[me]
        inbox = self.inbox[me]
        done = self.done
        op: Op | None = None
        while True:
            if op is not None:
                try:
                    completion = run_op(op)
                except Exception as e:  # noqa: BLE001 - an unexpected client error: the op may have happened
                    log.warning("worker %s: %s %s raised %r; recorded as info", me, op.f, op.value, e)
                    completion = op.with_(type="info", error=f"client raised {type(e).__name__}: {e}")
                done.put((me, completion))
                op = None
            while self.lock.acquire(False):
                try:
                    mine = self._schedule(me)
                finally:
                    self.lock.release()
                if mine is not None:
                    op = mine
                if done.empty():  # nothing came in while this worker held the lock: nobody is left waiting
                    break
            if op is not None:
                continue
            if self.closed or (self.generated.is_set() and me not in self.in_flight):
                return
            try:
                op = inbox.get(timeout=self._idle_timeout())
            except queue.Empty:
                continue
            if op is None:
                return

    def _idle_timeout(self) -> float:
        if self.generated.is_set():
            return 0.2
        if self.pending:
            return 0.05
        if self.held is not None:
            return min(0.5, max(0.0, (self.held[0].get("time", 0) - self.now()) / 1e9))
        return 0.5

    # -- the scheduler's part (under the lock) -------------------------------------------------------------
    def _schedule(self, me: Any) -> Op | None:
        """Record finished ops, emit what the generator offers to free workers; the op ``me`` runs next."""
        try:
            if self.closed:  # a late completion: it stays unrecorded (indeterminate), as close() said
                while not self.done.empty():
                    self.done.get_nowait()
                return None
            self._record_completions()
            mine = self._emit(me)
            if self.generated.is_set() and not self.in_flight:
                self.drained.set()
            return mine
        except BaseException as e:  # the generator failed: the run stops, and run() raises it
            self.error = e
            self.stop.set()
            self.generated.set()
            self.drained.set()
            return None

    def _record_completions(self) -> None:
        done = self.done
        stats = self.stats
        while not done.empty():
            thread, returned = done.get_nowait()
            invocation = self.in_flight.pop(thread)
            self.free.add(thread)
            op = _completion_of(invocation, returned, self.index, self.now())
            self.index += 1
            self.recorder.append(op)
            stats.in_flight = len(self.in_flight)
            if thread != NEMESIS_THREAD:
                setattr(stats, op.type, getattr(stats, op.type) + 1)
                if op.type == "info":
                    self.process_of[thread] += self.n_clients  # the old process may still be running the op
            self.gen = self.gen.update(self.test, self._context(None), op)
            self.pending = False
            self.held = None

    def _context(self, prefer: Any) -> Context:
        rng = self.op_rng
        rng._x, rng.gauss_next = (self.rng_base + self.client_ops) & _MASK64, None  # as new: the same draws again
        return Context(self.now(), frozenset(self.free), self.all_workers, rng, prefer)

    def _emit(self, me: Any) -> Op | None:
        """Invocations for free workers while the generator has ops due now: ``me``'s is returned, the
        others handed over once the history file holds them all."""
        mine = None
        handed: list[tuple[Any, Op]] = []
        test = self.test
        # With no worker free the generator is asked only by the run's own thread (me None), now and then:
        # it may be exhausted, which starts the drain.
        while not self.generated.is_set() and (self.free or me is None):
            if self.stop.is_set():
                self.generated.set()
                break
            res = self.held or self.gen.op(test, self._context(me if me in self.free else None))
            if res is None:
                self.generated.set()
                break
            value, nxt = res
            if value is PENDING:
                self.pending = True
                break
            if value.get("time", 0) > self.now():
                self.held = res  # the generator moves on only when the op is emitted
                break
            self.gen = nxt
            self.held = None
            if value.get("sleep"):
                continue
            thread = value["thread"]
            if thread in self.in_flight:
                raise RuntimeError(f"generator scheduled an op on busy worker {thread!r}")
            op = Op(self.index, "invoke", self.process_of[thread], value["f"], value.get("value"), value.get("key"),
                    self.now(), self.nodes_of.get(thread) if thread != NEMESIS_THREAD else None)
            self.index += 1
            self.recorder.append(op)
            self.in_flight[thread] = op
            self.free.discard(thread)
            self.stats.in_flight = len(self.in_flight)
            if thread != NEMESIS_THREAD:
                self.stats.invoked += 1
                self.client_ops += 1
            self.gen = self.gen.update(test, self._context(None), op)
            if thread == me and mine is None:
                mine = op
            else:
                handed.append((thread, op))
        self.recorder.flush()  # every invocation on disk before its client runs (and the completions before)
        for thread, op in handed:
            self.inbox[thread].put(op)
        return mine

    # -- the end -----------------------------------------------------------------------------------------
    def wait_until_generated(self, hurry: threading.Event) -> None:
        """The calling thread takes the scheduler's part whenever no worker does (all of them may be
        busy in clients while the generator runs out, or the run is stopped), until the generator is
        exhausted."""
        while not self.generated.wait(min(0.2, self._idle_timeout())) and not hurry.is_set():
            if self.lock.acquire(False):
                try:
                    self._schedule(None)
                finally:
                    self.lock.release()

    def close(self) -> int:
        """Stop recording (completions after this stay unrecorded: indeterminate); the ops in flight."""
        with self.lock:
            if self.error is None:
                self._record_completions()
            self.closed = True
            self.generated.set()
            left = len(self.in_flight)
            self.recorder.flush()
        for box in self.inbox.values():
            box.put(None)
        return left

