"""Benchmark: list-append on each transactional target (issue 15): committed txns per second and the
list-append checker's time on the run's history.

Each row is one real run (3 nodes, local ones unless ``--remote docker``, 10 workers asking for
``--rate`` txns/s for ``--time-limit`` s, the default 60) through splitbrain's run loop, without faults
or, in the rows that say so, with partitions and kills (a fault every 3 s; the "faults" column counts
them); txns/s counts the ``ok`` txns of the operating phase (final reads excluded) over its length, so
a row with faults counts the time the system was down too. The checker is then timed on that history
``--repeats`` times in this process (median, min, max), and both figures are divided by those of the
first row measured (the Raft store unless ``--only`` leaves it out).

    python bench/txn.py [--time-limit 60] [--rate 1000] [--repeats 3] [--only SUBSTRING] [--store DIR]
                        [--remote local|docker]

Needs root (local nodes are network namespaces; Docker nodes need dockerd and the node image); --store
must be a directory the user postgres can reach (default /var/tmp/splitbrain-bench-txn, removed
afterwards).

Measured 2026-12-03 on the 2-CPU development VM, one session (one run per row: 60 s runs on a machine
shared by four engineers; load average 6.0 at the end), ``--time-limit 60 --rate 1000 --repeats 3``:

    target                                             ok txns  txns/s  vs 1  history ops  check s (min-max)  vs 1  valid
    Raft store, 3 nodes                                  37247     621  1.00        74966  2.03 (1.72-2.19)  1.00  true
    etcd 3.4, 3 nodes, linearizable reads                 6399     107  0.17        16762  0.25 (0.23-0.33)  0.12  true
    PostgreSQL 15 serializable, primary + 2 replicas     29713     495  0.80        86828  1.44 (1.34-1.73)  0.71  true
    PostgreSQL 15 read committed, primary + 2 replicas   15909     265  0.43        33778  1.49 (1.30-1.62)  0.74  false

With partitions and kills (``--only partition``, 22 faults per run; another session, load average 4.4
at the end):

    target                                               faults  ok txns  txns/s  vs 1 history ops    check s (min-max)  vs 1  valid
    Raft store, 3 nodes, partition+kill                      22    16185     270  1.00       89524    0.65 (0.61-0.68)  1.00  true
    etcd 3.4, linearizable reads, partition+kill             22     3632      60  0.22       50126    0.23 (0.23-0.32)  0.36  true
    PostgreSQL 15 serializable, partition+kill               22    16906     282  1.04       83718    0.56 (0.56-0.63)  0.86  true

etcd is slow because an append is a read-modify-write under a mod-revision compare: on 4 hot keys most
txns lose the compare (a definite failure, ``fail``). PostgreSQL read committed commits fewer txns than
serializable here because its txns wait on row locks of the hot keys instead of aborting early. The
checker's time follows the number of txns in the graph: ~2 s for ~37k txns.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from splitbrain.checkers.elle import check_list_append
from splitbrain.harness.run import run
from splitbrain.harness.test import TestOptions
from splitbrain.histories.jsonl import read_jsonl_prefix


@dataclass(frozen=True)
class Row:
    name: str
    target: str
    target_opts: dict[str, Any] = field(default_factory=dict)
    bugs: tuple[str, ...] = ()
    nemesis: tuple[str, ...] = ()


FAULTS = ("partition", "kill")  # a fault every 3 s (the default interval), healed at the end


ROWS = (
    Row("Raft store, 3 nodes", "raft"),
    Row("etcd 3.4, 3 nodes, linearizable reads", "etcd"),
    Row("PostgreSQL 15 serializable, primary + 2 replicas", "postgres", {"isolation": "serializable"}),
    Row("PostgreSQL 15 read committed, primary + 2 replicas", "postgres", {"isolation": "read-committed"}),
    Row("Raft store, 3 nodes, partition+kill", "raft", nemesis=FAULTS),
    Row("etcd 3.4, linearizable reads, partition+kill", "etcd", nemesis=FAULTS),
    Row("PostgreSQL 15 serializable, partition+kill", "postgres", {"isolation": "serializable"}, nemesis=FAULTS),
)


FAULT_STARTS = {"start-partition", "kill"}


def measure(row: Row, args: argparse.Namespace) -> dict[str, Any]:
    options = TestOptions(target=row.target, workload="list-append", nemesis=row.nemesis, nodes=3,
                          remote=args.remote, time_limit=args.time_limit,
                          rate=args.rate, concurrency=10, seed=1, store="runs", bugs=row.bugs,
                          target_opts=row.target_opts, recovery_s=1.0)
    with contextlib.chdir(args.store):
        outcome = run(options.build(), console=False, out=open(os.devnull, "w"))
    if outcome.error is not None:
        raise SystemExit(f"{row.name}: the run failed: {outcome.error}")
    history = read_jsonl_prefix(str(outcome.run_dir.path / "history.jsonl"))[0]
    heal = next((op.time for op in history if op.process == "nemesis" and op.f == "heal"), None)
    client = [op for op in history if op.is_client and op.type == "ok" and (heal is None or op.time < heal)]
    start = min(op.time for op in history if op.is_client)
    seconds = ((heal if heal is not None else max(op.time for op in client)) - start) / 1e9
    times = []
    for _ in range(args.repeats):
        began = time.perf_counter()
        result = check_list_append(history)
        times.append(time.perf_counter() - began)
    faults = sum(1 for op in history if op.process == "nemesis" and op.type != "invoke" and op.f in FAULT_STARTS)
    return {"name": row.name, "ok_txns": len(client), "seconds": seconds, "tps": len(client) / seconds,
            "ops": len(history), "check": times, "valid": result.valid, "faults": faults}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-limit", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", default="")
    parser.add_argument("--store", default="/var/tmp/splitbrain-bench-txn")
    parser.add_argument("--remote", choices=("local", "docker"), default="local")
    args = parser.parse_args()
    store = Path(args.store)
    store.mkdir(mode=0o755, parents=True, exist_ok=True)
    store.chmod(0o755)
    args.store = store
    try:
        rows = [measure(row, args) for row in ROWS if args.only.lower() in row.name.lower()]
    finally:
        shutil.rmtree(store, ignore_errors=True)
    base = rows[0]
    print(f"list-append, {args.remote} nodes, {args.time_limit:g} s at --rate {args.rate:g}, 10 workers; checker "
          f"median of {args.repeats}; load average {os.getloadavg()[0]:.1f} at the end")
    print(f"{'target':52} {'faults':>6} {'ok txns':>8} {'txns/s':>7} {'vs 1':>5} {'history ops':>11} "
          f"{'check s (min-max)':>20} {'vs 1':>5}  valid")
    for r in rows:
        check = statistics.median(r["check"])
        print(f"{r['name']:52} {r['faults']:>6} {r['ok_txns']:>8} {r['tps']:>7.0f} {r['tps'] / base['tps']:>5.2f} {r['ops']:>11} "
              f"{check:>7.2f} ({min(r['check']):.2f}-{max(r['check']):.2f}) "
              f"{check / statistics.median(base['check']):>5.2f}  {json.dumps(r['valid'])}")


if __name__ == "__main__":
    main()
