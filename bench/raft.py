"""Benchmark: throughput and latency of the internal Raft store on loopback.

Starts 3 server processes, runs N client threads doing a seeded mix of puts and linearizable gets
(ReadIndex) for a fixed time, and prints ops/s and p50/p99 latency per run and the median of the runs.

    python bench/raft.py [--clients 16] [--seconds 5] [--runs 3] [--read-fraction 0.5] [--to leader|all]

``--to all`` spreads the clients over every node, so followers forward to the leader.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from targets.raft.client import RaftClient  # noqa: E402
from targets.raft.server.local_cluster import LocalCluster  # noqa: E402


@dataclass
class RunResult:
    ops: int
    seconds: float
    latencies_ms: list[float]
    counts: dict[str, int]

    @property
    def ops_per_s(self) -> float:
        return self.ops / self.seconds

    def percentile_ms(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def client_loop(url: str, seed: int, read_fraction: float, keys: int, stop: threading.Event,
                latencies_ms: list[float], counts: dict[str, int], lock: threading.Lock) -> None:
    rng = random.Random(seed)
    mine: list[float] = []
    tally = {"ok": 0, "fail": 0, "info": 0}
    with RaftClient(url, timeout=5) as client:
        while not stop.is_set():
            key = f"k{rng.randrange(keys)}"
            started = time.perf_counter()
            if rng.random() < read_fraction:
                outcome = client.get(key)
            else:
                outcome = client.put(key, rng.randrange(1_000_000))
            elapsed = time.perf_counter() - started
            tally[outcome.status] += 1
            if outcome.status == "ok":
                mine.append(elapsed * 1000)
    with lock:
        latencies_ms.extend(mine)
        for status, n in tally.items():
            counts[status] += n


def one_run(cluster: LocalCluster, urls: list[str], clients: int, seconds: float, read_fraction: float,
            keys: int, seed: int) -> RunResult:
    stop = threading.Event()
    lock = threading.Lock()
    latencies: list[float] = []
    counts = {"ok": 0, "fail": 0, "info": 0}
    threads = [threading.Thread(target=client_loop, args=(urls[i % len(urls)], seed * 1000 + i, read_fraction,
                                                          keys, stop, latencies, counts, lock))
               for i in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    return RunResult(counts["ok"], elapsed, latencies, counts)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--read-fraction", type=float, default=0.5)
    p.add_argument("--keys", type=int, default=100)
    p.add_argument("--to", choices=("leader", "all"), default="leader")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()

    results: list[RunResult] = []
    with tempfile.TemporaryDirectory(prefix="raft-bench-") as tmp, LocalCluster(Path(tmp), 3) as cluster:
        leader = cluster.wait_for_leader()
        urls = [cluster.url(leader)] if args.to == "leader" else [cluster.url(n) for n in cluster.ids]
        print(f"3 nodes on loopback, leader {leader}; {args.clients} client threads to {args.to}; "
              f"{args.read_fraction:.0%} linearizable gets, the rest puts; {args.seconds:g} s per run")
        print(f"{'run':>4} {'ops/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'ok':>8} {'fail':>6} {'info':>6}")
        for run in range(1, args.runs + 1):
            r = one_run(cluster, urls, args.clients, args.seconds, args.read_fraction, args.keys, args.seed + run)
            results.append(r)
            print(f"{run:>4} {r.ops_per_s:>9.0f} {r.percentile_ms(0.5):>8.2f} {r.percentile_ms(0.99):>8.2f} "
                  f"{r.counts['ok']:>8} {r.counts['fail']:>6} {r.counts['info']:>6}")
    median = statistics.median(r.ops_per_s for r in results)
    p50 = statistics.median(r.percentile_ms(0.5) for r in results)
    p99 = statistics.median(r.percentile_ms(0.99) for r in results)
    print(f"{'median':>6} {median:>7.0f} {p50:>8.2f} {p99:>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
