"""Disk faults: corrupt a node's data files, cut the tail of its newest log, and take the damage back.

The target names its files (``HasDataFiles``: the data directory, which globs are its log/WAL, its
snapshots, its other files) and can be crashed and restarted (``Killable``). A fault kills the node's
process, damages the files through the node's Remote (nemesis/disk_ops.py runs there with the node's own
``python3``, so local, Docker and SSH nodes work alike) and starts the process again: what the process
does with the damage (refuses to start naming the file and offset, repairs a torn tail, or serves what it
read) is the point of the test. The ``live`` variant damages the files under a running process.

Ops (values are JSON; the schedule draws them, nemesis/kinds.py):
- ``start-corrupt`` ``{"nodes": [...], "mode": bitflip|zero|copy, "files": log|snapshot|other|any,
  "live": bool, "seed": n}`` (optional ``offset``, ``length``: aim instead of drawing), ended by ``stop-corrupt``: the original bytes put back where the file
  still holds the damage, and the process restarted.
- ``start-truncate`` ``{"nodes": [...], "seed": n}`` (optional ``length``), ended by ``stop-truncate``: the process restarted
  (a cut tail cannot be put back once the process has written past it).
Each completion lists the faults done, ``{"node", "file", "offset", "length", "mode"}``, as the history's
record of where the damage is.
"""

from __future__ import annotations

import inspect
import json
import threading
from collections.abc import Sequence
from typing import Any

from splitbrain.control.errors import ConfigError, RemoteError
from splitbrain.control.target import HasDataFiles, Killable
from splitbrain.histories.op import Op
from splitbrain.nemesis import disk_ops
from splitbrain.nemesis.base import NemesisContext, completed

START_CORRUPT, STOP_CORRUPT = "start-corrupt", "stop-corrupt"
START_TRUNCATE, STOP_TRUNCATE = "start-truncate", "stop-truncate"
# The largest chunk a corruption zeroes or copies, and the most a torn write cuts off.
MAX_BYTES = 512
EXEC_TIMEOUT_S = 30.0
_SOURCE = inspect.getsource(disk_ops)
# What the history keeps of a fault (the bytes themselves stay in the nemesis, for restoring).
_SHOWN = ("node", "file", "offset", "length", "mode", "from")


def run_disk_op(remote: Any, request: dict[str, Any]) -> dict[str, Any]:
    """Carry out one disk_ops request on ``remote``'s node; RemoteError with its one-line reason."""
    cmd = ["python3", "-", json.dumps(request)]
    result = remote.exec(cmd, stdin=_SOURCE, timeout=EXEC_TIMEOUT_S)
    try:
        done = json.loads(result.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        raise RemoteError(remote.node, cmd[:2] + [request["op"]], result.stderr.strip() or f"exit code {result.rc}") from None
    if "error" in done:
        raise RemoteError(remote.node, cmd[:2] + [request["op"]], done["error"])
    return done


class DiskNemesis:
    """Corrupt and truncate (see the module's doc). ``heal`` takes back every corruption it still can and
    restarts every node it damaged, so a run ends with every process up."""

    def __init__(self, ctx: NemesisContext, *, max_bytes: int = MAX_BYTES) -> None:
        self.ctx = ctx
        self.max_bytes = max_bytes
        self.corrupted: dict[str, list[dict[str, Any]]] = {}  # node -> faults (with their bytes), oldest first
        self.truncated: set[str] = set()
        self._lock = threading.RLock()  # heal (on a signal, from another thread) waits for a fault in flight

    @property
    def target(self) -> Any:
        return self.ctx.target

    def fs(self) -> set[str]:
        return {START_CORRUPT, STOP_CORRUPT, START_TRUNCATE, STOP_TRUNCATE}

    def setup(self, test: Any) -> None:
        missing = [what for what, protocol in (("data_files", HasDataFiles), ("kill/start", Killable))
                   if not isinstance(self.target, protocol)]
        if missing:
            raise ConfigError(f"disk faults need a target that implements {' and '.join(missing)}; "
                              f"{type(self.target).__name__} does not")

    def invoke(self, test: Any, op: Op) -> Op:
        with self._lock:
            try:
                if op.f == START_CORRUPT:
                    return self._damage(test, op, "corrupt")
                if op.f == START_TRUNCATE:
                    return self._damage(test, op, "truncate")
                if op.f == STOP_CORRUPT:
                    return self._stop(test, op, self._restore_corrupted)
                if op.f == STOP_TRUNCATE:
                    return self._stop(test, op, self._restart_truncated)
            except (KeyError, TypeError, ValueError) as e:
                return completed(op, op.value, error=f"bad {op.f} value {op.value!r}: {e}")
            return completed(op, op.value, error=f"the disk nemesis does not handle {op.f!r}")

    def _damage(self, test: Any, op: Op, what: str) -> Op:
        value = op.value or {}
        nodes = _nodes_of(value, self.ctx.nodes)
        live = bool(value.get("live", False)) and what == "corrupt"
        faults, errors = [], []
        for i, node in enumerate(nodes):
            files = self.target.data_files(test, node)
            request = {"op": what, "directory": files.directory, "seed": int(value.get("seed", 0)) + i,
                       "max_bytes": self.max_bytes}
            for aim in ("offset", "length"):
                if value.get(aim) is not None:
                    request[aim] = int(value[aim])
            if what == "corrupt":
                request["mode"] = value.get("mode", "bitflip")
                request["patterns"] = list(files.patterns(value.get("files", "log")))
            else:
                request["patterns"] = list(files.logs)
            if not live:
                self.target.kill(test, node)
            try:
                done = run_disk_op(self.ctx.remotes[node], request)
            except RemoteError as e:
                errors.append(f"{node}: {e}")
                done = None
            finally:
                if not live:
                    self.target.start(test, node)
            if done is None:
                continue
            done["node"] = node
            if what == "corrupt":
                self.corrupted.setdefault(node, []).append(done)
            else:
                self.truncated.add(node)
            faults.append({k: done[k] for k in _SHOWN if k in done})
        result: dict[str, Any] = {"faults": faults}
        if live:
            result["live"] = True
        return completed(op, result, error="; ".join(errors) or None)

    def _stop(self, test: Any, op: Op, undo: Any) -> Op:
        done, errors = undo(test)
        return completed(op, done, error="; ".join(errors) or None)

    def _restore_corrupted(self, test: Any) -> tuple[dict[str, Any], list[str]]:
        restored, kept, errors = [], [], []
        for node in sorted(self.corrupted):
            faults = self.corrupted.pop(node)
            self.target.kill(test, node)
            try:
                for fault in reversed(faults):  # newest first: overlapping damage unwinds in order
                    request = {"op": "restore", **{k: fault[k] for k in ("file", "offset", "original", "written")}}
                    back = run_disk_op(self.ctx.remotes[node], request)
                    shown = {"node": node, "file": fault["file"], "offset": fault["offset"], "length": fault["length"]}
                    if back.get("restored"):
                        restored.append(shown)
                    else:
                        kept.append({**shown, "why": back.get("why")})
            except RemoteError as e:
                errors.append(f"{node}: {e}")
            finally:
                self.target.start(test, node)
        return {"restored": restored, "kept": kept}, errors

    def _restart_truncated(self, test: Any) -> tuple[dict[str, Any], list[str]]:
        nodes, errors = sorted(self.truncated), []
        self.truncated.clear()
        for node in nodes:
            try:
                self.target.kill(test, node)
                self.target.start(test, node)
            except (RemoteError, OSError) as e:
                errors.append(f"{node}: {e}")
        return {"restarted": nodes}, errors

    def heal(self, test: Any) -> None:
        with self._lock:
            errors = self._restore_corrupted(test)[1] + self._restart_truncated(test)[1]
        if errors:
            raise RemoteError("nemesis", ["heal", "disk"], "; ".join(errors))


def _nodes_of(value: dict[str, Any], nodes: Sequence[str]) -> list[str]:
    chosen = value.get("nodes")
    if not isinstance(chosen, list) or not chosen:
        raise ValueError("expected a non-empty list of nodes under 'nodes'")
    unknown = sorted(set(chosen) - set(nodes))
    if unknown:
        raise ValueError(f"unknown nodes {unknown}; nodes are {list(nodes)}")
    return sorted(set(chosen))
