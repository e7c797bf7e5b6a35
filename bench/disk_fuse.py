"""What the lose-unfsynced file system costs: appends of log records with fdatasync, on a plain directory
and on the volatile FUSE mount (control/volatile_fs.py), in the same process.

    sudo .venv/bin/python bench/disk_fuse.py [--records N] [--repeats R] [--docker]

Prints a table: the median of R runs of N records each, and the ratio to the plain directory. With
``--docker`` the appends run in a container of the node image (timed there, by its python3), on a
bind-mounted directory and on the volatile mount the daemon made in the container's mount namespace,
as a Docker node's data directory gets it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from splitbrain.control.docker import container_state
from splitbrain.control.images import build_image
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


# The appends of ``appends`` as a program for a container's python3: prints the seconds they took.
IN_CONTAINER = """
import os, sys, time
path, records, sync = sys.argv[1] + "/wal", int(sys.argv[2]), sys.argv[3] == "1"
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
start = time.perf_counter()
for _ in range(records):
    os.write(fd, b"x" * 200)
    if sync:
        os.fdatasync(fd)
print(time.perf_counter() - start)
os.close(fd)
os.unlink(path)
"""


class Container:
    """One container of the node image with ``directories`` bind-mounted at the same paths; removed at exit."""

    def __init__(self, directories: list[Path]) -> None:
        self.name = f"sb-bench-disk-fuse-{os.getpid()}"
        mounts = [arg for d in directories for arg in ("--mount", f"type=bind,source={d},target={d}")]
        subprocess.run(["docker", "run", "-d", "--rm", "--network", "none", "--name", self.name, *mounts,
                        build_image()[0], "sleep", "infinity"], check=True, capture_output=True, timeout=120)

    @property
    def pid(self) -> int:
        return int((container_state(self.name) or {})["Pid"])

    def appends(self, directory: Path, records: int, sync: bool) -> float:
        done = subprocess.run(["docker", "exec", self.name, "python3", "-c", IN_CONTAINER, str(directory), str(records),
                               "1" if sync else "0"], check=True, capture_output=True, text=True, timeout=600)
        return float(done.stdout)

    def remove(self) -> None:
        subprocess.run(["docker", "rm", "-f", self.name], capture_output=True, timeout=120)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--docker", action="store_true", help="append from a container of the node image")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=Path(__file__).parent) as tmp:
        plain, volatile = Path(tmp) / "plain", Path(tmp) / "volatile"
        plain.mkdir()
        volatile.mkdir()
        container = Container([plain, volatile]) if args.docker else None
        try:
            mount = VolatileMount(str(volatile), None, container.pid if container else None)
            mount.mount()
            run = container.appends if container else appends
            try:
                rows = []
                for sync in (False, True):
                    base = statistics.median(run(plain, args.records, sync) for _ in range(args.repeats))
                    fuse = statistics.median(run(volatile, args.records, sync) for _ in range(args.repeats))
                    rows.append((sync, base, fuse))
            finally:
                mount.unmount()
        finally:
            if container:
                container.remove()
    where = " in a Docker container" if container else ""
    print(f"{args.records} appends of {len(RECORD)} bytes{where}, median of {args.repeats} runs")
    print("| appends | plain directory | volatile FUSE mount | ratio |")
    print("|---|---|---|---|")
    for sync, base, fuse in rows:
        what = "write + fdatasync" if sync else "write only"
        print(f"| {what} | {base / args.records * 1e6:.1f} µs | {fuse / args.records * 1e6:.1f} µs | "
              f"{fuse / base:.2f}x |")


if __name__ == "__main__":
    main()
