"""Generators are pure values: the same seed and events give the same ops; combinators do what they say."""

from __future__ import annotations

import random

from splitbrain.harness.generator import (
    PENDING,
    Context,
    Fn,
    Limit,
    Mix,
    Once,
    Sleep,
    Stagger,
    Timed,
    TimeLimit,
    any_,
    clients,
    nemesis,
    phases,
)
from splitbrain.harness.workloads import LockOps, RotatingKeys
from splitbrain.histories.op import Op, fenced_off

WORKERS = (0, 1, 2, "nemesis")


def ctx(time: int = 0, free: tuple = WORKERS, seed: int = 1) -> Context:
    return Context(time, frozenset(free), WORKERS, random.Random(seed))


def drain(gen, n: int = 100, time: int = 0, seed: int = 1) -> list:
    out = []
    c = ctx(time, seed=seed)
    for _ in range(n):
        res = gen.op(None, c)
        if res is None:
            break
        value, gen = res
        out.append(value)
    return out


def counter() -> Fn:
    return Fn(lambda test, c: {"f": "read", "value": None})


def test_limit_and_once() -> None:
    assert len(drain(Limit(5, counter()))) == 5
    assert drain(Once({"f": "x"})) == [{"f": "x"}]


def test_time_limit_stops_at_its_deadline() -> None:
    g = TimeLimit(1.0, counter())
    value, g = g.op(None, ctx(0))
    assert value["f"] == "read"
    assert g.op(None, ctx(999_999_999)) is not None
    assert g.op(None, ctx(1_000_000_000)) is None


def test_stagger_spaces_ops_and_is_deterministic_per_seed() -> None:
    a = [v["time"] for v in drain(Limit(50, Stagger(0.01, counter())), seed=7)]
    b = [v["time"] for v in drain(Limit(50, Stagger(0.01, counter())), seed=7)]
    c = [v["time"] for v in drain(Limit(50, Stagger(0.01, counter())), seed=8)]
    assert a == b != c
    assert a == sorted(a)
    assert 0.2e9 < a[-1] < 0.8e9  # about 50 * 10 ms on average


def test_mix_draws_from_every_generator() -> None:
    g = Mix((Fn(lambda t, c: {"f": "a"}), Fn(lambda t, c: {"f": "b"})))
    fs = {v["f"] for v in drain(Limit(50, g))}
    assert fs == {"a", "b"}


def test_routing_to_clients_and_nemesis() -> None:
    value, _ = clients(counter()).op(None, ctx(free=(1, 2, "nemesis")))
    assert value["thread"] == 1
    value, _ = nemesis(counter()).op(None, ctx(free=(1, "nemesis")))
    assert value["thread"] == "nemesis"
    value, _ = clients(counter()).op(None, ctx(free=("nemesis",)))
    assert value is PENDING


def test_phases_wait_for_ops_in_flight() -> None:
    g = phases(clients(Once({"f": "first"})), clients(Once({"f": "second"})))
    value, g = g.op(None, ctx())
    assert value["f"] == "first"
    value, g2 = g.op(None, ctx(free=(1, 2, "nemesis")))  # worker 0 still busy
    assert value is PENDING
    value, _ = g.op(None, ctx())
    assert value["f"] == "second"


def test_any_takes_the_op_due_first() -> None:
    g = any_(Timed(((500, {"f": "late"}),)), Timed(((100, {"f": "early"}),)))
    assert [v["f"] for v in drain(g)] == ["early", "late"]


def test_sleep_fixes_its_end_on_first_use() -> None:
    value, g = Sleep(1.0).op(None, ctx(10))
    assert value["time"] == 10 + 1_000_000_000
    value2, _ = g.op(None, ctx(500))
    assert value2["time"] == value["time"]
    assert g.op(None, ctx(value["time"])) is None


def test_rotating_keys_bound_each_keys_history() -> None:
    ops = drain(Limit(1000, RotatingKeys(per_key=20, active=3)), n=1000)
    per_key: dict = {}
    for v in ops:
        per_key[v["key"]] = per_key.get(v["key"], 0) + 1
    assert max(per_key.values()) <= 20
    assert len(per_key) >= 1000 // 20
    assert {v["f"] for v in ops} == {"read", "write", "cas"}


def test_lock_ops_use_the_token_of_the_last_grant() -> None:
    g = LockOps(ttl_ms=1000, concurrency=3)
    c = ctx(free=(0,))
    value, g = g.op(None, c)
    assert value["f"] == "acquire" and value["thread"] == 0
    grant = Op(index=1, type="ok", process=0, f="acquire", value={**value["value"], "token": 42})
    g = g.update(None, c, grant)
    for _ in range(10):
        value, g = g.op(None, c)
        if value["f"] == "release":
            assert value["value"]["token"] == 42
            break
        assert value["f"] == "write" and value["value"]["token"] == 42
    value, g = g.op(None, c)
    assert value["f"] == "acquire"  # released: no token any more


def test_a_lock_holder_whose_write_did_not_succeed_writes_again_before_releasing() -> None:
    """Its work is not done: it keeps its token and writes until one gets through (a holder cut off comes
    back with its old token), and releases only after that; a write fenced off as stale ends the hold."""
    c = ctx(free=(0,))
    g = LockOps(ttl_ms=1000, concurrency=1, tokens=((0, 7),))
    write = {"key": "fenced", "value": "client-0-0", "token": 7}
    g = g.update(None, c, Op(index=1, type="info", process=0, f="write", value=write, error="timeout"))
    for i in range(200):  # without the rule, a release would come within a few ops
        value, g = g.op(None, c)
        assert value["f"] == "write" and value["value"]["token"] == 7
        g = g.update(None, c, Op(index=2 + i, type="fail", process=1, f="write", value=value["value"],
                                 error="no leader"))
    g = g.update(None, c, Op(index=300, type="ok", process=1, f="write", value=write))
    fs = []
    for _ in range(200):
        value, g = g.op(None, c)
        fs.append(value["f"])
        if value["f"] == "release":
            break
    assert fs[-1] == "release" and value["value"]["token"] == 7
    # A write fenced off as stale ends the hold at once: the next op is an acquire.
    g = LockOps(ttl_ms=1000, concurrency=1, tokens=((0, 9),))
    g = g.update(None, c, Op(index=1, type="fail", process=0, f="write", value=write, error=fenced_off("stale token 1")))
    assert g.op(None, c)[0]["f"] == "acquire"
