"""Recording throughput of the interpreter: clients that do nothing, so the harness is all that is timed.

    python bench/harness.py [--ops 40000] [--concurrency 10] [--runs 5] [--json]

Prints ops/s (an op = invocation + completion, both recorded), median of --runs runs, for: recording to
memory only (the baseline), and recording to history.jsonl as a run does (every invocation on disk
before any client runs it, every completion on disk before that worker's next op). The two alternate
run by run, so load on the machine hits both alike. Goal (issue 17): at least 50,000 ops/s to disk.
--json prints one more line, {"memory": ops/s, "disk": ops/s}, for bench/porcupine.py.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# This file is named like the harness package: put the project root first, not bench/.
sys.path[0] = str(Path(__file__).resolve().parents[1])

from splitbrain.harness import interpreter  # noqa: E402
from splitbrain.harness.generator import Limit, clients  # noqa: E402
from splitbrain.harness.workloads import RotatingKeys  # noqa: E402
from splitbrain.histories.jsonl import JsonlWriter  # noqa: E402
from splitbrain.histories.op import Op  # noqa: E402


class Nothing:
    def invoke(self, test: Any, op: Op) -> Op:
        return op.with_(type="ok")

    def close(self, test: Any) -> None:
        pass


def ops_per_second(n_ops: int, concurrency: int, to_disk: bool) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        writer = JsonlWriter(str(Path(tmp) / "history.jsonl")) if to_disk else None
        recorder = interpreter.ListRecorder(writer.write if writer else None, writer.flush if writer else None)
        started = time.perf_counter()
        interpreter.run(None, clients(Limit(n_ops, RotatingKeys())), clients={t: Nothing() for t in range(concurrency)},
                        nemesis=None, recorder=recorder, rng=random.Random(1))
        elapsed = time.perf_counter() - started
        if writer:
            writer.close()
        assert len(recorder.ops) == 2 * n_ops
    return n_ops / elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ops", type=int, default=40_000)
    ap.add_argument("--concurrency", type=int, default=10)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    memory_runs, disk_runs = [], []
    for _ in range(args.runs):
        memory_runs.append(ops_per_second(args.ops, args.concurrency, False))
        disk_runs.append(ops_per_second(args.ops, args.concurrency, True))
    base, disk = statistics.median(memory_runs), statistics.median(disk_runs)
    print(f"{'recording':<34} {'ops/s':>10} {'vs memory':>10}")
    print(f"{'memory only (baseline)':<34} {base:>10,.0f} {1.0:>9.2f}x")
    print(f"{'history.jsonl (crash-safe)':<34} {disk:>10,.0f} {disk / base:>9.2f}x")
    print(f"(concurrency {args.concurrency}, {args.ops:,} ops per run, median of {args.runs})")
    if args.json:
        print(json.dumps({"memory": base, "disk": disk}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
