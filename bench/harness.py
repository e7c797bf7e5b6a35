"""Recording throughput of the interpreter: clients that do nothing, so the harness is all that is timed.

    python bench/harness.py [--ops 40000] [--concurrency 10] [--runs 3]

Prints ops/s (an op = invocation + completion, both recorded), median of --runs runs, for: recording to
memory only (the baseline), and recording to history.jsonl as a run does (every invocation on disk
before its worker gets it, completions before the scheduler waits). Aim: at least 20,000 ops/s.
"""

from __future__ import annotations

import argparse
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
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    base = statistics.median(ops_per_second(args.ops, args.concurrency, False) for _ in range(args.runs))
    disk = statistics.median(ops_per_second(args.ops, args.concurrency, True) for _ in range(args.runs))
    print(f"{'recording':<34} {'ops/s':>10} {'vs memory':>10}")
    print(f"{'memory only (baseline)':<34} {base:>10,.0f} {1.0:>9.2f}x")
    print(f"{'history.jsonl, flushed per batch':<34} {disk:>10,.0f} {disk / base:>9.2f}x")
    print(f"(concurrency {args.concurrency}, {args.ops:,} ops per run, median of {args.runs})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
