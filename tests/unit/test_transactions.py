"""The transactional workloads: Elle-style txns (unique values, hot keys retired as they grow), their
options (the consistency model above all), and the state machine's atomic txn command of the Raft store."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from splitbrain.control.clusters import LocalNodes
from splitbrain.control.errors import ConfigError
from splitbrain.harness import test as harness_test
from splitbrain.harness.cli import main
from splitbrain.harness.generator import Context
from splitbrain.harness.transactions import TxnOps, final_reads, list_append, rw_register
from splitbrain.histories.history import History
from splitbrain.histories.op import Op
from splitbrain.targets.raft.core import Entry, StateMachine
from splitbrain.targets.raft.server.node import RaftServer

from tests.unit.test_bad_input import one_error_line
from tests.unit.test_raft_server_shell import single_node_config, until_leader


def txns(gen: Any, n: int, seed: int = 1) -> list[list[list[Any]]]:
    ctx = Context(0, frozenset({0}), (0,), random.Random(seed))
    out = []
    for _ in range(n):
        op, gen = gen.op(None, ctx)
        assert op["f"] == "txn"
        out.append(op["value"])
    return out


def test_txns_write_unique_values_to_a_few_hot_keys_that_retire_as_they_grow() -> None:
    gen = TxnOps("append", key_count=3, max_length=4, writes_per_key=10)
    made = txns(gen, 2000)
    assert all(1 <= len(t) <= 4 for t in made)
    writes = [(k, v) for t in made for f, k, v in t if f == "append"]
    values = [v for _, v in writes]
    assert len(values) == len(set(values)), "a value appended twice makes version orders unrecoverable"
    per_key = Counter(k for k, _ in writes)
    assert max(per_key.values()) <= 10 and len(per_key) >= len(writes) // 10
    # a key is never touched again once it has had its writes: its version order is complete
    written: Counter[int] = Counter()
    for t in made:
        for f, k, _ in t:
            assert written[k] < 10
            written[k] += f == "append"
    reads = [m for t in made for m in t if m[0] == "r"]
    assert reads and all(m[2] is None for m in reads) and 0.3 < len(reads) / (len(reads) + len(writes)) < 0.7


def test_the_same_seed_makes_the_same_txns() -> None:
    gen = TxnOps("w")
    assert txns(gen, 300, seed=4) == txns(gen, 300, seed=4) != txns(gen, 300, seed=5)
    assert {m[0] for t in txns(gen, 300) for m in t} == {"r", "w"}


def test_final_reads_cover_every_key_once() -> None:
    gen = final_reads(37, per_txn=16)
    ctx = Context(0, frozenset({0}), (0,), random.Random(1))
    keys = []
    while (res := gen.op(None, ctx)) is not None:
        op, gen = res
        assert all(m[0] == "r" and m[2] is None for m in op["value"])
        keys += [m[1] for m in op["value"]]
    assert keys == list(range(37))


def raft_test(**workload_options: Any) -> harness_test.Test:
    from splitbrain.targets.raft.spec import spec

    return harness_test.Test(target=spec(), workload=list_append, nodes=LocalNodes(3),
                workload_options=workload_options)


def op(index: int, type_: str, process: int, value: Any) -> Op:
    return Op(index, type_, process, "txn", value, time=index)


# T1 appends 1 and completes; T2 starts after it and reads the key empty: a stale read, only wrong under
# a model with real-time order (G-single-realtime).
STALE = History([op(0, "invoke", 0, [["append", "x", 1]]), op(1, "ok", 0, [["append", "x", 1]]),
                 op(2, "invoke", 1, [["r", "x", None]]), op(3, "ok", 1, [["r", "x", []]])])


def test_the_consistency_model_is_the_tests_to_name() -> None:
    strict = raft_test().make_workload().check(STALE)
    assert strict.valid is False
    assert strict.details["list-append"]["consistency_model"] == "strict-serializable"  # Elle's default
    assert "G-single-realtime" in strict.details["list-append"]["anomaly_types"]
    serializable = raft_test(**{"consistency-model": "serializable"}).make_workload().check(STALE)
    assert serializable.details["list-append"]["valid"] is True
    assert serializable.details["list-append"]["consistency_model"] == "serializable"


@pytest.mark.parametrize("options,expected", [
    ({"consistency-model": "linearizable"}, "--consistency-model 'linearizable': expected one of"),
    ({"key-count": "0"}, "--workload-opt key-count: expected a whole number from 1"),
    ({"max-txn-length": "2.5"}, "--workload-opt max-txn-length: expected a whole number"),
    ({"colour": "red"}, "workload list-append has no option colour"),
])
def test_bad_workload_options_are_one_line(options: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError, match=expected.replace("(", r"\(")):
        raft_test(**options).make_workload()


def test_workload_options_are_kept_in_test_json_and_build_the_same_test() -> None:
    options = harness_test.TestOptions(workload="rw-register", nodes=3, workload_opts={"consistency-model": "serializable"})
    again = harness_test.TestOptions.from_json(options.to_json())
    built = again.build()
    assert built.workload is rw_register and built.workload_options == {"consistency-model": "serializable"}
    assert harness_test.TestOptions.describe(built)["workload_opts"] == {"consistency-model": "serializable"}
    assert built.make_workload().name == "rw-register"


@pytest.mark.parametrize("args,expected", [
    (["--workload", "list-append", "--consistency-model", "frob"], "--consistency-model 'frob': expected one of"),
    (["--workload", "rw-register", "--workload-opt", "x"], "--workload-opt expects KEY=VALUE"),
    (["--workload", "register", "--workload-opt", "consistency-model=serializable"],
     "workload register has no option consistency-model"),
])
def test_bad_workload_options_on_the_command_line_are_exit_3(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                             args: list[str], expected: str) -> None:
    assert main(["run", "--store", str(tmp_path / "runs"), "--nodes", "3", *args]) == 3
    line = one_error_line(capsys.readouterr().err)
    assert expected in line, line
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


# -- the Raft store's txn command -----------------------------------------------------------------------

def apply(sm: StateMachine, command: dict[str, Any]) -> Any:
    return sm.apply(Entry(1, sm.applied_index + 1, command))


def test_a_txn_applies_in_order_and_reads_its_own_writes() -> None:
    sm = StateMachine()
    done = apply(sm, {"op": "txn", "mops": [["r", 1, None], ["append", 1, 5], ["r", 1, None], ["w", 2, 7],
                                            ["r", 2, None]]})
    assert done.ok and done.value == [["r", 1, None], ["append", 1, 5], ["r", 1, [5]], ["w", 2, 7], ["r", 2, 7]]
    assert sm.read_txn([["r", 1, None], ["r", 2, None]]) == [["r", 1, [5]], ["r", 2, 7]]


def test_a_txn_that_cannot_apply_applies_nothing() -> None:
    sm = StateMachine()
    apply(sm, {"op": "put", "key": 2, "value": 3})
    refused = apply(sm, {"op": "txn", "mops": [["append", 1, 5], ["append", 2, 6]]})  # 3 is not a list
    assert not refused.ok and refused.error == "not-appendable"
    assert sm.read(1) is None and sm.read(2) == 3


@pytest.mark.timeout(20)
@pytest.mark.parametrize("split", [False, True])
def test_the_txn_split_bug_lets_another_txn_in_between_its_reads_and_writes(tmp_path: Path, split: bool) -> None:
    """Two txns sent together to one node: atomic, the first reads the empty list and appends first;
    with txn-split its read is served alone, the second txn's append commits, and then its own."""
    async def session() -> list[Any]:
        server = RaftServer(single_node_config(tmp_path, bugs=frozenset({"txn-split"} if split else ())))
        running = asyncio.create_task(server.run())
        await until_leader(server)
        first = server.handle_operation("txn", {"mops": [["r", "k", None], ["append", "k", 1]]})
        second = server.handle_operation("txn", {"mops": [["append", "k", 2]]})
        replies = list(await asyncio.gather(first, second))
        final = await server.handle_operation("txn", {"mops": [["r", "k", None]]})
        server.stop()
        await running
        return [r.body["value"] for r in [*replies, final]]

    first, second, final = asyncio.run(session())
    assert first == [["r", "k", None], ["append", "k", 1]] and second == [["append", "k", 2]]
    assert final == [["r", "k", [2, 1] if split else [1, 2]]]
