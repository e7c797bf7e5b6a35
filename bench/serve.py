"""Benchmark `splitbrain serve` over a store of many runs: the list of runs, cold and warm, and the page.

    python bench/serve.py [--runs-in-store 1000] [--repeats 5]

The store is made first (tests/report_helpers.make_run: small register runs, one in ten invalid). "cold"
is a fresh index (every run's test.json and results.json read, each history's tail), "warm" the same
index again (a walk and a few stats per run: what every later request costs), "page" a GET of / over
HTTP on loopback. Medians of ``--repeats``; ratios against the warm listing, measured in the same process.
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from splitbrain.harness.serve import RunIndex, StoreServer  # noqa: E402

from tests.report_helpers import make_run  # noqa: E402


def _median(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs-in-store", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp)
        for i in range(args.runs_in_store):
            make_run(store, f"raft-register-{i % 7}", f"2026{1 + i % 12:02d}01T{i // 60 % 24:02d}{i % 60:02d}00.000",
                     n_ops=20, seed=i, stale_at=10 if i % 10 == 0 else None, node_logs=False)
        cold = _median(lambda: RunIndex(store).rows(), args.repeats)
        index = RunIndex(store)
        rows = index.rows()
        warm = _median(index.rows, args.repeats)
        server = StoreServer(store, "127.0.0.1", 0)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()

        def page() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=60)
            conn.request("GET", "/")
            body = conn.getresponse().read()
            conn.close()
            assert body.count(b'class="run"') == len(rows)

        page()  # the server's own index, warmed
        page_s = _median(page, args.repeats)
        server.shutdown()
        server.server_close()
    print(f"{len(rows):,} runs in the store (median of {args.repeats})")
    print(f"{'':<16} {'seconds':>8} {'vs warm':>8}")
    for name, s in (("list, cold", cold), ("list, warm", warm), ("page over HTTP", page_s)):
        print(f"{name:<16} {s:>8.3f} {s / warm:>7.1f}x")


if __name__ == "__main__":
    main()
