"""Runs a generator against real clients and a nemesis, recording every invocation and completion.

One scheduler (the calling thread) asks the generator for ops, hands each to its worker thread, and
records invocations and completions in the order they happen. Only the scheduler writes the history, so
the recorder needs no lock; a worker only ever runs the op it was given.

Durability: every invocation is flushed to the history file before it is handed to its worker (an op can
only take effect after its invocation is on disk), and completions are flushed before the scheduler
waits for anything. Writes are batched between those points: one flush covers every op recorded since
the last, which is what lets the recorder keep up with thousands of ops per second. An op whose client raises is
``info`` (it may have happened); after an ``info`` the worker continues as a new process
(process + number of client workers), as in Jepsen.
"""

from __future__ import annotations

import datetime as dt
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


class _Worker(threading.Thread):
    def __init__(self, thread: Any, run_op: Callable[[Op], Op], done: queue.SimpleQueue[tuple[Any, Op]]) -> None:
        super().__init__(name=f"worker-{thread}", daemon=True)
        self.thread_id = thread
        self.inbox: queue.SimpleQueue[Op | None] = queue.SimpleQueue()
        self._run_op = run_op
        self._done = done

    def run(self) -> None:
        while True:
            op = self.inbox.get()
            if op is None:
                return
            try:
                completion = self._run_op(op)
            except Exception as e:  # noqa: BLE001 - an unexpected client error: the op may have happened
                log.warning("worker %s: %s %s raised %r; recorded as info", self.thread_id, op.f, op.value, e)
                completion = op.with_(type="info", error=f"client raised {type(e).__name__}: {e}")
            self._done.put((self.thread_id, completion))


def _completion_of(invocation: Op, returned: Op, index: int, time_ns: int) -> Op:
    """The worker's answer as the history's next op: the invocation's process, f, key and node, the
    answer's type, value and error (a type that is no completion makes it info)."""
    if returned.type not in ("ok", "fail", "info"):
        return Op(index, "info", invocation.process, invocation.f, invocation.value, invocation.key, time_ns,
                  invocation.node, f"client returned type {returned.type!r}")
    return Op(index, returned.type, invocation.process, invocation.f, returned.value, invocation.key, time_ns,
              invocation.node, returned.error)


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
    stats = stats or Stats()
    nodes_of = nodes_of or {}
    t0 = time.monotonic_ns()
    log.info(TIME_ZERO_LOG, dt.datetime.now(dt.UTC).isoformat(timespec="microseconds"))
    done: queue.SimpleQueue[tuple[Any, Op]] = queue.SimpleQueue()  # C-implemented: the hot path
    n_clients = len(clients)
    workers: dict[Any, _Worker] = {}
    for t, client in clients.items():
        workers[t] = _Worker(t, (lambda c: lambda op: c.invoke(test, op))(client), done)
    if nemesis is not None:
        workers[NEMESIS_THREAD] = _Worker(NEMESIS_THREAD, lambda op: nemesis.invoke(test, op), done)
    process_of: dict[Any, Any] = {t: (t if t != NEMESIS_THREAD else NEMESIS_THREAD) for t in workers}
    in_flight: dict[Any, Op] = {}
    index = 0

    def now() -> int:
        return time.monotonic_ns() - t0

    def record_completion(invocation: Op, returned: Op) -> Op:
        nonlocal index
        op = _completion_of(invocation, returned, index, now())
        index += 1
        recorder.append(op)
        return op

    all_workers = tuple(workers)
    free: set[Any] = set(workers)

    def context() -> Context:
        return Context(now(), frozenset(free), all_workers, rng)

    def complete(thread: Any, returned: Op) -> None:
        nonlocal gen
        invocation = in_flight.pop(thread)
        free.add(thread)
        op = record_completion(invocation, returned)
        stats.in_flight = len(in_flight)
        if thread != NEMESIS_THREAD:
            setattr(stats, op.type, getattr(stats, op.type) + 1)
            if op.type == "info":
                process_of[thread] += n_clients  # the old process may still be running the op
        gen = gen.update(test, context(), op)

    outbox: list[tuple[_Worker, Op]] = []  # invocations recorded, not yet handed to their workers

    def send() -> None:
        recorder.flush()
        for worker, op in outbox:
            worker.inbox.put(op)
        outbox.clear()

    def wait_for_completion(timeout: float) -> bool:
        """Record completions: the first within ``timeout``, then whatever else finished. True if any."""
        if timeout > 0:
            send()
        if timeout > 0 or not done.empty():
            try:
                thread, returned = done.get(timeout=timeout) if timeout > 0 else done.get_nowait()
            except queue.Empty:
                return False
            complete(thread, returned)
        else:
            return False
        while not done.empty():  # drain whatever else finished meanwhile
            thread, returned = done.get_nowait()
            complete(thread, returned)
        return True

    for w in workers.values():
        w.start()
    try:
        # The generator's next op and the generator after it, while the op is not due yet. ``gen`` moves
        # on only when the op is emitted: a completion meanwhile (a worker freed, the generator updated)
        # drops it and the generator is asked again, so a fault due later never keeps a freed client idle.
        held: tuple[dict[str, Any], Generator] | None = None
        while not stop.is_set():
            if wait_for_completion(0):
                held = None
            if held is None:
                res = gen.op(test, context())
                if res is None:
                    break
                if res[0] is PENDING:
                    wait_for_completion(0.05)
                    continue
                held = res
            value, nxt = held
            wait_s = (value.get("time", 0) - now()) / 1e9
            if wait_s > 0:
                if wait_for_completion(min(wait_s, 0.5)):
                    held = None
                continue
            gen, held = nxt, None
            if value.get("sleep"):
                continue
            thread = value["thread"]
            if thread in in_flight:
                raise RuntimeError(f"generator scheduled an op on busy worker {thread!r}")
            op = Op(index, "invoke", process_of[thread], value["f"], value.get("value"), value.get("key"), now(),
                    nodes_of.get(thread) if thread != NEMESIS_THREAD else None)
            index += 1
            recorder.append(op)
            in_flight[thread] = op
            free.discard(thread)
            stats.in_flight = len(in_flight)
            if thread != NEMESIS_THREAD:
                stats.invoked += 1
            gen = gen.update(test, context(), op)
            outbox.append((workers[thread], op))
        send()
        deadline = time.monotonic() + drain_timeout
        while in_flight and time.monotonic() < deadline and not hurry.is_set():
            wait_for_completion(max(0.0, min(0.2, deadline - time.monotonic())))
        if in_flight:
            log.warning("%d op(s) still in flight after %.0f s; they stay without completion (indeterminate)",
                        len(in_flight), drain_timeout)
        recorder.flush()
    finally:
        for w in workers.values():
            w.inbox.put(None)
