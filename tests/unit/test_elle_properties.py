"""Properties of the list-append checker on generated histories.

- A history produced by a serial execution (with concurrency whose real-time order agrees with it, and
  with failed and indeterminate txns) has no anomaly, even under strict serializability.
- An anomaly pattern injected into such a history is found and named, and nothing else is reported.
- On small random histories, the serializable verdict agrees with a brute-force search for a serial
  order: "valid" only when some order of the txns explains every read, "invalid" only when none does.
"""

from __future__ import annotations

import itertools
import random

from hypothesis import given, settings
from hypothesis import strategies as st
from splitbrain.checkers.elle import check_list_append
from splitbrain.checkers.elle.synth import PATTERNS, list_append_history, pattern, schedule, serial_txns
from splitbrain.histories.history import History
from splitbrain.histories.op import Op

EXPECTED = {name: {name} for name in PATTERNS} | {"G1b": {"G1b", "G-single"}}


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32), n=st.integers(1, 120), keys=st.integers(1, 6),
       fail_rate=st.sampled_from([0.0, 0.1, 0.3]), info_rate=st.sampled_from([0.0, 0.1, 0.3]))
def test_serial_histories_have_no_anomaly(seed, n, keys, fail_rate, info_rate):
    history = list_append_history(seed, n, key_count=keys, max_writes_per_key=6, fail_rate=fail_rate,
                                  info_rate=info_rate)
    result = check_list_append(history, consistency_model="strict-serializable")
    assert result.details["anomaly_types"] == []
    assert result.valid is True


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32), n=st.integers(2, 80), name=st.sampled_from(PATTERNS),
       where=st.floats(0, 1))
def test_injected_anomaly_is_found_and_named(seed, n, name, where):
    rng = random.Random(seed)
    slots = [[t] for t in serial_txns(rng, n, key_count=3, max_writes_per_key=5, fail_rate=0.1, info_rate=0.1)]
    slots.insert(int(where * len(slots)), pattern(name, [-1, -2]))  # fresh keys, all txns overlapping
    result = check_list_append(schedule(rng, slots), consistency_model="strict-serializable")
    assert set(result.details["anomaly_types"]) == EXPECTED[name]
    assert result.valid is False


def _serial_order_exists(txns: list[list[list]]) -> bool:
    """Brute force: does some order of the (committed) txns, run one after another, give every read?"""
    for order in itertools.permutations(txns):
        state: dict = {}
        if all(_replays(t, state) for t in order):
            return True
    return False


def _replays(txn: list[list], state: dict) -> bool:
    for f, k, v in txn:
        if f == "append":
            state[k] = [*state.get(k, []), v]
        elif state.get(k, []) != v:
            return False
    return True


@st.composite
def small_histories(draw):
    """A few committed txns over two keys; reads are random prefixes of the key's final list, so some
    histories are serializable in some order and many are not."""
    rng = random.Random(draw(st.integers(0, 2**32)))
    n = draw(st.integers(2, 5))
    final = {"x": [], "y": []}
    txns = []
    for i in range(n):
        mops = []
        for _ in range(rng.randint(1, 3)):
            k = rng.choice("xy")
            if rng.random() < 0.5:
                final[k].append(10 * i + len(mops))
                mops.append(["append", k, 10 * i + len(mops)])
            else:
                mops.append(["r", k, None])
        txns.append(mops)
    for mops in txns:
        for m in mops:
            if m[0] == "r":
                m[2] = final[m[1]][: rng.randint(0, len(final[m[1]]))]
    return txns


@settings(max_examples=300, deadline=None)
@given(txns=small_histories())
def test_serializable_verdict_matches_brute_force(txns):
    ops = [Op(i, "invoke", i, "txn", [[f, k, None if f == "r" else v] for f, k, v in t]) for i, t in enumerate(txns)]
    ops += [Op(len(txns) + i, "ok", i, "txn", t) for i, t in enumerate(txns)]
    result = check_list_append(History(ops), consistency_model="serializable")
    assert result.valid is _serial_order_exists(txns), result.explanation


@st.composite
def small_timed_histories(draw):
    """Small histories with a random interleaving of invocations and completions (one process per txn),
    and reads that are sometimes not prefixes of one order at all."""
    txns = draw(small_histories())
    rng = random.Random(draw(st.integers(0, 2**32)))
    for mops in txns:
        for m in mops:
            if m[0] == "r" and m[2] and rng.random() < 0.2:
                m[2] = rng.sample(m[2], len(m[2]))  # a reordering: an incompatible order
    events = [(i, "invoke") for i in range(len(txns))] + [(i, "ok") for i in range(len(txns))]
    rng.shuffle(events)
    seen: set[int] = set()
    ordered = []
    for i, kind in events:  # a completion after its invocation: move completions that came too early
        if kind == "ok" and i not in seen:
            events.append((i, kind))
            continue
        seen.add(i)
        ordered.append((i, kind))
    return txns, ordered


def _strict_order_exists(txns: list[list[list]], events: list[tuple[int, str]]) -> bool:
    position = {(i, kind): p for p, (i, kind) in enumerate(events)}
    for order in itertools.permutations(range(len(txns))):
        # a txn that completed before another was invoked must come first
        if any(position[(b, "ok")] < position[(a, "invoke")] for x, a in enumerate(order) for b in order[x + 1:]):
            continue
        state: dict = {}
        if all(_replays(txns[i], state) for i in order):
            return True
    return False


@settings(max_examples=300, deadline=None)
@given(case=small_timed_histories())
def test_strict_serializable_verdict_matches_brute_force(case):
    txns, events = case
    ops = [Op(p, kind, i, "txn", [[f, k, None if f == "r" else v] for f, k, v in txns[i]] if kind == "invoke"
              else txns[i]) for p, (i, kind) in enumerate(events)]
    result = check_list_append(History(ops), consistency_model="strict-serializable")
    assert result.valid is _strict_order_exists(txns, events), result.explanation


@st.composite
def small_histories_with_outcomes(draw):
    """Like small_histories, but some txns failed (their appends may still show up in reads: an aborted
    read) and some are indeterminate (they may or may not have happened; their reads are unknown)."""
    txns = draw(small_histories())
    outcomes = draw(st.lists(st.sampled_from(["ok", "ok", "ok", "fail", "info"]), min_size=len(txns),
                             max_size=len(txns)))
    return txns, outcomes


def _order_with_outcomes_exists(txns, outcomes) -> bool:
    committed = [i for i, o in enumerate(outcomes) if o == "ok"]
    maybe = [i for i, o in enumerate(outcomes) if o == "info"]
    for r in range(len(maybe) + 1):
        for chosen in itertools.combinations(maybe, r):
            for order in itertools.permutations(committed + list(chosen)):
                state: dict = {}
                # an indeterminate txn's reads are unknown: only its appends take effect
                if all(_replays(txns[i] if outcomes[i] == "ok" else [m for m in txns[i] if m[0] == "append"],
                                state) for i in order):
                    return True
    return False


@settings(max_examples=300, deadline=None)
@given(case=small_histories_with_outcomes())
def test_serializable_verdict_with_failed_and_indeterminate_txns_matches_brute_force(case):
    txns, outcomes = case
    invokes = [[[f, k, None if f == "r" else v] for f, k, v in t] for t in txns]
    ops = [Op(i, "invoke", i, "txn", invokes[i]) for i in range(len(txns))]
    ops += [Op(len(txns) + i, outcome, i, "txn", txns[i] if outcome == "ok" else invokes[i])
            for i, outcome in enumerate(outcomes)]
    result = check_list_append(History(ops), consistency_model="serializable")
    assert result.valid is _order_with_outcomes_exists(txns, outcomes), result.explanation
