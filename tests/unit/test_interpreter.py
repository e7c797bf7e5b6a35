"""The interpreter records what happened, in order, with Jepsen's process rules."""

from __future__ import annotations

import random
import threading
from typing import Any

import pytest
from splitbrain.harness import interpreter
from splitbrain.harness.generator import Limit, Once, Sleep, any_, clients, nemesis, phases
from splitbrain.harness.workloads import RotatingKeys
from splitbrain.histories.history import History
from splitbrain.histories.jsonl import JsonlWriter, read_jsonl
from splitbrain.histories.op import Op


class Echo:
    def __init__(self, outcome: str = "ok") -> None:
        self.outcome = outcome

    def invoke(self, test: Any, op: Op) -> Op:
        if self.outcome == "raise":
            raise ConnectionResetError("peer went away")
        return op.with_(type=self.outcome)

    def close(self, test: Any) -> None:
        pass


class Faults:
    def __init__(self) -> None:
        self.seen: list[str] = []

    def fs(self) -> set[str]:
        return {"start", "stop"}

    def setup(self, test: Any) -> None:
        pass

    def invoke(self, test: Any, op: Op) -> Op:
        self.seen.append(op.f)
        return op.with_(type="info", value="done")

    def heal(self, test: Any) -> None:
        pass


def run(gen, clients_: dict, nemesis_: Any = None, **kw: Any) -> list[Op]:
    rec = interpreter.ListRecorder()
    interpreter.run(None, gen, clients=clients_, nemesis=nemesis_, recorder=rec, rng=random.Random(3), **kw)
    return rec.ops


@pytest.mark.timeout(30)
def test_history_pairs_and_indexes_are_consistent() -> None:
    ops = run(clients(Limit(200, RotatingKeys())), {t: Echo() for t in range(5)})
    assert len(ops) == 400
    assert [op.index for op in ops] == list(range(400))
    assert all(a.time <= b.time for a, b in zip(ops, ops[1:], strict=False))
    h = History(ops)  # pairing validates: one open invocation per process
    assert all(o.type == "ok" for o in h.operations())


@pytest.mark.timeout(30)
def test_info_gives_the_worker_a_new_process() -> None:
    ops = run(clients(Limit(6, RotatingKeys())), {0: Echo("info"), 1: Echo("info")})
    invokes = [op.process for op in ops if op.type == "invoke"]
    assert len(set(invokes)) == 6  # never reused after an info
    assert all(p % 2 in (0, 1) for p in invokes)


@pytest.mark.timeout(30)
def test_a_client_that_raises_records_info_with_the_error() -> None:
    ops = run(clients(Limit(3, RotatingKeys())), {0: Echo("raise")})
    completions = [op for op in ops if op.type != "invoke"]
    assert [op.type for op in completions] == ["info"] * 3
    assert "ConnectionResetError" in completions[0].error


@pytest.mark.timeout(30)
def test_nemesis_ops_are_recorded_as_nemesis_process() -> None:
    faults = Faults()
    gen = any_(clients(Limit(10, RotatingKeys())), nemesis([{"f": "start"}, {"f": "stop"}]))
    ops = run(gen, {0: Echo()}, faults)
    nem = [op for op in ops if op.process == "nemesis"]
    assert [(op.type, op.f) for op in nem] == [("invoke", "start"), ("info", "start"), ("invoke", "stop"), ("info", "stop")]
    assert faults.seen == ["start", "stop"]


@pytest.mark.timeout(30)
def test_phases_run_in_order() -> None:
    ops = run(phases(clients(Limit(20, RotatingKeys())), clients(Once({"f": "read", "key": "final"}))),
              {t: Echo() for t in range(3)})
    assert ops[-2].key == "final" and ops[-2].type == "invoke"
    assert all(op.key != "final" for op in ops[:-2])


@pytest.mark.timeout(30)
def test_stop_event_ends_the_run_and_waits_for_ops_in_flight() -> None:
    stop = threading.Event()

    class Slow(Echo):
        def invoke(self, test: Any, op: Op) -> Op:
            stop.set()
            return op.with_(type="ok")

    ops = run(clients(RotatingKeys()), {0: Slow()}, stop=stop)
    assert ops and ops[-1].type == "ok"
    History(ops)


@pytest.mark.timeout(30)
def test_every_invocation_is_on_disk_before_its_client_runs(tmp_path) -> None:
    """A harness killed at any moment loses no op that may have taken effect."""
    path = tmp_path / "history.jsonl"
    writer = JsonlWriter(str(path))
    missing: list[Op] = []

    class Checking(Echo):
        def invoke(self, test: Any, op: Op) -> Op:
            lines = path.read_text().splitlines()
            if not any(f'"index":{op.index},' in line for line in lines):
                missing.append(op)
            return op.with_(type="ok")

    rec = interpreter.ListRecorder(writer.write, writer.flush)
    interpreter.run(None, clients(Limit(200, RotatingKeys())), clients={t: Checking() for t in range(4)},
                    nemesis=None, recorder=rec, rng=random.Random(1))
    writer.close()
    assert missing == []
    assert list(read_jsonl(str(path))) == rec.ops  # and everything recorded reached the file


@pytest.mark.timeout(30)
def test_every_completion_is_on_disk_before_its_worker_runs_its_next_op(tmp_path) -> None:
    """The README's guarantee: a worker's completed op reaches the file before that worker's next op runs."""
    path = tmp_path / "history.jsonl"
    writer = JsonlWriter(str(path))
    late: list[Op] = []

    class Counting(Echo):
        def __init__(self) -> None:
            super().__init__()
            self.completed = 0

        def invoke(self, test: Any, op: Op) -> Op:
            text = path.read_text()
            on_disk = sum(1 for line in text.splitlines() if f'"process":{op.process},' in line and '"type":"ok"' in line)
            if on_disk < self.completed:
                late.append(op)
            self.completed += 1
            return op.with_(type="ok")

    rec = interpreter.ListRecorder(writer.write, writer.flush)
    interpreter.run(None, clients(Limit(300, RotatingKeys())), clients={t: Counting() for t in range(4)},
                    nemesis=None, recorder=rec, rng=random.Random(2))
    writer.close()
    assert late == []
    assert len(rec.ops) == 600


class Slow(Echo):
    """Each op takes ``seconds`` (a request waiting for its timeout)."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def invoke(self, test: Any, op: Op) -> Op:
        threading.Event().wait(self.seconds)
        return super().invoke(test, op)


@pytest.mark.timeout(30)
def test_a_worker_freed_early_is_not_kept_waiting_for_a_later_nemesis_op() -> None:
    """While every client is busy, the only op on offer is a fault due much later; a client that frees up
    before it must get its next op then, not after the fault (clients would sit idle through faults)."""
    from splitbrain.harness.generator import Timed

    faults = Timed(((int(0.05e9), {"f": "start", "value": None}), (int(1.5e9), {"f": "stop", "value": None})))
    ops = run(any_(clients(Limit(3, RotatingKeys())), nemesis(faults)), {0: Slow(0.3)}, Faults())
    invocations = [(op.process, op.f) for op in ops if op.type == "invoke"]
    stop_at = invocations.index(("nemesis", "stop"))
    client_invocations_before_stop = [i for i, (p, _) in enumerate(invocations) if p != "nemesis" and i < stop_at]
    assert len(client_invocations_before_stop) >= 3, invocations  # all three, 0.3 s apart, before 1.5 s


@pytest.mark.timeout(30)
def test_an_op_that_completes_after_the_drain_stays_open_and_its_worker_ends() -> None:
    """Past the drain timeout the op is indeterminate (no completion recorded); when its client returns
    at last, the worker thread ends instead of looking for a scheduler that is gone."""
    returned = threading.Event()

    class Late(Echo):
        def invoke(self, test: Any, op: Op) -> Op:
            threading.Event().wait(0.5)
            returned.set()
            return op.with_(type="ok")

    ops = run(clients(Limit(1, RotatingKeys())), {0: Late()}, drain_timeout=0.05)
    assert [op.type for op in ops] == ["invoke"]
    assert returned.wait(10)
    for _ in range(100):
        if not any(t.name == "worker-0" for t in threading.enumerate()):
            break
        threading.Event().wait(0.05)
    assert not any(t.name == "worker-0" for t in threading.enumerate())


@pytest.mark.timeout(30)
def test_a_generator_that_raises_stops_the_run_with_its_error() -> None:
    class Broken:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def op(self, test: Any, ctx: Any) -> Any:
            res = self.inner.op(test, ctx)
            return None if res is None else (res[0], Broken(res[1]))

        def update(self, test: Any, ctx: Any, event: Op) -> Any:
            if event.type == "ok" and event.index > 20:
                raise ValueError("generator bug")
            return Broken(self.inner.update(test, ctx, event))

    with pytest.raises(ValueError, match="generator bug"):
        run(Broken(clients(RotatingKeys())), {t: Echo() for t in range(3)})


@pytest.mark.timeout(60)
def test_clients_of_mixed_speeds_give_a_consistent_history() -> None:
    """Slow and fast workers finish in any order: every op pairs with its own invocation, in time order,
    and no worker runs two ops at once."""
    busy: set[int] = set()
    overlaps: list[int] = []

    class Varying(Echo):
        def __init__(self, me: int) -> None:
            super().__init__()
            self.me = me
            self.rng = random.Random(me)

        def invoke(self, test: Any, op: Op) -> Op:
            if self.me in busy:
                overlaps.append(self.me)
            busy.add(self.me)
            if self.rng.random() < 0.2:
                threading.Event().wait(self.rng.random() * 0.01)
            busy.discard(self.me)
            return op.with_(type=self.rng.choice(["ok", "ok", "fail", "info"]))

    ops = run(clients(Limit(2000, RotatingKeys())), {t: Varying(t) for t in range(8)})
    assert overlaps == []
    assert len(ops) == 4000 and [op.index for op in ops] == list(range(4000))
    assert all(a.time <= b.time for a, b in zip(ops, ops[1:], strict=False))
    History(ops)


@pytest.mark.timeout(30)
def test_a_pause_between_phases_ends_while_every_worker_is_idle() -> None:
    """The recovery pause of a run (Sleep) counts from when it is first offered: workers that wake up and
    ask again while nothing is in flight do not push its end further out."""
    gen = phases(clients(Limit(3, RotatingKeys())), Sleep(0.3), clients(Limit(3, RotatingKeys())))
    ops = run(gen, {t: Echo() for t in range(2)})
    assert len(ops) == 12
