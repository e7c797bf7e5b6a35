"""Benchmark the list-append checker on generated histories: seconds and peak memory.

    python bench/elle.py [--sizes 10000 100000] [--runs 3] [--model strict-serializable] [--json]

"seconds" is wall-clock time of the check, "cpu s" its CPU time (closer to the unloaded wall time on a
busy machine). Each run happens in a fresh child process (fork), so ``ru_maxrss`` is that run's own peak resident
memory: the history plus everything the checker builds. The history is generated before the clock starts.
"valid" histories come from a serial execution with concurrency, 2% failed and 2% indeterminate txns;
"injected" ones additionally get one anomaly pattern (cycling through all of them) every 500 txns.
Reference: Elle (Clojure) claims 22 million txns in about 2 minutes with a 60 GB heap; the aim here is
100k txns in at most 10 s and 2 GB; issue 17's: 1M txns in at most 15 s and 2 GB. --json adds one JSON line
per row (for bench/porcupine.py).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from splitbrain.checkers.elle import check_list_append  # noqa: E402
from splitbrain.checkers.elle.synth import PATTERNS, list_append_history  # noqa: E402


def _one_run(n: int, injected: bool, seed: int, model: str, out: mp.Queue) -> None:
    history = list_append_history(seed, n, anomalies=PATTERNS if injected else (), every=500,
                                  fail_rate=0.02, info_rate=0.02)
    start, cpu_start = time.perf_counter(), time.process_time()
    result = check_list_append(history, consistency_model=model)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    out.put((seconds, cpu, peak_mib, result.valid, len(result.details.get("anomaly_types", [])),
             len(result.details.get("cycles", [])), len(history), result.details.get("stats", {}).get("edges", 0)))


def measure(n: int, injected: bool, seed: int, model: str) -> tuple:
    ctx = mp.get_context("fork")
    out: mp.Queue = ctx.Queue()
    child = ctx.Process(target=_one_run, args=(n, injected, seed, model, out))
    child.start()
    row = out.get()
    child.join()
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--runs", type=int, default=3, help="runs per size below 100k (median reported)")
    parser.add_argument("--model", default="strict-serializable")
    parser.add_argument("--json", action="store_true", help="also one JSON line per row")
    args = parser.parse_args(argv)
    header = (f"{'txns':>7} {'history':>9} {'runs':>4} {'seconds':>8} {'cpu s':>6} {'peak MiB':>9} {'ops':>8} "
              f"{'edges':>8} {'valid':>6} {'types':>5} {'cycles':>6}")
    print(f"list-append checker, model {args.model}, realtime edges on (as the model needs)")
    print(header)
    print("-" * len(header))
    for n in args.sizes:
        for injected in (False, True):
            runs = args.runs if n < 100_000 else 1
            rows = [measure(n, injected, seed, args.model) for seed in range(runs)]
            seconds = statistics.median(r[0] for r in rows)
            cpu = statistics.median(r[1] for r in rows)
            peak = statistics.median(r[2] for r in rows)
            _, _, _, valid, types, cycles, ops, edges = rows[0]
            kind = "injected" if injected else "valid"
            print(f"{n:>7} {kind:>9} {runs:>4} {seconds:>8.2f} {cpu:>6.2f} {peak:>9.0f} {ops:>8} {edges:>8} "
                  f"{str(valid):>6} {types:>5} {cycles:>6}", flush=True)
            if args.json:
                print(json.dumps({"txns": n, "kind": kind, "seconds": seconds, "cpu": cpu, "peak_mib": peak,
                                  "valid": valid, "types": types}), flush=True)


if __name__ == "__main__":
    main()
