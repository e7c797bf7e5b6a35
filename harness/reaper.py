"""What a run leaves behind when the harness itself dies (kill -9, OOM): nothing, within seconds.

At its start a run launches a reaper: a small process in a session of its own (so the terminal's Ctrl-C
and a CI job's signal to the harness's process group do not reach it) that holds the read end of a pipe
from the harness. When the run ends cleanly the harness writes ``done`` and the reaper exits. When the
pipe closes without that word, the harness is gone: the reaper removes everything of the run, by its run
id only (nodes/clusters.py ``cleanup``: processes, namespaces, cgroups, containers, the nemeses' rules on
SSH hosts), a few times over a few seconds to catch what the dying harness's children still made, logs
what it did to reaper.log in the run directory, and removes the run's ``.running`` marker.

The marker (``.running`` in the run directory: the harness's pid and start time, its run id and nodes)
is also how a later `splitbrain run` finds a run that died with its reaper (``dead_runs``) and warns
about it in one line; `splitbrain cleanup RUN_DIR` removes what it left.

    python -m splitbrain.harness.reaper RUN_DIR RUN_ID NODES_JSON    (started by the run, not by people)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

MARKER = ".running"
DONE = b"done\n"
# After the harness is gone: clean up, then again until a pass finds nothing and this long has passed
# (a `docker run` or `ip netns add` the harness had started may still complete meanwhile).
SETTLE_S = 3.0
GIVE_UP_S = 8.0


def _start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (so a reused pid is not taken for the run)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def write_marker(run_dir: Path, run_id: str, nodes: dict[str, Any]) -> None:
    pid = os.getpid()
    (run_dir / MARKER).write_text(json.dumps({"pid": pid, "start_ticks": _start_ticks(pid), "run_id": run_id,
                                              "nodes": nodes, "started": time.time()}) + "\n")


def remove_marker(run_dir: Path) -> None:
    try:
        (run_dir / MARKER).unlink()
    except FileNotFoundError:
        pass


class Reaper:
    """The harness's end of the pipe to its reaper."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process

    @staticmethod
    def launch(run_dir: Path, run_id: str, nodes: dict[str, Any]) -> Reaper:
        log = open(run_dir / "reaper.log", "ab")  # noqa: SIM115 - handed to the child
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "splitbrain.harness.reaper", str(run_dir), run_id, json.dumps(nodes)],
                stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                close_fds=True)
        finally:
            log.close()
        return Reaper(process)

    def release(self) -> None:
        """The run cleaned up after itself: the reaper may go."""
        try:
            assert self.process.stdin is not None
            self.process.stdin.write(DONE)
            self.process.stdin.close()
        except (OSError, ValueError):
            pass
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()


def _wait_for_harness(stdin: IO[bytes]) -> bool:
    """True when the harness said it is done; False when the pipe closed without that word."""
    received = b""
    while chunk := stdin.read(64):
        received += chunk
        if DONE in received:
            return True
    return DONE in received


def reap(run_dir: Path, run_id: str, nodes_json: dict[str, Any], log: Any = print) -> list[str]:
    """Remove everything of run ``run_id`` (repeatedly, until it stays gone). Returns what was removed."""
    from splitbrain.control.clusters import nodes_from_json

    nodes = nodes_from_json(nodes_json)
    removed: list[str] = []
    started = time.monotonic()
    while True:
        try:
            found = nodes.cleanup(run_id)
        except Exception as e:  # noqa: BLE001 - keep trying: the point is that nothing stays behind
            found = [f"clean-up failed: {type(e).__name__}: {e}"]
        removed += found
        for item in found:
            log(f"removed {item}")
        elapsed = time.monotonic() - started
        if (not found and elapsed >= SETTLE_S) or elapsed >= GIVE_UP_S:
            break
        time.sleep(0.5)
    remove_marker(run_dir)
    return removed


@dataclass(frozen=True)
class DeadRun:
    run_dir: Path
    leftovers: list[str]


def dead_runs(store: Path) -> list[DeadRun]:
    """Runs in ``store`` whose harness died without cleaning up and whose reaper did not either, with what
    they left (found by their run ids). Markers of dead runs that left nothing are removed."""
    from splitbrain.control.clusters import nodes_from_json

    found: list[DeadRun] = []
    for marker in sorted(store.glob(f"*/*/{MARKER}")):
        try:
            info = json.loads(marker.read_text())
            pid, ticks, run_id = int(info["pid"]), info.get("start_ticks"), str(info["run_id"])
            nodes = nodes_from_json(info.get("nodes") or {})
        except (OSError, ValueError, KeyError, TypeError, Exception):  # noqa: BLE001 - a torn marker is skipped
            continue
        if _start_ticks(pid) is not None and _start_ticks(pid) == ticks:
            continue  # that run is alive
        try:
            left = nodes.leftovers(run_id) if nodes.remote != "ssh" else ["possibly processes and rules on its hosts"]
        except Exception:  # noqa: BLE001 - cannot tell: say so rather than stay silent
            left = ["unknown (could not look)"]
        if left:
            found.append(DeadRun(marker.parent, left))
        else:
            remove_marker(marker.parent)
    return found


def main(argv: list[str]) -> int:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)  # only the end of the pipe decides
    run_dir, run_id, nodes = Path(argv[0]), argv[1], json.loads(argv[2])
    if _wait_for_harness(sys.stdin.buffer):
        return 0
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    print(f"{stamp} the harness is gone without cleaning up: removing what run {run_id} left", flush=True)
    removed = reap(run_dir, run_id, nodes, log=lambda line: print(line, flush=True))
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} done: {len(removed)} thing(s) removed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
