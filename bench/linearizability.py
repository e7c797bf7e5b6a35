"""Linearizability checker speed on the shared corpus: per folder, the total and the slowest files.

    python bench/linearizability.py [--runs 3] [--corpus ../shared/corpus]

Median of --runs runs per file, in ms (the check alone: parsing excluded). The baseline column is the
same search with prunings 2-5 off (checkers/linearizable.py), run in the same process, so the ratio shows
what they buy on this machine; "agree" counts files where both give the manifest's verdict. Porcupine (Go) reference: the 52 porcupine-etcd files
in about 185-215 ms, porcupine-kv c10-ok / c10-bad in about 1 ms / 0.5 ms (measured on this kind of
machine; see the issue).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from splitbrain.checkers.linearizable import check_linearizable  # noqa: E402
from splitbrain.checkers.models import cas_register, kv, multi_register  # noqa: E402
from splitbrain.histories.formats import load_history  # noqa: E402

FOLDERS = {
    "porcupine-etcd": lambda: cas_register(None),
    "porcupine-kv": lambda: kv(""),
    "knossos-cas-register": lambda: cas_register(0),
    "knossos-multi-register": lambda: multi_register({"x": 0, "y": 0}),
}


def median_ms(history, make_model, runs: int, prune: bool = True) -> tuple[float, object]:
    times = []
    result = None
    for _ in range(runs):
        model = make_model()
        t = time.perf_counter()
        result = check_linearizable(history, model, time_limit=300, prune=prune)
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times), result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--corpus", default=str(Path(__file__).resolve().parents[2] / "shared" / "corpus"))
    ap.add_argument("--slowest", type=int, default=3)
    args = ap.parse_args()
    corpus = Path(args.corpus)
    if not corpus.is_dir():
        print(f"no corpus at {corpus}: nothing to measure (pass --corpus DIR)")
        return 0
    print(f"{'folder':<24} {'files':>5} {'total ms':>9} {'baseline':>9} {'ratio':>6} {'agree':>6}  slowest (ms)")
    grand = grand_base = 0.0
    for folder, make_model in FOLDERS.items():
        manifest = json.loads((corpus / folder / "manifest.json").read_text())["files"]
        rows = []
        agree = 0
        for name, entry in sorted(manifest.items()):
            if entry.get("expected") not in ("valid", "invalid"):
                continue
            history = load_history(str(corpus / folder / name))
            ms, result = median_ms(history, make_model, args.runs)
            base_ms, base = median_ms(history, make_model, args.runs, prune=False)
            agree += (result.valid is True) == (entry["expected"] == "valid") and base.valid == result.valid
            rows.append((ms, name, result.details.get("steps", 0), base_ms))
        total = sum(r[0] for r in rows)
        base_total = sum(r[3] for r in rows)
        grand += total
        grand_base += base_total
        slow = ", ".join(f"{n} {ms:.1f} ({steps} steps)" for ms, n, steps, _ in sorted(rows, reverse=True)[:args.slowest])
        print(f"{folder:<24} {len(rows):>5} {total:>9.1f} {base_total:>9.1f} {base_total / total:>5.1f}x "
              f"{agree:>3}/{len(rows):<3} {slow}")
    print(f"{'all':<24} {'':>5} {grand:>9.1f} {grand_base:>9.1f} {grand_base / grand:>5.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
