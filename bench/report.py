"""Benchmark the run report: seconds to write report.html and its size, for long histories.

    python bench/report.py [--sizes 10000 100000] [--runs 3]

Each size is a run directory made like a real one (tests/report_helpers.make_run: a register history
with partitions, node logs and one stale read in the middle, checked by the real checkers) before the
clock starts; the clock covers build_report alone (read the files, draw the timeline window, the three
plots, the evidence, the log excerpts, write). The median of ``--runs`` runs is shown, and each size's
ratio to the first size's median, measured in the same process. The aim (issue 12): a 100k-op history's
report in under 10 s and under 20 MB.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from splitbrain.harness.report import build_report  # noqa: E402

from tests.report_helpers import make_run  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            run = make_run(Path(tmp) / str(n), n_ops=n, stale_at=n // 2)
            seconds, cpus = [], []
            for _ in range(args.runs):
                start, cpu = time.perf_counter(), time.process_time()
                path, _ = build_report(run)
                seconds.append(time.perf_counter() - start)
                cpus.append(time.process_time() - cpu)
            rows.append((n, statistics.median(seconds), statistics.median(cpus), path.stat().st_size / 1e6))
            shutil.rmtree(run.parent.parent)
    base = rows[0][1]
    print(f"{'ops':>9} {'seconds':>8} {'cpu s':>7} {'MB':>6} {'vs ' + str(rows[0][0]):>10}")
    for n, s, cpu, mb in rows:
        print(f"{n:>9,} {s:>8.2f} {cpu:>7.2f} {mb:>6.2f} {s / base:>9.2f}x")
    print(f"(median of {args.runs} runs each; aim: 100,000 ops in under 10 s and under 20 MB)")


if __name__ == "__main__":
    main()
