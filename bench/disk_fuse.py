"""What the lose-unfsynced file system costs: appends of log records with fdatasync, on a plain directory
and on the volatile FUSE mount (control/volatile_fs.py), in the same process.

    sudo .venv/bin/python bench/disk_fuse.py [--records N] [--repeats R]

Prints a table: the median of R runs of N records each, and the ratio to the plain directory.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from splitbrain.nemesis.power import VolatileMount

RECORD = b"x" * 200  # about one Raft store record


def appends(directory: Path, records: int, sync: bool) -> float:
    path = directory / "wal"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    start = time.perf_counter()
    for _ in range(records):
        os.write(fd, RECORD)
        if sync:
            os.fdatasync(fd)
    elapsed = time.perf_counter() - start
    os.close(fd)
    os.unlink(path)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=Path(__file__).parent) as tmp:
        plain, volatile = Path(tmp) / "plain", Path(tmp) / "volatile"
        plain.mkdir()
        mount = VolatileMount(str(volatile), None)
        mount.mount()
        try:
            rows = []
            for sync in (False, True):
                base = statistics.median(appends(plain, args.records, sync) for _ in range(args.repeats))
                fuse = statistics.median(appends(volatile, args.records, sync) for _ in range(args.repeats))
                rows.append((sync, base, fuse))
        finally:
            mount.unmount()
    print(f"{args.records} appends of {len(RECORD)} bytes, median of {args.repeats} runs")
    print("| appends | plain directory | volatile FUSE mount | ratio |")
    print("|---|---|---|---|")
    for sync, base, fuse in rows:
        what = "write + fdatasync" if sync else "write only"
        print(f"| {what} | {base / args.records * 1e6:.1f} µs | {fuse / args.records * 1e6:.1f} µs | "
              f"{fuse / base:.2f}x |")


if __name__ == "__main__":
    main()
