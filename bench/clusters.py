"""Benchmark: time from start to the first successful operation, per cluster set-up.

Each set-up is one row of ``SETUPS``: a name and a function that builds the set-up from nothing in a
scratch directory, measures from the moment its processes are started (the nodes already exist) until a
client's first ok operation, tears everything down, and returns the seconds. Each is measured ``--runs``
times; the table shows the median, min and max, and how long the nodes themselves took to come up.

    python bench/clusters.py [--runs 3] [--only SUBSTRING]

Needs root (local nodes are network namespaces). Add a row by appending a ``Setup`` to ``SETUPS``.

Measured 2026-11-26 on the 2-CPU development VM while other test suites kept its load average at 6-10:
etcd 3.4, 3 members on local nodes (election timeout 500 ms), first ok write: medians of 3 runs in five
sessions 2.27, 2.20, 0.31, 1.09 s, and 0.26 s for 5 runs; single runs 0.18-2.41 s. Bimodal: ~0.2-0.4 s
when the three members start together (the leader is elected ~30 ms after the last one is up), ~2.2 s
when the loaded machine starts one member's process a second or more after the others; the namespaces
took ~0.06 s before that.
ZooKeeper 3.8, 3 JVMs on local nodes (tickTime 200 ms), first ok write through kazoo: median 3.67 s
(3.21-4.51 s) over 3 runs, same load; most of it is the JVMs starting.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.cluster import LocalCluster  # noqa: E402
from harness.nodes import local_spawner  # noqa: E402
from histories.op import Op  # noqa: E402

FIRST_OP_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Measurement:
    first_op_s: float   # processes started -> first ok operation
    nodes_up_s: float   # building the nodes, before that


@dataclass(frozen=True)
class Setup:
    name: str
    measure: Callable[[Path, int], Measurement]   # (scratch dir, run number) -> one measurement


def until_ok(attempt: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + FIRST_OP_TIMEOUT_S
    while not attempt():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: no successful operation in {FIRST_OP_TIMEOUT_S:.0f} s")
        time.sleep(0.01)


def etcd_local(n_nodes: int) -> Callable[[Path, int], Measurement]:
    def measure(scratch: Path, run: int) -> Measurement:
        from targets.etcd.client import RegisterClient
        from targets.etcd.target import EtcdTarget

        t0 = time.monotonic()
        with LocalCluster(f"bench-etcd-{os.getpid()}-{run}", n_nodes, log_dir=scratch / "nodes") as cluster:
            nodes_up = time.monotonic() - t0
            target = EtcdTarget(cluster.addresses, scratch / "data", local_spawner(cluster, None))
            client = RegisterClient(target.url(cluster.nodes[0]), 0.5)
            try:
                started = time.monotonic()
                for node in cluster.nodes:
                    target.setup(None, node)
                write = Op(0, "invoke", 0, "write", 1, "bench")
                until_ok(lambda: client.invoke(None, write).type == "ok", "etcd")
                return Measurement(time.monotonic() - started, nodes_up)
            finally:
                client.close(None)
                for node in cluster.nodes:
                    target.teardown(None, node)

    return measure


def zookeeper_local(n_nodes: int) -> Callable[[Path, int], Measurement]:
    """JVMs started -> the first ok write through kazoo (a fresh session each attempt, to the first node)."""
    def measure(scratch: Path, run: int) -> Measurement:
        from targets.zookeeper.client import ready_write
        from targets.zookeeper.target import ZooKeeperTarget

        logging.getLogger("kazoo").setLevel(logging.ERROR)  # refused connects while the JVMs start: expected
        t0 = time.monotonic()
        with LocalCluster(f"bench-zk-{os.getpid()}-{run}", n_nodes, log_dir=scratch / "nodes") as cluster:
            nodes_up = time.monotonic() - t0
            target = ZooKeeperTarget(cluster.addresses, scratch / "data", local_spawner(cluster, None))
            try:
                started = time.monotonic()
                for node in cluster.nodes:
                    target.setup(None, node)
                until_ok(lambda: ready_write(target.hosts(cluster.nodes[0]), timeout_s=1.0), "zookeeper")
                return Measurement(time.monotonic() - started, nodes_up)
            finally:
                for node in cluster.nodes:
                    target.teardown(None, node)

    return measure


SETUPS: list[Setup] = [
    Setup("etcd 3.4, 3 nodes, local", etcd_local(3)),
    Setup("ZooKeeper 3.8, 3 nodes, local", zookeeper_local(3)),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", default="", help="only the set-ups whose name contains this")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench/clusters.py needs root (local nodes are network namespaces)", file=sys.stderr)
        return 3
    print(f"{'set-up':<34} {'runs':>4} {'median s':>9} {'min s':>7} {'max s':>7} {'nodes up s':>11}")
    for setup in SETUPS:
        if args.only not in setup.name:
            continue
        results = []
        for run in range(args.runs):
            with tempfile.TemporaryDirectory(prefix="bench-clusters-") as scratch:
                results.append(setup.measure(Path(scratch), run))
        firsts = [r.first_op_s for r in results]
        print(f"{setup.name:<34} {len(firsts):>4} {statistics.median(firsts):>9.2f} {min(firsts):>7.2f} "
              f"{max(firsts):>7.2f} {statistics.median(r.nodes_up_s for r in results):>11.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
