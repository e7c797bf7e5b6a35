"""Runs on a node (Docker node or SSH host; the node's Python, the project at the same path): starts a
program with its vDSO patched for the clock nemesis and reports where the patch is, or sets the offset
of a program started so. Only the standard library and nemesis/clockpatch.py: a node may have nothing
else. The harness side is harness/nodes.py ``launch_skewed``.

    python3 -m control.skew_launcher spawn SLOT_FILE OFFSET_NS -- PROGRAM ARGS...
    python3 -m control.skew_launcher set PID SLOT_ADDRESS OFFSET_NS
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

USAGE = ("usage: python3 -m control.skew_launcher spawn SLOT_FILE OFFSET_NS -- PROGRAM ARGS...\n"
         "       python3 -m control.skew_launcher set PID SLOT_ADDRESS OFFSET_NS")


def spawn_main(args: list[str]) -> int:
    """Start the program with its vDSO patched, write "pid slot" to SLOT_FILE, and wait for it; exit with
    its status (so the launcher lives exactly as long as the program, and killing its group kills both)."""
    from splitbrain.control.clockpatch import ClockPatchError, spawn_skewed

    if len(args) < 4 or args[2] != "--":
        print(USAGE, file=sys.stderr)
        return 2
    slot_file, offset, _, *argv = args
    try:
        skewed = spawn_skewed(argv, offset_ns=int(offset), stdin=None)
    except ClockPatchError as e:
        print(f"cannot skew {argv[0]}: {e}", file=sys.stderr)
        return 1
    partial = f"{slot_file}.tmp"
    Path(partial).write_text(f"{skewed.pid} {skewed.slot_address}\n")
    os.replace(partial, slot_file)  # the harness never reads half a line
    rc = skewed.popen.wait()
    return 128 - rc if rc < 0 else rc


def set_main(args: list[str]) -> int:
    from splitbrain.control.clockpatch import ClockPatchError, set_offset

    if len(args) != 3:
        print(USAGE, file=sys.stderr)
        return 2
    try:
        set_offset(int(args[0]), int(args[1]), int(args[2]))
    except (ClockPatchError, ValueError) as e:
        print(f"cannot set the clock offset: {e}", file=sys.stderr)
        return 1
    return 0


def main(args: list[str]) -> int:
    commands = {"spawn": spawn_main, "set": set_main}
    if not args or args[0] not in commands:
        print(USAGE, file=sys.stderr)
        return 2
    return commands[args[0]](args[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
