"""The rw-register checker: hand-made anomalies, inference options, and no false alarms."""

from __future__ import annotations

import itertools
import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from splitbrain.checkers.elle import RwRegisterChecker, check_rw_register
from splitbrain.checkers.elle.synth import PlannedTxn, schedule
from splitbrain.histories.errors import HistoryFormatError
from splitbrain.histories.history import History
from splitbrain.histories.op import Op


def ok(*mops):
    return ([[f, k, None if f == "r" else v] for f, k, v in mops], [list(m) for m in mops], "ok")


def concurrent(*txns) -> History:
    ops = [Op(i, "invoke", i, "txn", inv) for i, (inv, _, _) in enumerate(txns)]
    ops += [Op(len(txns) + i, typ, i, "txn", done) for i, (_, done, typ) in enumerate(txns) if typ]
    return History(ops)


def types(result) -> list[str]:
    return result.details["anomaly_types"]


def test_write_skew_is_g2_item():
    history = concurrent(ok(["r", "x", None], ["w", "y", 1]), ok(["r", "y", None], ["w", "x", 1]))
    result = check_rw_register(history, consistency_model="serializable")
    assert types(result) == ["G2-item"] and result.valid is False
    assert check_rw_register(history, consistency_model="snapshot-isolation").valid is True
    (cycle,) = result.details["cycles"]
    assert "read key 'x' as nil" in cycle["text"]


def test_read_skew_is_g_single():
    history = concurrent(ok(["w", "x", 1], ["w", "y", 1]), ok(["r", "x", None], ["r", "y", 1]))
    result = check_rw_register(history, consistency_model="snapshot-isolation")
    assert types(result) == ["G-single"] and result.valid is False


def test_writes_that_follow_reads_order_versions():
    # T2 read x=1 and wrote x=2, T1 read y=2 and wrote y=1: ww both ways, a G0 (through wfr inference).
    history = concurrent(ok(["w", "x", 1], ["r", "y", 2], ["w", "y", 1]),
                         ok(["r", "x", 1], ["w", "x", 2], ["w", "y", 2]))
    assert types(check_rw_register(history, consistency_model="read-uncommitted")) == ["G0"]
    # without the writes-follow-reads assumption only the wr edges remain: G1c
    without = check_rw_register(history, consistency_model="read-uncommitted", wfr_keys=False)
    assert types(without) == ["G1c"] and without.valid is True


def test_aborted_intermediate_and_garbage_reads():
    failed = ([["w", "x", 1]], [["w", "x", 1]], "fail")
    history = concurrent(failed, ok(["w", "y", 1], ["w", "y", 2]), ok(["r", "x", 1], ["r", "y", 1], ["r", "z", 5]))
    result = check_rw_register(history, consistency_model="read-committed")
    assert {"G1a", "G1b", "garbage-read"} <= set(types(result))
    assert result.valid is False
    assert result.details["anomalies"]["G1a"][0]["writer"]["type"] == "fail"


def test_internal_inconsistency():
    history = concurrent(ok(["w", "x", 1], ["r", "x", 2]), ok(["w", "x", 2]))
    result = check_rw_register(history, consistency_model="serializable")
    assert "internal" in types(result) and result.valid is False


def test_cyclic_versions():
    history = concurrent(ok(["r", "x", 1], ["w", "x", 2]), ok(["r", "x", 2], ["w", "x", 1]))
    result = check_rw_register(history, consistency_model="read-uncommitted")
    assert "cyclic-versions" in types(result) and result.valid is False


def test_duplicate_writes_make_the_check_unknown():
    history = concurrent(ok(["w", "x", 1]), ok(["w", "x", 1]))
    assert check_rw_register(history).valid == "unknown"


def test_stale_read_violates_strict_serializability_only():
    ops = [Op(0, "invoke", 0, "txn", [["w", "x", 1]]), Op(1, "ok", 0, "txn", [["w", "x", 1]]),
           Op(2, "invoke", 1, "txn", [["r", "x", None]]), Op(3, "ok", 1, "txn", [["r", "x", None]])]
    history = History(ops)
    assert check_rw_register(history, consistency_model="serializable").valid is True
    strict = check_rw_register(history)
    assert types(strict) == ["G-single-realtime"] and strict.valid is False
    json.dumps(strict.to_json())


def test_checker_class_and_bad_micro_op():
    history = concurrent(ok(["r", "x", None], ["w", "y", 1]), ok(["r", "y", None], ["w", "x", 1]))
    assert RwRegisterChecker("snapshot-isolation").check(None, history, {}).valid is True
    bad = History([Op(0, "invoke", 0, "txn", [["append", "x", 1]])], source="h", lines=[7])
    with pytest.raises(HistoryFormatError, match=r"h:7: expected a micro-op"):
        check_rw_register(bad)


def _serial_register_txns(rng: random.Random, n: int, keys: int) -> list[PlannedTxn]:
    state: dict[int, int] = {}
    counter = itertools.count(1)
    txns = []
    for _ in range(n):
        invoke, complete, local = [], [], dict(state)
        for _ in range(rng.randint(1, 4)):
            k = rng.randrange(keys)
            if rng.random() < 0.5:
                v = next(counter)
                local[k] = v
                invoke.append(["w", k, v])
                complete.append(["w", k, v])
            else:
                invoke.append(["r", k, None])
                complete.append(["r", k, local.get(k)])
        roll = rng.random()
        if roll < 0.1:
            txns.append(PlannedTxn(invoke, invoke, "fail"))
        else:
            if roll < 0.2:
                txns.append(PlannedTxn(invoke, invoke, "info"))
            else:
                txns.append(PlannedTxn(invoke, complete, "ok"))
            if roll >= 0.2 or rng.random() < 0.5:  # an indeterminate txn may or may not have happened
                state = local
    return txns


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32), n=st.integers(1, 80), keys=st.integers(1, 5))
def test_serial_register_histories_have_no_anomaly(seed, n, keys):
    rng = random.Random(seed)
    history = schedule(rng, [[t] for t in _serial_register_txns(rng, n, keys)])
    result = check_rw_register(history, consistency_model="strict-serializable")
    assert types(result) == [] and result.valid is True


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32), n=st.integers(2, 5))
def test_no_false_alarm_when_a_serial_order_exists(seed, n):
    """Reads drawn at random from the values written: whenever some serial order explains them, the
    checker must not call the history non-serializable."""
    rng = random.Random(seed)
    txns, written = [], {0: [None], 1: [None]}
    value = itertools.count(1)
    for _ in range(n):
        mops = []
        for _ in range(rng.randint(1, 3)):
            k = rng.randrange(2)
            if rng.random() < 0.5:
                v = next(value)
                written[k].append(v)
                mops.append(["w", k, v])
            else:
                mops.append(["r", k, None])
        txns.append(mops)
    for mops in txns:
        for m in mops:
            if m[0] == "r":
                m[2] = rng.choice(written[m[1]])
    history = concurrent(*[([[f, k, None if f == "r" else v] for f, k, v in t], t, "ok") for t in txns])
    result = check_rw_register(history, consistency_model="serializable")
    if _serial_order_exists(txns):
        assert result.valid is True, result.explanation


def _serial_order_exists(txns) -> bool:
    for order in itertools.permutations(txns):
        state: dict = {}
        good = True
        for t in order:
            for f, k, v in t:
                if f == "w":
                    state[k] = v
                elif state.get(k) != v:
                    good = False
                    break
            if not good:
                break
        if good:
            return True
    return False


def test_ww_explanation_names_the_txn_that_justifies_the_version_order(tmp_path):
    history = concurrent(ok(["w", "x", 1], ["r", "y", 2], ["w", "y", 1]),
                         ok(["r", "x", 1], ["w", "x", 2], ["w", "y", 2]))
    result = RwRegisterChecker("read-uncommitted").check(None, history, {"directory": str(tmp_path)})
    (cycle,) = result.details["cycles"]
    reasons = [s["reason"] for s in cycle["steps"]]
    assert any("wrote 2 to key 'x' after" in r and "op 1 read the first and then wrote the second" in r
               for r in reasons)
    assert [p.name for p in (tmp_path / "elle").iterdir()] == ["G0-0.dot"]
