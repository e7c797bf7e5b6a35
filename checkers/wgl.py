"""The Wing–Gong–Lowe search over one partition, in pure Python: the reference.

The search is Porcupine's (a doubly-linked list of call/return events; linearize a pending call, or
backtrack when a return is reached whose op is not yet linearized; remember every (linearized set, state)
configuration already explored). On top of it, prunings that never change a verdict (each is checked
against a brute-force search in tests/unit/test_linearizable_bruteforce.py):

1. Indeterminate (info) ops have no return event: an info op never applied is one that never happened.
   The search succeeds as soon as every completed op is placed, and never applies an info op where it
   would not change the state (not applying it is always at least as good).
2. Symmetry: of two identical ops (same f, arguments, outcome, type) where one's call and return both
   come first, the earlier one is linearized first. Swapping them in any valid order keeps it valid.
3. A completed op that never changes the state (a read) and is legal now is placed without branching:
   moving it earlier, to a point inside its interval with the same state, keeps any valid order valid.
4. Within a run of calls with no return between them, reads are tried first.
5. Subsumption: a configuration with the same completed ops and state as one already explored, but one
   more info op applied, cannot succeed where that one failed (every continuation of it is also a
   continuation of the other, which still has the info op available and need never apply it).
6. Info ops just in time: an info op X is placed only right before an op Y that needs it. If Y were
   legal without X and is a read, Y then X is as good (an info op has no return, so nothing forces X
   before Y); if Y overwrites the state (a write, a successful CAS, a lock grant), X need not happen at
   all. So after placing X the next op must be illegal in the state before X; the memo key holds that
   state. This is what makes Jepsen's etcd histories, full of timed-out writes, cheap.

The compiled search (checkers/_wgl.c, driven by checkers/wgl_native.py) is this algorithm with fixed-width
configuration keys; tests compare the two on generated histories. Both are resumable: ``run(budget)``
searches at most ``budget`` more steps, so the checker can interleave the partitions of a history.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any

from splitbrain.checkers.budget import default_max_memory
from splitbrain.histories.history import Operation, hashable


class SearchAborted(Exception):
    """The search stopped before a verdict: ``cause`` says why (a bound, a limit)."""

    def __init__(self, cause: str) -> None:
        self.cause = cause
        super().__init__(cause)


class Failure:
    """The deepest dead ends the search reached: linearized prefixes, state, and the blocking op.

    (Plain classes here, not dataclasses: importing dataclasses costs a small `splitbrain check` 10%.)"""

    __slots__ = ("depth", "ends")

    def __init__(self, depth: int = -1, ends: list[tuple[tuple[int, ...], int, int]] | None = None) -> None:
        self.depth = depth
        self.ends = [] if ends is None else ends  # (prefix, state id, op)

    def __repr__(self) -> str:
        return f"Failure(depth={self.depth}, ends={self.ends!r})"


class PartitionOutcome:
    """What the search of one partition found: ``valid`` True, False or "unknown" (with its ``cause``)."""

    __slots__ = ("valid", "ops", "configs", "states", "failure", "cause", "label", "steps", "order", "model",
                 "replay")

    def __init__(self, valid: Any, ops: list[Operation], configs: int, states: Any, failure: Failure | None = None,
                 cause: str | None = None, label: Any = None, steps: int = 0, order: tuple[int, ...] = ()) -> None:
        self.valid = valid
        self.ops = ops
        self.configs = configs
        self.states = states
        self.failure = failure
        self.cause = cause
        self.label = label
        self.steps = steps
        self.order = order  # when valid: the ops placed, in order (info ops left out never happened)
        self.model = None  # the model this partition was searched with (a per-key submodel, or the model)
        self.replay: Any = None  # the compiled search's replay(prefix) -> state ids, when it has one


_SCALARS = (int, str, float, bool, type(None))


def identity(op: Operation, ok: bool) -> Any:
    """What makes two ops interchangeable (pruning 2): f, argument, result, and whether it completed."""
    arg = op.invoke.value
    result = op.completion.value if ok else None  # type: ignore[union-attr]
    return (op.f, arg if type(arg) in _SCALARS else hashable(arg),
            result if type(result) in _SCALARS else hashable(result), ok)


_DOMINATOR_WINDOW = 8  # earlier identical ops looked at per op: any subset of the constraints is sound
_NEVER = float("inf")
_CHECK_EVERY = 1 << 14


def _dominators(ops: Sequence[Operation], ok: Sequence[bool], calls: Sequence[int], rets: Sequence[float]) -> list[int]:
    """Per op, the bit mask of identical ops whose call and return both come earlier (pruning 2)."""
    classes: dict[Any, list[int]] = {}
    for i, op in enumerate(ops):
        classes.setdefault(identity(op, ok[i]), []).append(i)
    dom = [0] * len(ops)
    for members in classes.values():
        if len(members) < 2:
            continue
        members.sort(key=calls.__getitem__)
        for pos in range(1, len(members)):
            b = members[pos]
            rb = rets[b]
            mask = 0
            for a in members[max(0, pos - _DOMINATOR_WINDOW):pos]:
                if rets[a] < rb or rets[a] == rb == _NEVER:
                    mask |= 1 << a
            dom[b] = mask
    return dom


# Steps per op (plus a constant) the first attempt may take; None: no first attempt (tests use it to
# exercise the symmetry masks on small histories too).
FIRST_ATTEMPT_STEPS: tuple[int, int] | None = (8, 64)


class _StepBudget(Exception):
    """The cheap first attempt (without symmetry masks) did not decide within its budget."""


def config_bytes(n_ops: int) -> int:
    """About what one remembered configuration costs here: an int of n_ops + 50 bits in a set."""
    return 28 + 4 * ((n_ops + 50) // 30) + 40


class PythonSearch:
    """A resumable search of one partition, in pure Python.

    ``prune=False`` turns prunings 2-6 off (the baseline the benchmark compares against). Most histories
    are decided in a few steps per op, where computing the symmetry masks (pruning 2) costs more than it
    saves: a first attempt goes without them, and only a search that needs more steps starts over with them.
    """

    def __init__(self, ops: list[Operation], model: Any, *, max_configs: int | None = None,
                 max_memory: int | None = None, prune: bool = True) -> None:
        self.ops = ops
        self.model = model
        self.prune = prune
        max_memory = max_memory or default_max_memory()
        by_memory = max_memory // config_bytes(len(ops))
        self.max_configs = by_memory if max_configs is None else min(max_configs, by_memory)
        self.config_limit_is_memory = max_configs is None or by_memory < max_configs
        first = prune and FIRST_ATTEMPT_STEPS is not None
        self.configs = 0
        self._steps_before = 0  # steps of an abandoned first attempt
        self._steps_now = 0
        self._gen = self._start(symmetry=not first and prune, first=first)

    def _start(self, *, symmetry: bool, first: bool) -> Generator[None, int, PartitionOutcome]:
        step_budget = -1
        if first:
            per_op, base = FIRST_ATTEMPT_STEPS  # type: ignore[misc]
            step_budget = per_op * len(self.ops) + base
        gen = _search(self.ops, self.model, self.max_configs, self.prune, symmetry=symmetry,
                      step_budget=step_budget, owner=self)
        next(gen)
        return gen

    @property
    def steps(self) -> int:
        return self._steps_before + self._steps_now

    @property
    def memory(self) -> int:
        return self.configs * config_bytes(len(self.ops))

    def run(self, budget: int) -> PartitionOutcome | None:
        """Search at most about ``budget`` more steps: the outcome, or None when still undecided.

        Raises SearchAborted at a bound (max_configs, max_memory)."""
        while True:
            try:
                self._gen.send(budget)
                return None
            except StopIteration as done:
                outcome: PartitionOutcome = done.value
                outcome.steps = self.steps
                return outcome
            except _StepBudget:
                self._steps_before += self._steps_now
                self._steps_now = 0
                self._gen = self._start(symmetry=True, first=False)
            except SearchAborted as e:
                if self.config_limit_is_memory and "configurations" in e.cause:
                    raise SearchAborted(f"memory bound reached ({self.configs:,} configurations, about "
                                        f"{self.memory >> 20:,} MiB)") from None
                raise


def search(ops: list[Operation], model: Any, *, max_configs: int | None = None, prune: bool = True) -> PartitionOutcome:
    """Is there a linearization of ``ops`` (one partition) under ``model``? (Run to the end.)"""
    s = PythonSearch(ops, model, max_configs=max_configs, prune=prune)
    while True:
        outcome = s.run(1 << 30)
        if outcome is not None:
            return outcome


def _search(ops: list[Operation], model: Any, max_configs: int | None, prune: bool, *, symmetry: bool,
            step_budget: int, owner: PythonSearch) -> Generator[None, int, PartitionOutcome]:
    """The search as a generator: it yields when the budget it was sent is spent, and returns the outcome."""
    n = len(ops)
    ok = [op.type == "ok" for op in ops]
    calls = [op.call for op in ops]
    rets: list[float] = [op.ret if ok[i] else _NEVER for i, op in enumerate(ops)]  # type: ignore[misc]
    n_ok = sum(ok)
    states: list[Any] = [model.init()]
    budget = yield
    stop_at = budget
    if n_ok == 0:
        return PartitionOutcome(True, ops, 0, states)
    info = [not x for x in ok]
    read_only = getattr(model, "read_only", None) if prune else None
    forced = [ok[i] and read_only is not None and read_only(op) for i, op in enumerate(ops)]
    dom = _dominators(ops, ok, calls, rets) if symmetry else [0] * n
    bits = [1 << i for i in range(n)]
    # Pruning 6: ops that never need an info op placed just before them (reads, and ops whose result
    # does not depend on the state they find: writes, successful CAS).
    overwrites = getattr(model, "overwrites", None) if prune else None
    needs_nothing = [bool((read_only is not None and read_only(op)) or (overwrites is not None and overwrites(op)))
                     for op in ops]

    # Events in history order; a run of calls with no return in between lists reads first (pruning 4).
    events: list[tuple[int, int]] = []
    for i in range(n):
        events.append((calls[i], i))
        if ok[i]:
            events.append((rets[i], n + i))  # type: ignore[arg-type]
    events.sort()
    order: list[int] = []
    run: list[int] = []
    for _, node in events:
        if node < n:
            run.append(node)
            continue
        run.sort(key=lambda i: not forced[i])
        order.extend(run)
        run = []
        order.append(node)
    order.extend(run)

    head, tail = 2 * n, 2 * n + 1
    nxt = [tail] * (2 * n + 2)
    prv = [head] * (2 * n + 2)
    prev_node = head
    for node in order:
        nxt[prev_node] = node
        prv[node] = prev_node
        prev_node = node
    nxt[prev_node] = tail
    prv[tail] = prev_node

    sid_of: dict[Any, int] = {states[0]: 0}
    table: dict[int, int] = {}
    step = model.step

    def next_state(sid: int, i: int) -> int:
        legal, new = step(states[sid], ops[i])
        if not legal:
            return -1
        new_id = sid_of.get(new)
        if new_id is None:
            new_id = sid_of[new] = len(states)
            if new_id >= state_bits - 1:
                raise SearchAborted(f"more than {state_bits - 2:,} distinct model states")
            states.append(new)
        return new_id

    info_mask = sum(bits[i] for i in range(n) if info[i]) if prune else 0
    cache: set[int] = set()
    n_configs = 0
    stack: list[int] = []
    saved: list[int] = []
    saved_after: list[int] = []
    # after_info: the state before the last placed op when that op was an info op, else -1. The next op
    # must then be one that needed it (pruning 6); configurations differ by it, so the memo key holds it.
    after_info = -1
    state_bits = 1 << 24
    failure = Failure()
    lin = 0
    sid = 0
    n_done = 0
    node = nxt[head]
    steps = 0
    while True:
        steps += 1
        if steps == step_budget:
            raise _StepBudget
        if steps >= stop_at:
            owner._steps_now = steps
            owner.configs = n_configs
            budget = yield
            stop_at = steps + budget
        if steps & (_CHECK_EVERY - 1) == 0:
            if max_configs is not None and n_configs > max_configs:
                raise SearchAborted(f"memory bound reached ({max_configs:,} configurations remembered)")
        if node < n:
            i = node
            d = dom[i]
            if d and lin & d != d:
                node = nxt[node]
                continue
            if after_info >= 0 and needs_nothing[i]:
                k = after_info * n + i
                before = table.get(k)
                if before is None:
                    before = table[k] = next_state(after_info, i)
                if before >= 0:  # legal without the info op just placed: that op was not needed here
                    node = nxt[node]
                    continue
            k = sid * n + i
            ns = table.get(k)
            if ns is None:
                ns = table[k] = next_state(sid, i)
            if ns >= 0 and not (ns == sid and info[i]):
                newlin = lin | bits[i]
                new_after = sid if info[i] else -1
                base = ((new_after + 1) * state_bits + ns) << n
                key = base | newlin
                if key in cache:
                    fresh = False
                else:
                    # Subsumption (pruning 5): the same completed ops and state, but one applied info op
                    # fewer, was explored already: having that op still available is never worse.
                    fresh = True
                    applied_info = newlin & info_mask
                    while applied_info:
                        b = applied_info & -applied_info
                        if (base | (newlin ^ b)) in cache:
                            fresh = False
                            break
                        applied_info ^= b
                    cache.add(key)
                if fresh:
                    n_configs += 1
                    stack.append(i)
                    saved.append(sid)
                    saved_after.append(after_info)
                    lin = newlin
                    sid = ns
                    after_info = new_after
                    # lift the op's events out of the list
                    p, q = prv[i], nxt[i]
                    nxt[p] = q
                    prv[q] = p
                    if ok[i]:
                        r = n + i
                        p, q = prv[r], nxt[r]
                        nxt[p] = q
                        prv[q] = p
                        n_done += 1
                        if n_done == n_ok:
                            owner._steps_now = steps
                            owner.configs = n_configs
                            return PartitionOutcome(True, ops, n_configs, states, steps=steps, order=tuple(stack))
                    node = nxt[head]
                    continue
                if not forced[i]:
                    node = nxt[node]
                    continue
                # A forced placement whose configuration failed before: this one fails too.
            else:
                node = nxt[node]
                continue
        else:
            depth = len(stack)
            if depth >= failure.depth:
                if depth > failure.depth:
                    failure.depth = depth
                    failure.ends = []
                if len(failure.ends) < 16:
                    failure.ends.append((tuple(stack), sid, node - n))
        # backtrack: undo forced placements, then the last real choice, and try the next call after it
        while True:
            if not stack:
                owner._steps_now = steps
                owner.configs = n_configs
                return PartitionOutcome(False, ops, n_configs, states, failure, steps=steps)
            i = stack.pop()
            sid = saved.pop()
            after_info = saved_after.pop()
            lin ^= bits[i]
            if ok[i]:
                r = n + i
                nxt[prv[r]] = r
                prv[nxt[r]] = r
                n_done -= 1
            nxt[prv[i]] = i
            prv[nxt[i]] = i
            if not forced[i]:
                node = nxt[i]
                break
