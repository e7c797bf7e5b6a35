"""PostgreSQL 15 under list-append and rw-register: each isolation level shows exactly the anomalies it
permits (Adya; Hermitage's table for PostgreSQL), and the client's ok/fail/info are right.

- read committed: G-single (read skew) and G2-item-class cycles under plain concurrency, never G0/G1;
- repeatable read (snapshot isolation in PostgreSQL): G2-item (write skew), never G-single: valid as
  snapshot-isolation, invalid as Adya's repeatable-read and anything serializable;
- serializable: strict-serializable, also with the primary killed and paused;
- read-only txns routed to an asynchronous replica: stale reads, named G-single-realtime/-process;
- SQLSTATE 40001 is ``fail``; a connection lost, or no answer, during COMMIT is ``info``.

The servers run as user ``postgres`` (it refuses root), so the runs go to a store every user may
traverse (pytest's own temporary folders are closed to other users: that case is tested too).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from splitbrain.checkers.elle import check_list_append
from splitbrain.harness import test as harness_test
from splitbrain.harness.run import RunOutcome
from splitbrain.histories.jsonl import read_jsonl_prefix

from tests.integration.helpers import run
from tests.integration.test_etcd import assert_nothing_left

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason="local nodes need root (network namespaces)"),
              pytest.mark.skipif(not os.path.exists("/usr/lib/postgresql/15/bin/postgres"),
                                 reason="PostgreSQL 15 is not installed (.ci/setup)")]

# What no isolation level of PostgreSQL permits: dirty writes and reads, states no commit produced.
NEVER = {"G0", "G1a", "G1b", "G1c", "garbage-read", "duplicate-elements", "incompatible-order", "future-read"}


@pytest.fixture
def store() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="splitbrain-pg-", dir="/tmp"))
    path.chmod(0o755)  # user postgres must reach the run's data directory
    yield path / "runs"
    shutil.rmtree(path, ignore_errors=True)


def shared_memory_segments() -> str:
    import subprocess

    return subprocess.run(["ipcs", "-m"], capture_output=True, text=True).stdout


def pg_run(store: Path, workload: str, seed: int, *, isolation: str, nodes: int = 1, reads: str = "primary",
           nemesis: tuple[str, ...] = (), schedule: list[dict] | None = None, time_limit: float = 6.0,
           rate: float = 500, remote: str = "local", workload_opts: dict | None = None) -> RunOutcome:
    segments = shared_memory_segments()
    outcome = run(harness_test.TestOptions(
        target="postgres", workload=workload, nemesis=nemesis, nodes=nodes, remote=remote, time_limit=time_limit,
        nemesis_interval=1.5, seed=seed, store=str(store), schedule=schedule, rate=rate, concurrency=10,
        recovery_s=1.5, target_opts={"isolation": isolation, "reads": reads}, workload_opts=workload_opts or {}))
    if remote == "local":
        assert_nothing_left(outcome)
        assert shared_memory_segments() == segments  # every server shut down fast: nothing left in the kernel
    assert outcome.error is None, outcome.error
    return outcome


def found(outcome: RunOutcome, workload: str) -> set[str]:
    return set(outcome.results[workload]["anomaly_types"])


def history_of(outcome: RunOutcome) -> Any:
    return read_jsonl_prefix(str(outcome.run_dir.path / "history.jsonl"))[0]


def seeds_until(predicate: Any, seeds: range, what: str) -> RunOutcome:
    tried = []
    for seed in seeds:
        outcome = predicate(seed)
        if outcome is not None:
            return outcome
        tried.append(seed)
    pytest.fail(f"{what}: not seen on seeds {tried}")


@pytest.mark.timeout(300)
def test_read_committed_shows_read_skew_and_write_skew_but_never_dirty_reads(store: Path) -> None:
    """Seen on the first seed (3 of 3 seeds tried); up to 3 allowed."""
    def attempt(seed: int) -> RunOutcome | None:
        outcome = pg_run(store, "list-append", seed, isolation="read-committed")
        names = found(outcome, "list-append")
        assert not names & NEVER, names
        return outcome if "G-single" in names and names & {"G2-item", "G-nonadjacent"} else None

    outcome = seeds_until(attempt, range(1, 4), "read committed's G-single and G2-item")
    assert outcome.valid is False
    # everything found is what read committed permits
    assert check_list_append(history_of(outcome), consistency_model="read-committed").valid is True


@pytest.mark.timeout(300)
@pytest.mark.parametrize("workload", ["list-append", "rw-register"])
def test_repeatable_read_is_snapshot_isolation_write_skew_and_no_g_single(store: Path, workload: str) -> None:
    """G2-item on the first seed (list-append: 3 of 3 seeds tried; rw-register, with txns of up to 6
    micro-ops: 4 of 4); up to 3 allowed. Never a G-single. rw-register's version orders come only from
    a txn's read before its write of a key, so its write skews need longer txns to be seen often."""
    opts = {"max-txn-length": 6} if workload == "rw-register" else {}

    def attempt(seed: int) -> RunOutcome | None:
        outcome = pg_run(store, workload, seed, isolation="repeatable-read", workload_opts=opts)
        names = found(outcome, workload)
        assert not names & NEVER and not any(n.startswith("G-single") for n in names), names
        return outcome if "G2-item" in names else None

    outcome = seeds_until(attempt, range(1, 4), "repeatable read's write skew")
    result = outcome.results[workload]
    assert outcome.valid is False and "repeatable-read" in result["not"]  # Adya's PL-2.99 forbids G2-item
    assert "snapshot-isolation" not in result["not"] + result["also_not"]
    fails = [op for op in history_of(outcome) if op.type == "fail"]
    assert any(str(op.error).startswith("40001") for op in fails)  # first-updater-wins aborts are fail


def primary_kills_and_pauses() -> list[dict]:
    return [{"at_s": 1.0, "f": "kill", "value": "primaries"}, {"at_s": 2.5, "f": "start", "value": None},
            {"at_s": 3.5, "f": "pause", "value": "primaries"}, {"at_s": 5.0, "f": "resume", "value": None}]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("workload", ["list-append", "rw-register"])
def test_serializable_is_strict_serializable_with_the_primary_killed_and_paused(store: Path, workload: str) -> None:
    outcome = pg_run(store, workload, 1, isolation="serializable", nodes=3, nemesis=("kill", "pause"),
                     schedule=primary_kills_and_pauses(), time_limit=7)
    assert outcome.valid is True, outcome.results.get("explanation")
    assert outcome.results[workload]["consistency_model"] == "strict-serializable"
    history = history_of(outcome)
    faults = {op.f for op in history if op.process == "nemesis" and op.type != "invoke"}
    assert {"kill", "start", "pause", "resume"} <= faults
    assert sum(1 for op in history if op.type == "ok" and op.process != "nemesis") > 200
    assert any(op.type == "fail" and str(op.error).startswith("40001") for op in history)


def replica_cut_off_twice() -> list[dict]:
    return [{"at_s": 1.0, "f": "start-partition", "value": "one"}, {"at_s": 3.0, "f": "stop-partition", "value": None},
            {"at_s": 3.5, "f": "start-partition", "value": "one"}, {"at_s": 5.5, "f": "stop-partition", "value": None}]


@pytest.mark.timeout(400)
def test_reads_from_an_async_replica_are_stale_and_named(store: Path) -> None:
    """Serializable on the primary, reads from asynchronous replicas: stale reads (G-single-realtime or
    -process) on the first seed (3 of 3 tried); up to 3 allowed. Reads from the primary: valid."""
    def attempt(seed: int) -> RunOutcome | None:
        outcome = pg_run(store, "list-append", seed, isolation="serializable", nodes=3, reads="replicas",
                         nemesis=("partition",), schedule=replica_cut_off_twice())
        names = found(outcome, "list-append")
        assert not names & NEVER, names
        return outcome if names & {"G-single-realtime", "G-single-process"} else None

    outcome = seeds_until(attempt, range(1, 4), "stale reads from replicas")
    seed = json.loads((outcome.run_dir.path / "test.json").read_text())["seed"]
    twin = pg_run(store, "list-append", seed, isolation="serializable", nodes=3, nemesis=("partition",),
                  schedule=replica_cut_off_twice())
    assert twin.valid is True, twin.results.get("explanation")


@pytest.mark.timeout(120)
def test_a_store_closed_to_other_users_is_one_line_exit_3(tmp_path: Path) -> None:
    """pytest's tmp_path sits in a 0700 folder: user postgres cannot reach it."""
    outcome = run(harness_test.TestOptions(target="postgres", workload="list-append", nodes=1, time_limit=2,
                                           store=str(tmp_path / "runs"), seed=1))
    assert outcome.exit_code == 3
    assert "user postgres" in outcome.error and "--store" in outcome.error
    assert_nothing_left(outcome)
