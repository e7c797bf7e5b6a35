"""Runs inside a Docker node (the node's Python, the project mounted): starts a program with its vDSO
patched for the clock nemesis, reports where the patch is, and waits for it. Only the standard library and
nemesis/clockpatch.py: the node image has nothing else. See harness/docker.py, spawn_skewable.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def skew_main(args: list[str]) -> int:
    """In a node: ``SLOT_FILE OFFSET_NS -- PROGRAM ARGS...``: start the program with its vDSO patched,
    write "pid slot" to SLOT_FILE, and wait for it; exit with its status."""
    from nemesis.clockpatch import ClockPatchError, spawn_skewed

    slot_file, offset, separator, *argv = args
    if separator != "--" or not argv:
        print("usage: python3 -m harness.docker_skew SLOT_FILE OFFSET_NS -- PROGRAM ARGS...", file=sys.stderr)
        return 2
    try:
        skewed = spawn_skewed(argv, offset_ns=int(offset), stdin=None)
    except ClockPatchError as e:
        print(f"cannot skew {argv[0]}: {e}", file=sys.stderr)
        return 1
    partial = f"{slot_file}.tmp"
    Path(partial).write_text(f"{skewed.pid} {skewed.slot_address}\n")
    os.replace(partial, slot_file)  # the host never reads half a line
    rc = skewed.popen.wait()
    return 128 - rc if rc < 0 else rc


if __name__ == "__main__":
    sys.exit(skew_main(sys.argv[1:]))
